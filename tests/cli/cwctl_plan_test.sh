#!/usr/bin/env bash
# cwctl plan as a user runs it: the shipped example, exit statuses 0/1/2, and messages that
# point at the line and column. Usage: cwctl_plan_test.sh CWCTL REPO_ROOT
set -u
cwctl=$1 root=$2
tmp=$(mktemp -d) && trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0

check() {  # check NAME EXPECTED_STATUS PATTERN -- ARGS...
  local name=$1 want=$2 pattern=$3; shift 4
  "$cwctl" "$@" >"$tmp/out" 2>&1; local got=$?
  if [ "$got" -ne "$want" ]; then
    echo "FAIL $name: exit status $got, want $want"; sed 's/^/  | /' "$tmp/out"; failed=$((failed+1)); return
  fi
  if ! grep -qE -- "$pattern" "$tmp/out"; then
    echo "FAIL $name: output lacks /$pattern/"; sed 's/^/  | /' "$tmp/out"; failed=$((failed+1)); return
  fi
  echo "ok   $name"; passed=$((passed+1))
}

check example 0 'pods +10\.65\.0\.0/16 \(adopted\)' -- plan "$root/examples/plan.yaml"
check example-json 0 '"cidr": "fd00:c1::/56"' -- plan -o json "$root/examples/plan.yaml"

cat >"$tmp/conflict.yaml" <<'YAML'
clusterSet:
  ipv4: {pools: [10.64.0.0/12], clusterPrefixLength: 16, nodePrefixLength: 24}
clusters:
  - {id: east, podCIDRs: [10.64.0.0/16]}
  - {id: west, podCIDRs: [10.64.0.0/16]}
YAML
check conflict 1 'west: pod CIDR 10\.64\.0\.0/16 overlaps east' -- plan "$tmp/conflict.yaml"

printf 'clusterSet:\n  ipv4:\n    pools: [10.64.0.1/12]\n' >"$tmp/bad.yaml"
check bad-value 2 "bad\.yaml:3:13: .*host bits are set" -- plan "$tmp/bad.yaml"
printf 'clusterSet: {\n' >"$tmp/broken.yaml"
check bad-yaml 2 'broken\.yaml:[0-9]+:[0-9]+: not valid YAML' -- plan "$tmp/broken.yaml"
check missing-file 2 'cannot read' -- plan "$tmp/nope.yaml"
check bad-flag 2 'output' -- plan -o xml "$root/examples/plan.yaml"
check help 0 'plan' -- --help

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
