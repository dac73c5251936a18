#!/usr/bin/env bash
# The test command: set up, build, and run every test with CTest. Arguments go to ctest
# (e.g. -R prefix, -L unit). Exits non-zero if any test fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${CW_BUILD_DIR:-$root/build}
# CW_BUILD_BENCH=OFF leaves the benchmarks out of the build (CI does: no test runs them, and
# scripts/bench.sh builds them itself, in Release); by default they are built, so they keep
# compiling.
"$root/scripts/build.sh" -DCW_BUILD_BENCH="${CW_BUILD_BENCH:-ON}"
status=0
ctest --test-dir "$build" --output-on-failure --timeout 600 -j "$(nproc)" "$@" || status=$?
# ctest shows no output for skipped tests: print why each one was skipped.
log="$build/Testing/Temporary/LastTest.log"
# Skipped script tests print "SKIP: <reason>" (run_in_vm.sh: "SKIPPED: <reason>"); GoogleTest prints "<file>:<line>: Skipped" and
# the reason on the next line. Other output (such as verify's SKIP rows) is not a skipped test.
if [ -f "$log" ]; then
  reasons=$(awk '/SKIP(PED)?: / { print; next } skipped { print; skipped = 0 } /: Skipped$/ { skipped = 1 }' "$log" | sort -u)
  if [ -n "$reasons" ]; then
    echo "Skipped tests said:"
    sed 's/^/  /' <<<"$reasons"
  fi
fi
exit $status
