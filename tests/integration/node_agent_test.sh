#!/usr/bin/env bash
# Two cw-node-agents, one per "cluster", each in its own network namespace on a bridged
# underlay, with wireguard-go as the userspace WireGuard and a lab API server per cluster.
# The operator's part (ClusterPeering status) is written with kubectl, so this checks the
# agent alone: pod-to-pod ping through the tunnel, read back with `wg show`, routes with
# protocol 119, no device write when nothing changed (an agent restart keeps the session),
# a peering leaving Connected removes the peer and the route, and `cleanup` removes the rest.
# Everything it makes is named cwna-<pid>-* and removed on exit, even on failure.
# Usage: node_agent_test.sh AGENT APISERVER
set -u
agent=$1 apiserver=$2
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (network namespaces)"; exit 77; }
for tool in ip wg wireguard-go kubectl ping; do
  command -v $tool >/dev/null || { echo "SKIP: $tool is not installed (scripts/deps.sh installs it)"; exit 77; }
done
p="cwna-$$"
tmp=$(mktemp -d /tmp/$p-XXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  for ns in "$p-u" "$p-a" "$p-b"; do ip netns del "$ns" 2>/dev/null; done
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

# One lab API server per cluster, reachable from the node namespaces over the bridge.
for c in a b; do
  port=$([ $c = a ] && echo 16443 || echo 16444)
  start ip netns exec "$p-u" "$apiserver" --address 10.124.0.254 --port $port --name $c \
    --kubeconfig "$tmp/$c.kc" --ready-file "$tmp/$c.ready"
done
wait_until '[ -s "$tmp/a.ready" ] && [ -s "$tmp/b.ready" ]' || { echo "FAIL: API servers did not start"; exit 1; }
kc() { local c=$1; shift; ip netns exec "$p-u" kubectl --kubeconfig "$tmp/$c.kc" --request-timeout=10s "$@"; }
for c in a b; do
  kc $c apply -f "$(dirname "$0")/../../crds/clusterpeerings.clusterwire.io.yaml" --validate=false >/dev/null
  other=$([ $c = a ] && echo 10.200.0.0/24 || echo 10.201.0.0/24)
  ip=$([ $c = a ] && echo 10.124.0.1 || echo 10.124.0.2)
  cat <<YAML | kc $c apply -f - --validate=false >/dev/null || bad "node object in $c"
apiVersion: v1
kind: Node
metadata:
  name: node-$c
  annotations: {clusterwire.io/pod-cidr: "$other"}
status:
  addresses: [{type: InternalIP, address: "$ip"}]
YAML
done

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

# cleanup removes routes and the device.
kc a patch clusterpeering b --subresource=status --type=merge -p '{"status":{"phase":"Connected"}}' >/dev/null
wait_until 'ip -n $p-a route show proto 119 | grep -q 10.201'
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null
ip netns exec "$p-a" "$agent" --interface "${p:0:8}a" cleanup >/dev/null 2>&1 && ok "cleanup" || bad "cleanup"
ip -n "$p-a" route show proto 119 | grep -q . && bad "routes left after cleanup" || ok "no route of ours left"
ip -n "$p-a" link show "${p:0:8}a" >/dev/null 2>&1 && bad "device left after cleanup" || ok "the device is gone"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
