#!/usr/bin/env bash
# The nat world end to end (docs/lab.md, "The nat world"; docs/gateway.md): two clusters of
# three nodes, each behind its NAT router on the same private subnet, two gateway candidates
# each. `up` and `verify` (every row, isolation and which gateway carried the traffic), then:
#   1. c1's active gateway killed during a ping every 50 ms and a long TCP stream from a member
#      of c1 to a member of c2: traffic back within 2 s (the goal: 1 s median, 2 s worst), the
#      stream unbroken, another candidate active with a higher epoch;
#   2. the same for c2's active gateway while the broker's API server (c1's) is frozen
#      (SIGSTOP): failover needs no broker;
#   3. c2's candidates lose their public endpoints and c1's gateways restart with new devices:
#      c1 reaches c2 again once c2's gateways reached c1 (discovered endpoints);
#   4. a candidate unlabelled (clusterwire.io/gateway=false) is never active, even when the
#      active one dies and it is the only other one.
# Before those, ClusterSet ingress policy through a gateway: c1 at posture None for c2 stops
# c2's connects to a member of c1 (judged on the member), and All lets them through again.
# Also the verify rows of the nat world: isolation, gateway, private-net.
# Everything is named cwt<pid> and removed on exit (lab_lib.sh). About 75 s.
# Usage: gateway_test.sh BUILD_DIR
set -u -o pipefail
build=$1
budget_seconds=400
source "$(dirname "$0")/lab_lib.sh"

if out=$(t 150 "$cwctl" lab --name "$name" up --world nat --nodes 3 2>&1); then
  ok "cwctl lab up --world nat --nodes 3 in $(( $(date +%s) - started )) s"
else
  bad "cwctl lab up --world nat" "$out"; echo "$passed passed, $failed failed"; exit 1
fi

vout=$(lab 150 verify 2>&1); vrc=$?
echo "$vout" | sed 's/^/    /'
[ $vrc -eq 0 ] && ok "verify passes in the nat world" || bad "verify in the nat world" "$(grep FAIL <<<"$vout")"
[ "$(grep -c '^isolation .* PASS' <<<"$vout")" -eq 2 ] && ok "verify shows no node-to-node path between the clusters" \
  || bad "isolation rows" "$(grep '^isolation' <<<"$vout")"
[ "$(grep -c '^gateway .* PASS' <<<"$vout")" -eq 2 ] && ok "verify shows which gateway carried the traffic" \
  || bad "gateway rows" "$(grep '^gateway' <<<"$vout")"
[ "$(grep -c '^private-net .* PASS' <<<"$vout")" -eq 2 ] && ok "verify sees no remote pod address in clear on either cluster's node network" \
  || bad "private-net rows" "$(grep '^private-net' <<<"$vout")"

holder() { kc "$1" get lease -n kube-system clusterwire-gateway -o jsonpath='{.spec.holderIdentity} {.spec.leaseTransitions}'; }
c2n3=$(pod_ip c2-n3)

# ClusterSet ingress policy through a gateway (docs/policy.md): c2's traffic to c1-n3's pod
# comes out of the tunnel on c1's active gateway, which forwards it unchanged to c1-n3; c1-n3,
# the destination pod's node, judges it. Under posture None it gets no answer, c1's own
# connections to c2 still work, and the default (All) lets it through again.
c1n3=$(pod_ip c1-n3)
web() { printf 'hi\n' | pod "$1" socat -T 2 - "TCP:$2:8080,connect-timeout=1" 2>/dev/null; }
kc c1 patch clusterpeering c2 --type merge -p '{"spec":{"ingress":"None"}}' >/dev/null || bad "patch ingress None"
if wait_until '[ -z "$(web c2-n3 "$c1n3")" ]' 10; then
  ok "ingress None through the gateway: c2-n3's connect to c1-n3's pod gets no answer"
  ans=$(web c1-n3 "$c2n3"); [ -n "$ans" ] && ok "  while c1-n3 still reaches c2-n3 ($ans)" || bad "c1's own connection to c2 was judged"
  drops=$(t 10 ip netns exec "$name-c1-n3" nft list chain inet clusterwire_ingress c_c2 | grep -o 'packets [0-9]* bytes [0-9]* drop' | awk '{print $2}')
  [ "${drops:-0}" -gt 0 ] && ok "  c1-n3 dropped it ($drops packets in c_c2's drop counter)" || bad "no drop counted on c1-n3" "$drops"
else bad "ingress None did not stop c2 through the gateway" "$(t 10 ip netns exec "$name-c1-n3" nft list table inet clusterwire_ingress 2>&1)"; fi
kc c1 patch clusterpeering c2 --type merge -p '{"spec":{"ingress":null}}' >/dev/null || bad "patch ingress null"
if wait_until '[ -n "$(web c2-n3 "$c1n3")" ]' 10; then
  ans=$(web c2-n3 "$c1n3")
  grep -qF "c1-n3-pod [0000:0000:0000:0000:0000:ffff:$(printf '%02x%02x:%02x%02x' ${c2n3//./ })]" <<<"$ans" \
    && ok "back to All: c2-n3 reaches c1-n3's pod, which sees c2-n3's own address ($ans)" \
    || bad "the source address did not survive the gateway" "$ans"
else bad "the default posture did not come back through the gateway"; fi

# failover CLUSTER LABEL: kills CLUSTER's active gateway during a 50 ms ping and a TCP stream
# from c1-n3-pod (a member) to c2-n3-pod (a member), then checks the gap, the stream, the epoch.
failover() {
  local c=$1 what=$2 before after gap
  before=$(holder "$c") || { bad "$what: no gateway Lease in $c"; return; }
  t 30 ip netns exec "$name-c1-n3-pod" ping -D -i 0.05 -W 0.2 -w 12 "$c2n3" >"$tmp/ping" 2>&1 &
  background_pids+=($!); local ping_pid=$!
  t 30 ip netns exec "$name-c1-n3-pod" python3 "$(dirname "$0")/stream.py" "$c2n3" 7000 9 0.05 >"$tmp/stream" 2>&1 &
  background_pids+=($!); local stream_pid=$!
  sleep 2
  local kout; kout=$(lab 30 impair kill-gateway "$c" 2>&1) || bad "$what: impair kill-gateway $c" "$kout"
  wait "$stream_pid"; local src=$?
  wait "$ping_pid"
  gap=$(python3 - "$tmp/ping" <<'PY'
import re, sys
ts = [float(m.group(1)) for m in (re.search(r'^\[(\d+\.\d+)\].*bytes from', l) for l in open(sys.argv[1])) if m]
print(int(max((b - a for a, b in zip(ts, ts[1:])), default=99) * 1000) if len(ts) > 10 else 99999)
PY
)
  echo "    $what: largest gap between ping replies ${gap} ms; stream: $(cat "$tmp/stream")"
  [ "$gap" -le 2000 ] && ok "$what: traffic back within ${gap} ms of the kill (goal: 2 s worst)" \
    || bad "$what: traffic gap ${gap} ms" "$(tail -5 "$tmp/ping")"
  [ $src -eq 0 ] && ok "$what: the TCP stream across the clusters is unbroken ($(cat "$tmp/stream"))" \
    || bad "$what: TCP stream broken" "$(cat "$tmp/stream")"
  after=$(holder "$c")
  if [ "${before%% *}" != "${after%% *}" ] && [ "${after##* }" -gt "${before##* }" ]; then
    ok "$what: $c's Lease moved from ${before%% *} to ${after%% *}, epoch ${before##* } -> ${after##* }"
  else bad "$what: the Lease did not move" "before: $before" "after: $after"; fi
  echo "$gap" >>"$tmp/gaps"
}

failover c1 "c1's active gateway killed"
rout=$(lab 60 impair --clear kill-gateway 2>&1) && ok "the killed gateway revived ($rout)" || bad "revive" "$rout"
wait_until "pod c1-n3 ping -c 1 -W 0.5 $c2n3" 20 || bad "traffic after the revival"

# The broker (c1's API server) frozen: c2's gateways elect through c2's API, and c1's nodes
# learn the new gateway from its beacons through the tunnel.
broker_pid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["processes"]["apiserver-c1"]["pid"])' "$state/state.json")
if grep -qa cw-lab-apiserver "/proc/$broker_pid/cmdline" 2>/dev/null && kill -STOP "$broker_pid"; then
  ok "the broker's API server (apiserver-c1, pid $broker_pid) is frozen"
  failover c2 "c2's active gateway killed, broker unreachable"
  kill -CONT "$broker_pid"
else bad "freezing apiserver-c1 (pid '$broker_pid')"; fi
rout=$(lab 60 impair --clear kill-gateway 2>&1) || bad "revive" "$rout"
wait_until "pod c1-n3 ping -c 1 -W 0.5 $c2n3" 20 || bad "traffic after the second revival"

# Discovered endpoints: c2's candidates lose their public endpoints (as gateways behind a NAT
# without port forwards), and c1's gateways start afresh (new devices: no endpoint learned yet).
# c1 can then reach c2 only once c2's gateways have reached c1, whose endpoints are public.
for n in c2-n1 c2-n2; do kc c2 annotate node "$n" clusterwire.io/public-endpoint- >/dev/null || bad "unannotating $n"; done
if wait_until "[ -z \"\$(kc c1 get clusterpeering c2 -o jsonpath='{.status.remote.gateways[*].endpoint}')\" ]" 30; then
  ok "c2's gateways are advertised without endpoints"
else bad "c2's gateways still have endpoints" "$(kc c1 get clusterpeering c2 -o jsonpath='{.status.remote.gateways}')"; fi
for n in c1-n1 c1-n2; do
  if python3 -c 'import json,sys; sys.exit(0 if "wireguard-go-"+sys.argv[2] in json.load(open(sys.argv[1]))["processes"] else 1)' "$state/state.json" "$n"; then
    lab 30 restart "wireguard-go-$n" >/dev/null || bad "restarting wireguard-go-$n"
  else
    t 10 ip -n "$name-$n" link del "$(t 10 ip -n "$name-$n" -o link | grep -o "cw[0-9a-f]\{6\}${n/-/}" | head -1)" || bad "deleting $n's device"
  fi
  lab 30 restart "node-agent-$n" >/dev/null || bad "restarting node-agent-$n"
done
start_ms=$(date +%s%N)
# (About 1 s: restarted gateways handshake with every node at once (keepalive), and c2 resets
# its sessions once its probes to c1's gateways are Down; WireGuard alone would wait 15 s.)
if wait_until "pod c1-n3 ping -c 1 -W 0.5 $c2n3" 45; then
  ok "c1 reaches c2 behind NAT again $(( ($(date +%s%N) - start_ms) / 1000000 )) ms after its gateways restarted: endpoints discovered"
else bad "no traffic to c2 without its public endpoints" "$(t 5 ip netns exec "$name-c1-n1" wg show 2>&1)"; fi
discovered=$(t 5 ip netns exec "$name-$(holder c1 | cut -d' ' -f1)" wg show all endpoints 2>/dev/null | grep -c "192\.168\.77\.102:")
[ "${discovered:-0}" -ge 1 ] && ok "c1's active gateway learned c2's router address from c2's handshakes ($discovered peers)" \
  || bad "no endpoint at c2's router on c1's active gateway" "$(t 5 ip netns exec "$name-c1-n1" wg show all endpoints 2>&1)"

# An unlabelled candidate is never active: c2's standby loses its label, then the active dies.
active=$(holder c2); active=${active%% *}
standby=c2-n1; [ "$active" = c2-n1 ] && standby=c2-n2
kc c2 label node "$standby" clusterwire.io/gateway=false --overwrite >/dev/null || bad "unlabelling $standby"
sleep 1
kout=$(lab 30 impair kill-gateway c2 2>&1) || bad "impair kill-gateway c2" "$kout"
sleep 3
now=$(holder c2)
[ "${now%% *}" != "$standby" ] && ok "unlabelled $standby never became active (holder: ${now%% *}, dead)" \
  || bad "an unlabelled node became the active gateway" "$now"

elapsed=$(( $(date +%s) - started ))
echo "$passed passed, $failed failed (${elapsed} s)"
[ "$failed" -eq 0 ]
