#!/usr/bin/env bash
# ClusterSet ingress policy end to end (docs/policy.md): `cwctl lab up --clusters 3` (2 nodes
# each, the default bird world), then, as c1's peerings and policies change, a matrix of flows
# between the three clusters: every flow the change allows connects, every flow it denies gets
# no answer, and every flow it does not concern is unchanged. Also:
#   - a TCP stream from c2 into c1 open before its posture becomes None runs to its end, while
#     new connections are refused (conntrack keeps a connection's verdict);
#   - a pod of c2 sending with a c3 source address: the packets enter c2's tunnel and never
#     come out of it in c1 (WireGuard's cryptokey routing drops them before any policy);
#   - each node agent writes its own entry of a policy's status: the pods it selects there and
#     what it could not enforce (a cluster that is not peered).
# How fast a change is in force: bench/ingress_apply_bench.cc.
# Everything is named cwt<pid> and removed on exit (lab_lib.sh). About 60 s.
# Usage: policy_test.sh BUILD_DIR
set -u -o pipefail
build=$1
budget_seconds=400
source "$(dirname "$0")/lab_lib.sh"

if out=$(t 150 "$cwctl" lab --name "$name" up --clusters 3 2>&1); then
  ok "cwctl lab up --clusters 3 (2 nodes each) in $(( $(date +%s) - started )) s"
else
  bad "cwctl lab up --clusters 3" "$out"; echo "$passed passed, $failed failed"; exit 1
fi
ip_of() { pod_ip "$1"; }
table() { t 10 ip netns exec "$name-$1" nft list table inet clusterwire_ingress 2>&1; }

# reach FROM TO PORT: a pod of FROM connects to the pod of TO on PORT and gets an answer.
reach() {  # FROM TO PORT [CONNECT-TIMEOUT, default 2 s]
  local out; out=$(printf 'hi\n' | pod "$1" socat -T 2 - "TCP:$(ip_of "$2"):$3,connect-timeout=${4:-2}" 2>/dev/null); [ -n "$out" ]
}
# flows LABEL "FROM TO PORT yes|no" ...: every flow at once; one result line for the set.
flows() {
  local label=$1; shift
  local i=0 f wrong=() pids=() count=$#
  for f in "$@"; do
    ( set -- $f; if reach "$1" "$2" "$3"; then echo yes; else echo no; fi >"$tmp/flow.$i" ) &
    pids+=($!)
    i=$((i + 1))
  done
  wait "${pids[@]}"
  i=0
  for f in "$@"; do
    local got; got=$(cat "$tmp/flow.$i")
    set -- $f
    # An allowed flow that got no answer is tried once more, alone and with 5 s: this test runs
    # beside others on a busy machine, and a denied flow is dropped, so it never answers.
    if [ "$got" = no ] && [ "$4" = yes ] && reach "$1" "$2" "$3" 5; then got=yes; fi
    [ "$got" = "$4" ] || wrong+=("$1 -> $2:$3 expected $4, got $got")
    i=$((i + 1))
  done
  if [ ${#wrong[@]} -eq 0 ]; then ok "$label ($count flows as expected)"
  else bad "$label" "${wrong[@]}" "c1-n1's table:" "$(table c1-n1)"; fi
}
# ingress PEER POSTURE|null: c1's peering with PEER
ingress() {
  local v='"'"$2"'"'; [ "$2" = null ] && v=null
  kc c1 patch clusterpeering "$1" --type merge -p '{"spec":{"ingress":'"$v"'}}' >/dev/null || bad "patch c1's peering $1: ingress $2"
}

wait_until 'reach c2-n1 c1-n1 7002 && reach c3-n1 c1-n1 7002 && reach c2-n1 c3-n1 7002' 30 \
  || bad "the clusters do not reach each other after up" "$(lab 30 status 2>&1)"
# Flows c1 never judges: c1's own connections out (the answers are established), the
# clusters other than c1 between themselves, and traffic inside c1.
unconcerned=("c1-n1 c2-n1 7002 yes" "c1-n2 c3-n2 8080 yes" "c2-n1 c3-n1 7002 yes" "c3-n2 c2-n2 7002 yes"
             "c1-n2 c1-n1 7002 yes")

flows "posture All (the default): every cluster reaches every pod of c1" \
  "c2-n1 c1-n1 7002 yes" "c2-n2 c1-n2 8080 yes" "c3-n1 c1-n1 7002 yes" "c3-n2 c1-n2 7000 yes" "${unconcerned[@]}"

# --- c2 at None, with a connection from c2 open across the change
stream_out=$tmp/stream
t 30 ip netns exec "$name-c2-n1-pod" python3 "$(dirname "$0")/stream.py" "$(ip_of c1-n1)" 7000 6 0.05 >"$stream_out" 2>&1 &
stream_pid=$!; background_pids+=($stream_pid)
# The change comes once the stream's connection is established (python may take a while to
# start on a busy machine).
wait_until '[ -n "$(pod c2-n1 ss -Htn state established dst "$(ip_of c1-n1)":7000)" ]' 10 \
  || bad "the stream from c2 did not connect" "$(cat "$stream_out")"
ingress c2 None
if wait_until '! reach c2-n2 c1-n1 7002' 5; then
  kill -0 "$stream_pid" 2>/dev/null && stream_open=yes || stream_open=no
  ok "ingress None for c2: a new connect from c2 gets no answer (stream still open: $stream_open)"
else bad "ingress None did not stop c2" "$(table c1-n1)"; fi
wait "$stream_pid" && [ "$stream_open" = yes ] \
  && ok "  the stream c2 opened before the change ran to its end on its one connection ($(cat "$stream_out"))" \
  || bad "the stream open before the change broke (or ended before the change was in force)" "$(cat "$stream_out")"
[ "$(kc c1 get clusterpeering c2 -o jsonpath='{.status.ingress}')" = None ] && ok "  c1's peering with c2 says status.ingress None" \
  || bad "status.ingress" "$(kc c1 get clusterpeering c2 -o jsonpath='{.status}')"
# Through c1's ClusterIP of web: c1's node that takes it out of the tunnel translates it to
# either pod of web, and kube-proxy masquerades it when that pod is on the other node (whose
# node would then see a source of c1's). The translating node judges it: none gets through.
web_c1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["webIPs"]["c1"])' "$state/state.json")
via_cluster_ip() {  # FROM-POD N: answers to N connects at once to c1's ClusterIP of web, one per line
  local i pids=()
  for i in $(seq "$2"); do
    ( printf 'hi\n' | pod "$1" socat -T 2 - "TCP:$web_c1:80,connect-timeout=2" 2>/dev/null | head -1 >"$tmp/cip.$i" ) &
    pids+=($!)
  done
  wait "${pids[@]}"
  for i in $(seq "$2"); do cat "$tmp/cip.$i"; done
}
answers=$(via_cluster_ip c2-n1 6 | grep -c -- '-pod ')
[ "$answers" -eq 0 ] && ok "  and none of 6 connects from c2 to c1's ClusterIP of web ($web_c1) is answered, whichever pod kube-proxy picks" \
  || bad "c2 reached c1's web through its ClusterIP under None ($answers of 6)" "$(table c1-n1)"
answers=$(via_cluster_ip c3-n1 12 | grep -o '^c1-n[12]-pod' | sort -u | tr '\n' ' ')
[ "$answers" = "c1-n1-pod c1-n2-pod " ] && ok "  while c3's connects to it reach both pods of web ($answers)" \
  || bad "c3 through c1's ClusterIP" "answered by: '$answers'"
flows "ingress None for c2: c2 reaches no pod of c1, c3 still reaches them, nothing else changes" \
  "c2-n1 c1-n1 7002 no" "c2-n2 c1-n2 8080 no" "c2-n1 c1-n2 7000 no" "c3-n1 c1-n1 7002 yes" "c3-n2 c1-n2 8080 yes" \
  "${unconcerned[@]}"

# --- c2 at ExportedServices, c3 at None. c1 exports web (port 8080 on both pods) and echo
# (headless, port 7000, only c1-n1's pod); every pod also listens on 7002, which nothing exports.
ingress c2 ExportedServices
ingress c3 None
wait_until 'reach c2-n1 c1-n2 8080 && ! reach c3-n1 c1-n1 8080' 10
answers=$(via_cluster_ip c2-n1 12 | grep -o '^c1-n[12]-pod' | sort -u | tr '\n' ' ')
[ "$answers" = "c1-n1-pod c1-n2-pod " ] && ok "ingress ExportedServices for c2: c1's ClusterIP of web (exported) reaches both its pods, on either node ($answers)" \
  || bad "c2 through c1's ClusterIP under ExportedServices" "answered by: '$answers'" "$(table c1-n1)"
answers=$(via_cluster_ip c3-n1 6 | grep -c -- '-pod ')
[ "$answers" -eq 0 ] && ok "  and c3 (None) gets no answer there in 6 connects" || bad "c3 reached c1's ClusterIP under None ($answers of 6)"
flows "ingress ExportedServices for c2, None for c3: c2 reaches exported endpoints on exported ports only" \
  "c2-n1 c1-n2 8080 yes" "c2-n2 c1-n1 8080 yes" "c2-n1 c1-n1 7000 yes" "c2-n1 c1-n2 7000 no" "c2-n2 c1-n1 7002 no" \
  "c3-n1 c1-n1 8080 no" "c3-n2 c1-n2 7000 no" "${unconcerned[@]}"

# --- policies on top: the echo-labelled pod (c1-n1's) from c3 on TCP 7002; web's pods from a
# cluster that is not peered (c9), which allows nothing and is said in the status.
cat >"$tmp/csip.yaml" <<YAML
apiVersion: clusterwire.io/v1alpha1
kind: ClusterSetIngressPolicy
metadata: {name: sink-from-c3, namespace: demo}
spec:
  podSelector: {matchLabels: {demo.clusterwire.io/echo: "true"}}
  from:
  - clusters: [c3]
    ports: [{protocol: TCP, port: 7002}]
---
apiVersion: clusterwire.io/v1alpha1
kind: ClusterSetIngressPolicy
metadata: {name: web-from-c9, namespace: demo}
spec:
  podSelector: {matchLabels: {app: web}}
  from:
  - clusters: [c9]
YAML
kc c1 apply -f "$tmp/csip.yaml" >/dev/null || bad "apply the ClusterSetIngressPolicies"
c1n1=$(ip_of c1-n1)
wait_until 'reach c3-n1 c1-n1 7002' 10
flows "a policy admits c3 to the pod it selects on its port, and nothing more" \
  "c3-n1 c1-n1 7002 yes" "c3-n2 c1-n1 8080 no" "c3-n1 c1-n2 7002 no" "c2-n1 c1-n1 7002 no" "c2-n1 c1-n2 8080 yes" \
  "${unconcerned[@]}"
status_of() { kc c1 get clustersetingresspolicy -n demo "$1" -o jsonpath='{.status}'; }
if wait_until '[ "$(kc c1 get csip -n demo sink-from-c3 -o jsonpath="{.status.selectedPods} {.status.nodes[*].node}")" = "1 c1-n1" ]' 10; then
  ok "sink-from-c3's status: 1 pod selected, on c1-n1 ($(status_of sink-from-c3))"
else bad "sink-from-c3's status" "$(status_of sink-from-c3)"; fi
if wait_until '[ "$(kc c1 get csip -n demo web-from-c9 -o jsonpath="{.status.selectedPods} {.status.nodes[*].node}")" = "2 c1-n1 c1-n2" ]' 10 \
   && [ "$(kc c1 get csip -n demo web-from-c9 -o jsonpath='{.status.nodes[1].problems[0]}')" = "cluster c9 is not a Connected peer of this cluster" ]; then
  ok "web-from-c9's status: 2 pods on c1-n1 and c1-n2, each node saying c9 is not a peer"
else bad "web-from-c9's status" "$(status_of web-from-c9)"; fi
kout=$(kc c1 get csip -n demo 2>&1)
[ "$(awk '$1 == "sink-from-c3" { print $(NF-1) }' <<<"$kout")" = 1 ] && ok "kubectl get csip shows the pods selected (SELECTED 1)" || bad "kubectl get csip" "$kout"

# --- a spoof: a pod of c2 sends UDP with c3-n1's pod address as its source. A node with strict
# rp_filter (the lab's default) drops it at once; with rp_filter off on c2-n1, as many CNIs
# set it, the packet enters c2's tunnel, and WireGuard in c1 drops it: c2's peer may not carry
# c3's addresses. A packet with c2's own source, sent the same way, comes out in c1. (Each
# capture stops at the packets it expects: 7 into c2's tunnel, 2 out in c1. Spoofed packets
# coming out in c1 would be the first two there.)
wg_of() { ip -n "$name-$1" -o link | grep -o "cw[0-9a-f]\{6\}${1//-/}" | head -1; }
cat >"$tmp/spoof.py" <<'PY'
import socket, struct, sys
src, dst, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
payload = b"spoofed"
udp = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst))
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)  # the kernel fills in the checksum
for _ in range(count):
    s.sendto(ip + udp, (dst, 0))
PY
wg_c2=$(wg_of c2-n1) wg_c1=$(wg_of c1-n1)
t 5 ip netns exec "$name-c2-n1" sysctl -q -w net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.cni0.rp_filter=0
t 8 ip netns exec "$name-c2-n1" tcpdump -nli "$wg_c2" -c 7 udp port 7009 >"$tmp/spoof.c2" 2>/dev/null &
dump_c2=$!
t 8 ip netns exec "$name-c1-n1" tcpdump -nli "$wg_c1" -c 2 udp port 7009 >"$tmp/spoof.c1" 2>/dev/null &
dump_c1=$!
background_pids+=($dump_c2 $dump_c1)
sleep 1.5
pod c2-n1 python3 "$tmp/spoof.py" "$(ip_of c3-n1)" "$c1n1" 7009 5
sleep 0.3
pod c2-n1 python3 "$tmp/spoof.py" "$(ip_of c2-n1)" "$c1n1" 7009 2
wait "$dump_c2" "$dump_c1"
spoof_in=$(grep -c "IP $(ip_of c3-n1).40000 > $c1n1.7009" "$tmp/spoof.c2") spoof_out=$(grep -c "IP $(ip_of c3-n1).40000 > " "$tmp/spoof.c1")
own_out=$(grep -c "IP $(ip_of c2-n1).40000 > $c1n1.7009" "$tmp/spoof.c1")
if [ "$spoof_in" -eq 5 ] && [ "$spoof_out" -eq 0 ] && [ "$own_out" -eq 2 ]; then
  ok "a c2 pod's packets with c3's source entered c2's tunnel ($spoof_in) and none came out in c1; with its own source, $own_out of 2 did"
else bad "spoof: into c2's tunnel $spoof_in (want 5), out in c1 $spoof_out (want 0), own source out $own_out (want 2)" \
  "c2-n1's $wg_c2:" "$(cat "$tmp/spoof.c2")" "c1-n1's $wg_c1:" "$(cat "$tmp/spoof.c1")"; fi

# --- back to the defaults
kc c1 delete -f "$tmp/csip.yaml" >/dev/null || bad "delete the ClusterSetIngressPolicies"
ingress c2 null
ingress c3 null
wait_until 'reach c2-n1 c1-n2 7002 && reach c3-n1 c1-n2 7002' 10
flows "back to the default (All): every cluster reaches every pod of c1 again" \
  "c2-n1 c1-n1 7002 yes" "c2-n2 c1-n2 7000 yes" "c3-n1 c1-n1 7002 yes" "c3-n2 c1-n2 8080 yes" "${unconcerned[@]}"
grep -q 'accept comment "c2: ingress All"' <<<"$(table c1-n2)" && ok "c1-n2's table is back to posture All for c2" \
  || bad "c1-n2's table" "$(table c1-n2)"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
