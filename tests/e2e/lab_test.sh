#!/usr/bin/env bash
# The lab end to end, as a user runs it: `cwctl lab up` (2 clusters x 2 nodes), `verify`, then
# the issue's checks: deleting a ClusterPeering removes the tunnel and routes while in-cluster
# traffic keeps flowing, re-applying it brings traffic back; a node agent restart breaks no
# established cross-cluster TCP connection; an operator killed with SIGKILL and restarted
# changes no CIDR; finally `down` leaves nothing with the lab's prefix behind.
# Everything is named cwt<pid> (its own lab), removed on exit even on failure.
# Usage: lab_test.sh BUILD_DIR   (BUILD_DIR holds cli/cwctl and the other binaries)
set -u
build=$1
cwctl=$build/cli/cwctl
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (network namespaces)"; exit 77; }
for tool in ip wg kubectl ping socat unbound dig tcpdump; do
  command -v $tool >/dev/null || { echo "SKIP: $tool is not installed (scripts/deps.sh installs it)"; exit 77; }
done
for plugin in bridge host-local loopback; do
  [ -x /usr/lib/cni/$plugin ] || { echo "SKIP: /usr/lib/cni/$plugin missing (containernetworking-plugins; scripts/deps.sh)"; exit 77; }
done
if ! ip link add cwt$$probe type wireguard 2>/dev/null; then
  command -v wireguard-go >/dev/null || { echo "SKIP: no kernel WireGuard and no wireguard-go (scripts/deps.sh)"; exit 77; }
else
  ip link del cwt$$probe
fi
for b in cli/cwctl lab/cw-lab-apiserver operator/cw-operator node-agent/cw-node-agent; do
  [ -x "$build/$b" ] || { echo "FAIL: $build/$b is not built"; exit 1; }
done

name="cwt$$"
state=/run/clusterwire-lab/$name
started=$(date +%s)
passed=0 failed=0
ok()  { echo "ok   $1"; passed=$((passed+1)); }
bad() { echo "FAIL $1"; shift; [ $# -gt 0 ] && printf '%s\n' "$@" | sed 's/^/  | /'; failed=$((failed+1)); }
wait_until() { local i; for i in $(seq "${2:-200}"); do eval "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
lab() { "$cwctl" lab --name "$name" "$@"; }
kc() { local c=$1; shift; ip netns exec "$name-underlay" kubectl --kubeconfig "$state/$c.kubeconfig" --request-timeout=10s "$@"; }
coproc_pid=""
cleanup() {
  [ -n "$coproc_pid" ] && kill "$coproc_pid" 2>/dev/null
  if [ "$failed" -gt 0 ] && [ -d "$state/logs" ]; then
    for f in "$state"/logs/*.log; do echo "--- $(basename "$f") (last lines)"; tail -5 "$f"; done
  fi
  lab down >/dev/null 2>&1
}
trap cleanup EXIT

# --- up
if out=$(timeout 150 "$cwctl" lab --name "$name" up 2>&1); then
  ok "cwctl lab up (2 x 2) in $(( $(date +%s) - started )) s"
else
  bad "cwctl lab up" "$out"; echo "$passed passed, $failed failed"; exit 1
fi
grep -q "kubectl --kubeconfig $state/c1.kubeconfig" <<<"$out" && grep -q "cwctl lab kubectl" <<<"$out" \
  && ok "up prints how to point kubectl at each cluster" || bad "kubectl hint" "$out"
grep -q '^\[ *[0-9]*/[0-9]*\]' <<<"$out" && ok "up reports progress step by step" || bad "progress" "$out"

pod_ip() { /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["podIPs"][sys.argv[2]])' "$state/state.json" "$1"; }
pod() { ip netns exec "$name-$1-pod" "${@:2}"; }
c1n1=$(pod_ip c1-n1) c1n2=$(pod_ip c1-n2) c2n1=$(pod_ip c2-n1) c2n2=$(pod_ip c2-n2)
if1=$(ip -n "$name-c1-n1" -o link | grep -o 'cw[0-9a-f]\{4\}c1n1' | head -1)

# --- verify
vout=$(lab verify 2>&1); vrc=$?
echo "$vout" | sed 's/^/    /'
for check in peering ping tcp in-cluster underlay convergence; do
  if grep -E "^$check " <<<"$vout" | grep -q FAIL; then bad "verify: $check rows" "$(grep -E "^$check " <<<"$vout" | grep FAIL)"
  elif grep -qE "^$check " <<<"$vout"; then ok "verify: every $check row passes"
  else bad "verify: no $check row"; fi
done
if [ -x "$build/dns/cw-dns" ]; then
  [ $vrc -eq 0 ] && ok "verify exits 0 (every row, DNS included)" || bad "verify exit status $vrc" "$(grep FAIL <<<"$vout")"
else
  echo "note: $build/dns/cw-dns is not built: the DNS rows are expected to fail"
  grep -E '^dns ' <<<"$vout" | grep -q 'cw-dns is not running' && ok "verify explains the DNS rows' failure" \
    || bad "DNS rows without cw-dns" "$(grep -E '^dns' <<<"$vout")"
fi

# --- status
sout=$(lab status 2>&1) && grep -q "peering c2: Connected" <<<"$sout" && grep -q "handshake [0-9]*s ago" <<<"$sout" \
  && ok "status: peerings Connected, peers with handshake ages" || bad "status" "$sout"

# --- delete a ClusterPeering: tunnel and routes go, in-cluster traffic keeps flowing
kc c1 delete clusterpeering c2 >/dev/null || bad "kubectl delete clusterpeering"
if wait_until '! ip netns exec $name-c1-n1 wg show $if1 peers | grep -q .' 150; then
  ok "peering deleted: c1-n1 has no WireGuard peer left"; else bad "peers left" "$(ip netns exec $name-c1-n1 wg show $if1)"; fi
if wait_until '! ip -n $name-c1-n1 route show proto 119 | grep -q " dev $if1"' 150; then
  ok "peering deleted: no route through the tunnel left"; else bad "tunnel routes left" "$(ip -n $name-c1-n1 route show proto 119)"; fi
pod c1-n1 ping -c 2 -W 1 "$c2n1" >/dev/null 2>&1 && bad "cross-cluster ping still works without the peering" \
  || ok "cross-cluster traffic stopped"
pod c1-n1 ping -c 3 -i 0.2 -W 1 "$c1n2" >/dev/null && ok "in-cluster ping (c1-n1 -> c1-n2) keeps working" \
  || bad "in-cluster ping without the peering" "$(ip -n $name-c1-n1 route)"
cat <<YAML | kc c1 apply --validate=false -f - >/dev/null || bad "re-apply the peering"
apiVersion: clusterwire.io/v1alpha1
kind: ClusterPeering
metadata: {name: c2}
spec: {remoteClusterID: c2}
YAML
t0=$(date +%s%N)
if wait_until 'pod c1-n1 ping -c 1 -W 0.5 $c2n1' 300; then
  ok "peering re-applied: traffic back after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
else bad "no traffic after re-applying the peering"; fi
wait_until 'pod c1-n2 ping -c 1 -W 0.5 $c2n2' 200 && wait_until 'pod c2-n2 ping -c 1 -W 0.5 $c1n1' 200 \
  && ok "and between every node" || bad "not every pair came back"

# --- a node agent restart keeps an established cross-cluster TCP connection
coproc CONN { ip netns exec "$name-c1-n1-pod" socat - TCP:$c2n1:7000; }
coproc_pid=$CONN_PID
echo "before" >&"${CONN[1]}"
read -r -t 5 line <&"${CONN[0]}"; [ "${line:-}" = before ] && ok "a TCP connection c1-n1-pod -> c2-n1-pod is established" \
  || bad "TCP connection" "got '${line:-}'"
rout=$(lab restart node-agent-c1-n1 2>&1) || bad "lab restart node-agent-c1-n1" "$rout"
rout=$(lab restart node-agent-c2-n1 2>&1) || bad "lab restart node-agent-c2-n1" "$rout"
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
before=$(snapshot)
rout=$(lab restart --kill operator-c2 2>&1) || bad "lab restart --kill operator-c2" "$rout"
rout=$(lab restart --kill operator-c1 2>&1) || bad "lab restart --kill operator-c1" "$rout"
sleep 6  # more than a heartbeat: the restarted operators have made their passes
after=$(snapshot)
if [ -n "$before" ] && [ "$before" = "$after" ]; then ok "operators killed and restarted: claims, node CIDRs, advertisements unchanged"
else bad "CIDRs changed across an operator restart" "before: $before" "after: $after"; fi
wait_until 'kc c1 get clusterpeering c2 -o jsonpath="{.status.phase}" | grep -qx Connected' 100 \
  && pod c2-n2 ping -c 1 -W 1 "$c1n2" >/dev/null && ok "and the mesh still works" || bad "mesh after operator restart"

# --- down leaves nothing
dout=$(lab down 2>&1) && ok "cwctl lab down" || bad "down" "$dout"
left=$(ip netns list | grep -E "^$name-" || true)
[ -z "$left" ] && ok "no namespace with the prefix left" || bad "namespaces left" "$left"
[ ! -e "$state" ] && ok "state dir removed" || bad "state dir left"
procs=$(ps -eo pid,args | grep -F -- "$state" | grep -v grep || true)
[ -z "$procs" ] && ok "no process of the lab left" || bad "processes left" "$procs"
ls /var/run/wireguard/ 2>/dev/null | grep -q "^${if1:-none}" && bad "UAPI socket left" || ok "no UAPI socket left"
ls /etc/netns 2>/dev/null | grep -q "^$name-" && bad "/etc/netns entries left" || ok "no /etc/netns entry left"
out=$(lab down 2>&1) && grep -q "nothing left" <<<"$out" && ok "a second down is a no-op" || bad "second down" "$out"

# --- down after a crash half-way through up (killed while the operators start)
( timeout -s KILL 1 "$cwctl" lab --name "$name" up >/dev/null 2>&1 )
ip netns list | grep -q "^$name-" && ok "up killed after 1 s left a half-built lab" || bad "up killed after 1 s left nothing to test with"
dout=$(lab down 2>&1) && ok "down after up was killed half-way" || bad "down after a crash" "$dout"
left=$(ip netns list | grep -E "^$name-" || true)
procs=$(ps -eo pid,args | grep -F -- "$state" | grep -v grep || true)
[ -z "$left$procs" ] && [ ! -e "$state" ] && ok "and nothing is left" || bad "left after crash+down" "$left" "$procs"

echo "$passed passed, $failed failed ($(( $(date +%s) - started )) s)"
[ "$failed" -eq 0 ]
