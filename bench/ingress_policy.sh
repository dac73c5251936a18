#!/usr/bin/env bash
# ClusterSet ingress policy's cost (root; docs/policy.md):
#   1. apply time: bench/ingress_apply_bench.cc, 10,000 pods and 100 policies on one node, from
#      an API write to the rules in force, beside compiling alone and a whole-table rewrite;
#   2. packet cost: pod-to-pod TCP throughput across clusters (iperf3 -t 5, c2-n1's pod to
#      c1-n1's pod, through WireGuard) with c1's table under a policy (posture None for c2 and a
#      ClusterSetIngressPolicy admitting the iperf port), at posture All, and with no table at
#      all (deleted by hand on c1-n1: the baseline), in rounds that alternate the three.
# Every command has a timeout; the lab is removed on exit.
# Usage: bench/ingress_policy.sh [BUILD_DIR] [ROUNDS]   (default build/, 3 rounds)
set -u -o pipefail
build=${1:-build} rounds=${2:-3}
cwctl=$build/cli/cwctl
[ "$(id -u)" -eq 0 ] || { echo "ingress_policy: needs root (network namespaces)"; exit 1; }
command -v iperf3 >/dev/null || { echo "ingress_policy: iperf3 is missing (scripts/deps.sh)"; exit 1; }
for b in "$cwctl" "$build/bench/ingress_apply_bench"; do [ -x "$b" ] || { echo "ingress_policy: $b is not built"; exit 1; }; done
name="cwb$$"
state=/run/clusterwire-lab/$name
t() { local s=$1; shift; timeout -k 5 "$s" "$@"; }
trap 't 60 "$cwctl" lab --name "$name" down >/dev/null 2>&1; rm -f "/tmp/$name-up.log"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
kc() { local c=$1; shift; t 15 ip netns exec "$name-underlay" kubectl --kubeconfig "$state/$c.kubeconfig" --request-timeout=10s "$@"; }
field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); [d:=d[k] for k in sys.argv[2:]]; print(d)' "$state/state.json" "$@"; }

echo "== apply time (bench/ingress_apply_bench.cc)"
t 600 "$build/bench/ingress_apply_bench" || exit 1

echo
echo "== packet cost: lab up (2 clusters x 1 node, --cni bird) ..."
t 150 "$cwctl" lab --name "$name" up --nodes 1 >"/tmp/$name-up.log" 2>&1 || { cat "/tmp/$name-up.log"; exit 1; }
backend=$(field backend)
c1n1=$(field podIPs c1-n1)
table() { t 5 ip netns exec "$name-c1-n1" nft list table inet clusterwire_ingress 2>/dev/null; }
iperf() {  # iperf3 -t 5 from c2-n1-pod to c1-n1-pod, Gbit/s
  t 20 ip netns exec "$name-c1-n1-pod" iperf3 -s -1 >/dev/null 2>&1 &
  sleep 0.5
  t 15 ip netns exec "$name-c2-n1-pod" iperf3 -c "$c1n1" -t 5 -J 2>/dev/null |
    python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))' 2>/dev/null ||
    echo failed
  wait
}
wait_for() {  # wait_for GREP-PATTERN: until c1-n1's table matches (up to 10 s)
  for _ in $(seq 100); do table | grep -q "$1" && return 0; sleep 0.1; done
  echo "ingress_policy: c1-n1's table never matched '$1'"; exit 1
}
cat <<'YAML' | kc c1 apply -f - >/dev/null || exit 1
apiVersion: clusterwire.io/v1alpha1
kind: ClusterSetIngressPolicy
metadata: {name: iperf-from-c2, namespace: demo}
spec:
  podSelector: {}
  from:
  - clusters: [c2]
    ports: [{protocol: TCP, port: 5201}]
YAML
policy=() all=() off=()
for r in $(seq "$rounds"); do
  kc c1 patch clusterpeering c2 --type merge -p '{"spec":{"ingress":"None"}}' >/dev/null
  wait_for 'ingress None'
  policy+=("$(iperf)")
  t 5 ip netns exec "$name-c1-n1" nft delete table inet clusterwire_ingress
  table >/dev/null && { echo "ingress_policy: the table is still there"; exit 1; }
  off+=("$(iperf)")
  table >/dev/null && { echo "ingress_policy: the table came back during the baseline round"; exit 1; }
  kc c1 patch clusterpeering c2 --type merge -p '{"spec":{"ingress":null}}' >/dev/null
  wait_for 'ingress All'
  all+=("$(iperf)")
  echo "  round $r: policy ${policy[-1]}, All ${all[-1]}, no table ${off[-1]} Gbit/s"
done
median() { printf '%s\n' "$@" | grep -v failed | sort -n | awk '{v[NR]=$1} END {print NR ? v[int((NR+1)/2)] : "none"}'; }
drops=$(t 5 ip netns exec "$name-c1-n1" nft list chain inet clusterwire_ingress c_c2 2>/dev/null | grep -o 'packets [0-9]* bytes [0-9]* drop' | awk '{print $2}')
echo
echo "pod-to-pod TCP across clusters through ${backend/uapi/wireguard-go} (iperf3 -t 5, median of $rounds rounds, one run):"
echo "  posture None + a policy admitting the port   $(median "${policy[@]}") Gbit/s"
echo "  posture All                                  $(median "${all[@]}") Gbit/s"
echo "  baseline: no ingress table                   $(median "${off[@]}") Gbit/s"
echo "  (only a connection's first packet walks the chains: the table accepts established traffic first)"
