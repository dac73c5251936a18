#!/usr/bin/env bash
# The MCS sync end to end, with the real binaries: two clusters (east, which also hosts the
# broker, and west), each a cw-lab-apiserver with its own cw-operator, set up and changed with
# kubectl; west runs cw-dns with unbound in front as its CoreDNS would be. A Service exported
# in east resolves by name in west, through unbound; headless endpoints get their own names;
# an export of the same Service with another type in west is a Conflict on both exports; a
# namespace west lacks gets no import until it exists; unexporting, or deleting the peering,
# makes the name NXDOMAIN. Loopback only; only the processes started here are stopped.
# Usage: service_sync_test.sh OPERATOR DNS APISERVER REPO_ROOT
# Debugging: KEEP=1 keeps the logs (the folder is printed), PAUSE=SECONDS stops after the first
# export resolves, with everything running; OP_LOG_LEVEL=debug logs every import pass.
set -u
operator=$1 dns=$2 apiserver=$3 root=$4
for tool in kubectl dig unbound unbound-checkconf python3 curl; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is not installed (scripts/deps.sh installs it)"; exit 77; }
done
tmp=$(mktemp -d /tmp/cw-mcs-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  [ -n "${KEEP:-}" ] && echo "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT
. "$(dirname "$0")/../lib/check.sh"

# --- two API servers: east also serves as the broker
start_server() {  # NAME SERVICE_CIDR
  "$apiserver" --kubeconfig "$tmp/$1.kc" --ready-file "$tmp/$1.ready" --service-cidr "$2" >"$tmp/$1-api.log" 2>&1 &
  pids+=($!)
  wait_for 10 "[ -s $tmp/$1.ready ]" || { echo "FAIL: the $1 API server did not start"; cat "$tmp/$1-api.log"; exit 1; }
}
start_server east 10.96.0.0/16
start_server west 10.97.0.0/16
E() { kubectl --kubeconfig "$tmp/east.kc" --request-timeout=10s "$@"; }
W() { kubectl --kubeconfig "$tmp/west.kc" --request-timeout=10s "$@"; }
for c in E W; do
  $c apply --validate=false -f "$root/crds/" >/dev/null || { echo "FAIL: CRDs on $c"; exit 1; }
done

node_yaml() {  # NAME KEY ENDPOINT
  cat <<YAML
apiVersion: v1
kind: Node
metadata:
  name: $1
  annotations: {clusterwire.io/public-key: "$2", clusterwire.io/endpoint: "$3"}
status:
  addresses: [{type: InternalIP, address: "${3%:*}"}]
  conditions: [{type: Ready, status: "True"}]
YAML
}
cat >"$tmp/broker.yaml" <<'YAML'
apiVersion: v1
kind: Namespace
metadata: {name: clusterwire-broker}
---
apiVersion: clusterwire.io/v1alpha1
kind: ClusterSet
metadata: {name: default, namespace: clusterwire-broker}
spec:
  ipv4: {pools: [10.64.0.0/12], clusterPrefixLength: 16, nodePrefixLength: 24}
YAML
E apply --validate=false -f "$tmp/broker.yaml" >/dev/null
node_yaml east-1 "9YtV7g8b1oV6YQe0fM0cZ3y8Jm3x7b2KZ0v5yq3u8Xo=" 192.0.2.1:51820 | E apply --validate=false -f - >/dev/null
node_yaml west-1 "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=" 192.0.2.2:51820 | W apply --validate=false -f - >/dev/null
for ns in demo; do
  printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n' $ns | E apply --validate=false -f - >/dev/null
  printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n' $ns | W apply --validate=false -f - >/dev/null
done
printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: only-east}\n' | E apply --validate=false -f - >/dev/null

# --- operators
start_operator() {  # NAME SERVICE_CIDR
  "$operator" --cluster-id "$1" --kubeconfig "$tmp/$1.kc" --broker-kubeconfig "$tmp/east.kc" --service-cidr "$2" \
    --no-leader-election --health-address 127.0.0.1 --health-port 0 --heartbeat-seconds 2 --log-level "${OP_LOG_LEVEL:-info}" >"$tmp/$1-op.log" 2>&1 &
  pids+=($!)
}
start_operator east 10.96.0.0/16
start_operator west 10.97.0.0/16

# --- west's DNS, and unbound in front of it as west's CoreDNS
P=$(free_port) HP=$(free_port)
"$dns" --cluster-id west --kubeconfig "$tmp/west.kc" --address 127.0.0.1 --port "$P" --ttl 1 \
  --health-address 127.0.0.1 --health-port "$HP" --threads 1 >"$tmp/dns.log" 2>&1 &
pids+=($!)
wait_for 10 'grep -q "listening on" "$tmp/dns.log"' && ok "cw-dns serves" || bad "cw-dns did not start" "$(cat "$tmp/dns.log")"
wait_for 10 'curl -sf http://127.0.0.1:$HP/readyz' && ok "cw-dns is ready once its caches synced" \
  || bad "cw-dns /readyz" "$(curl -s http://127.0.0.1:$HP/readyz)"
U=$(free_port)
mkdir -p "$tmp/unbound"
unbound_conf "$tmp/unbound" "$U" '  cache-max-negative-ttl: 1
forward-zone:
  name: "clusterset.local."
  forward-addr: 127.0.0.1@'"$P" >"$tmp/unbound/unbound.conf"
unbound-checkconf "$tmp/unbound/unbound.conf" >/dev/null || bad "unbound-checkconf" "$(unbound-checkconf "$tmp/unbound/unbound.conf" 2>&1)"
unbound -d -c "$tmp/unbound/unbound.conf" >"$tmp/unbound/log" 2>&1 &
pids+=($!)
wait_for 10 'dig @127.0.0.1 -p $U +time=1 +tries=1 dns-version.clusterset.local TXT | grep -q 1.0.0' \
  && ok "unbound forwards clusterset.local to cw-dns" || bad "unbound did not start" "$(cat "$tmp/unbound/log")"
# R NAME [TYPE]: west's resolver, as a pod in west would ask it.
R() { dig @127.0.0.1 -p "$U" +time=2 +tries=1 "$@"; }
D() { dig @127.0.0.1 -p "$P" +time=2 +tries=1 "$@"; }

# --- peer the clusters
peering() { printf 'apiVersion: clusterwire.io/v1alpha1\nkind: ClusterPeering\nmetadata: {name: %s}\nspec: {remoteClusterID: %s}\n' "$1" "$1"; }
peering west | E apply --validate=false -f - >/dev/null
peering east | W apply --validate=false -f - >/dev/null
if wait_for 20 'W get clusterpeering east -o jsonpath="{.status.phase}" | grep -qx Connected'; then
  ok "the peering is Connected in west"
else
  bad "peering" "$(W get clusterpeering east -o json | python3 -c 'import json,sys; print(json.load(sys.stdin).get("status"))')"
fi

# --- export a ClusterSetIP Service and a headless one from east
cat >"$tmp/export.yaml" <<'YAML'
apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  selector: {app: web}
  ports: [{name: http, protocol: TCP, port: 80}]
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {name: web, namespace: demo}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: demo}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: sql, protocol: TCP, port: 5432}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-abcde
  namespace: demo
  labels: {kubernetes.io/service-name: db}
addressType: IPv4
ports: [{name: sql, protocol: TCP, port: 5432}]
endpoints:
- {addresses: [10.64.0.10], hostname: db-0, conditions: {ready: true}}
- {addresses: [10.64.0.11], hostname: db-1, conditions: {ready: false}}
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {name: db, namespace: demo}
---
apiVersion: v1
kind: Service
metadata: {name: lonely, namespace: only-east}
spec:
  ports: [{name: http, protocol: TCP, port: 80}]
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {name: lonely, namespace: only-east}
YAML
start=$(date +%s%N)
E apply --validate=false -f "$tmp/export.yaml" >/dev/null || bad "applying the exports"
web_ip=$(E -n demo get service web -o jsonpath='{.spec.clusterIP}')
if wait_for 20 'R web.demo.svc.clusterset.local A +short | grep -qx "$web_ip"'; then
  ok "web.demo.svc.clusterset.local resolves in west to east's service IP $web_ip ($(( ($(date +%s%N) - start) / 1000000 )) ms after the export)"
else
  bad "web not resolved in west" "$(R web.demo.svc.clusterset.local A | grep -E 'status|IN')" "$(tail -5 "$tmp/east-op.log")" "$(tail -5 "$tmp/west-op.log")"
fi
[ -n "${PAUSE:-}" ] && { echo "paused: $tmp"; sleep "$PAUSE"; }
wait_for 10 'E -n clusterwire-broker get exportedservice east.demo.web' && ok "the broker holds east.demo.web" \
  || bad "no export record" "$(E -n clusterwire-broker get exportedservices 2>&1)"
if wait_for 10 'E -n demo get serviceexport web -o jsonpath="{.status.conditions[?(@.type==\"Valid\")].status}" | grep -qx True'; then
  ok "east's ServiceExport web is Valid"; else bad "Valid condition" "$(E -n demo get serviceexport web -o jsonpath='{.status}')"; fi
out=$(W -n demo get serviceimport web -o jsonpath='{.spec.type} {.spec.ports[0].port} {.spec.ips[0]} {.status.clusters[0].cluster}')
[ "$out" = "ClusterSetIP 80 $web_ip east" ] && ok "west's ServiceImport web: $out" || bad "ServiceImport web" "$out"
out=$(W -n demo get endpointslices -l multicluster.kubernetes.io/service-name=web,multicluster.kubernetes.io/source-cluster=east -o jsonpath='{.items[*].metadata.name}')
[ "$out" = "web.east.ipv4" ] && ok "west has the EndpointSlice web.east.ipv4, with the KEP's labels" || bad "imported slice" "$out"
expect_srv=$(R _http._tcp.web.demo.svc.clusterset.local SRV +short)
grep -q '80 web.demo.svc.clusterset.local.' <<<"$expect_srv" && ok "SRV for the named port" || bad "SRV" "$expect_srv"
out=$(R db.demo.svc.clusterset.local A +short)
[ "$out" = "10.64.0.10" ] && ok "headless db resolves to its one ready endpoint" || bad "headless db" "$out"
out=$(R db-0.east.db.demo.svc.clusterset.local A +short)
[ "$out" = "10.64.0.10" ] && ok "db-0.east.db.demo.svc.clusterset.local names the endpoint" || bad "endpoint name" "$out"
R east.db.demo.svc.clusterset.local A | grep -q 'status: NOERROR' && ! R east.db.demo.svc.clusterset.local A +short | grep -q . \
  && ok "<cluster>.<svc>... has no records of its own (the spec forbids them)" || bad "cluster name records"
R lonely.only-east.svc.clusterset.local A | grep -q 'status: NXDOMAIN' && ok "no import where the namespace does not exist" \
  || bad "import without namespace" "$(R lonely.only-east.svc.clusterset.local A +short)"
W -n only-east get serviceimports 2>&1 | grep -q 'lonely' && bad "a ServiceImport appeared in a missing namespace" || ok "and no namespace was created for it"
printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: only-east}\n' | W apply --validate=false -f - >/dev/null
wait_for 10 'D lonely.only-east.svc.clusterset.local A +short | grep -q .' && ok "the import appears once west has the namespace" \
  || bad "import after namespace" "$(W -n only-east get serviceimports 2>&1)"

# --- the Service changes: the import follows
E -n demo patch endpointslice db-abcde --type=merge -p '{"endpoints":[{"addresses":["10.64.0.10"],"hostname":"db-0","conditions":{"ready":true}},{"addresses":["10.64.0.11"],"hostname":"db-1","conditions":{"ready":true}}]}' >/dev/null
wait_for 10 '[ "$(D db.demo.svc.clusterset.local A +short | sort | tr "\n" " ")" = "10.64.0.10 10.64.0.11 " ]' \
  && ok "an endpoint turning ready is served in west" || bad "endpoint update" "$(D db.demo.svc.clusterset.local A +short)"

# --- a conflict: west exports db too, but as a ClusterSetIP Service
cat >"$tmp/west-db.yaml" <<'YAML'
apiVersion: v1
kind: Service
metadata: {name: db, namespace: demo}
spec:
  ports: [{name: sql, protocol: TCP, port: 5432}]
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {name: db, namespace: demo}
YAML
sleep 1  # a later creationTimestamp (one-second resolution): east's export stays the oldest
W apply --validate=false -f "$tmp/west-db.yaml" >/dev/null
cond='{.status.conditions[?(@.type=="Conflict")].status}'
if wait_for 10 'W -n demo get serviceexport db -o jsonpath="$cond" | grep -qx True' &&
   wait_for 10 'E -n demo get serviceexport db -o jsonpath="$cond" | grep -qx True'; then
  ok "a type conflict sets Conflict=True on both exports"
  msg=$(W -n demo get serviceexport db -o jsonpath='{.status.conditions[?(@.type=="Conflict")].message}')
  grep -q 'cluster east' <<<"$msg" && ok "  and says the oldest export (east's) is used: $msg" || bad "conflict message" "$msg"
else
  bad "conflict" "$(W -n demo get serviceexport db -o jsonpath='{.status}')" "$(E -n demo get serviceexport db -o jsonpath='{.status}')"
fi
out=$(W -n demo get serviceimport db -o jsonpath='{.spec.type}')
[ "$out" = "Headless" ] && ok "the import keeps the oldest export's type" || bad "type after conflict" "$out"
W -n demo delete serviceexport db --wait=false >/dev/null
wait_for 10 'E -n demo get serviceexport db -o jsonpath="$cond" | grep -qx False' && ok "removing west's export clears east's Conflict" \
  || bad "conflict not cleared" "$(E -n demo get serviceexport db -o jsonpath='{.status}')"

# --- bad input: a malformed record on the broker is reported, and nothing else changes
cat >"$tmp/bad.yaml" <<'YAML'
apiVersion: clusterwire.io/v1alpha1
kind: ExportedService
metadata: {name: ghost.demo.web, namespace: clusterwire-broker}
spec: {clusterID: ghost, namespace: demo, service: web, type: ClusterSetIP, exportedAt: "2020-01-01T00:00:00Z", ports: [{name: http, protocol: TCP, port: 8080}], serviceIPs: [10.98.0.1]}
YAML
if E apply --validate=false -f "$tmp/bad.yaml" >/dev/null 2>&1; then
  sleep 1
  out=$(R web.demo.svc.clusterset.local A +short)
  [ "$out" = "$web_ip" ] && ok "an unreachable cluster's record is not served" || bad "ghost record served" "$out"
  # A cluster that is gone (never peered here) and exported first, on another port, decides
  # nothing in west: the import keeps east's port; the clusterset-wide conflict is reported.
  out=$(W -n demo get serviceimport web -o jsonpath='{.spec.ports[*].port}')
  [ "$out" = "80" ] && ok "  and it does not change west's import (port 80, not the ghost's 8080)" || bad "ghost decides the port" "$out"
  R _http._tcp.web.demo.svc.clusterset.local SRV +short | grep -q '^0 100 80 ' && ok "  nor the SRV port" \
    || bad "SRV port" "$(R _http._tcp.web.demo.svc.clusterset.local SRV +short)"
  E -n clusterwire-broker delete exportedservice ghost.demo.web >/dev/null
else
  bad "could not apply a ghost record"
fi

# --- a ServiceImport another implementation made is left alone, and gets none of our slices
cat >"$tmp/foreign.yaml" <<'YAML'
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceImport
metadata: {name: other, namespace: demo}
spec: {type: ClusterSetIP, ports: [{name: x, protocol: TCP, port: 1}]}
---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: demo}
spec:
  ports: [{name: http, protocol: TCP, port: 80}]
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {name: other, namespace: demo}
YAML
W apply --validate=false -f <(sed -n '1,4p' "$tmp/foreign.yaml") >/dev/null
E apply --validate=false -f <(sed -n '6,$p' "$tmp/foreign.yaml") >/dev/null
wait_for 10 'E -n clusterwire-broker get exportedservice east.demo.other' || bad "other was not exported"
sleep 1
out=$(W -n demo get serviceimport other -o jsonpath='{.spec.ports[0].port} {.metadata.labels}')
[ "$out" = "1 " ] && ok "a ServiceImport clusterwire did not make is left as it was" || bad "foreign import changed" "$out"
out=$(W -n demo get endpointslices -l multicluster.kubernetes.io/service-name=other -o name)
[ -z "$out" ] && ok "  and gets no EndpointSlices from us" || bad "slices added to a foreign import" "$out"

# --- the broker fails: the export says so (Ready=False, with the error), and recovers
server=$(sed -n 's/^ *server: *//p' "$tmp/east.kc" | head -1)
# The admin's client certificate, from the kubeconfig cw-lab-apiserver wrote.
(umask 077
 sed -n 's/^ *client-certificate-data: *//p' "$tmp/east.kc" | base64 -d >"$tmp/east-admin.crt"
 sed -n 's/^ *client-key-data: *//p' "$tmp/east.kc" | base64 -d >"$tmp/east-admin.key")
faults() { curl -sfk --cert "$tmp/east-admin.crt" --key "$tmp/east-admin.key" -X POST "$server/lab/faults" -d "$1" >/dev/null; }
faults '{"failNext": {"count": 100000, "code": 503, "pathPrefix": "/apis/clusterwire.io/v1alpha1/namespaces/clusterwire-broker/exportedservices"}}' \
  || bad "could not inject faults into the broker"
cat >"$tmp/api.yaml" <<'YAML'
apiVersion: v1
kind: Service
metadata: {name: api, namespace: demo}
spec:
  ports: [{name: grpc, protocol: TCP, port: 9090}]
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {name: api, namespace: demo}
YAML
E apply --validate=false -f "$tmp/api.yaml" >/dev/null
ready='{.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].reason}'
if wait_for 10 'E -n demo get serviceexport api -o jsonpath="$ready" | grep -qx "False BrokerUnavailable"'; then
  msg=$(E -n demo get serviceexport api -o jsonpath='{.status.conditions[?(@.type=="Ready")].message}')
  grep -q '503' <<<"$msg" && ok "a broker that fails: the export is Ready=False BrokerUnavailable, with the error" \
    || bad "Ready message lacks the error" "$msg"
else
  bad "no Ready=False while the broker fails" "$(E -n demo get serviceexport api -o jsonpath='{.status}')"
fi
out=$(R web.demo.svc.clusterset.local A +short)
[ "$out" = "$web_ip" ] && ok "  and what was exported before is still served in west" || bad "old export lost during the fault" "$out"
faults '{"failNext": {"count": 0}}'
E -n demo annotate serviceexport api retry=now --overwrite >/dev/null  # wake it now rather than after its backoff
wait_for 10 'E -n demo get serviceexport api -o jsonpath="$ready" | grep -qx "True Published"' \
  && wait_for 10 'R api.demo.svc.clusterset.local A +short | grep -q .' \
  && ok "once the broker answers again: Ready=True, and api resolves in west" \
  || bad "no recovery" "$(E -n demo get serviceexport api -o jsonpath='{.status}')"
grep -q 'reconcile failed; retrying with backoff.*key=demo/api' "$tmp/east-op.log" \
  && ok "  the operator logged the failed passes with the key and the error" || bad "no log of the failed passes"

# --- the peering goes: west no longer resolves east's Services
W delete clusterpeering east >/dev/null
wait_for 10 'R web.demo.svc.clusterset.local A | grep -q "status: NXDOMAIN"' && ok "deleting west's peering makes web NXDOMAIN in west" \
  || bad "name still served without a peering" "$(R web.demo.svc.clusterset.local A +short)"
wait_for 10 '! W -n demo get serviceimport web' && ok "and its ServiceImport is removed" || bad "import kept"
peering east | W apply --validate=false -f - >/dev/null
wait_for 20 'R web.demo.svc.clusterset.local A +short | grep -qx "$web_ip"' && ok "re-applying it brings the name back" \
  || bad "name not back" "$(W get clusterpeering east -o jsonpath='{.status.phase}')"

# --- unexport: the name goes NXDOMAIN in west
start=$(date +%s%N)
E -n demo delete serviceexport web >/dev/null
if wait_for 15 'R web.demo.svc.clusterset.local A | grep -q "status: NXDOMAIN"'; then
  ok "unexporting web makes it NXDOMAIN in west ($(( ($(date +%s%N) - start) / 1000000 )) ms, resolver TTL 1 s)"
else
  bad "still resolvable after unexport" "$(R web.demo.svc.clusterset.local A +short)"
fi
wait_for 10 '! E -n clusterwire-broker get exportedservice east.demo.web' && ok "the broker record is gone" || bad "record kept"
wait_for 10 '! W -n demo get endpointslice web.east.ipv4' && ok "west's imported slice is gone" || bad "slice kept"
R db.demo.svc.clusterset.local A +short | grep -q 10.64.0.10 && ok "the other export is untouched" || bad "db lost"

# --- leave withdraws the cluster's exports
kill "${pids[2]}" 2>/dev/null; wait "${pids[2]}" 2>/dev/null  # east's operator
out=$("$operator" --cluster-id east --kubeconfig "$tmp/east.kc" leave 2>&1) || bad "leave" "$out"
E -n clusterwire-broker get exportedservices -o name | grep -q . && bad "exports left after leave" "$(E -n clusterwire-broker get exportedservices -o name)" \
  || ok "cw-operator leave withdraws east's exports"

key=$(sed -n 's/^ *client-key-data: *//p' "$tmp/west.kc" | head -1)
[ -n "$key" ] && ! grep -qF "${key:0:40}" "$tmp/dns.log" "$tmp/west-op.log" && ! grep -q 'PRIVATE KEY' "$tmp/dns.log" "$tmp/west-op.log" \
  && ok "the API client key never appears in the logs" || bad "client key in logs (or none found)"
finish
