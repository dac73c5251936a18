#!/usr/bin/env bash
# The lab's figures (root): convergence (the last ClusterPeering applied -> the first
# cross-cluster packet) and pod-to-pod TCP throughput across clusters through WireGuard, with
# the same pods over plain in-cluster routes in the same run as the baseline.
# Usage: bench/lab_bench.sh [BUILD_DIR] [ROUNDS]   (default build/, 5 convergence rounds)
set -u
build=${1:-build} rounds=${2:-5}
cwctl=$build/cli/cwctl
[ "$(id -u)" -eq 0 ] || { echo "lab_bench: needs root (network namespaces)"; exit 1; }
command -v iperf3 >/dev/null || { echo "lab_bench: iperf3 is missing (scripts/deps.sh)"; exit 1; }
[ -x "$cwctl" ] || { echo "lab_bench: $cwctl is not built"; exit 1; }
name="cwb$$"
state=/run/clusterwire-lab/$name
trap '"$cwctl" lab --name "$name" down >/dev/null 2>&1; rm -f "/tmp/$name-up.log"' EXIT
lab() { "$cwctl" lab --name "$name" "$@"; }
kc() { local c=$1; shift; ip netns exec "$name-underlay" kubectl --kubeconfig "$state/$c.kubeconfig" --request-timeout=10s "$@"; }
pod_ip() { /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["podIPs"][sys.argv[2]])' "$state/state.json" "$1"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

echo "lab_bench: up (2 clusters x 2 nodes) ..."
lab up >"/tmp/$name-up.log" 2>&1 || { cat "/tmp/$name-up.log"; exit 1; }
at_up=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["convergenceMs"])' "$state/state.json")
c1n1=$(pod_ip c1-n1) c1n2=$(pod_ip c1-n2) c2n1=$(pod_ip c2-n1)
if1=$(ip -n "$name-c1-n1" -o link | grep -o 'cw[0-9a-f]\{4\}c1n1' | head -1)

# Convergence: delete both clusters' peerings, wait for the tunnel to go, re-apply them and time
# from the start of the last apply to the first ping reply (polled every 50 ms).
peering() { printf 'apiVersion: clusterwire.io/v1alpha1\nkind: ClusterPeering\nmetadata: {name: %s}\nspec: {remoteClusterID: %s}\n' "$1" "$1"; }
figures=()
for i in $(seq "$rounds"); do
  kc c1 delete clusterpeering c2 >/dev/null; kc c2 delete clusterpeering c1 >/dev/null
  for _ in $(seq 200); do ip netns exec "$name-c1-n1" wg show "$if1" peers | grep -q . || break; sleep 0.05; done
  peering c2 | kc c1 apply --validate=false -f - >/dev/null
  t0=$(now_ms)
  peering c1 | kc c2 apply --validate=false -f - >/dev/null
  for _ in $(seq 600); do ip netns exec "$name-c1-n1-pod" ping -n -q -c 1 -W 0.2 "$c2n1" >/dev/null 2>&1 && break; sleep 0.05; done
  figures+=($(( $(now_ms) - t0 )))
done
sorted=($(printf '%s\n' "${figures[@]}" | sort -n))
echo
echo "convergence, last ClusterPeering applied -> first cross-cluster ping reply ($rounds rounds; includes kubectl's own ~0.1 s):"
echo "  min ${sorted[0]} ms, median ${sorted[$(( rounds / 2 ))]} ms, max ${sorted[-1]} ms   (all: ${figures[*]}; at up: $at_up ms)"

# Throughput: iperf3 -t 5 from c1-n1's pod, to c2-n1's pod (WireGuard) and to c1-n2's pod (plain
# routes on the same underlay), alternating, twice each.
gbps() { /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.2f" % (d["end"]["sum_received"]["bits_per_second"]/1e9))'; }
run_iperf() {  # run_iperf SERVER_POD SERVER_IP
  ip netns exec "$name-$1-pod" iperf3 -s -1 >/dev/null 2>&1 &
  local server=$!
  sleep 0.3
  ip netns exec "$name-c1-n1-pod" iperf3 -c "$2" -t 5 -J 2>/dev/null | gbps
  wait "$server" 2>/dev/null
}
wg=() plain=()
for i in 1 2; do
  wg+=($(run_iperf c2-n1 "$c2n1"))
  plain+=($(run_iperf c1-n2 "$c1n2"))
done
echo
echo "pod-to-pod TCP throughput, iperf3 -t 5, c1-n1-pod as client:"
echo "  across clusters (wireguard-go): ${wg[*]} Gbit/s"
echo "  in-cluster plain routes (baseline, same run): ${plain[*]} Gbit/s"
rtt_wg=$(ip netns exec "$name-c1-n1-pod" ping -n -q -c 20 -i 0.05 "$c2n1" | sed -n 's/.*= [0-9.]*\/\([0-9.]*\)\/.*/\1/p')
rtt_plain=$(ip netns exec "$name-c1-n1-pod" ping -n -q -c 20 -i 0.05 "$c1n2" | sed -n 's/.*= [0-9.]*\/\([0-9.]*\)\/.*/\1/p')
echo "  rtt: across clusters ${rtt_wg} ms, plain ${rtt_plain} ms"
