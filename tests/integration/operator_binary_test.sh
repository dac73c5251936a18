#!/usr/bin/env bash
# cw-operator as it is run: against cw-lab-apiserver (broker and member in one), set up with
# kubectl; a claim and a node block appear, /readyz and /metrics answer, SIGTERM stops it
# cleanly, `leave` releases the claim, and bad flags are refused clearly.
# Usage: operator_binary_test.sh OPERATOR APISERVER REPO_ROOT
set -u
operator=$1 apiserver=$2 root=$3
command -v kubectl >/dev/null || { echo "SKIP: kubectl is not installed"; exit 77; }
tmp=$(mktemp -d /tmp/cw-opbin-XXXXXX)
server_pid="" op_pid=""
cleanup() {
  for p in $op_pid $server_pid; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
. "$(dirname "$0")/../lib/check.sh"

"$apiserver" --kubeconfig "$tmp/kc" --ready-file "$tmp/ready" >"$tmp/server.log" 2>&1 &
server_pid=$!
wait_for 10 '[ -s "$tmp/ready" ]' || { echo "FAIL: lab API server did not start"; exit 1; }
export KUBECONFIG=$tmp/kc
k() { kubectl --request-timeout=10s "$@"; }
k apply -f "$root/crds/" --validate=false >/dev/null && ok "CRDs applied" || bad "CRDs applied"
cat >"$tmp/setup.yaml" <<'YAML'
apiVersion: v1
kind: Namespace
metadata: {name: clusterwire-broker}
---
apiVersion: clusterwire.io/v1alpha1
kind: ClusterSet
metadata: {name: default, namespace: clusterwire-broker}
spec:
  ipv4: {pools: [10.64.0.0/12], clusterPrefixLength: 16, nodePrefixLength: 24}
---
apiVersion: v1
kind: Node
metadata:
  name: node-a
  annotations: {clusterwire.io/public-key: 9YtV7g8b1oV6YQe0fM0cZ3y8Jm3x7b2KZ0v5yq3u8Xo=, clusterwire.io/endpoint: "192.0.2.1:51820"}
YAML
k apply -f "$tmp/setup.yaml" --validate=false >/dev/null && ok "broker namespace, ClusterSet and a Node" || bad "setup"

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$operator" --cluster-id east --kubeconfig "$tmp/kc" --service-cidr 10.96.0.0/16 --health-address 127.0.0.1 \
  --health-port "$port" --heartbeat-seconds 1 --log-format json >"$tmp/op.log" 2>&1 &
op_pid=$!

if wait_for 10 'k -n clusterwire-broker get cidrclaim 10-64-0-0-16 -o jsonpath="{.spec.clusterID}" | grep -qx east'; then
  ok "the operator claimed 10.64.0.0/16"; else bad "claim" "$(tail -5 "$tmp/op.log")"; fi
if wait_for 10 'k get node node-a -o jsonpath="{.metadata.annotations.clusterwire\.io/pod-cidr}" | grep -qx 10.64.0.0/24'; then
  ok "node-a got 10.64.0.0/24"; else bad "node block" "$(tail -5 "$tmp/op.log")"; fi
if wait_for 10 'k -n clusterwire-broker get clusteradvertisement east -o jsonpath="{.spec.nodes[0].podCIDRs[0]}" | grep -qx 10.64.0.0/24'; then
  ok "the advertisement lists node-a"; else bad "advertisement"; fi
if wait_for 10 'curl -sf http://127.0.0.1:'"$port"'/readyz'; then ok "/readyz is 200"; else bad "/readyz" "$(curl -s http://127.0.0.1:$port/readyz)"; fi
if curl -sf "http://127.0.0.1:$port/metrics" | grep -q '^clusterwire_operator_claims_held 2$'; then
  ok "/metrics counts the pod and service claims"; else bad "/metrics" "$(curl -s http://127.0.0.1:$port/metrics | grep clusterwire | head)"; fi
if grep -q '"msg":"claimed pod block"' "$tmp/op.log"; then ok "JSON logs say what was claimed"; else bad "logs" "$(head -5 "$tmp/op.log")"; fi
# The kubeconfig's credential is a client certificate (cw-lab-apiserver --kubeconfig): its key
# must never be logged, whole or in part.
key=$(awk '/client-key-data:/ {print $2}' "$tmp/kc")
if [ -n "$key" ] && ! grep -qF "${key:0:40}" "$tmp/op.log" && ! grep -q 'PRIVATE KEY' "$tmp/op.log"; then
  ok "the client key never appears in the logs"; else bad "client key in logs (or none in the kubeconfig)"; fi

kill -TERM "$op_pid"; wait "$op_pid"; rc=$?; op_pid=""
[ $rc -eq 0 ] && ok "SIGTERM stops it with status 0" || bad "SIGTERM exit status $rc"
k -n clusterwire-broker get cidrclaim 10-64-0-0-16 >/dev/null 2>&1 && ok "stopping keeps the claim" || bad "claim lost on stop"

out=$("$operator" --cluster-id east --kubeconfig "$tmp/kc" leave 2>&1) && ok "leave" || bad "leave" "$out"
if ! k -n clusterwire-broker get cidrclaims -o name | grep -q .; then ok "leave released every claim"; else bad "claims left" "$(k -n clusterwire-broker get cidrclaims -o name)"; fi

out=$("$operator" --cluster-id East_1 --kubeconfig "$tmp/kc" 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q 'cluster-id "East_1"' <<<"$out" && ok "a bad cluster ID is refused" || bad "bad cluster id ($rc)" "$out"
out=$("$operator" --cluster-id east --pod-cidr 10.64.0.1/16 --kubeconfig "$tmp/kc" 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q 'host bits are set' <<<"$out" && ok "a bad --pod-cidr is refused" || bad "bad pod cidr ($rc)" "$out"
out=$("$operator" --cluster-id east --kubeconfig "$tmp/missing" 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q 'missing' <<<"$out" && ok "a missing kubeconfig is refused" || bad "missing kubeconfig ($rc)" "$out"

finish
