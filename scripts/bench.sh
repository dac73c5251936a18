#!/usr/bin/env bash
# Builds in Release (build-bench/) and runs the benchmarks; each prints its figures beside
# the baseline it is compared with. `scripts/bench.sh prefix_pool` runs one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${CW_BENCH_DIR:-$root/build-bench}
# -O3 without -Werror: GCC 12 reports false positives inside libstdc++ at -O3 (-Wrestrict,
# -Warray-bounds); the test build (-O2) keeps every warning an error. A failed build prints why.
if ! out=$(CW_BUILD_DIR=$build "$root/scripts/build.sh" -DCMAKE_BUILD_TYPE=Release -DCW_BUILD_TESTS=OFF -DCW_WERROR=OFF 2>&1); then
  echo "bench: the Release build in $build failed:" >&2
  tail -30 <<<"$out" >&2
  exit 1
fi
status=0
for bin in "$build"/bench/*_bench; do
  name=$(basename "$bin" _bench)
  [ $# -gt 0 ] && [ "$name" != "$1" ] && continue
  echo "== $name"
  "$bin" --benchmark_color=false || status=1
done
exit $status
