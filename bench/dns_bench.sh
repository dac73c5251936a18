#!/usr/bin/env bash
# UDP query throughput and latency of the DNS server (cw-dns-testserver: the real transport
# and handler over a fixed zone) beside unbound answering the same A record from local-data,
# with the same dnsperf parameters and thread count, in the same run. Rounds alternate
# between the servers so that load from elsewhere on the machine hits both alike; the median
# round is reported.
#
# CPU per query (the server's user + system time from /proc over the queries it answered) is
# less at the mercy of the machine's other load than QPS, and shows the cost of each server.
#
# Latency: dnsperf 2.x prints only the mean, min, max and standard deviation. Percentiles come
# from separate, shorter `dnsperf -v` runs (one line per query with its latency), sorted here:
# once saturated (as the throughput runs; mostly queueing behind -q outstanding queries) and
# once at a fixed rate well below saturation (the server's own service time).
#
# Usage: bench/dns_bench.sh TESTSERVER_BINARY
# Environment: CW_DNS_BENCH_SECONDS (10), CW_DNS_BENCH_ROUNDS (3), CW_DNS_BENCH_THREADS
# (server threads for both; default nproc), CW_DNS_BENCH_CLIENTS (2), CW_DNS_BENCH_RATE (20000).
set -eu
server_bin=$1
secs=${CW_DNS_BENCH_SECONDS:-10}
rounds=${CW_DNS_BENCH_ROUNDS:-3}
threads=${CW_DNS_BENCH_THREADS:-$(nproc)}
clients=${CW_DNS_BENCH_CLIENTS:-2}
rate=${CW_DNS_BENCH_RATE:-20000}
for tool in dnsperf unbound unbound-checkconf dig python3; do
  if ! command -v "$tool" >/dev/null; then
    echo "SKIP: $tool is not installed (scripts/deps.sh installs it)"; exit 77
  fi
done

tmp=$(mktemp -d /tmp/cw-dnsbench-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT

name=web.default.svc.clusterset.local
echo "$name A" >"$tmp/queries"
perf_args=(-s 127.0.0.1 -d "$tmp/queries" -c "$clients" -T 1)

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_answering() {  # PORT: until the server answers the benchmark's name
  for _ in $(seq 100); do
    dig @127.0.0.1 -p "$1" +time=1 +tries=1 +short "$name" 2>/dev/null | grep -q 10.96.0.10 &&
      return 0
    sleep 0.05
  done
  echo "server on port $1 did not answer"; exit 1
}

# Our server in each way of spreading UDP over its threads (--udp-sockets): random (the
# default: SO_REUSEPORT sockets, a BPF program picks one per datagram), hash (SO_REUSEPORT by
# client address) and shared (one socket).
modes=(random hash shared)
declare -A port server_pid
for m in "${modes[@]}"; do
  "$server_bin" --threads "$threads" --udp-sockets "$m" --ready-file "$tmp/$m.ready" \
    >"$tmp/$m.log" 2>&1 &
  pids+=($!)
  server_pid[$m]=$!
  for _ in $(seq 100); do [ -s "$tmp/$m.ready" ] && break; sleep 0.05; done
  port[$m]=$(cat "$tmp/$m.ready")
done

unbound_port=$(free_port)
cat >"$tmp/unbound.conf" <<EOF
server:
  interface: 127.0.0.1@$unbound_port
  do-daemonize: no
  chroot: ""
  username: ""
  directory: "$tmp"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 0
  do-ip6: no
  num-threads: $threads
  so-reuseport: yes
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  local-zone: "clusterset.local." static
  local-data: "$name. 5 IN A 10.96.0.10"
remote-control:
  control-enable: no
EOF
unbound-checkconf "$tmp/unbound.conf" >/dev/null
unbound -d -c "$tmp/unbound.conf" >"$tmp/unbound.log" 2>&1 &
pids+=($!)
server_pid[unbound]=$!
port[unbound]=$unbound_port
for m in "${modes[@]}" unbound; do wait_answering "${port[$m]}"; done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # user + system, all threads
# MODE: one throughput run; prints "QPS CPU-microseconds-per-query" (the server's own CPU
# time, user and kernel, over the queries answered); fails unless every answer was NOERROR.
qps() {
  local out before after
  before=$(cpu_ticks "${server_pid[$1]}")
  out=$(dnsperf "${perf_args[@]}" -p "${port[$1]}" -l "$secs" 2>&1)
  after=$(cpu_ticks "${server_pid[$1]}")
  if ! grep -qE 'Response codes: +NOERROR [0-9]+ \(100\.00%\)' <<<"$out"; then
    echo "dnsperf against $1 did not get all NOERROR:" >&2; echo "$out" >&2; exit 1
  fi
  awk -v ticks=$((after - before)) -v hz="$(getconf CLK_TCK)" '
    /Queries completed/ {n = $3} /Queries per second/ {q = $4}
    END {printf "%.0f %.2f", q, ticks / hz * 1e6 / n}' <<<"$out"
}
median() { tr ' ' '\n' | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
percentiles() {  # PORT [RATE]: p50 p99 p99.9 in microseconds from a 3-second dnsperf -v run
  local limit=()
  [ $# -gt 1 ] && limit=(-Q "$2")
  dnsperf "${perf_args[@]}" -p "$1" -l 3 -v "${limit[@]}" 2>/dev/null |
    awk '/^> NOERROR/ {print $NF * 1e6}' | sort -n |
    awk '{v[NR]=$1} END {if (NR == 0) {print "- - -"; exit}
         printf "%.0f %.0f %.0f", v[int(NR*0.50)+1], v[int(NR*0.99)], v[int(NR*0.999)]}'
}

# Rounds alternate between the servers, so that whatever else loads the machine meets each.
declare -A runs cpu median_qps median_cpu lat_sat lat_rate
for r in $(seq "$rounds"); do
  for m in "${modes[@]}" unbound; do
    read -r q c <<<"$(qps "$m")"
    runs[$m]+=" $q"
    cpu[$m]+=" $c"
  done
done
for m in "${modes[@]}" unbound; do
  runs[$m]=${runs[$m]# }
  median_qps[$m]=$(median <<<"${runs[$m]}")
  median_cpu[$m]=$(median <<<"${cpu[$m]# }")
  lat_sat[$m]=$(percentiles "${port[$m]}" | sed 's| | / |g')
  lat_rate[$m]=$(percentiles "${port[$m]}" "$rate" | sed 's| | / |g')
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
label() {
  case $1 in
    random) echo "cw-dns-testserver --udp-sockets random" ;;
    hash) echo "cw-dns-testserver --udp-sockets hash" ;;
    shared) echo "cw-dns-testserver --udp-sockets shared" ;;
    unbound) echo "unbound $(unbound -V | awk 'NR==1 {print $2}') local-data" ;;
  esac
}
echo "DNS over UDP, one A record: $threads server threads each, $(nproc) CPUs shared with" \
  "dnsperf; median of $rounds rounds"
echo "  dnsperf ${perf_args[*]} -p PORT -l $secs"
printf '  %-40s %9s %8s %8s   %s\n' "" "QPS" "vs unb." "CPU/q" "rounds (QPS)"
for m in "${modes[@]}" unbound; do
  printf '  %-40s %9s %7sx %6sus   %s\n' "$(label "$m")" "${median_qps[$m]}" \
    "$(ratio "${median_qps[$m]}" "${median_qps[unbound]}")" "${median_cpu[$m]}" "${runs[$m]}"
done
echo "  (CPU/q: the server's own CPU time, user + kernel, per query answered; the kernel's part" \
  "includes delivering each response into dnsperf's socket over loopback)"
echo "Latency in microseconds, p50 / p99 / p99.9 (dnsperf -v, 3 s each)"
printf '  %-40s %20s %20s\n' "" "saturated" "at $rate QPS"
for m in "${modes[@]}" unbound; do
  printf '  %-40s %20s %20s\n' "$(label "$m")" "${lat_sat[$m]}" "${lat_rate[$m]}"
done
