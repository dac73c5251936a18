#!/usr/bin/env bash
# The test command: set up, build, and run every test with CTest. Arguments go to ctest
# (e.g. -R prefix, -L unit). Exits non-zero if any test fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${CW_BUILD_DIR:-$root/build}
"$root/scripts/build.sh"
status=0
ctest --test-dir "$build" --output-on-failure --timeout 600 -j "$(nproc)" "$@" || status=$?
# ctest shows no output for skipped tests: print why each one was skipped.
log="$build/Testing/Temporary/LastTest.log"
if [ -f "$log" ] && grep -q "SKIP" "$log"; then
  echo "Skipped tests said:"
  grep -h "SKIP" "$log" | sort -u | sed 's/^/  /'
fi
exit $status
