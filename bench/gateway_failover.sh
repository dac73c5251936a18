#!/usr/bin/env bash
# Gateway failover and throughput in the lab's nat world (root; docs/gateway.md):
#   1. ROUNDS failovers: c1's active gateway killed (agent SIGKILLed, device deleted, traffic
#      dropped) during a ping every 50 ms from a member of c1 to a member of c2; the figure is
#      the largest gap between ping replies, min/median/max;
#   2. the baseline in the same run: LEASE_ROUNDS failovers of a lab whose agents run with the
#      health trigger off (--gateway-lease-only): the Lease's expiry alone, as Submariner and
#      Liqo elect;
#   3. iperf3 -t 5 from a member of c1 to a member of c2 (member -> gateway -> gateway ->
#      member, two WireGuard hops inside the clusters and one between them) beside the same pods
#      of a flat-world mesh lab (one WireGuard hop), in the same run.
# Usage: bench/gateway_failover.sh [BUILD_DIR] [ROUNDS] [LEASE_ROUNDS]   (default build/, 10, 3)
set -u -o pipefail
build=${1:-build} rounds=${2:-10} lease_rounds=${3:-3}
cwctl=$build/cli/cwctl
[ "$(id -u)" -eq 0 ] || { echo "gateway_failover: needs root (network namespaces)"; exit 1; }
command -v iperf3 >/dev/null || { echo "gateway_failover: iperf3 is missing (scripts/deps.sh)"; exit 1; }
[ -x "$cwctl" ] || { echo "gateway_failover: $cwctl is not built"; exit 1; }
name="cwg$$"
tmp=$(mktemp -d)
t() { local s=$1; shift; timeout -k 5 "$s" "$@"; }
trap 't 60 "$cwctl" lab --name "$name" down >/dev/null 2>&1; rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
lab() { local s=$1; shift; t "$s" "$cwctl" lab --name "$name" "$@"; }
field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); [d:=d[k] for k in sys.argv[2:]]; print(d)' "/run/clusterwire-lab/$name/state.json" "$@"; }
up() {
  lab 150 up "$@" >"$tmp/up.log" 2>&1 || { cat "$tmp/up.log"; exit 1; }
}

# One failover: the largest gap (ms) between replies of a 50 ms ping across it, or "lost"
# when traffic did not come back within the window.
failover() {
  local window=$1 to; to=$(field podIPs c2-n3)
  t $((window + 10)) ip netns exec "$name-c1-n3-pod" ping -D -i 0.05 -W 0.2 -w "$window" "$to" >"$tmp/ping" 2>&1 &
  local p=$!
  sleep 2
  lab 30 impair kill-gateway c1 >/dev/null 2>&1 || echo "kill-gateway failed" >&2
  wait $p
  python3 - "$tmp/ping" "$window" <<'PY'
import re, sys
ts = [float(m.group(1)) for m in (re.search(r'^\[(\d+\.\d+)\].*bytes from', l) for l in open(sys.argv[1])) if m]
gaps = [b - a for a, b in zip(ts, ts[1:])]
# Traffic must be back well before the window closes (the last reply late in the window).
print(int(max(gaps) * 1000) if gaps and ts[-1] - ts[0] > float(sys.argv[2]) - 3 else "lost")
PY
  lab 60 impair --clear kill-gateway >/dev/null 2>&1
  sleep 3  # the revived candidate hears and is heard again
}

stats() { python3 -c '
import statistics, sys
v = [int(x) for x in sys.argv[1:] if x != "lost"]
lost = sum(1 for x in sys.argv[1:] if x == "lost")
print(f"min {min(v)} ms, median {int(statistics.median(v))} ms, max {max(v)} ms over {len(v)} failovers" + (f", {lost} never recovered" if lost else "") if v else "no failover recovered")' "$@"; }

iperf() {  # iperf3 -t 5 from c1-n3-pod to c2-n3-pod, Gbit/s
  local to; to=$(field podIPs c2-n3)
  t 20 ip netns exec "$name-c2-n3-pod" iperf3 -s -1 >/dev/null 2>&1 &
  sleep 0.5
  t 15 ip netns exec "$name-c1-n3-pod" iperf3 -c "$to" -t 5 -J 2>/dev/null |
    python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))' 2>/dev/null ||
    echo failed
  wait
}

echo "gateway_failover: nat world, 2 clusters x 3 nodes, 2 gateway candidates each (health trigger on) ..."
up --world nat --nodes 3
backend=$(field backend)
gw_iperf=$(iperf)
health=()
for i in $(seq 1 "$rounds"); do health+=("$(failover 8)"); echo "  failover $i: ${health[-1]} ms"; done
lab 60 down >/dev/null 2>&1

echo "gateway_failover: the same with --gateway-lease-only (failover on the Lease's 10 s expiry) ..."
up --world nat --nodes 3 --gateway-lease-only
lease=()
for i in $(seq 1 "$lease_rounds"); do lease+=("$(failover 20)"); echo "  failover $i: ${lease[-1]} ms"; done
lab 60 down >/dev/null 2>&1

echo "gateway_failover: a flat-world mesh lab (2 x 3) for the throughput baseline ..."
up --nodes 3
mesh_iperf=$(iperf)

echo
echo "gateway failover ($backend WireGuard backend; largest gap between replies of a 50 ms ping, member of c1 -> member of c2):"
echo "  health trigger (heartbeats 100 ms, dead after 400 ms):   $(stats "${health[@]}")"
echo "  Lease only (10 s Lease, renewed every 2 s), baseline:    $(stats "${lease[@]}")"
echo "  anchors: Submariner ~2 s best, minutes worst (15 s Lease); Liqo 15 s Lease; Kilo none (5-15 min, kilo#489)"
echo "pod-to-pod TCP, iperf3 -t 5, member of c1 -> member of c2:"
echo "  through gateways (nat world):  ${gw_iperf} Gbit/s"
echo "  mesh (flat world), baseline:   ${mesh_iperf} Gbit/s"
