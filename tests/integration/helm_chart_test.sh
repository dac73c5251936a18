#!/usr/bin/env bash
# The Helm chart (charts/clusterwire): helm lint and helm template with the default, broker and
# member values (charts/clusterwire/ci/); wrong values refused with a message naming the value;
# every value commented and in docs/helm.md's table; the chart's crds/ identical to the repository's; what the workloads promise (security
# contexts, probes, leader election, ...); every flag passed to a binary is one it has; the
# RBAC rendered for each ServiceAccount equals docs/rbac.md, both ways; and the rendered
# manifests applied with kubectl to the lab API server, accepted, and there afterwards.
#
# Usage: helm_chart_test.sh BUILD_DIR | APISERVER_BINARY
#   (CTest passes the lab API server binary; by hand, the build directory.) The binaries'
#   --help, for the flag check, come from the same build directory when they are built.
# helm is the pinned v3.6.2 (tools/helm/package-lock.json), installed by scripts/helm.sh.
# Skips (77) with the reason when helm cannot be installed or Debian's python3-yaml is missing.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
chart=$root/charts/clusterwire
arg=${1:-$root/build}
if [ -d "$arg" ]; then
  build=$(cd "$arg" && pwd); server_bin=$build/lab/cw-lab-apiserver
else
  server_bin=$arg; build=$(cd "$(dirname "$arg")/.." && pwd)
fi

helm=$("$root/scripts/helm.sh" --path) || { echo "SKIP: helm is not available (see above)"; exit 77; }
if ! /usr/bin/python3 -c 'import yaml' 2>/dev/null; then
  echo "SKIP: the checks need /usr/bin/python3 with yaml (Debian's python3-yaml; scripts/deps.sh)"; exit 77
fi
check() { /usr/bin/python3 "$here/helm_chart_check.py" "$@"; }

tmp=$(mktemp -d /tmp/cw-helm-XXXXXX)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

. "$(dirname "$0")/../lib/check.sh"
# run_check NAME ARGS...: the Python checker, counting its ok/FAIL lines.
run_check() {
  local out; out=$(check "$@" 2>&1); local rc=$?
  printf '%s\n' "$out"
  passed=$((passed + $(grep -c '^ok ' <<<"$out")))
  failed=$((failed + $(grep -c '^FAIL ' <<<"$out")))
  if [ $rc -ne 0 ] && ! grep -q '^FAIL ' <<<"$out"; then bad "the checker ($1) crashed"; fi
}

ns=clusterwire
configs=(default broker member)

# --- helm lint: clean but for the icon INFO
for cfg in "${configs[@]}"; do
  out=$("$helm" lint "$chart" --namespace "$ns" -f "$chart/ci/$cfg-values.yaml" 2>&1); rc=$?
  noise=$(grep -E '^\[(INFO|WARNING|ERROR)\]' <<<"$out" | grep -v '^\[INFO\] Chart.yaml: icon is recommended$')
  if [ $rc -eq 0 ] && [ -z "$noise" ]; then ok "helm lint ($cfg values) is clean"; else bad "helm lint ($cfg values) (exit $rc)" "$out"; fi
done

# --- helm template
for cfg in "${configs[@]}"; do
  if "$helm" template cw "$chart" --namespace "$ns" -f "$chart/ci/$cfg-values.yaml" >"$tmp/$cfg.yaml" 2>"$tmp/$cfg.err"; then
    ok "helm template ($cfg values) renders $(grep -c '^kind: ' "$tmp/$cfg.yaml") objects"
  else
    bad "helm template ($cfg values)" "$(cat "$tmp/$cfg.err")"
  fi
done

# --- Wrong values fail at install time, naming the value
t() { "$helm" template cw "$chart" --namespace "$ns" "$@"; }
refuse "no clusterID is refused" 'clusterID is required' -- t
refuse 'clusterID "Bad_ID" is refused' 'clusterID: Does not match pattern' -- t --set clusterID=Bad_ID
refuse 'a clusterID of 64 characters is refused' 'clusterID: String length must be less than or equal to 63' -- \
  t --set clusterID="$(printf 'a%.0s' $(seq 64))"
refuse "wireguard.port 70000 is refused" 'wireguard.port: Must be less than or equal to 65535' -- \
  t --set clusterID=east,wireguard.port=70000
refuse "wireguard.port 0 is refused" 'wireguard.port: Must be greater than or equal to 1' -- \
  t --set clusterID=east,wireguard.port=0
refuse "wireguard.mtu 1000 is refused" 'wireguard.mtu: 1000 is below 1280' -- t --set clusterID=east,wireguard.mtu=1000
refuse "wireguard.backend outside its enum is refused" 'wireguard.backend must be one of the following: "auto", "kernel", "uapi"' -- \
  t --set clusterID=east,wireguard.backend=boringtun
refuse "nodeCIDRs outside its enum is refused" 'nodeCIDRs must be one of the following' -- t --set clusterID=east,nodeCIDRs=maybe
refuse "log.format outside its enum is refused" 'log.format must be one of the following' -- t --set clusterID=east,log.format=xml
refuse "nodeAgent.inClusterRoutes outside its enum is refused" 'nodeAgent.inClusterRoutes must be one of the following: "auto", "on", "off"' -- \
  t --set clusterID=east,nodeAgent.inClusterRoutes=sometimes
refuse "nodeAgent.clampMss that is not a boolean is refused" 'nodeAgent.clampMss: Invalid type. Expected: boolean' -- \
  t --set clusterID=east,nodeAgent.clampMss=yes
expect "nodeAgent.inClusterRoutes reaches the agent's flags" '--in-cluster-routes=off' -- \
  t --set clusterID=east,nodeAgent.inClusterRoutes=off
expect "nodeAgent.clampMss reaches the agent's flags" '--clamp-mss=false' -- t --set clusterID=east,nodeAgent.clampMss=false
expect "nodeAgent.probe reaches the agent's flags" '--probe-interval-ms=500' -- t --set clusterID=east,nodeAgent.probe.intervalMs=500
refuse "a probe interval under 100 ms is refused" 'nodeAgent.probe.intervalMs: Must be greater than or equal to 100' -- \
  t --set clusterID=east,nodeAgent.probe.intervalMs=5
refuse "topology outside its enum is refused" 'topology: topology must be one of the following' -- \
  t --set clusterID=east,topology=star
refuse "gateway.deadAfterMs below two heartbeats is refused" 'gateway.deadAfterMs: Must be greater than or equal to 200' -- \
  t --set clusterID=east,gateway.deadAfterMs=50
refuse "a gateway public endpoint that is not host:port is refused" 'gateway.publicEndpoints.gw-1: Does not match pattern' -- \
  t --set clusterID=east --set 'gateway.publicEndpoints.gw-1=203.0.113.1'
expect "gateway.publicEndpoints reach the operator's flags" '--gateway-endpoint=gw-1=203.0.113.1:4500' -- \
  t --set clusterID=east,topology=gateway --set 'gateway.publicEndpoints.gw-1=203.0.113.1:4500'
expect "topology gateway runs the candidates as a DaemonSet of their own" 'name: cw-clusterwire-node-agent-gateway' -- \
  t --set clusterID=east,topology=gateway
refuse "a misspelt value is refused" 'wireguard: Additional property prot is not allowed' -- t --set clusterID=east,wireguard.prot=1
refuse "a service CIDR with a bad prefix length is refused" 'serviceCIDRs.0: Does not match pattern' -- \
  t --set clusterID=east --set 'serviceCIDRs={10.96.0.0/33}'
refuse "two IPv4 pod CIDRs are refused" 'podCIDRs: at most one CIDR per family' -- \
  t --set clusterID=east --set 'podCIDRs={10.0.0.0/16,10.1.0.0/16}'
refuse "an IPv6 pool under ipv4 is refused" 'broker.clusterSet.ipv4.pools.0: Does not match pattern' -- \
  t --set clusterID=east,broker.enabled=true --set 'broker.clusterSet.ipv4.pools={fd00::/48}'
refuse "a broker without pools is refused" 'broker.clusterSet: broker.enabled needs pools' -- \
  t --set clusterID=east,broker.enabled=true,broker.clusterSet.ipv4.pools=null
refuse "a cluster prefix longer than the node prefix is refused" 'clusterPrefixLength \(25\) must not be longer than nodePrefixLength' -- \
  t --set clusterID=east,broker.enabled=true,broker.clusterSet.ipv4.clusterPrefixLength=25
refuse "a remote broker without a token Secret is refused" 'broker.tokenSecret.name: String length must be greater than or equal to 1' -- \
  t --set clusterID=east,broker.server=https://broker:6443,broker.tokenSecret.name=
refuse "a broker server that is not https is refused" 'broker.server: Does not match pattern' -- \
  t --set clusterID=east,broker.server=http://broker:6443
refuse "broker.members on a cluster without the broker is refused" 'broker.members: member ServiceAccounts are made on the broker cluster only' -- \
  t --set clusterID=east --set 'broker.members={west}'

# --- Every value commented in values.yaml, checked by the schema, documented in docs/helm.md
run_check values "$chart/values.yaml" "$chart/values.schema.json" "$root/docs/helm.md"

# --- The chart's CRDs are the repository's, byte for byte
drift=()
for f in "$root"/crds/*.yaml; do
  b=$(basename "$f")
  if [ ! -f "$chart/crds/$b" ]; then drift+=("missing in charts/clusterwire/crds/: $b")
  elif ! cmp -s "$f" "$chart/crds/$b"; then drift+=("differs: crds/$b and charts/clusterwire/crds/$b")
  fi
done
for f in "$chart"/crds/*; do
  [ -f "$root/crds/$(basename "$f")" ] || drift+=("only in charts/clusterwire/crds/: $(basename "$f")")
done
if [ ${#drift[@]} -eq 0 ]; then ok "charts/clusterwire/crds/ is identical to crds/ ($(ls "$root"/crds/*.yaml | wc -l) files)"
else bad "charts/clusterwire/crds/ has drifted from crds/ (fix: cp crds/*.yaml charts/clusterwire/crds/)" "${drift[@]}"; fi

# --- What the workloads promise
for cfg in "${configs[@]}"; do
  [ -s "$tmp/$cfg.yaml" ] && run_check props "$cfg" "$tmp/$cfg.yaml" "$ns"
done
if "$helm" template cw "$chart" --namespace "$ns" -f "$chart/ci/default-values.yaml" --set serviceMonitor.enabled=true \
    2>&1 | grep -q '^kind: ServiceMonitor$'; then
  ok "serviceMonitor.enabled=true renders a ServiceMonitor"
else
  bad "serviceMonitor.enabled=true renders no ServiceMonitor"
fi
out=$("$helm" template cw "$chart" --namespace "$ns" -f "$chart/ci/default-values.yaml" --set operator.leaveOnUninstall=false 2>&1)
if ! grep -q '^kind: Job$' <<<"$out"; then ok "operator.leaveOnUninstall=false renders no hook"; else bad "operator.leaveOnUninstall=false still renders the hook Job"; fi

# --- Every flag the chart passes is one the binary has
mkdir "$tmp/help"
for b in operator/cw-operator node-agent/cw-node-agent dns/cw-dns; do
  [ -x "$build/$b" ] && "$build/$b" --help >"$tmp/help/$(basename "$b").txt" 2>&1
done
for cfg in broker member; do run_check flags "$tmp/$cfg.yaml" "$tmp/help"; done

# --- RBAC: the rendered rules per ServiceAccount equal docs/rbac.md
run_check rbac "$root" "$root/docs/rbac.md" "$tmp/broker.yaml" "$ns" clusterwire-broker 1
run_check rbac "$root" "$root/docs/rbac.md" "$tmp/member.yaml" "$ns" clusterwire-broker 0
# The comparison catches a rule the table lacks: drop the table's events row and expect that.
grep -v '^| operator | `""` | events |' "$root/docs/rbac.md" >"$tmp/rbac-without-events.md"
out=$(check rbac "$root" "$tmp/rbac-without-events.md" "$tmp/member.yaml" "$ns" clusterwire-broker 0 2>&1)
if grep -qE 'rendered but not in docs/rbac.md' <<<"$out" && grep -qE 'events +create' <<<"$out"; then
  ok "a rendered rule missing from the table is reported (events create)"
else
  bad "a rendered rule missing from the table is not reported" "$out"
fi

# --- Applied to the lab API server with kubectl
if ! command -v kubectl >/dev/null; then
  echo "SKIP: kubectl is not installed: the manifests are not applied (scripts/deps.sh installs it)"
elif [ ! -x "$server_bin" ]; then
  echo "SKIP: $server_bin is not built: the manifests are not applied"
else
  "$server_bin" --kubeconfig "$tmp/kubeconfig" --ready-file "$tmp/ready" >"$tmp/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do [ -s "$tmp/ready" ] && break; sleep 0.05; done
  if [ ! -s "$tmp/ready" ]; then
    bad "the lab API server did not start" "$(cat "$tmp/server.log")"
  else
    export KUBECONFIG=$tmp/kubeconfig KUBECACHEDIR=$tmp/kube-cache
    k() { kubectl --request-timeout=10s "$@"; }
    expect "kubectl apply -f charts/clusterwire/crds/" 'clusterpeerings.clusterwire.io created' -- \
      k apply --validate=false -f "$chart/crds"
    # The releases' namespaces (helm install --create-namespace makes them; the chart does not).
    printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n' \
      "$ns" cw-west | k apply --validate=false -f - >/dev/null
    # The broker cluster's release (without the ServiceMonitor: no Prometheus Operator CRDs
    # here) and a member's release in another namespace, hooks apart.
    "$helm" template east "$chart" --namespace "$ns" -f "$chart/ci/broker-values.yaml" \
      --set serviceMonitor.enabled=false --no-hooks >"$tmp/apply-broker.yaml"
    "$helm" template west "$chart" --namespace cw-west -f "$chart/ci/member-values.yaml" \
      --no-hooks >"$tmp/apply-member.yaml"
    for cfg in broker member; do
      out=$(k apply --validate=false -f "$tmp/apply-$cfg.yaml" 2>&1); rc=$?
      if [ $rc -eq 0 ] && ! grep -qv ' created$' <<<"$out"; then
        ok "kubectl apply of the $cfg release: $(grep -c ' created$' <<<"$out") objects created"
      else
        bad "kubectl apply of the $cfg release (exit $rc)" "$out"
      fi
      out=$(k apply --validate=false -f "$tmp/apply-$cfg.yaml" 2>&1); rc=$?
      if [ $rc -eq 0 ] && ! grep -qv ' unchanged$' <<<"$out"; then ok "applying the $cfg release again changes nothing"
      else bad "applying the $cfg release again (exit $rc)" "$out"; fi
    done
    expect "the workloads are there" '^east-clusterwire-dns east-clusterwire-operator east-clusterwire-node-agent$' -- \
      sh -c "kubectl -n $ns get deployments -o jsonpath='{.items[*].metadata.name}' && printf ' ' && \
             kubectl -n $ns get daemonsets -o jsonpath='{.items[*].metadata.name}'"
    expect "the DNS Service has a ClusterIP and port 53" '^10\.96\.0\.53 53 53$' -- \
      k -n "$ns" get service east-clusterwire-dns -o 'jsonpath={.spec.clusterIP} {.spec.ports[0].port} {.spec.ports[1].port}'
    expect "the broker namespace and its ClusterSet are there" '^10\.64\.0\.0/12 fd00:c1::/48$' -- \
      k -n clusterwire-broker get clustersets default -o 'jsonpath={.spec.ipv4.pools[0]} {.spec.ipv6.pools[0]}'
    expect "the members' ServiceAccounts and tokens are there on the broker" '^member-north member-west member-north-token member-west-token$' -- \
      sh -c "kubectl -n clusterwire-broker get serviceaccounts -l app.kubernetes.io/component=broker-member -o jsonpath='{.items[*].metadata.name}' && printf ' ' && \
             kubectl -n clusterwire-broker get secrets -l app.kubernetes.io/component=broker-member -o jsonpath='{.items[*].metadata.name}'"
    expect "the cluster roles are there" 'east-clusterwire-operator.*west-clusterwire-node-agent' -- \
      k get clusterroles -o 'jsonpath={.items[*].metadata.name}'
    expect "the member's broker kubeconfig is there" 'server: https://broker.example.com:6443' -- \
      k -n cw-west get configmap west-clusterwire-broker-kubeconfig -o 'jsonpath={.data.kubeconfig}'
    # The member's broker kubeconfig as the operator reads it: the chart's ConfigMap, with the
    # mount paths moved into $tmp, the server pointed at this lab server, the token and CA
    # files as the token Secret would give them. `cw-operator leave` (the hook's command)
    # must connect with it and succeed.
    if [ -x "$build/operator/cw-operator" ]; then
      mkdir -p "$tmp/broker-token"
      /usr/bin/python3 - "$tmp" "$(cat "$tmp/ready")" <<'PY'
import base64, sys, yaml
tmp, url = sys.argv[1], sys.argv[2]
lab = yaml.safe_load(open(f'{tmp}/kubeconfig'))
open(f'{tmp}/broker-token/ca.crt', 'wb').write(base64.b64decode(lab['clusters'][0]['cluster']['certificate-authority-data']))
PY
      # The token as the member copies it from the broker's member-west-token Secret.
      k -n clusterwire-broker get secret member-west-token -o 'jsonpath={.data.token}' | base64 -d >"$tmp/broker-token/token"
      k -n cw-west get configmap west-clusterwire-broker-kubeconfig -o 'jsonpath={.data.kubeconfig}' |
        sed -e "s|/etc/clusterwire/broker-token/|$tmp/broker-token/|" -e "s|https://broker.example.com:6443|$(cat "$tmp/ready")|" \
        >"$tmp/broker.kubeconfig"
      expect "cw-operator leave reaches the broker with the chart's kubeconfig (token file, CA file)" 'left the clusterset' -- \
        "$build/operator/cw-operator" --cluster-id west --broker-namespace clusterwire-broker \
        --broker-kubeconfig "$tmp/broker.kubeconfig" leave
      # The broker's ownership policy (ValidatingAdmissionPolicy): with its member token, west
      # may not delete another member's claim, nor claim a block in another member's name.
      printf '%s\n' 'apiVersion: clusterwire.io/v1alpha1' 'kind: CIDRClaim' \
        'metadata: {name: 10-80-0-0-16, namespace: clusterwire-broker}' \
        'spec: {cidr: 10.80.0.0/16, clusterID: north, purpose: pods}' >"$tmp/north-claim.yaml"
      k apply -f "$tmp/north-claim.yaml" >/dev/null || bad "the admin could not create north's claim"
      kw() { kubectl --kubeconfig "$tmp/broker.kubeconfig" --request-timeout=10s "$@"; }
      # (real: the same words from kube-apiserver's ValidatingAdmissionPolicy plugin)
      refuse "west may not delete north's claim on the broker" \
        "cidrclaims.clusterwire.io \"10-80-0-0-16\" is forbidden: ValidatingAdmissionPolicy 'east-clusterwire-broker-ownership' with binding 'east-clusterwire-broker-ownership' denied request: system:serviceaccount:clusterwire-broker:member-west may write only its own cluster's objects, not one of cluster north" \
        -- kw -n clusterwire-broker delete cidrclaim 10-80-0-0-16
      sed -e 's/10-80-/10-81-/' -e 's/10\.80\./10.81./' "$tmp/north-claim.yaml" >"$tmp/north-claim2.yaml"
      refuse "nor claim a block in north's name" "denied request: .*member-west may write only its own cluster's objects, not one of cluster north" \
        -- kw create -f "$tmp/north-claim2.yaml"
      sed -e 's/clusterID: north/clusterID: west/' "$tmp/north-claim2.yaml" >"$tmp/west-claim.yaml"
      expect "but may claim one in its own" 'cidrclaim.clusterwire.io/10-81-0-0-16 created' -- kw create -f "$tmp/west-claim.yaml"
      expect "the claim of north is still there" '^north$' -- k -n clusterwire-broker get cidrclaim 10-80-0-0-16 -o 'jsonpath={.spec.clusterID}'
    else
      echo "SKIP: cw-operator is not built: the chart's broker kubeconfig is not tried"
    fi
    # The hook: batch/v1 Jobs are served by the lab server from lab/apiserver/resources.cc.
    if k api-resources --api-group=batch 2>/dev/null | grep -q '^jobs '; then
      "$helm" template west "$chart" --namespace cw-west -f "$chart/ci/member-values.yaml" \
        --show-only templates/leave-hook.yaml >"$tmp/hook.yaml"
      expect "kubectl apply of the uninstall hook Job" 'job.batch/west-clusterwire-leave created' -- \
        k apply --validate=false -f "$tmp/hook.yaml"
      expect "the hook runs cw-operator leave" '^leave$' -- \
        k -n cw-west get job west-clusterwire-leave -o 'jsonpath={.spec.template.spec.containers[0].args[-1:]}'
    else
      echo "SKIP: this lab API server serves no batch/v1 Jobs: the uninstall hook is not applied (rebuild cw-lab-apiserver)"
    fi
  fi
fi

finish
