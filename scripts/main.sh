#!/usr/bin/env bash
# The main job: set up (dependencies), build, then bring up the local multi-cluster lab
# (`cwctl lab up`: 2 clusters x 2 nodes in network namespaces, docs/lab.md) and check it end
# to end (`cwctl lab verify`). The lab stays up to be explored; `build/cli/cwctl lab down`
# removes it. A lab left from an earlier run is taken down first.
# Arguments go to `cwctl lab up`, e.g. --clusters 3 --nodes 2.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${CW_BUILD_DIR:-$root/build}
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "main.sh: the lab needs root (network namespaces), and sudo is missing" >&2; exit 1; }
  exec sudo --preserve-env=CW_BUILD_DIR "$0" "$@"
fi
echo "== set-up and build (scripts/build.sh)"
"$root/scripts/build.sh" >/dev/null
cwctl=$build/cli/cwctl
if [ -d /run/clusterwire-lab/cwlab ] || ip netns list | grep -q '^cwlab-'; then
  echo "== an earlier lab is up: taking it down"
  "$cwctl" lab down
fi
echo "== cwctl lab up $*"
"$cwctl" lab up "$@"
echo
echo "== cwctl lab verify"
"$cwctl" lab verify
