#!/usr/bin/env bash
# Installs dependencies (idempotently) and builds everything into build/ (or $CW_BUILD_DIR).
# Extra arguments go to CMake's configure step, e.g. -DCW_SANITIZE=ON.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${CW_BUILD_DIR:-$root/build}
"$root/scripts/deps.sh"
cmake -S "$root" -B "$build" -G Ninja "$@" >/dev/null
ninja -C "$build"
