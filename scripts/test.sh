#!/usr/bin/env bash
# The test command: set up, build, and run every test with CTest. Arguments go to ctest
# (e.g. -R prefix, -L unit). Exits non-zero if any test fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${CW_BUILD_DIR:-$root/build}
"$root/scripts/build.sh"
ctest --test-dir "$build" --output-on-failure --timeout 600 -j "$(nproc)" "$@"
