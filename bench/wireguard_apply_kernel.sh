#!/usr/bin/env bash
# The kernel backend's half of the WireGuard apply benchmark: 1,000 peers x 2 allowed IPs
# applied, then one peer changed, through generic netlink, beside `wg setconf` of the same
# configuration on a fresh device in the same run, inside the QEMU VM of tests/kernel/
# (this machine's kernel has no WireGuard). Emulated (TCG): absolute times are slower than
# on hardware; the ratios are what to read.
# Usage: bench/wireguard_apply_kernel.sh BENCH_BINARY [PEERS]
set -eu
bench=$1 peers=${2:-1000}
here=$(cd "$(dirname "$0")" && pwd)
out=$(CW_VM_TIMEOUT=300 bash "$here/../tests/kernel/run_in_vm.sh" "$bench" --backend kernel --interface wgbench \
      --setconf-out /tmp/conf --peers "$peers" --own-device yes 2>&1) || { echo "$out" | tail -20; exit 1; }
line=$(grep -o 'backend=kernel.*' <<<"$out" | head -1)
base=$(grep -o 'setconf_full_ms=.*' <<<"$out" | head -1)
get() { sed "s/.* $1=\([0-9.-]*\).*/\1/" <<<" $line $base"; }
echo "WireGuard apply: $peers peers x 2 allowed IPs, kernel (generic netlink), in a TCG VM"
printf '  %-28s %12s %12s %10s\n' "" "clusterwire" "wg setconf" "ratio"
printf '  %-28s %10sms %10sms %9.2fx\n' "apply the whole device" "$(get full_ms)" "$(get setconf_full_ms)" \
  "$(echo "$(get full_ms) / $(get setconf_full_ms)" | bc -l)"
change=$(echo "$(get read_ms) + $(get change_ms)" | bc -l)
printf '  %-28s %10.2fms %10sms %9.2fx   (ours: read back + diff + write)\n' "change one peer" "$change" \
  "$(get setconf_change_ms)" "$(echo "$change / $(get setconf_change_ms)" | bc -l)"
printf '  %-28s %12s\n' "netlink bytes, whole device" "$(get full_bytes)"
printf '  %-28s %12s   (wg setconf resends the whole device)\n' "netlink bytes, one change" "$(get change_bytes)"
grep -q 'verified=yes' <<<"$line" && echo "  read back: the device holds exactly the desired peers" || { echo "  VERIFY FAILED"; exit 1; }
