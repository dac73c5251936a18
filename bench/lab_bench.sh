#!/usr/bin/env bash
# The lab's figures (root), in the bird world (BGP routes, the bridge plugin's masquerade):
# convergence (the last ClusterPeering applied -> the first cross-cluster packet), pod-to-pod
# TCP throughput across clusters through WireGuard with the same pods over the CNI's plain
# in-cluster routes in the same run as the baseline, detection and recovery of 10 partitions by
# the datapath probes beside the anchors' settings, and the node agent's nftables apply for
# 200 remote ranges (bench/tunnel_rules_bench.cc) beside the nft command and a rewrite.
# Every command has a timeout; a round that did not converge is reported, not counted.
# Usage: bench/lab_bench.sh [BUILD_DIR] [ROUNDS] [LOSS_SECONDS]
#   (default build/, 5 convergence rounds, 300 s under 5% loss)
set -u -o pipefail
build=${1:-build} rounds=${2:-5} loss_seconds=${3:-300}
cwctl=$build/cli/cwctl
[ "$(id -u)" -eq 0 ] || { echo "lab_bench: needs root (network namespaces)"; exit 1; }
command -v iperf3 >/dev/null || { echo "lab_bench: iperf3 is missing (scripts/deps.sh)"; exit 1; }
[ -x "$cwctl" ] || { echo "lab_bench: $cwctl is not built"; exit 1; }
name="cwb$$"
state=/run/clusterwire-lab/$name
t() { local s=$1; shift; timeout -k 5 "$s" "$@"; }
trap 't 60 "$cwctl" lab --name "$name" down >/dev/null 2>&1; rm -f "/tmp/$name-up.log"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
lab() { local s=$1; shift; t "$s" "$cwctl" lab --name "$name" "$@"; }
kc() { local c=$1; shift; t 15 ip netns exec "$name-underlay" kubectl --kubeconfig "$state/$c.kubeconfig" --request-timeout=10s "$@"; }
field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); [d:=d[k] for k in sys.argv[2:]]; print(d)' "$state/state.json" "$@"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

echo "lab_bench: up (2 clusters x 2 nodes, --cni bird) ..."
lab 150 up --cni bird >"/tmp/$name-up.log" 2>&1 || { cat "/tmp/$name-up.log"; exit 1; }
at_up=$(field convergenceMs)
backend=$(field backend)
case "$backend" in kernel) backend_name="kernel WireGuard" ;; uapi) backend_name="wireguard-go" ;; *) backend_name="$backend" ;; esac
c1n1=$(field podIPs c1-n1) c1n2=$(field podIPs c1-n2) c2n1=$(field podIPs c2-n1)
if1=$(t 10 ip -n "$name-c1-n1" -o link | grep -o 'cw[0-9a-f]\{6\}c1n1' | head -1)
[ -n "$if1" ] || { echo "lab_bench: no WireGuard device on c1-n1"; exit 1; }

# Convergence: delete both clusters' peerings, wait for the tunnel to go, re-apply them and time
# from the start of the last apply to the first ping reply (polled every 50 ms, up to 30 s).
peering() { printf 'apiVersion: clusterwire.io/v1alpha1\nkind: ClusterPeering\nmetadata: {name: %s}\nspec: {remoteClusterID: %s}\n' "$1" "$1"; }
no_peers() { local p; p=$(t 5 ip netns exec "$name-c1-n1" wg show "$if1" peers) || return 1; [ -z "$p" ]; }
figures=() failed_rounds=0
for i in $(seq "$rounds"); do
  kc c1 delete clusterpeering c2 >/dev/null; kc c2 delete clusterpeering c1 >/dev/null
  gone=0
  for _ in $(seq 200); do no_peers && { gone=1; break; }; sleep 0.05; done
  [ "$gone" = 1 ] || { echo "round $i: the tunnel did not go after the peerings were deleted: not counted"; failed_rounds=$((failed_rounds+1)); }
  peering c2 | kc c1 apply --validate=false -f - >/dev/null
  t0=$(now_ms)
  peering c1 | kc c2 apply --validate=false -f - >/dev/null
  converged=0
  for _ in $(seq 600); do
    t 2 ip netns exec "$name-c1-n1-pod" ping -n -q -c 1 -W 0.2 "$c2n1" >/dev/null 2>&1 && { converged=1; break; }
    sleep 0.05
  done
  ms=$(( $(now_ms) - t0 ))
  if [ "$converged" = 1 ] && [ "$gone" = 1 ]; then figures+=("$ms")
  elif [ "$converged" = 0 ]; then echo "round $i: no ping reply within 30 s: not counted"; failed_rounds=$((failed_rounds+1)); fi
done
echo
echo "convergence, last ClusterPeering applied -> first cross-cluster ping reply ($rounds rounds; timed from the start of the last kubectl apply, its start-up included):"
if [ "${#figures[@]}" -gt 0 ]; then
  sorted=($(printf '%s\n' "${figures[@]}" | sort -n))
  echo "  min ${sorted[0]} ms, median ${sorted[$(( ${#sorted[@]} / 2 ))]} ms, max ${sorted[-1]} ms   (all: ${figures[*]}; at up: $at_up ms)"
else
  echo "  no round converged"
fi
[ "$failed_rounds" -gt 0 ] && echo "  $failed_rounds of $rounds rounds not counted (see above)"

# Datapath health: 10 partitions (WireGuard UDP between c1 and c2 dropped), timed from the
# fault to both ClusterPeerings Degraded and from the heal to both Connected (polled every
# 50 ms; the fault and the poll through kubectl included).
phase() { kc "$1" get clusterpeering "$2" -o jsonpath='{.status.phase}' 2>/dev/null; }
until_both() {  # until_both PHASE: ms until both peerings have it (or "timeout" after 20 s)
  local t0; t0=$(now_ms)
  for _ in $(seq 400); do
    [ "$(phase c1 c2)" = "$1" ] && [ "$(phase c2 c1)" = "$1" ] && { echo $(( $(now_ms) - t0 )); return; }
    sleep 0.05
  done
  echo timeout
}
detect=() recover=()
for i in $(seq 10); do
  sleep 0.$((RANDOM % 10))  # faults at any point of the probe interval
  lab 30 impair partition c1 c2 >/dev/null & fault=$!
  detect+=($(until_both Degraded)); wait $fault
  lab 30 impair --clear partition >/dev/null & fault=$!
  recover+=($(until_both Connected)); wait $fault
  sleep 2
done
summary() { local s; s=($(printf '%s\n' "$@" | grep -v timeout | sort -n)); [ ${#s[@]} -gt 0 ] && echo "min ${s[0]} ms, median ${s[$(( ${#s[@]} / 2 ))]} ms, max ${s[-1]} ms (all: $*)" || echo "none: $*"; }
echo
echo "datapath health, 10 partitions, fault -> both peerings Degraded / heal -> both Connected:"
echo "  detection  $(summary "${detect[@]}")"
echo "  recovery   $(summary "${recover[@]}")"
echo "  anchors: Submariner pings every 1 s, error after 5 lost (~5 s), status synced every 5 s; Liqo: down after 10 s, status at most every 10 s"

# 5% random loss of the WireGuard packets each way (about 10% of round trips) for
# LOSS_SECONDS: the phases must not flap. Polled every 0.5 s.
lab 30 impair loss c1 c2 5 >/dev/null
flaps=0 last="" polls=0
end=$((SECONDS + loss_seconds))
while [ $SECONDS -lt $end ]; do
  now="$(phase c1 c2)/$(phase c2 c1)"
  [ -n "$last" ] && [ "$now" != "$last" ] && { flaps=$((flaps + 1)); echo "  phase change under loss: $last -> $now"; }
  last=$now polls=$((polls + 1))
  sleep 0.5
done
dropped=$(t 10 ip netns exec "$name-underlay" nft list table bridge cwlab_impair | sed -n 's/.*counter packets \([0-9]*\).*loss.*/\1/p' | paste -sd+ | bc)
lab 30 impair --clear loss >/dev/null
echo "  5% loss each way for ${loss_seconds} s: $flaps phase changes ($polls polls, ${dropped:-?} WireGuard packets dropped; target: none)"

# Throughput: iperf3 -t 5 from c1-n1's pod, to c2-n1's pod (WireGuard) and to c1-n2's pod (plain
# routes on the same underlay), alternating, twice each. The server serves one client (-1) and
# is stopped by its timeout should the client never connect.
gbps() { python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.2f" % (d["end"]["sum_received"]["bits_per_second"]/1e9))'; }
run_iperf() {  # run_iperf SERVER_POD SERVER_IP
  t 20 ip netns exec "$name-$1-pod" iperf3 -s -1 >/dev/null 2>&1 &
  local server=$!
  sleep 0.3
  t 15 ip netns exec "$name-c1-n1-pod" iperf3 -c "$2" -t 5 -J 2>/dev/null | gbps 2>/dev/null || echo "failed"
  wait "$server" 2>/dev/null
}
wg=() plain=()
for i in 1 2; do
  wg+=($(run_iperf c2-n1 "$c2n1"))
  plain+=($(run_iperf c1-n2 "$c1n2"))
done
echo
echo "pod-to-pod TCP throughput, iperf3 -t 5, c1-n1-pod as client:"
echo "  across clusters ($backend_name): ${wg[*]} Gbit/s"
echo "  in-cluster, the CNI's plain routes (baseline, same run): ${plain[*]} Gbit/s"
rtt() { t 10 ip netns exec "$name-c1-n1-pod" ping -n -q -c 20 -i 0.05 "$1" | sed -n 's/.*= [0-9.]*\/\([0-9.]*\)\/.*/\1/p'; }
rtt_wg=$(rtt "$c2n1") || rtt_wg="failed"
rtt_plain=$(rtt "$c1n2") || rtt_plain="failed"
echo "  rtt: across clusters ${rtt_wg} ms, plain ${rtt_plain} ms"

echo
if [ -x "$build/bench/probe_bench" ]; then
  t 120 "$build/bench/probe_bench"
  echo
fi
if [ -x "$build/bench/tunnel_rules_bench" ]; then
  t 120 "$build/bench/tunnel_rules_bench"
else
  echo "tunnel_rules_bench is not built ($build/bench/tunnel_rules_bench): the agent's nftables figures are left out"
fi
