# Shared by the lab's end-to-end scripts (lab_test.sh, gateway_test.sh, policy_test.sh); sourced after they set
# `build` (the build directory). Checks what they need (skips with exit 77), then gives:
#   t SECONDS CMD...   every external command under a deadline, cut to what is left of the
#                      budget (budget_seconds, default 600)
#   ok / bad           count and print results
#   wait_until 'CMD' SECONDS
#   lab / kc / pod     cwctl lab, kubectl against a cluster, a command in a pod's namespace
# and removes labs cwt<pid> left by earlier runs whose script is dead, names this run's lab
# cwt<pid of the script> ($name, state in $state), and removes it on exit, even on failure.
cwctl=$build/cli/cwctl
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (network namespaces)"; exit 77; }
for tool in ip wg kubectl ping socat unbound dig tcpdump timeout unshare python3 bird nft iptables-legacy etcd; do
  command -v $tool >/dev/null || { echo "SKIP: $tool is not installed (scripts/deps.sh installs it)"; exit 77; }
done
for plugin in bridge host-local loopback; do
  [ -x /usr/lib/cni/$plugin ] || { echo "SKIP: /usr/lib/cni/$plugin missing (containernetworking-plugins; scripts/deps.sh)"; exit 77; }
done
# The lab applies the RBAC the chart renders (helm template): the pinned helm must be there.
"$(dirname "${BASH_SOURCE[0]}")/../../scripts/helm.sh" --install-only \
  || { echo "SKIP: helm is not installed and cannot be (scripts/helm.sh says why)"; exit 77; }
# Kernel WireGuard? Probed in a network namespace of its own (unshare -n), gone when ip exits:
# the test never adds a link to the root namespace.
if ! timeout 10 unshare -n ip link add cwprobe type wireguard 2>/dev/null; then
  command -v wireguard-go >/dev/null || { echo "SKIP: no kernel WireGuard and no wireguard-go (scripts/deps.sh)"; exit 77; }
fi
for b in cli/cwctl lab/cw-lab-apiserver operator/cw-operator node-agent/cw-node-agent; do
  [ -x "$build/$b" ] || { echo "FAIL: $build/$b is not built"; exit 1; }
done

budget_end=$((SECONDS + ${budget_seconds:-600}))
t() {
  local s=$1 left=$((budget_end - SECONDS)); shift
  [ "$left" -lt 1 ] && left=1
  [ "$s" -gt "$left" ] && s=$left
  timeout -k 5 "$s" "$@"
}

# Leftovers of earlier runs: a lab cwt<pid> whose creating script no longer runs.
for old in $( { ip netns list 2>/dev/null | sed -n 's/^\(cwt[0-9][0-9]*\)-.*/\1/p'
                ls /run/clusterwire-lab 2>/dev/null | grep -x 'cwt[0-9][0-9]*'; } | sort -u); do
  creator=${old#cwt}
  if kill -0 "$creator" 2>/dev/null && grep -qaE '(lab|gateway|policy)_test.sh' "/proc/$creator/cmdline" 2>/dev/null; then
    continue  # its test is still running
  fi
  echo "removing lab $old left by an earlier run (pid $creator is gone)"
  t 60 "$cwctl" lab --name "$old" down || echo "warning: could not remove lab $old"
done

name="cwt$$"
state=/run/clusterwire-lab/$name
tmp=$(mktemp -d)
started=$(date +%s)
passed=0 failed=0
ok()  { echo "ok   $1"; passed=$((passed+1)); }
bad() { echo "FAIL $1"; shift; [ $# -gt 0 ] && printf '%s\n' "$@" | sed 's/^/  | /'; failed=$((failed+1)); }
# wait_until 'CMD' SECONDS: polls CMD (which must carry its own timeouts) until it succeeds.
wait_until() { local end=$((SECONDS + $2)); [ $end -gt $budget_end ] && end=$budget_end; while [ $SECONDS -lt $end ]; do eval "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
lab() { local s=$1; shift; t "$s" "$cwctl" lab --name "$name" "$@"; }
kc() { local c=$1; shift; t 15 ip netns exec "$name-underlay" kubectl --kubeconfig "$state/$c.kubeconfig" --request-timeout=10s "$@"; }
pod() { t 15 ip netns exec "$name-$1-pod" "${@:2}"; }
pod_ip() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["podIPs"][sys.argv[2]])' "$state/state.json" "$1"; }
coproc_pid=""
background_pids=()
cleanup() {
  [ -n "$coproc_pid" ] && kill "$coproc_pid" 2>/dev/null
  for p in "${background_pids[@]}"; do kill "$p" 2>/dev/null; done
  if [ "$failed" -gt 0 ] && [ -d "$state/logs" ]; then
    for f in "$state"/logs/*.log; do echo "--- $(basename "$f") (last lines)"; tail -5 "$f"; done
  fi
  timeout -k 5 60 "$cwctl" lab --name "$name" down >/dev/null 2>&1 || echo "warning: cwctl lab --name $name down failed"
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
