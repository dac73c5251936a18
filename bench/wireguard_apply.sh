#!/usr/bin/env bash
# Applying 1,000 WireGuard peers (two allowed IPs each) and then changing one, with the
# userspace backend (wireguard-go through its UAPI socket), beside `wg setconf` of the same
# configuration in the same run. Runs in a private network namespace it removes afterwards.
# (The kernel backend's figures come from the VM: tests/kernel/, see docs/node-agent.md.)
# Usage: bench/wireguard_apply.sh BENCH_BINARY [PEERS]
set -eu
bench=$1 peers=${2:-1000}
[ "$(id -u)" -eq 0 ] || { echo "needs root (a network namespace)"; exit 2; }
ns="cwbench-$$" ifname="cwb$$"
ifname=${ifname:0:15}
tmp=$(mktemp -d)
wgpid=""
cleanup() { [ -n "$wgpid" ] && kill "$wgpid" 2>/dev/null && wait "$wgpid" 2>/dev/null; ip netns del "$ns" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
start_wg() {
  WG_PROCESS_FOREGROUND=1 ip netns exec "$ns" wireguard-go -f "$ifname" >/dev/null 2>&1 &
  wgpid=$!
  for _ in $(seq 100); do [ -S "/var/run/wireguard/$ifname.sock" ] && return 0; sleep 0.05; done
  echo "wireguard-go did not start"; exit 1
}
stop_wg() { kill "$wgpid"; wait "$wgpid" 2>/dev/null || true; wgpid=""; }
ms() { date +%s%N; }

start_wg
ours=$(ip netns exec "$ns" "$bench" --backend uapi --interface "$ifname" --setconf-out "$tmp/conf" --peers "$peers")
stop_wg

# Baseline: wg setconf of the same configuration on a fresh device, then of the changed one.
start_wg
t0=$(ms); ip netns exec "$ns" wg setconf "$ifname" "$tmp/conf.full"; t1=$(ms)
ip netns exec "$ns" wg setconf "$ifname" "$tmp/conf.changed"; t2=$(ms)
stop_wg
setconf_full_ms=$(( (t1 - t0) / 1000000 )); setconf_change_ms=$(( (t2 - t1) / 1000000 ))
# What wg setconf sends: the whole configuration both times (replace_peers), about the size of
# our full request; its UAPI text is our measure of it.
full_bytes=$(sed 's/.*full_bytes=\([0-9]*\).*/\1/' <<<"$ours")

get() { sed "s/.* $1=\([0-9.]*\).*/\1/" <<<" $ours"; }
echo "WireGuard apply: $peers peers x 2 allowed IPs, userspace (wireguard-go UAPI)"
printf '  %-28s %12s %12s %10s\n' "" "clusterwire" "wg setconf" "ratio"
printf '  %-28s %10sms %10sms %9.2fx\n' "apply the whole device" "$(get full_ms)" "$setconf_full_ms" \
  "$(echo "$(get full_ms) / ($setconf_full_ms + 0.001)" | bc -l)"
printf '  %-28s %10sms %10sms %9.2fx   (ours: read back + diff + write)\n' "change one peer" \
  "$(echo "$(get read_ms) + $(get change_ms)" | bc -l | xargs printf '%.2f')" "$setconf_change_ms" \
  "$(echo "($(get read_ms) + $(get change_ms)) / ($setconf_change_ms + 0.001)" | bc -l)"
printf '  %-28s %12s %12s\n' "bytes sent, whole device" "$full_bytes" "~$full_bytes"
printf '  %-28s %12s %12s   (wg setconf resends everything)\n' "bytes sent, one change" "$(get change_bytes)" "~$full_bytes"
grep -q 'verified=yes' <<<"$ours" && echo "  read back: the device holds exactly the desired peers" || { echo "  VERIFY FAILED"; exit 1; }
