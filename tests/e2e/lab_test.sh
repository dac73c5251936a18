#!/usr/bin/env bash
# The lab end to end, as a user runs it: `cwctl lab up` (2 clusters x 2 nodes) in the default
# world (bird: Calico-like BGP routes, the bridge plugin's masquerade) on a 1400-byte underlay,
# with faults on (a second masquerade on c1's nodes, ICMP "fragmentation needed" dropped), then
# `verify`, a partition injected and cleared, then the checks: deleting a ClusterPeering removes the tunnel and routes while in-cluster
# traffic keeps flowing, re-applying it brings traffic back; a node agent restart breaks no
# established cross-cluster TCP connection; an operator killed with SIGKILL and restarted
# changes no CIDR; what components must not do under the chart's RBAC is refused (403); both
# API servers restarted and killed under traffic change nothing (their objects are in etcd)
# and an object over 1.5 MiB gets etcd's error; finally `down` leaves
# nothing of the lab behind, also after up was killed
# half-way, and up interrupted with SIGTERM removes what it made itself.
# Everything is named cwt<pid of this script> (its own lab), removed on exit even on failure.
# Labs cwt<pid> left by an earlier run whose script is dead (killed by a timeout, which runs no
# trap) are removed first. Every command has a timeout, and none may run past the test's
# budget (600 s; a normal run takes about 75 s): the worst case is the budget plus the
# clean-up's 65 s, well under the ctest TIMEOUT of 900 s (tests/CMakeLists.txt).
# With --world vxlan|clusterwire, a short run of that world instead: up, verify, down.
# Usage: lab_test.sh BUILD_DIR [--world WORLD]   (BUILD_DIR holds cli/cwctl and the other binaries)
set -u -o pipefail
build=$1
world=""
[ "${2:-}" = --world ] && world=$3
source "$(dirname "$0")/lab_lib.sh"  # t, ok, bad, wait_until, lab, kc, pod, pod_ip; $name, $state; clean-up

# --- up (normally a few seconds; SIGTERM at the limit makes it clean up)
up_args=(--underlay-mtu 1400)
[ -n "$world" ] && up_args=(--cni "$world")
if out=$(t 150 "$cwctl" lab --name "$name" up "${up_args[@]}" 2>&1); then
  ok "cwctl lab up (2 x 2, ${world:-bird} world, ${up_args[*]}) in $(( $(date +%s) - started )) s"
else
  bad "cwctl lab up" "$out"; echo "$passed passed, $failed failed"; exit 1
fi
grep -q "kubectl --kubeconfig $state/c1.kubeconfig" <<<"$out" && grep -q "cwctl lab kubectl" <<<"$out" \
  && ok "up prints how to point kubectl at each cluster" || bad "kubectl hint" "$out"
grep -q '^\[ *[0-9]*/[0-9]*\]' <<<"$out" && ok "up reports progress step by step" || bad "progress" "$out"

c1n1=$(pod_ip c1-n1) c1n2=$(pod_ip c1-n2) c2n1=$(pod_ip c2-n1) c2n2=$(pod_ip c2-n2)
if1=$(t 10 ip -n "$name-c1-n1" -o link | grep -o 'cw[0-9a-f]\{6\}c1n1' | head -1)
[ -n "$if1" ] && ok "c1-n1 has its WireGuard device $if1" || bad "no WireGuard device cw<hash>c1n1 in $name-c1-n1"
# ClusterSet ingress policy is on (docs/policy.md): c1-n1 judges what c2 sends its pods, and
# with posture All (the default) lets it all through. Postures and policies across three
# clusters: tests/e2e/policy_test.sh.
ingress_table=$(t 10 ip netns exec "$name-c1-n1" nft list table inet clusterwire_ingress 2>&1)
grep -q 'counter packets [0-9]* bytes [0-9]* accept comment "c2: ingress All"' <<<"$ingress_table" \
  && grep -q 'ip saddr vmap @from_cluster_v4' <<<"$ingress_table" \
  && ok "c1-n1 keeps table inet clusterwire_ingress, c2 at posture All" || bad "no ingress table on c1-n1" "$ingress_table"

# --- faults real networks have: a CNI masquerade on top of the bridge plugin's, a PMTU black hole
[ -z "$world" ] && for fault in "masquerade c1" "drop-icmp-frag"; do
  fout=$(lab 30 impair $fault 2>&1) && grep -q "on: *$fault" <<<"$fout" && ok "impair $fault" || bad "impair $fault" "$fout"
done
[ -z "$world" ] && { t 10 ip netns exec "$name-c1-n1" iptables-legacy -t nat -S POSTROUTING | grep -q -- "-j MASQUERADE"; } \
  && ok "c1-n1 masquerades in iptables-legacy beside the bridge plugin's iptables-nft rules" || [ -n "$world" ] || bad "no masquerade rule"

# --- verify (normally a few seconds)
vout=$(lab 150 verify 2>&1); vrc=$?
echo "$vout" | sed 's/^/    /'
for check in peering ping tcp source in-cluster cni-routes underlay mtu mss clusterip clusterset-ip; do
  rows=$(grep -E "^$check " <<<"$vout" || true)
  # A SKIP is allowed only where the lab cannot check (IPv6 ClusterIPs: the lab API server
  # allocates IPv4 ones only); every other row must pass.
  others=$(grep -vE '^\S+ +\S+ +\S+ +PASS ' <<<"$rows" | grep -vE ' SKIP +the lab API server allocates IPv4 ClusterIPs only' || true)
  if ! grep -qE '^\S+ +\S+ +\S+ +PASS ' <<<"$rows"; then bad "verify: no passing $check row" "$rows"
  elif [ -n "$others" ]; then bad "verify: $check rows" "$others"
  else ok "verify: every $check row passes ($(grep -cE ' PASS ' <<<"$rows"), IPv6 rows $(grep -c '/v6' <<<"$rows"))"; fi
done
grep -qE '^convergence +peerings +first packet +INFO +[0-9]+ ms' <<<"$vout" \
  && ok "verify: convergence is an INFO row with the figure" || bad "verify: convergence row" "$(grep -E '^convergence' <<<"$vout")"
if [ -x "$build/dns/cw-dns" ]; then
  [ $vrc -eq 0 ] && ok "verify exits 0 (no row fails, DNS included)" || bad "verify exit status $vrc" "$(grep FAIL <<<"$vout")"
else
  echo "note: $build/dns/cw-dns is not built: the DNS rows are expected to fail"
  grep -E '^dns ' <<<"$vout" | grep -q 'cw-dns is not running' && ok "verify explains the DNS rows' failure" \
    || bad "DNS rows without cw-dns" "$(grep -E '^dns' <<<"$vout")"
fi

if [ -n "$world" ]; then
  grep -q "($world world" <<<"$vout" && ok "verify ran in the $world world" || bad "verify's world" "$(head -1 <<<"$vout")"
else
  grep -E '^mtu ' <<<"$vout" | grep -q "faults: masquerade c1, drop-icmp-frag" && ok "verify names the faults it ran under" \
    || bad "mtu rows without the faults" "$(grep -E '^mtu' <<<"$vout")"
fi
if [ -z "$world" ]; then  # the rest of the full run; a world's short run goes on at down

# --- every component runs as the chart's ServiceAccount under the RBAC it renders (the lab API
# server enforces RBAC); what each must not be able to do, it cannot
as() { local c=$1 comp=$2; shift 2; t 15 ip netns exec "$name-underlay" kubectl --kubeconfig "$state/$c-$comp.kubeconfig" --request-timeout=10s "$@"; }
forbidden() {  # DESCRIPTION, then the command; passes when the API server answers 403 Forbidden
  local what=$1; shift
  local out; out=$("$@" 2>&1)
  grep -q "Forbidden" <<<"$out" && ok "$what: $(grep -o 'User "[^"]*" cannot [a-z]* resource "[^"]*"' <<<"$out" | head -1)" || bad "$what" "$out"
}
printf '{"apiVersion":"clusterwire.io/v1alpha1","kind":"ClusterPeering","metadata":{"name":"c9"},"spec":{"remoteClusterID":"c9"}}' >"$tmp/peering.json"
forbidden "the node agent cannot write a ClusterPeering" as c1 node-agent create -f "$tmp/peering.json"
forbidden "the DNS server cannot read Secrets" as c1 dns get secrets -n kube-system
forbidden "the operator cannot read Secrets" as c2 operator get secrets -n kube-system
forbidden "a member cannot read the broker's Secrets (the other members' tokens)" as c2 broker get secrets -n clusterwire-broker
forbidden "a member cannot touch the broker cluster outside the broker namespace" as c2 broker get nodes
[ "$(as c2 broker auth can-i create cidrclaims.clusterwire.io -n clusterwire-broker 2>&1)" = yes ] \
  && ok "a member may claim blocks in the broker namespace (what it needs)" || bad "member's broker rights" "$(as c2 broker auth can-i create cidrclaims.clusterwire.io -n clusterwire-broker 2>&1)"
# Members write only their own objects on the broker: RBAC lets any member write claims and
# advertisements; the chart's ValidatingAdmissionPolicy ties spec.clusterID to the caller.
denied() {  # DESCRIPTION, then the command; passes when the broker's ownership policy refuses it
  local what=$1; shift
  local out; out=$("$@" 2>&1)
  grep -q "ValidatingAdmissionPolicy 'clusterwire-broker-ownership' with binding 'clusterwire-broker-ownership' denied request: system:serviceaccount:clusterwire-broker:member-c2 may write only its own cluster's objects" <<<"$out" \
    && ok "$what: denied by the ownership policy" || bad "$what" "$out"
}
adv_uid=$(kc c1 -n clusterwire-broker get clusteradvertisement c1 -o jsonpath='{.metadata.uid}')
c1_claim=$(kc c1 -n clusterwire-broker get cidrclaims -o json | python3 -c 'import json,sys; print([i["metadata"]["name"] for i in json.load(sys.stdin)["items"] if i["spec"]["clusterID"]=="c1"][0])')
denied "c2 cannot delete c1's advertisement on the broker" as c2 broker -n clusterwire-broker delete clusteradvertisement c1
kc c1 -n clusterwire-broker get clusteradvertisement c1 -o json | python3 -c 'import json,sys; o=json.load(sys.stdin); o["spec"]["nodes"]=[]; print(json.dumps(o))' >"$tmp/adv.json"
denied "c2 cannot rewrite c1's advertisement (its nodes emptied)" as c2 broker replace -f "$tmp/adv.json"
denied "c2 cannot release c1's claim $c1_claim" as c2 broker -n clusterwire-broker delete cidrclaim "$c1_claim"
printf '{"apiVersion":"clusterwire.io/v1alpha1","kind":"CIDRClaim","metadata":{"name":"10-250-0-0-16","namespace":"clusterwire-broker"},"spec":{"cidr":"10.250.0.0/16","clusterID":"c1","purpose":"pods"}}' >"$tmp/claim.json"
denied "c2 cannot claim a block in c1's name" as c2 broker create -f "$tmp/claim.json"
[ "$(kc c1 -n clusterwire-broker get clusteradvertisement c1 -o jsonpath='{.metadata.uid} {.spec.nodes[0].name}')" = "$adv_uid c1-n1" ] \
  && kc c1 -n clusterwire-broker get cidrclaim "$c1_claim" >/dev/null 2>&1 \
  && ok "c1's advertisement and claim are unchanged" || bad "c1's broker objects changed" "$(kc c1 -n clusterwire-broker get clusteradvertisements,cidrclaims 2>&1)"
holder=$(kc c1 get lease -n kube-system clusterwire-operator -o jsonpath='{.spec.holderIdentity}')
pids=$(python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["processes"]; print(p["operator-c1"]["pid"], p["operator-c1-b"]["pid"])' "$state/state.json")
grep -qE "(^| )${holder##*-}( |$)" <<<"$pids" && ok "two operator replicas in c1 (pids $pids), one leading: $holder" \
  || bad "operator replicas and leader" "holder '$holder', replicas' pids '$pids'"

# --- a remote ClusterSetIP through DNS: with web no longer exported by c1, c1's resolver gives
# c2's address, and c2's kube-proxy stand-in answers through the tunnel
kc c1 delete serviceexport web -n demo >/dev/null || bad "unexport web in c1"
web_c2=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["webIPs"]["c2"])' "$state/state.json")
if wait_until '[ "$(pod c1-n2 dig +short @192.168.77.11 web.demo.svc.clusterset.local)" = "$web_c2" ]' 20; then
  ok "c1's resolver answers web with c2's address ($web_c2) once c1 no longer exports it"
  ans=$(pod c1-n2 socat -T 3 - TCP:$web_c2:80,connect-timeout=3 </dev/null)
  grep -q '^c2-n[12]-pod ' <<<"$ans" && ok "and a pod of c2 answers a c1 pod there ($ans)" || bad "remote ClusterSetIP" "got '$ans'"
else bad "c1's resolver never answered c2's web" "$(pod c1-n2 dig +short @192.168.77.11 web.demo.svc.clusterset.local 2>&1)"; fi

# --- a partition: WireGuard UDP between the clusters dropped, then cleared. The datapath
# probes must turn both peerings Degraded within 3 s, c1's cw-dns must stop answering c2's
# web (c1 still does not export it), and both must come back within 3 s of the heal.
phase() { kc "$1" get clusterpeering "$2" -o jsonpath='{.status.phase}' 2>/dev/null; }
both() { [ "$(phase c1 c2)" = "$1" ] && [ "$(phase c2 c1)" = "$1" ]; }
web_at_cwdns() { pod c1-n2 dig +short +tries=1 +time=1 -p 5300 @192.168.77.11 web.demo.svc.clusterset.local; }
[ "$(web_at_cwdns)" = "$web_c2" ] && ok "c1's cw-dns answers c2's web before the partition" \
  || bad "cw-dns before the partition" "$(web_at_cwdns 2>&1)"
t0=$(date +%s%N)
fout=$(lab 30 impair partition c2 c1 2>&1) && grep -q "on: *partition c1 c2" <<<"$fout" && ok "impair partition c2 c1" \
  || bad "impair partition" "$fout"
if wait_until 'both Degraded' 10; then
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  [ "$ms" -le 3000 ] && ok "partition: both peerings Degraded after $ms ms (target 3000)" \
    || bad "partition: Degraded only after $ms ms (target 3000)"
else bad "partition: the peerings did not turn Degraded" "$(kc c1 get clusterpeering c2 -o yaml 2>&1)"; fi
# (Phase Degraded comes with the first failing pair; every pair fails within a probe interval.)
dp() { kc c1 get clusterpeering c2 -o jsonpath="{.status.conditions[?(@.type==\"DatapathHealthy\")].$1}"; }
wait_until '[ "$(dp reason)" = Unreachable ]' 5 || bad "DatapathHealthy never said Unreachable" "$(dp message)"
msg=$(dp message)
grep -q "4 of 4 node pairs fail through the tunnel to c2: c1-n1→c2-n1 Down" <<<"$msg" \
  && ok "DatapathHealthy names the failing node pairs (Unreachable)" || bad "DatapathHealthy message" "$msg"
if wait_until '[ -z "$(web_at_cwdns)" ]' 5; then
  ok "partition: c1's cw-dns no longer answers c2's web ($(( ($(date +%s%N) - t0) / 1000000 )) ms after the fault)"
else bad "cw-dns still answers an unreachable cluster's address" "$(web_at_cwdns 2>&1)"; fi
# cwctl diagnose, as against real clusters: kubeconfig contexts (one file per cluster here).
diag() { t 30 ip netns exec "$name-underlay" env KUBECONFIG="$state/c1.kubeconfig:$state/c2.kubeconfig" \
           "$cwctl" diagnose --context c1 --context c2; }
diag_text() { diag; return 0; }  # its findings, whatever its exit status (pipefail)
dout=$(diag); drc=$?
[ $drc -eq 1 ] && grep -q "ERROR  udp-blocked \[c1 ↔ c2\].*192.168.77.11:51820" <<<"$dout" \
  && ok "diagnose names the blocked UDP path between c1 and c2 (exit 1)" || bad "diagnose in a partition (exit $drc)" "$dout"
pod c1-n1 ping -c 2 -i 0.2 -W 1 "$c2n1" >/dev/null 2>&1 && bad "cross-cluster ping works through a partition" \
  || ok "the partition stops cross-cluster traffic"
pod c1-n1 ping -c 2 -i 0.2 -W 1 "$c1n2" >/dev/null && ok "in-cluster traffic is not partitioned" || bad "in-cluster ping in a partition"
lout=$(lab 30 impair 2>&1) && [ "$(sort <<<"$lout" | tr '\n' ';')" = "drop-icmp-frag;masquerade c1;partition c1 c2;" ] \
  && ok "impair lists the three faults" || bad "impair list" "$lout"
t0=$(date +%s%N)
fout=$(lab 30 impair --clear partition 2>&1) && grep -q "cleared: partition c1 c2" <<<"$fout" || bad "impair --clear partition" "$fout"
if wait_until 'both Connected' 10; then
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  [ "$ms" -le 3000 ] && ok "healed: both peerings Connected after $ms ms (target 3000)" \
    || bad "healed: Connected only after $ms ms (target 3000)"
else bad "healed: the peerings did not turn Connected" "$(kc c1 get clusterpeering c2 -o yaml 2>&1)"; fi
if wait_until '[ "$(web_at_cwdns)" = "$web_c2" ]' 5; then
  ok "healed: c1's cw-dns answers c2's web again ($(( ($(date +%s%N) - t0) / 1000000 )) ms after the heal)"
else bad "cw-dns did not answer c2's web after the heal" "$(web_at_cwdns 2>&1)"; fi
wait_until 'pod c1-n1 ping -c 1 -W 0.5 $c2n1' 20 && ok "cleared: cross-cluster traffic is back" || bad "no traffic after clearing the partition"
cat <<YAML | kc c1 apply -f - >/dev/null || bad "re-export web in c1"
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {name: web, namespace: demo}
YAML
wait_until 'diag' 20 && ok "diagnose finds nothing once the partition is cleared (exit 0)" \
  || bad "diagnose after the partition" "$(diag 2>&1)"

# --- an MTU black hole (frames over 1400 bytes vanish between c1 and c2, no ICMP) and a source
# NAT that runs before clusterwire's exemption (as an eBPF masquerade would): diagnose names each
fout=$(lab 30 impair mtu-black-hole c1 c2 2>&1) || bad "impair mtu-black-hole" "$fout"
t0=$SECONDS
if wait_until 'diag_text | grep -q "ERROR  mtu \[c1 → c2\].*MTUBlackHole"' 40; then
  ok "diagnose names the MTU black hole ($((SECONDS - t0)) s: the large probes go every 10 s)"
else bad "diagnose did not name the MTU black hole" "$(diag 2>&1)"; fi
pod c1-n1 ping -c 2 -i 0.2 -W 1 "$c2n1" >/dev/null && ok "small packets still cross it" || bad "small packets through the MTU black hole"
lab 30 impair --clear mtu-black-hole >/dev/null || bad "impair --clear mtu-black-hole"
fout=$(lab 30 impair snat c1 2>&1) || bad "impair snat c1" "$fout"
t0=$SECONDS
if wait_until 'diag_text | grep -q "ERROR  snat \[c1 → c2\].*SNAT (the remote node saw the probe come from"' 40; then
  ok "diagnose names SNAT on the path ($((SECONDS - t0)) s: new probe flows every 10 s meet the new NAT rule)"
else bad "diagnose did not name SNAT" "$(diag 2>&1)"; fi
lab 30 impair --clear snat >/dev/null || bad "impair --clear snat"
t0=$SECONDS
wait_until 'diag' 40 && ok "both faults cleared: diagnose finds nothing again ($((SECONDS - t0)) s)" \
  || bad "diagnose after clearing the faults" "$(diag 2>&1)"
fout=$(lab 30 impair bogus 2>&1); [ $? -eq 2 ] && grep -q "expected one of" <<<"$fout" && ok "impair refuses an unknown fault" \
  || bad "impair bogus" "$fout"

# --- status
sout=$(lab 30 status 2>&1) && grep -qE "^  c2 +Connected +[0-9]+/[0-9]+ pairs answer" <<<"$sout" \
  && grep -q "handshake [0-9]*s ago" <<<"$sout" \
  && ok "status: peerings Connected with their datapath (cwctl status's view), peers with handshake ages" || bad "status" "$sout"
kout=$(t 30 "$cwctl" lab kubectl --name "$name" c1 -- get clusterpeerings 2>&1) && grep -q Connected <<<"$kout" \
  && ok "cwctl lab kubectl --name NAME c1 -- get clusterpeerings" || bad "lab kubectl" "$kout"

# --- delete a ClusterPeering: tunnel and routes go, in-cluster traffic keeps flowing
# Each probe fails when its command fails: an error is never read as "nothing left".
no_peers() { local p; p=$(t 5 ip netns exec "$name-c1-n1" wg show "$if1" peers) || return 1; [ -z "$p" ]; }
no_tunnel_routes() { local r; r=$(t 5 ip -n "$name-c1-n1" route show proto 119) || return 1; ! grep -q " dev $if1" <<<"$r"; }
kc c1 delete clusterpeering c2 >/dev/null || bad "kubectl delete clusterpeering"
if wait_until no_peers 15; then
  ok "peering deleted: c1-n1 has no WireGuard peer left"; else bad "peers left" "$(t 5 ip netns exec "$name-c1-n1" wg show "$if1" 2>&1)"; fi
if wait_until no_tunnel_routes 15; then
  ok "peering deleted: no route through the tunnel left"; else bad "tunnel routes left" "$(t 5 ip -n "$name-c1-n1" route show proto 119 2>&1)"; fi
pod c1-n1 ping -c 2 -W 1 "$c2n1" >/dev/null 2>&1 && bad "cross-cluster ping still works without the peering" \
  || ok "cross-cluster traffic stopped"
pod c1-n1 ping -c 3 -i 0.2 -W 1 "$c1n2" >/dev/null && ok "in-cluster ping (c1-n1 -> c1-n2) keeps working" \
  || bad "in-cluster ping without the peering" "$(t 5 ip -n "$name-c1-n1" route 2>&1)"
cat <<YAML | kc c1 apply -f - >/dev/null || bad "re-apply the peering"
apiVersion: clusterwire.io/v1alpha1
kind: ClusterPeering
metadata: {name: c2}
spec: {remoteClusterID: c2}
YAML
t0=$(date +%s%N)
if wait_until 'pod c1-n1 ping -c 1 -W 0.5 $c2n1' 30; then
  ok "peering re-applied: traffic back after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
else bad "no traffic after re-applying the peering"; fi
wait_until 'pod c1-n2 ping -c 1 -W 0.5 $c2n2' 20 && wait_until 'pod c2-n2 ping -c 1 -W 0.5 $c1n1' 20 \
  && ok "and between every node" || bad "not every pair came back"

# --- a node agent restart keeps an established cross-cluster TCP connection
coproc CONN { exec timeout -k 5 60 ip netns exec "$name-c1-n1-pod" socat - TCP:$c2n1:7000,connect-timeout=5; }
coproc_pid=$CONN_PID
echo "before" >&"${CONN[1]}"
line=""; read -r -t 5 line <&"${CONN[0]}"; [ "${line:-}" = before ] && ok "a TCP connection c1-n1-pod -> c2-n1-pod is established" \
  || bad "TCP connection" "got '${line:-}'"
rout=$(lab 30 restart node-agent-c1-n1 2>&1) || bad "lab restart node-agent-c1-n1" "$rout"
rout=$(lab 30 restart node-agent-c2-n1 2>&1) || bad "lab restart node-agent-c2-n1" "$rout"
sleep 3
echo "after" >&"${CONN[1]}"
line=""; read -r -t 5 line <&"${CONN[0]}"
[ "$line" = after ] && ok "the connection survived both ends' node agents restarting" || bad "connection broken by the restart" "got '$line'"
kill "$coproc_pid" 2>/dev/null; coproc_pid=""

# --- an operator killed (SIGKILL) and restarted changes no CIDR
snapshot() {
  { kc c1 -n clusterwire-broker get cidrclaims -o jsonpath='{range .items[*]}{.metadata.name}={.spec.clusterID}{"\n"}{end}'
    for c in c1 c2; do kc $c get nodes -o jsonpath='{range .items[*]}{.metadata.name}={.metadata.annotations.clusterwire\.io/pod-cidr},{.spec.podCIDR}{"\n"}{end}'; done
    kc c1 -n clusterwire-broker get clusteradvertisements -o jsonpath='{range .items[*]}{.metadata.name}={.spec.podCIDRs}{"\n"}{end}'
  } | sort
}
before=$(snapshot) || bad "reading claims, node CIDRs and advertisements before the restart"
rout=$(lab 30 restart --kill operator-c2 2>&1) || bad "lab restart --kill operator-c2" "$rout"
rout=$(lab 30 restart --kill operator-c1 2>&1) || bad "lab restart --kill operator-c1" "$rout"
sleep 6  # more than a heartbeat: the restarted operators have made their passes
after=$(snapshot) || bad "reading claims, node CIDRs and advertisements after the restart"
if [ -n "$before" ] && [ "$before" = "$after" ]; then ok "operators killed and restarted: claims, node CIDRs, advertisements unchanged"
else bad "CIDRs changed across an operator restart" "before: $before" "after: $after"; fi
if wait_until 'kc c1 get clusterpeering c2 -o jsonpath="{.status.phase}" | grep -qx Connected' 30; then
  ok "the peering is Connected again after the operator restarts"
else bad "peering after operator restart" "$(kc c1 get clusterpeering c2 -o yaml 2>&1)"; fi
wait_until 'pod c2-n2 ping -c 1 -W 1 $c1n2' 15 && ok "and the mesh still works (c2-n2 -> c1-n2)" \
  || bad "mesh after operator restart" "$(pod c2-n2 ping -c 2 -W 1 "$c1n2" 2>&1)" "$(t 5 ip netns exec "$name-c2-n2" wg show 2>&1)"

# --- control planes restart (an upgrade) and crash: each cluster's API server restarted
# (SIGTERM), then killed (SIGKILL) and started again, under a ping every 50 ms across the
# clusters. Their objects are in etcd: nothing decided changes, components reconnect, and
# traffic never stops.
peerings_snapshot() {
  for c in c1 c2; do kc $c get clusterpeerings -o jsonpath='{range .items[*]}{.metadata.uid}={.status.remote.podCIDRs}{"\n"}{end}'; done | sort
}
before=$(snapshot; peerings_snapshot) || bad "reading claims, node CIDRs, advertisements and peerings before the restarts"
# (ip netns exec execs ping: $! is ping's pid, and SIGINT makes it print its summary.)
ip netns exec "$name-c2-n1-pod" ping -n -q -i 0.05 -w 60 "$c1n1" > "$tmp/ping-restart" 2>&1 &
ping_pid=$!
sleep 1
for step in "restart apiserver-c1" "restart apiserver-c2" "restart --kill apiserver-c1" "restart --kill apiserver-c2"; do
  rout=$(lab 30 $step 2>&1) || bad "lab $step" "$rout"
  wait_until 'kc c1 get --raw /readyz && kc c2 get --raw /readyz' 20 || bad "API servers ready after $step"
done
if wait_until '[ "$(phase c1 c2)" = Connected ] && [ "$(phase c2 c1)" = Connected ] && kc c2 get clusterpeering c1 -o jsonpath="{.status.conditions[?(@.type==\"BrokerReachable\")].status}" | grep -qx True' 30; then
  ok "both API servers restarted and killed: the peerings are Connected, and c2's operator reaches the broker again"
else bad "peerings after the API server restarts" "$(kc c1 get clusterpeering c2 -o yaml 2>&1)" "$(kc c2 get clusterpeering c1 -o yaml 2>&1)"; fi
after=$(snapshot; peerings_snapshot) || bad "reading claims, node CIDRs, advertisements and peerings after the restarts"
if [ -n "$before" ] && [ "$before" = "$after" ]; then ok "claims, node CIDRs, advertisements and peerings (uids, remote ranges) unchanged across the restarts"
else bad "state changed across API server restarts" "before: $before" "after: $after"; fi
kill -INT "$ping_pid" 2>/dev/null; wait "$ping_pid"
loss=$(grep -o '[0-9.]*% packet loss' "$tmp/ping-restart" | cut -d% -f1)
[ "${loss:-100}" = 0 ] && ok "traffic never stopped: $(grep -o '[0-9]* packets transmitted, [0-9]* received' "$tmp/ping-restart") (c2-n1 -> c1-n1, every 50 ms)" \
  || bad "traffic during the API server restarts" "$(cat "$tmp/ping-restart")"

# --- an object over etcd's 1.5 MiB: refused with etcd's error, and what wrote it says so
big=$(python3 -c 'print("x" * (1600 * 1024))')
printf '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big","namespace":"default"},"data":{"blob":"%s"}}' "$big" > "$tmp/big.json"
bout=$(kc c1 create -f "$tmp/big.json" 2>&1)
grep -q "etcdserver: request is too large" <<<"$bout" && ok "a 1.6 MiB ConfigMap is refused: $(head -c 120 <<<"$bout")" \
  || bad "a 1.6 MiB object" "$(head -c 300 <<<"$bout")"

# --- the broker's API server (c1's) stopped for good (the run's last step before down). c2's operator
# must say that it cannot reach the broker, while c2's peering stays Connected because its
# probes are still answered, and traffic keeps flowing.
broker_pid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["processes"]["apiserver-c1"]["pid"])' "$state/state.json")
if [ -n "$broker_pid" ] && grep -qa cw-lab-apiserver "/proc/$broker_pid/cmdline" 2>/dev/null && kill -9 "$broker_pid"; then
  ok "the broker's API server (apiserver-c1, pid $broker_pid) is stopped"
else bad "stopping apiserver-c1 (pid '$broker_pid')"; fi
broker_cond() { kc c2 get clusterpeering c1 -o jsonpath='{.status.conditions[?(@.type=="BrokerReachable")].message}'; }
if wait_until 'broker_cond | grep -q "this operator cannot reach the broker"' 20; then
  ok "c2's peering says: $(broker_cond)"
else bad "c2's peering does not name the broker as unreachable" "$(kc c2 get clusterpeering c1 -o yaml 2>&1)"; fi
[ "$(phase c2 c1)" = Connected ] && ok "c2's peering stays Connected: its probes are answered" \
  || bad "c2's peering with the broker down" "$(kc c2 get clusterpeering c1 -o yaml 2>&1)"
pod c2-n1 ping -c 3 -i 0.2 -W 1 "$c1n1" >/dev/null && ok "and traffic keeps flowing (c2-n1 -> c1-n1)" \
  || bad "traffic with the broker down"

fi

# --- down leaves nothing
# The lab's processes as recorded (pid and start time), read before down removes the record.
cp "$state/state.json" "$tmp/state.json" || bad "no state.json to read the lab's processes from"
recorded=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["processes"]))' "$tmp/state.json" 2>/dev/null || echo 0)
[ "$recorded" -gt 0 ] && ok "state.json records $recorded processes" || bad "state.json records no process"
dout=$(lab 60 down 2>&1) && ok "cwctl lab down" || bad "down" "$dout"
left=$(ip netns list | grep -E "^$name-" || true)
[ -z "$left" ] && ok "no namespace with the prefix left" || bad "namespaces left" "$left"
[ ! -e "$state" ] && ok "state dir removed" || bad "state dir left"
# A recorded process is still there if its pid runs with the recorded start time (field 22 of
# /proc/<pid>/stat): a reused pid is another process.
alive=$(python3 - "$tmp/state.json" <<'PY'
import json, sys
for name, p in json.load(open(sys.argv[1]))["processes"].items():
    try:
        stat = open("/proc/%d/stat" % p["pid"]).read()
    except OSError:
        continue
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] != "Z" and int(fields[19]) == p["startTicks"]:
        print("%s pid %d" % (name, p["pid"]))
PY
) || bad "checking the recorded processes"
[ -z "$alive" ] && ok "none of the $recorded recorded processes is left" || bad "recorded processes left" "$alive"
procs=$(ps -eo pid,args | grep -F -- "$state" | grep -v grep || true)
[ -z "$procs" ] && ok "no process naming the state dir left" || bad "processes left" "$procs"
ls /var/run/wireguard/ 2>/dev/null | grep -q "^${if1:-none}" && bad "UAPI socket left" || ok "no UAPI socket left"
ls /etc/netns 2>/dev/null | grep -q "^$name-" && bad "/etc/netns entries left" || ok "no /etc/netns entry left"
out=$(lab 60 down 2>&1) && grep -q "nothing left" <<<"$out" && ok "a second down is a no-op" || bad "second down" "$out"

if [ -n "$world" ]; then
  echo "$passed passed, $failed failed ($(( $(date +%s) - started )) s)"
  [ "$failed" -eq 0 ]; exit
fi

# --- down after a crash half-way through up (killed while the operators start)
{ ( timeout -s KILL 1 "$cwctl" lab --name "$name" up >/dev/null 2>&1 ); } 2>/dev/null
ip netns list | grep -q "^$name-" && ok "up killed after 1 s left a half-built lab" || bad "up killed after 1 s left nothing to test with"
dout=$(lab 60 down 2>&1) && ok "down after up was killed half-way" || bad "down after a crash" "$dout"
left=$(ip netns list | grep -E "^$name-" || true)
procs=$(ps -eo pid,args | grep -F -- "$state" | grep -v grep || true)
[ -z "$left$procs" ] && [ ! -e "$state" ] && ok "and nothing is left" || bad "left after crash+down" "$left" "$procs"

# --- up interrupted (SIGTERM after 1 s) removes what it made itself
( timeout --preserve-status -k 30 1 "$cwctl" lab --name "$name" up >"$tmp/term.log" 2>&1 ); trc=$?
left=$(ip netns list | grep -E "^$name-" || true)
procs=$(ps -eo pid,args | grep -F -- "$state" | grep -v grep || true)
if [ "$trc" -eq 143 ] && [ -z "$left$procs" ] && [ ! -e "$state" ]; then ok "up stopped by SIGTERM removed what it had made"
else bad "up stopped by SIGTERM (exit $trc)" "$(cat "$tmp/term.log")" "$left" "$procs"; fi

echo "$passed passed, $failed failed ($(( $(date +%s) - started )) s)"
[ "$failed" -eq 0 ]
