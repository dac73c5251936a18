#!/usr/bin/env bash
# The main job: set up, build, and plan the example clusterset with `cwctl plan`.
# (When the lab lands, this brings up the local multi-cluster lab instead.)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${CW_BUILD_DIR:-$root/build}
"$root/scripts/build.sh" >/dev/null
exec "$build/cli/cwctl" plan "${1:-$root/examples/plan.yaml}"
