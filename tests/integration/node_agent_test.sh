#!/usr/bin/env bash
# Two cw-node-agents, one per "cluster", each in its own network namespace on a bridged
# underlay, with wireguard-go as the userspace WireGuard and a lab API server per cluster.
# The operator's part (ClusterPeering status) is written with kubectl, so this checks the
# agent alone: pod-to-pod ping through the tunnel, read back with `wg show`, routes with
# protocol 119, no device write when nothing changed (an agent restart keeps the session),
# a peering leaving Connected removes the peer and the route, and `cleanup` removes the rest.
# Beside a CNI (docs/node-agent.md, "Beside the CNI"): node a has the masquerade rules that
# Calico natOutgoing, flannel --ip-masq and the bridge plugin's ipMasq write, in native nftables,
# iptables-nft and iptables-legacy, a BIRD-like route to another local node's block and strict
# rp_filter; a pod behind it must still reach b with its own address, SYNs into the tunnel get
# their MSS clamped, and nothing outside clusterwire's own routes and table changes.
# Everything it makes is named cwna-<pid>-* and removed on exit, even on failure.
# Usage: node_agent_test.sh AGENT APISERVER
set -u
agent=$1 apiserver=$2
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (network namespaces)"; exit 77; }
for tool in ip wg wireguard-go kubectl ping socat nft iptables-nft iptables-legacy tcpdump; do
  command -v $tool >/dev/null || { echo "SKIP: $tool is not installed (scripts/deps.sh installs it)"; exit 77; }
done
p="cwna-$$"
tmp=$(mktemp -d /tmp/$p-XXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  for ns in "$p-u" "$p-a" "$p-b" "$p-ap"; do ip netns del "$ns" 2>/dev/null; done
  rm -f /var/run/wireguard/${p:0:8}*.sock 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
passed=0 failed=0
ok()  { echo "ok   $1"; passed=$((passed+1)); }
bad() { echo "FAIL $1"; shift; [ $# -gt 0 ] && printf '%s\n' "$@" | sed 's/^/  | /'; failed=$((failed+1)); }
wait_until() { local i; for i in $(seq "${2:-200}"); do eval "$1" >/dev/null 2>&1 && return 0; sleep 0.05; done; return 1; }
start() { "$@" & pids+=($!); }  # a process of ours, stopped by pid at the end

# Underlay: a bridge in its own namespace, a veth to each node namespace.
ip netns add "$p-u"; ip netns add "$p-a"; ip netns add "$p-b"
ip -n "$p-u" link set lo up
ip -n "$p-u" link add br0 type bridge && ip -n "$p-u" link set br0 up
ip -n "$p-u" addr add 10.124.0.254/24 dev br0
for n in a b; do
  ip link add "$p-$n" netns "$p-u" type veth peer name eth0 netns "$p-$n"
  ip -n "$p-u" link set "$p-$n" master br0 up
  ip -n "$p-$n" link set eth0 up && ip -n "$p-$n" link set lo up
done
ip -n "$p-a" link set eth0 mtu 1400  # the agent must derive 1320 from it
ip -n "$p-a" addr add 10.124.0.1/24 dev eth0
ip -n "$p-b" addr add 10.124.0.2/24 dev eth0
# Each node's "pod": an address in its pod block.
ip -n "$p-a" addr add 10.200.0.10/32 dev lo
ip -n "$p-b" addr add 10.201.0.10/32 dev lo

# A pod behind node a (10.200.0.20, on a veth as a CNI makes it), and on b echo servers that
# answer with the address they saw: 10.201.0.10:7000 (a remote pod) and 10.124.0.2:7001 (b's
# node address, which is not a remote range: the control that shows the masquerade is live).
ip netns add "$p-ap"; ip -n "$p-ap" link set lo up
ip link add veth0 netns "$p-a" type veth peer name eth0 netns "$p-ap"
ip -n "$p-a" addr add 10.200.0.1/24 dev veth0 && ip -n "$p-a" link set veth0 up
ip -n "$p-ap" addr add 10.200.0.20/24 dev eth0 && ip -n "$p-ap" link set eth0 up
ip -n "$p-ap" route add default via 10.200.0.1
ip netns exec "$p-a" sysctl -qw net.ipv4.ip_forward=1
ip netns exec "$p-a" sysctl -qw net.ipv4.conf.all.rp_filter=1  # strict, as RHEL's default
for addr in 10.201.0.10:7000 10.124.0.2:7001; do
  start ip netns exec "$p-b" socat "TCP-LISTEN:${addr#*:},bind=${addr%:*},fork,reuseaddr" 'SYSTEM:echo $SOCAT_PEERADDR'
done
seen_by() { ip netns exec "$p-ap" socat -T 3 - "TCP:$1,connect-timeout=3" </dev/null 2>/dev/null; }
# The CNI's masquerade of pod traffic leaving the cluster's pod range, in every backend.
masq_nft() { ip netns exec "$p-a" nft -f - <<'NFT'
table ip cnisim {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr 10.200.0.0/24 ip daddr != 10.200.0.0/16 masquerade
  }
}
NFT
}
masq_rule=(-t nat -A POSTROUTING -s 10.200.0.0/24 ! -d 10.200.0.0/16 -j MASQUERADE)
masq_nft
ip netns exec "$p-a" iptables-nft "${masq_rule[@]}"
ip netns exec "$p-a" iptables-legacy "${masq_rule[@]}"
# Another local node's block routed by the CNI (as BIRD does for Calico: proto bird is 12).
ip -n "$p-a" route add 10.200.1.0/24 via 10.124.0.3 proto 12
# Everything on node a that is not clusterwire's: routes, and every netfilter table and rule
# (counters left out: they count). Left out too: what the kernel derives from links by itself
# (IPv6 link-local and multicast routes, which appear when a link comes up) and the routes of
# clusterwire's own device.
foreign_state() {
  ip -n "$p-a" route show table all | grep -v -e "proto 119" -e "fe80::" -e "ff00::/8" -e "dev ${p:0:8}a " | sort
  ip netns exec "$p-a" nft list tables | grep -v "inet clusterwire" | sort | while read -r _ family name; do
    ip netns exec "$p-a" nft list table "$family" "$name"
  done | sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/'
  ip netns exec "$p-a" iptables-legacy-save -t nat | grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]//'
}

# One lab API server per cluster, reachable from the node namespaces over the bridge.
for c in a b; do
  port=$([ $c = a ] && echo 16443 || echo 16444)
  start ip netns exec "$p-u" "$apiserver" --address 10.124.0.254 --port $port --name $c \
    --kubeconfig "$tmp/$c.kc" --ready-file "$tmp/$c.ready"
done
wait_until '[ -s "$tmp/a.ready" ] && [ -s "$tmp/b.ready" ]' || { echo "FAIL: API servers did not start"; exit 1; }
kc() { local c=$1; shift; ip netns exec "$p-u" kubectl --kubeconfig "$tmp/$c.kc" --request-timeout=10s "$@"; }
node() {  # node CLUSTER NAME POD_CIDR INTERNAL_IP
  cat <<YAML | kc "$1" apply -f - --validate=false >/dev/null || bad "node object $2 in $1"
apiVersion: v1
kind: Node
metadata:
  name: node-$2
  annotations: {clusterwire.io/pod-cidr: "$3"}
status:
  addresses: [{type: InternalIP, address: "$4"}]
YAML
}
for c in a b; do
  kc $c apply -f "$(dirname "$0")/../../crds/clusterpeerings.clusterwire.io.yaml" --validate=false >/dev/null
done
node a a 10.200.0.0/24 10.124.0.1
node b b 10.201.0.0/24 10.124.0.2
# Two more nodes in cluster a: a2's block is routed by the CNI (above), a3's by nobody.
node a a2 10.200.1.0/24 10.124.0.3
node a a3 10.200.2.0/24 10.124.0.4

# wireguard-go, started by us (by pid), one device per node.
for n in a b; do
  start env WG_PROCESS_FOREGROUND=1 ip netns exec "$p-$n" wireguard-go -f "${p:0:8}$n" 2>/dev/null
done
wait_until '[ -S /var/run/wireguard/${p:0:8}a.sock ] && [ -S /var/run/wireguard/${p:0:8}b.sock ]' || bad "wireguard-go sockets"

run_agent() {  # run_agent NODE LOG
  local n=$1
  start ip netns exec "$p-$n" "$agent" --node-name "node-$n" --kubeconfig "$tmp/$n.kc" --key-path "$tmp/$n/private.key" \
    --interface "${p:0:8}$n" --backend uapi --wireguard-go "" --health-address 127.0.0.1 --health-port 0 \
    --resync-seconds 2 --log-format json
}
foreign_state >"$tmp/foreign.before"
run_agent a >"$tmp/agent-a.log" 2>&1; agent_a=${pids[-1]}
run_agent b >"$tmp/agent-b.log" 2>&1
keyof() { kc "$1" get node "node-$1" -o jsonpath='{.metadata.annotations.clusterwire\.io/public-key}'; }
if wait_until '[ -n "$(keyof a)" ] && [ -n "$(keyof b)" ]'; then ok "both agents published their public keys"
else bad "public keys" "$(tail -3 "$tmp/agent-a.log")"; fi
key_a=$(keyof a); key_b=$(keyof b)
[ "$(stat -c %a "$tmp/a/private.key")" = 600 ] && ok "the private key file is 0600" || bad "key mode"
grep -q "$(cat "$tmp/a/private.key" | head -c 20)" "$tmp/agent-a.log" && bad "private key in the log" || ok "the private key never appears in the log"

# The operator's part: each cluster's ClusterPeering, Connected, with the other's node.
peer() {  # peer CLUSTER REMOTE REMOTE_POD_CIDR REMOTE_NODE_CIDR REMOTE_IP REMOTE_KEY PHASE
  cat <<YAML | kc "$1" apply -f - --validate=false >/dev/null
apiVersion: clusterwire.io/v1alpha1
kind: ClusterPeering
metadata: {name: "$2"}
spec: {remoteClusterID: "$2"}
YAML
  kc "$1" patch clusterpeering "$2" --subresource=status --type=merge -p "{\"status\":{\"phase\":\"$7\",\"remote\":{\"podCIDRs\":[\"$3\"],\"serviceCIDRs\":[],\"nodes\":[{\"name\":\"node-$2\",\"endpoint\":\"$5:51820\",\"publicKey\":\"$6\",\"podCIDRs\":[\"$4\"]}]}}}" >/dev/null
}
peer a b 10.201.0.0/16 10.201.0.0/24 10.124.0.2 "$key_b" Connected || bad "peering in a"
peer b a 10.200.0.0/16 10.200.0.0/24 10.124.0.1 "$key_a" Connected || bad "peering in b"

if wait_until 'ip netns exec $p-a ping -c 1 -W 1 -I 10.200.0.10 10.201.0.10' 100; then
  ok "a pod in cluster a pings a pod in cluster b through the tunnel"
else bad "cross-cluster ping" "$(ip netns exec $p-a wg show)" "$(tail -5 "$tmp/agent-a.log")"; fi
dump=$(ip netns exec "$p-a" wg show "${p:0:8}a" dump)
grep -q "$key_b" <<<"$dump" && grep -q "10.201.0.0/24" <<<"$dump" && grep -q "10.124.0.2:51820" <<<"$dump" \
  && ok "wg show: the peer, its endpoint and allowed IPs" || bad "wg show" "$dump"
ip -n "$p-a" link show "${p:0:8}a" | grep -q "mtu 1320" && ok "MTU derived from the underlay (1400 - 80)" \
  || bad "MTU" "$(ip -n $p-a link show ${p:0:8}a)"
ip -n "$p-a" route show proto 119 | grep -q "10.201.0.0/16 dev ${p:0:8}a" && ok "route 10.201.0.0/16 via the tunnel, protocol 119" \
  || bad "route" "$(ip -n $p-a route show)"
handshake=$(ip netns exec "$p-a" wg show "${p:0:8}a" latest-handshakes | awk '{print $2}')
[ "${handshake:-0}" -gt 0 ] && ok "a handshake happened" || bad "no handshake"

# Cleartext never crosses the underlay: the pods' addresses are inside WireGuard.
if command -v tcpdump >/dev/null; then
  ip netns exec "$p-u" timeout 3 tcpdump -ni br0 -c 20 'icmp' >"$tmp/cap" 2>/dev/null &
  capture=$!
  sleep 0.5; ip netns exec "$p-a" ping -c 3 -i 0.2 -I 10.200.0.10 10.201.0.10 >/dev/null
  wait $capture
  grep -q "10.201.0.10" "$tmp/cap" && bad "pod traffic seen in clear on the underlay" "$(cat "$tmp/cap")" \
    || ok "no pod packet in clear on the underlay"
else
  echo "SKIP: tcpdump not installed, the underlay capture check is not run"
fi

# Beside the CNI.
dev_a="${p:0:8}a"
[ "$(seen_by 10.201.0.10:7000)" = 10.200.0.20 ] \
  && ok "a pod's connection through the tunnel keeps its address under nft, iptables-nft and iptables-legacy masquerade" \
  || bad "pod source across clusters" "seen: $(seen_by 10.201.0.10:7000)" "$(ip netns exec $p-a nft list table inet clusterwire 2>&1)"
[ "$(seen_by 10.124.0.2:7001)" = 10.124.0.1 ] && ok "the CNI's masquerade still applies to what is not cross-cluster" \
  || bad "masquerade control" "seen: $(seen_by 10.124.0.2:7001)"
# Each backend's masquerade alone, the others removed: the exemption holds against every one.
ip netns exec "$p-a" nft delete table ip cnisim
ip netns exec "$p-a" iptables-legacy -t nat -F POSTROUTING
for backend in iptables-nft iptables-legacy nft; do
  ip netns exec "$p-a" iptables-nft -t nat -F POSTROUTING
  case $backend in
    nft) masq_nft ;;
    *) ip netns exec "$p-a" "$backend" "${masq_rule[@]}" ;;
  esac
  if [ "$(seen_by 10.201.0.10:7000)" = 10.200.0.20 ] && [ "$(seen_by 10.124.0.2:7001)" = 10.124.0.1 ]; then
    ok "$backend masquerade alone: cross-cluster keeps the pod address, the rest is masqueraded"
  else bad "$backend masquerade alone" "remote saw $(seen_by 10.201.0.10:7000), control saw $(seen_by 10.124.0.2:7001)"; fi
  [ $backend = iptables-legacy ] && ip netns exec "$p-a" iptables-legacy -t nat -F POSTROUTING
done
ip netns exec "$p-a" iptables-nft "${masq_rule[@]}"
ip netns exec "$p-a" iptables-legacy "${masq_rule[@]}"
# MSS: the pod's SYN (MSS 1460 on its 1500 link) leaves a's tunnel (MTU 1320) clamped to 1280.
ip netns exec "$p-b" timeout 5 tcpdump -ni "${p:0:8}b" -c 1 -v 'tcp[tcpflags] & tcp-syn != 0 and dst port 7000' \
  >"$tmp/syn" 2>/dev/null &
capture=$!
sleep 0.7; seen_by 10.201.0.10:7000 >/dev/null; wait $capture
grep -q "mss 1280" "$tmp/syn" && ok "a SYN into the tunnel has its MSS clamped to the tunnel's MTU (1320 - 40)" \
  || bad "MSS clamping" "$(cat "$tmp/syn")"
[ "$(ip netns exec "$p-a" cat /proc/sys/net/ipv4/conf/all/rp_filter)" = 1 ] &&
  [ "$(ip netns exec "$p-a" cat /proc/sys/net/ipv4/conf/$dev_a/rp_filter)" = 2 ] \
  && ok "rp_filter is loose on the tunnel beside a strict all.rp_filter" || bad "rp_filter on $dev_a"
# In-cluster routes: a2's block is the CNI's (left alone), a3's nobody's (clusterwire's).
routes_a=$(ip -n "$p-a" route show)
grep -Eq "10.200.1.0/24 via 10.124.0.3 dev eth0 proto (12|bird)" <<<"$routes_a" && ! grep -q "10.200.1.0/24.*proto 119" <<<"$routes_a" \
  && ok "a block the CNI routes is left to it" || bad "CNI-routed block" "$routes_a"
grep -q "10.200.2.0/24 via 10.124.0.4 dev eth0 proto 119" <<<"$routes_a" && ok "a block nobody routes gets clusterwire's route" \
  || bad "unrouted block" "$routes_a"
grep -q '"msg":"in-cluster blocks routed by someone else' "$tmp/agent-a.log" && ok "and the agent says so" || bad "no log line"
foreign_state >"$tmp/foreign.applied"
diff "$tmp/foreign.before" "$tmp/foreign.applied" >"$tmp/foreign.diff" && ok "no route, table or rule outside clusterwire's changed" \
  || bad "foreign state changed" "$(cat "$tmp/foreign.diff")"

# Passes with nothing new write nothing: not while running, not after a restart.
writes_before=$(grep -c '"msg":"device updated"' "$tmp/agent-a.log")
sleep 2.5  # at least one resync pass with nothing to do
[ "$(grep -c '"msg":"device updated"' "$tmp/agent-a.log")" -eq "$writes_before" ] \
  && ok "a resync pass with nothing new wrote nothing to the device" || bad "the device was rewritten by a resync"
kill "$agent_a"; wait "$agent_a" 2>/dev/null
ip netns exec "$p-a" ping -c 1 -W 1 -I 10.200.0.10 10.201.0.10 >/dev/null && ok "traffic flows while the agent is down" \
  || bad "traffic stopped with the agent"
run_agent a >"$tmp/agent-a2.log" 2>&1
sleep 3
grep -q '"msg":"device updated"' "$tmp/agent-a2.log" && bad "the restarted agent rewrote the device" "$(grep device "$tmp/agent-a2.log")" \
  || ok "the restarted agent wrote nothing to the device (no peer reset)"
now=$(ip netns exec "$p-a" wg show "${p:0:8}a" latest-handshakes | awk '{print $2}')
[ "$now" = "$handshake" ] && ok "the handshake is the same one" || bad "handshake changed ($handshake -> $now)"

# The peering leaves Connected: peer and route go; the other node's state does not matter.
kc a patch clusterpeering b --subresource=status --type=merge -p '{"status":{"phase":"Pending"}}' >/dev/null
if wait_until '! ip netns exec $p-a wg show ${p:0:8}a peers | grep -q .'; then ok "a Pending peering removes the peer"
else bad "peer still there"; fi
wait_until '! ip -n $p-a route show proto 119 | grep -q 10.201' && ok "and its route" || bad "route still there"
wait_until '! ip netns exec $p-a nft list set inet clusterwire remote_v4 | grep -q 10.201' \
  && ok "and its range from the no-SNAT set" || bad "range still in the set" "$(ip netns exec $p-a nft list table inet clusterwire)"
grep '"msg":"nftables updated"' "$tmp/agent-a2.log" | tail -1 | grep -q '"whole_table":false' \
  && ok "by an element update, not a table rewrite" || bad "nftables update" "$(grep nftables "$tmp/agent-a2.log")"

# cleanup removes routes and the device.
kc a patch clusterpeering b --subresource=status --type=merge -p '{"status":{"phase":"Connected"}}' >/dev/null
wait_until 'ip -n $p-a route show proto 119 | grep -q 10.201'
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null
ip netns exec "$p-a" "$agent" --interface "${p:0:8}a" cleanup >/dev/null 2>&1 && ok "cleanup" || bad "cleanup"
ip -n "$p-a" route show proto 119 | grep -q . && bad "routes left after cleanup" || ok "no route of ours left"
ip -n "$p-a" link show "${p:0:8}a" >/dev/null 2>&1 && bad "device left after cleanup" || ok "the device is gone"
ip netns exec "$p-a" nft list table inet clusterwire >/dev/null 2>&1 && bad "nftables table left after cleanup" \
  || ok "clusterwire's nftables table is gone"
foreign_state >"$tmp/foreign.after"
diff "$tmp/foreign.before" "$tmp/foreign.after" >"$tmp/foreign.diff" && ok "after cleanup, everything else is as it was before the agent" \
  || bad "foreign state changed by cleanup" "$(cat "$tmp/foreign.diff")"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
