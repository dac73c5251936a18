#!/usr/bin/env bash
# Real Kubernetes clients against the lab API server on etcd: kubectl (create, get, apply,
# patch, delete, get --watch; the tables of built-in kinds; custom resources; a restart of the
# server) and Debian's python3-kubernetes (list, watch, patch). Each check says the real
# server's output it mirrors where that is not obvious. If the server disagrees with a real
# client, the server is wrong.
# Usage: real_clients_test.sh APISERVER_BINARY
set -u
server_bin=$1
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v kubectl >/dev/null; then
  echo "SKIP: kubectl is not installed (scripts/deps.sh installs it)"; exit 77
fi
if ! command -v etcd >/dev/null; then
  echo "SKIP: etcd is not installed (scripts/deps.sh installs etcd-server)"; exit 77
fi
tmp=$(mktemp -d /tmp/cw-realclients-XXXXXX)
pid="" etcd_pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  [ -n "$etcd_pid" ] && kill "$etcd_pid" 2>/dev/null && wait "$etcd_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# The server as the lab runs it: its objects in an etcd of its own (free loopback ports).
ports=$(python3 -c 'import socket
ss=[socket.socket() for _ in range(2)]
[s.bind(("127.0.0.1",0)) for s in ss]
print(" ".join(str(s.getsockname()[1]) for s in ss))')
read -r etcd_port peer_port <<<"$ports"
mkdir -m 700 "$tmp/etcd"
etcd --data-dir "$tmp/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "default=http://127.0.0.1:$peer_port" --heartbeat-interval 10 --election-timeout 100 >"$tmp/etcd.log" 2>&1 &
etcd_pid=$!
start_server() {
  rm -f "$tmp/ready"
  "$server_bin" --kubeconfig "$tmp/kubeconfig" --ready-file "$tmp/ready" --bookmark-interval-ms 200 \
    --etcd-servers "http://127.0.0.1:$etcd_port" --pki-dir "$tmp/pki" >>"$tmp/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 200); do [ -s "$tmp/ready" ] && break; sleep 0.05; done
  [ -s "$tmp/ready" ] || { echo "FAIL: the lab API server did not start"; cat "$tmp/server.log" "$tmp/etcd.log"; exit 1; }
}
start_server

export KUBECONFIG=$tmp/kubeconfig
k() { kubectl --request-timeout=10s "$@"; }
. "$(dirname "$0")/../lib/check.sh"

# --- kubectl, built-in kinds
expect "kubectl version reaches the server" 'Server Version: v1.32' -- k version
expect "kubectl get namespaces" 'kube-system' -- k get namespaces
expect "kubectl api-resources lists nodes" 'nodes +no +v1 +false +Node' -- k api-resources
cat >"$tmp/cm.yaml" <<'YAML'
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, labels: {app: demo}}
data: {color: blue}
YAML
expect "kubectl create -f" 'configmap/settings created' -- k create -f "$tmp/cm.yaml" --validate=false
refuse "kubectl create -f twice is AlreadyExists" 'AlreadyExists.*"settings" already exists' -- k create -f "$tmp/cm.yaml" --validate=false
expect "kubectl get -o jsonpath" '^blue$' -- k get configmap settings -o 'jsonpath={.data.color}'
expect "kubectl get -l selects by label" 'settings' -- k get configmaps -l app=demo
expect "kubectl label (strategic merge patch)" 'labeled' -- k label configmap settings tier=web
expect "the label is there" '^web$' -- k get configmap settings -o 'jsonpath={.metadata.labels.tier}'

cat >"$tmp/svc.yaml" <<'YAML'
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: metrics, port: 9090}
YAML
expect "kubectl apply creates a Service" 'service/web created' -- k apply -f "$tmp/svc.yaml" --validate=false
sed -i '/metrics/d' "$tmp/svc.yaml"
expect "kubectl apply again removes a port (strategic merge patch)" 'service/web configured' -- k apply -f "$tmp/svc.yaml" --validate=false
expect "only the kept port remains" '^http$' -- k get service web -o 'jsonpath={.spec.ports[*].name}'
expect "the Service has a clusterIP" '^10\.96\.' -- k get service web -o 'jsonpath={.spec.clusterIP}'
expect "kubectl apply unchanged" 'service/web unchanged' -- k apply -f "$tmp/svc.yaml" --validate=false

# --- tables: what kube-apiserver's printers give `kubectl get` for built-in kinds
# (real: "NAME   TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)   AGE" / "web    ClusterIP   10.96.x.y    <none>        80/TCP    5s")
expect "kubectl get services prints the Service columns" 'NAME +TYPE +CLUSTER-IP +EXTERNAL-IP +PORT\(S\) +AGE' -- k get services
expect "and the Service's row" '^web +ClusterIP +10\.96\.[0-9.]+ +<none> +80/TCP +[0-9]+s' -- k get services
# (real, -o wide: a SELECTOR column: "app=web")
expect "kubectl get services -o wide adds SELECTOR" 'SELECTOR.*app=web|app=web' -- k get services -o wide
# (real: "NAME          STATUS   AGE" / "kube-system   Active   5s")
expect "kubectl get namespaces prints STATUS" '^kube-system +Active +[0-9]+s' -- k get namespaces
printf '{"apiVersion":"v1","kind":"Node","metadata":{"name":"n1","labels":{"node-role.kubernetes.io/worker":""}},"status":{"conditions":[{"type":"Ready","status":"True"}],"nodeInfo":{"kubeletVersion":"v1.32.0"}}}' >"$tmp/node.json"
k create -f "$tmp/node.json" --validate=false >/dev/null 2>&1 || bad "creating a Node"
# (real: "NAME   STATUS   ROLES    AGE   VERSION" / "n1     Ready    worker   5s    v1.32.0")
expect "kubectl get nodes prints STATUS, ROLES and VERSION" '^n1 +Ready +worker +[0-9]+s +v1\.32\.0' -- k get nodes

# --- authentication: the admin is a client certificate (CN lab-admin, O system:masters), as
# kubeadm's admin.conf; a certificate of another CA is not anyone
if grep -q 'client-certificate-data:' "$tmp/kubeconfig" && ! grep -q 'token:' "$tmp/kubeconfig"; then
  ok "the admin kubeconfig holds a client certificate and no token"; else bad "admin kubeconfig" "$(grep -v data: "$tmp/kubeconfig")"; fi
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "/O=system:masters/CN=lab-admin" \
  -keyout "$tmp/other.key" -out "$tmp/other.crt" 2>/dev/null
# (real: "error: You must be logged in to the server (Unauthorized)"; this server refuses in the
# TLS handshake instead: "remote error: tls: unknown certificate authority", docs/lab-apiserver.md)
refuse "a client certificate of another CA is refused" 'Unauthorized|tls: |certificate' -- \
  kubectl --kubeconfig /dev/null --server "$(cat "$tmp/ready")" --insecure-skip-tls-verify \
  --client-certificate "$tmp/other.crt" --client-key "$tmp/other.key" --request-timeout=10s get namespaces

# --- RBAC: a ServiceAccount's token may do what its roles grant, nothing else
printf '{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"reader","namespace":"default"}}' >"$tmp/sa.json"
expect "kubectl create -f a ServiceAccount" 'serviceaccount/reader created' -- k create -f "$tmp/sa.json" --validate=false
sa_token=$(k create token reader 2>"$tmp/token.err") && [ -n "$sa_token" ] && ok "kubectl create token reader (TokenRequest)" \
  || bad "kubectl create token" "$(cat "$tmp/token.err")"
# The ServiceAccount's own kubeconfig: the admin's holds a client certificate, which a server
# authenticates before any bearer token (kube-apiserver's x509 authenticator comes first).
sa_kubeconfig() {
  cp "$tmp/kubeconfig" "$tmp/sa.kubeconfig"
  kubectl --kubeconfig "$tmp/sa.kubeconfig" config set-credentials reader --token="$sa_token" >/dev/null
  kubectl --kubeconfig "$tmp/sa.kubeconfig" config set-context --current --user=reader >/dev/null
}
sa_kubeconfig
ksa() { kubectl --kubeconfig "$tmp/sa.kubeconfig" --request-timeout=10s "$@"; }
# (real: Error from server (Forbidden): configmaps is forbidden: User "system:serviceaccount:default:reader" cannot list resource "configmaps" in API group "" in the namespace "default")
refuse "the ServiceAccount may not list ConfigMaps" \
  'Error from server \(Forbidden\): configmaps is forbidden: User "system:serviceaccount:default:reader" cannot list resource "configmaps" in API group "" in the namespace "default"' \
  -- ksa get configmaps
# (real: "no", exit status 1)
refuse "kubectl auth can-i says no" '^no$' -- ksa auth can-i list configmaps
expect "kubectl auth can-i as the admin (system:masters)" '^yes$' -- k auth can-i delete nodes
cat >"$tmp/rbac.yaml" <<'YAML'
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: read-cm, namespace: default}
rules:
- {apiGroups: [""], resources: [configmaps], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader-read-cm, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: read-cm}
subjects:
- {kind: ServiceAccount, name: reader, namespace: default}
YAML
expect "kubectl apply -f a Role and RoleBinding" 'rolebinding.rbac.authorization.k8s.io/reader-read-cm created' -- k apply -f "$tmp/rbac.yaml" --validate=false
expect "now kubectl auth can-i says yes" '^yes$' -- ksa auth can-i list configmaps
expect "and the ServiceAccount lists ConfigMaps" 'settings' -- ksa get configmaps
refuse "but may not delete one" 'Error from server \(Forbidden\): configmaps "settings" is forbidden: User "system:serviceaccount:default:reader" cannot delete resource "configmaps"' \
  -- ksa delete configmap settings
refuse "nor read ConfigMaps in another namespace" '^no$' -- ksa auth can-i list configmaps -n kube-system

# --- a restart of the API server keeps everything (its objects are in etcd, its CA in --pki-dir)
kill "$pid"; wait "$pid" 2>/dev/null
start_server
sa_kubeconfig  # the same token, the server's new port
expect "after a restart, the ConfigMap is still there with its label" '^web$' -- k get configmap settings -o 'jsonpath={.metadata.labels.tier}'
expect "and the Service keeps its clusterIP" '^10\.96\.' -- k get service web -o 'jsonpath={.spec.clusterIP}'
expect "and the ServiceAccount's token still works (the signing key is kept in --pki-dir)" '^yes$' -- ksa auth can-i list configmaps

# --- OpenAPI v3: kubectl validates through the server (fieldValidation=Strict), no --validate=false
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: validated}\ndata: {a: b}\n' >"$tmp/validated.yaml"
expect "kubectl apply without --validate=false (the server takes fieldValidation)" 'configmap/validated created' -- k apply -f "$tmp/validated.yaml"
expect "kubectl apply -f the project's CRDs, validated" 'clusterpeerings.clusterwire.io created' -- k apply -f "$here/../../crds"
cat >"$tmp/bad-peering.yaml" <<'YAML'
apiVersion: clusterwire.io/v1alpha1
kind: ClusterPeering
metadata: {name: c2}
spec: {remoteClusterId: c2}
YAML
# (real: Error from server (BadRequest): error when creating "...": ClusterPeering in version "v1alpha1" cannot be handled as a ClusterPeering: strict decoding error: unknown field "spec.remoteClusterId")
refuse "a misspelt field is refused by strict decoding" \
  'ClusterPeering in version "v1alpha1" cannot be handled as a ClusterPeering: strict decoding error: unknown field "spec.remoteClusterId"' \
  -- k apply -f "$tmp/bad-peering.yaml"
# (real: KIND: ClusterPeering, VERSION: clusterwire.io/v1alpha1, FIELD: spec <Object>, then its fields)
expect "kubectl explain clusterpeering.spec" 'remoteClusterID' -- k explain clusterpeering.spec
# A List is validated item by item (kubectl reads /openapi/v2 for it, in protobuf)
# (real: configmap/listed-a created, then Error from server (BadRequest): ... strict decoding error: unknown field "datta")
printf '{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"listed-a"},"data":{"x":"y"}},{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"listed-b"},"datta":{"x":"y"}}]}' >"$tmp/list.json"
refuse "kubectl apply of a List: the good item is created, the bad one refused" 'strict decoding error: unknown field "datta"' -- k apply -f "$tmp/list.json"
expect "the good item of the List is there" 'listed-a' -- k get configmap listed-a

# --- kubectl, custom resources
expect "kubectl apply -f a CRD" 'widgets.example.com created' -- k apply -f "$here/manifests/widget-crd.yaml" --validate=false
cat >"$tmp/widget.yaml" <<'YAML'
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1}
spec: {size: 1, color: red}
YAML
expect "kubectl apply creates a custom resource" 'widget.example.com/w1 created' -- k apply -f "$tmp/widget.yaml" --validate=false
sed -i 's/size: 1/size: 3/' "$tmp/widget.yaml"
expect "kubectl apply again (merge patch)" 'widget.example.com/w1 configured' -- k apply -f "$tmp/widget.yaml" --validate=false
expect "the custom resource changed" '^3$' -- k get widget w1 -o 'jsonpath={.spec.size}'
expect "kubectl get by short name" 'w1' -- k get wd
expect "kubectl patch --type=merge on the status subresource" 'patched' -- k patch widget w1 --subresource=status --type=merge -p '{"status":{"ready":true}}'
expect "the status was written" '^true$' -- k get widget w1 -o 'jsonpath={.status.ready}'

# --- watch
( k get configmaps --watch --output-watch-events -o json >"$tmp/watch.json" 2>&1 & echo $! >"$tmp/watch.pid"; wait ) &
sleep 1
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: watched}\n' | k create -f - --validate=false >/dev/null 2>&1 || bad "create for the watch"
k delete configmap watched >/dev/null 2>&1 || bad "delete for the watch"
# kubectl prints one JSON object per event: {"type": ..., "object": {...}}.
watch_events() {
  /usr/bin/python3 -c '
import json, sys
text, dec, i, out = open(sys.argv[1]).read(), json.JSONDecoder(), 0, []
while True:
    while i < len(text) and text[i].isspace(): i += 1
    if i >= len(text): break
    try: obj, i = dec.raw_decode(text, i)
    except ValueError: break
    out.append(obj["type"] + " " + obj["object"]["metadata"]["name"])
print("\n".join(out))' "$tmp/watch.json"
}
for _ in $(seq 50); do watch_events | grep -q 'DELETED watched' && break; sleep 0.1; done
kill "$(cat "$tmp/watch.pid")" 2>/dev/null
watch_events >"$tmp/watch.out"
if grep -qx 'ADDED watched' "$tmp/watch.out" && grep -qx 'DELETED watched' "$tmp/watch.out"; then
  ok "kubectl get --watch sees ADDED and DELETED"
else
  bad "kubectl get --watch sees ADDED and DELETED" "$(cat "$tmp/watch.out")"
fi

# kubectl's imperative generators send protobuf, which the lab server does not speak: the
# refusal must say so (docs/lab-apiserver.md, "Not implemented").
refuse "protobuf bodies get a clear refusal" 'speaks JSON only' -- k create configmap imperative --from-literal=a=b

# --- delete
expect "kubectl delete" 'configmap "settings" deleted' -- k delete configmap settings
refuse "kubectl get after delete is NotFound" 'NotFound' -- k get configmap settings
expect "kubectl delete -f the CRD" 'deleted' -- k delete -f "$here/manifests/widget-crd.yaml"
refuse "its custom resources went with it" "the server doesn't have a resource type|NotFound" -- k get widgets

# --- Debian's Python client
if /usr/bin/python3 -c 'import kubernetes' 2>/dev/null; then
  out=$(/usr/bin/python3 "$here/python_client_check.py" "$tmp/kubeconfig" 2>&1); rc=$?
  echo "$out" | sed 's/^/  py: /'
  if [ $rc -eq 0 ]; then ok "python3-kubernetes list/watch/patch"; else bad "python3-kubernetes list/watch/patch"; fi
else
  echo "SKIP: python3-kubernetes is not installed (scripts/deps.sh installs it)"
fi

finish
