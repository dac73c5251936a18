#!/usr/bin/env bash
# Runs a test binary inside a QEMU VM booted on Debian's cloud kernel, for tests that need a
# kernel feature the build machine lacks (its kernel has no WireGuard module). The recipe is
# ../shared/NOTES.md's "Kernel WireGuard through netlink, inside a VM".
#
#   tests/kernel/run_in_vm.sh TEST_BINARY [ARGS...]
#
# 1. resolves the kernel image package behind the linux-image-cloud-amd64 metapackage and
#    `apt-get download`s it into a cache (never installed into /); unpacks it with dpkg-deb;
#    writes modules.dep with `busybox depmod` (the package has none);
# 2. builds an initramfs: busybox-static and its applet links, /usr/sbin/ip and wg with the
#    libraries ldd names, the test binary (stripped) with its libraries, the wireguard
#    module and its dependencies in modules.dep order, a tiny static helper that writes to
#    QEMU's isa-debug-exit port, and an /init that loads the modules, runs the test with
#    CW_KERNEL_TEST_REQUIRED=1 and reports "CW-VM-RESULT exit=<code>";
# 3. boots it with TCG (no KVM needed) under `timeout` and maps the result.
#
# Exit status: 0 the test passed, 1 it failed (or the VM never reported), 2 usage, 77 skipped
# with the reason printed (no QEMU, no static busybox, no C compiler with a static libc, or
# the kernel package cannot be resolved or downloaded).
#
# Environment:
#   CW_VM_DIR             work directory: cache/ keeps the .deb, kernel/ its unpacked tree,
#                         the initramfs and console.log are rebuilt each run
#                         (default ${TMPDIR:-/tmp}/clusterwire-kernel-vm)
#   CW_VM_KERNEL_PACKAGE  a kernel image package to use instead of the metapackage's
#   CW_VM_TIMEOUT         seconds before the VM is killed (default 240)
#   GTEST_*               passed on to the test inside the VM
set -euo pipefail

skip() {
  echo "run_in_vm: SKIPPED: $*" >&2
  exit 77
}
fail() {
  echo "run_in_vm: FAILED: $*" >&2
  exit 1
}

if [ $# -lt 1 ]; then
  echo "usage: $0 TEST_BINARY [ARGS...]" >&2
  exit 2
fi
test_binary=$(readlink -f "$1")
shift
if [ ! -f "$test_binary" ] || [ ! -x "$test_binary" ]; then
  echo "run_in_vm: $test_binary is not an executable" >&2
  exit 2
fi

work=${CW_VM_DIR:-${TMPDIR:-/tmp}/clusterwire-kernel-vm}
timeout_s=${CW_VM_TIMEOUT:-240}
mkdir -p "$work/cache" "$work/kernel" "$work/tools"
work=$(readlink -f "$work")
# One run at a time per work directory: they share the initramfs and the console log.
if command -v flock >/dev/null; then
  exec 9>"$work/.lock"
  flock 9
fi

# ---- What the host must have ----
qemu=$(command -v qemu-system-x86_64) ||
  skip "qemu-system-x86_64 not found (Debian: qemu-system-x86)"
"$qemu" -accel help 2>/dev/null | grep -qx tcg || skip "$qemu has no TCG accelerator"
busybox=$(command -v busybox) || skip "busybox not found (Debian: busybox-static)"
if ldd "$busybox" >/dev/null 2>&1; then
  skip "$busybox is dynamically linked; the initramfs needs busybox-static"
fi
# Output captured first: with pipefail, `busybox ... | grep -q` fails at random when grep exits
# before busybox has written everything (SIGPIPE), which skipped this test now and then.
cpio_help=$("$busybox" cpio --help 2>&1 || true)
applets=$("$busybox" --list)
grep -q -- '-o' <<<"$cpio_help" || skip "$busybox cpio cannot create archives"
grep -qx depmod <<<"$applets" || skip "$busybox has no depmod applet"
cc=$(command -v cc || command -v gcc) || skip "no C compiler (cc) for the exit-port helper"
command -v dpkg-deb >/dev/null || skip "dpkg-deb not found"
wg=$(command -v wg) || skip "wg not found (Debian: wireguard-tools)"
ip=""
for candidate in /usr/sbin/ip /sbin/ip /usr/bin/ip; do
  if [ -x "$candidate" ]; then ip=$candidate; break; fi
done

# ---- The kernel ----
kernel_package=${CW_VM_KERNEL_PACKAGE:-}
if [ -z "$kernel_package" ]; then
  kernel_package=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }') || true
fi
deb=""
if [ -n "$kernel_package" ]; then
  deb=$(ls -t "$work/cache/${kernel_package}"_*.deb 2>/dev/null | head -n 1) || true
  if [ -z "$deb" ]; then
    echo "run_in_vm: downloading $kernel_package into $work/cache" >&2
    # apt-get download as root warns that it cannot drop to _apt in this directory; harmless.
    # A mirror or lock hiccup is not a reason to skip: three tries, a little apart.
    for attempt in 1 2 3; do
      (cd "$work/cache" && apt-get download -q "$kernel_package" 2>&1 |
        grep -v '^W: Download is performed unsandboxed' >&2) || true
      deb=$(ls -t "$work/cache/${kernel_package}"_*.deb 2>/dev/null | head -n 1) || true
      [ -n "$deb" ] && break
      sleep $((attempt * 3))
    done
    [ -n "$deb" ] ||
      skip "cannot download $kernel_package (apt-get download failed; package lists current?)"
  fi
else
  # No package lists (apt-get update never ran): a kernel downloaded before still serves.
  deb=$(ls -t "$work"/cache/linux-image-*-cloud-amd64_*.deb 2>/dev/null | head -n 1) || true
  [ -n "$deb" ] ||
    skip "cannot resolve linux-image-cloud-amd64 to a kernel package (run apt-get update?)"
fi

tree="$work/kernel/$(basename "$deb" .deb)"
if [ ! -f "$tree/.unpacked" ]; then
  rm -rf "$tree"
  mkdir -p "$tree"
  dpkg-deb -x "$deb" "$tree"
  touch "$tree/.unpacked"
fi
moddir=$(ls -d "$tree"/lib/modules/* "$tree"/usr/lib/modules/* 2>/dev/null | head -n 1) || true
[ -n "$moddir" ] || fail "$deb holds no lib/modules/<version>"
kver=$(basename "$moddir")
vmlinuz="$tree/boot/vmlinuz-$kver"
[ -f "$vmlinuz" ] || fail "$deb holds no boot/vmlinuz-$kver"

if [ ! -f "$moddir/modules.dep" ]; then
  # busybox depmod reads plain .ko files only: unpack compressed modules (newer kernels) once.
  if [ -n "$(find "$moddir" -name '*.ko.*' -print -quit)" ]; then
    find "$moddir" -name '*.ko.xz' -exec xz -d {} + ||
      skip "cannot decompress .ko.xz modules (xz-utils)"
    find "$moddir" -name '*.ko.zst' -exec zstd -q --rm -d {} + ||
      skip "cannot decompress .ko.zst modules (zstd)"
    find "$moddir" -name '*.ko.gz' -exec gzip -d {} + || skip "cannot decompress .ko.gz modules"
  fi
  "$busybox" depmod -b "${moddir%/lib/modules/*}" "$kver"
fi

# The wireguard module and its dependencies, each after what it needs (a depth-first walk of
# modules.dep, so nothing about this kernel's crypto modules is hard-coded).
declare -A deps_of=()
while IFS= read -r line; do
  deps_of[${line%%:*}]=${line#*:}
done <"$moddir/modules.dep"
target=""
for m in "${!deps_of[@]}"; do
  case $m in */wireguard.ko | */wireguard.ko.*) target=$m ;; esac
done
[ -n "$target" ] || skip "$kernel_package has no wireguard module (CONFIG_WIREGUARD is not m)"
declare -A visited=()
load_order=()
visit() {
  local module=$1 dep
  [ -z "${visited[$module]:-}" ] || return 0
  visited[$module]=1
  for dep in ${deps_of[$module]:-}; do visit "$dep"; done
  load_order+=("$module")
}
visit "$target"

# ---- The exit-port helper (built once) ----
exit_helper="$work/tools/cw-vm-exit"
if [ ! -x "$exit_helper" ]; then
  cat >"$work/tools/cw-vm-exit.c" <<'EOF'
/* Writes argv[1] to QEMU's isa-debug-exit port: QEMU exits with (value << 1) | 1. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/io.h>
int main(int argc, char **argv) {
  if (argc != 2 || ioperm(0xf4, 4, 1) != 0) { perror("cw-vm-exit"); return 1; }
  outb((unsigned char)atoi(argv[1]), 0xf4);
  return 0;
}
EOF
  "$cc" -static -O2 -o "$exit_helper.tmp" "$work/tools/cw-vm-exit.c" 2>"$work/tools/cc.log" ||
    skip "cannot build a static binary with $cc (libc6-dev's libc.a?):" \
      "$(tail -n 3 "$work/tools/cc.log")"
  mv "$exit_helper.tmp" "$exit_helper"
fi

# ---- The initramfs ----
root="$work/initramfs"
rm -rf "$root"
mkdir -p "$root"/{bin,dev,proc,sys,run,tmp,etc,root} "$root/lib/modules/$kver"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
cp "$exit_helper" "$root/bin/cw-vm-exit"

# Copies an ELF file to `dest` in the image with every library ldd finds for it, each at the
# path ldd names (a static file has none).
copy_with_libraries() {
  local src=$1 dest=$2 lib
  mkdir -p "$root$(dirname "$dest")"
  if command -v strip >/dev/null; then
    strip --strip-unneeded -o "$root$dest" "$src" 2>/dev/null || cp "$src" "$root$dest"
  else
    cp "$src" "$root$dest"
  fi
  chmod 0755 "$root$dest"
  for lib in $(ldd "$src" 2>/dev/null |
    awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
    if [ ! -e "$root$lib" ]; then
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
    fi
  done
}
[ -z "$ip" ] || copy_with_libraries "$ip" "$ip"
copy_with_libraries "$wg" "$wg"
copy_with_libraries "$test_binary" /test/"$(basename "$test_binary")"

module_names=()
for m in "${load_order[@]}"; do
  src="$moddir/$m"
  name=$(basename "$m")
  case $name in
    *.ko.xz) name=${name%.xz}; xz -dc "$src" >"$root/lib/modules/$kver/$name" ;;
    *.ko.zst) name=${name%.zst}; zstd -qdc "$src" >"$root/lib/modules/$kver/$name" ;;
    *.ko.gz) name=${name%.gz}; gzip -dc "$src" >"$root/lib/modules/$kver/$name" ;;
    *) cp "$src" "$root/lib/modules/$kver/$name" ;;
  esac
  module_names+=("$name")
done

quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
test_command="/test/$(quote "$(basename "$test_binary")")"
for arg in "$@"; do test_command+=" $(quote "$arg")"; done
test_env="CW_KERNEL_TEST_REQUIRED=1 GTEST_COLOR=no"
while IFS='=' read -r name value; do
  [ -n "$name" ] && test_env+=" $name=$(quote "$value")"
done < <(env | grep -E '^GTEST_[A-Z_]+=' | grep -v '^GTEST_COLOR=' || true)

{
  cat <<'EOF'
#!/bin/sh
# PID 1 of the test VM, written by tests/kernel/run_in_vm.sh.
export PATH=/bin:/usr/sbin:/usr/bin:/sbin HOME=/root
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run; mount -t tmpfs tmpfs /tmp
# The marker is what the harness trusts; the port write makes QEMU exit at once.
finish() {
  echo "CW-VM-RESULT exit=$1"
  /bin/cw-vm-exit "$1"
  poweroff -f
}
EOF
  for name in "${module_names[@]}"; do
    echo "insmod /lib/modules/$kver/$name || { echo 'run_in_vm: insmod $name failed'; finish 125; }"
  done
  echo 'ip link set lo up'
  echo 'cd /tmp'
  echo "echo 'run_in_vm: kernel $kver up, running the test'"
  echo "env $test_env $test_command"
  echo 'finish $?'
} >"$root/init"
chmod 0755 "$root/init"

initrd="$work/initramfs.cpio.gz"
(cd "$root" && find . | LC_ALL=C sort | "$busybox" cpio -o -H newc 2>/dev/null) | gzip -1 >"$initrd"
echo "run_in_vm: kernel $kver, initramfs $(du -k "$initrd" | cut -f1) KiB" \
  "($(du -sk "$root" | cut -f1) KiB unpacked), modules: ${module_names[*]}" >&2

# ---- Boot ----
log="$work/console.log"
started=$(date +%s.%N)
set +e
timeout "$timeout_s" "$qemu" -accel tcg -cpu max -m 512 -smp 1 -nographic -no-reboot -nic none \
  -kernel "$vmlinuz" -initrd "$initrd" -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
  -append 'console=ttyS0 panic=-1 quiet loglevel=3' </dev/null 2>&1 | tr -d '\r' | tee "$log"
status=${PIPESTATUS[0]}
set -e
elapsed=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

[ "$status" -ne 124 ] ||
  fail "the VM did not finish within ${timeout_s} s (CW_VM_TIMEOUT); console: $log"
code=$(grep -a -o 'CW-VM-RESULT exit=[0-9]*' "$log" | tail -n 1 | sed 's/.*=//') || true
if [ -z "$code" ]; then
  # QEMU's own errors also exit 1, the status a passing test's port write gives: only the
  # marker line counts as a report.
  fail "the VM ended without reporting a result (QEMU exit $status after ${elapsed} s): a panic," \
    "or QEMU could not start; console: $log"
fi
expected_status=$(((code << 1 | 1) & 255))
if [ "$expected_status" -ne "$status" ]; then
  echo "run_in_vm: note: QEMU exited $status, not $expected_status as writing $code to the port" \
    "gives" >&2
fi
if [ "$code" -eq 0 ]; then
  echo "run_in_vm: PASSED in ${elapsed} s ($(basename "$test_binary") exited 0 inside the VM)" >&2
  exit 0
fi
[ "$code" -ne 125 ] || fail "a kernel module did not load; console: $log"
fail "$(basename "$test_binary") exited $code inside the VM (${elapsed} s); console: $log"
