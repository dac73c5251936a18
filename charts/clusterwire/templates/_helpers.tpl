{{/*
Names. Everything the chart makes is named after the release (prefix) and the component, so
two releases never collide; components' names stay under 63 characters.
*/}}
{{- define "clusterwire.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "clusterwire.operator.name" -}}{{ include "clusterwire.fullname" . }}-operator{{- end -}}
{{- define "clusterwire.nodeAgent.name" -}}{{ include "clusterwire.fullname" . }}-node-agent{{- end -}}
{{- define "clusterwire.dns.name" -}}{{ include "clusterwire.fullname" . }}-dns{{- end -}}

{{/* Labels every object carries. */}}
{{- define "clusterwire.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
clusterwire.io/cluster-id: {{ .Values.clusterID | quote }}
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "operator"). */}}
{{- define "clusterwire.selectorLabels" -}}
app.kubernetes.io/name: {{ .ctx.Chart.Name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels of one component's objects: (dict "ctx" $ "component" "operator"). */}}
{{- define "clusterwire.componentLabels" -}}
{{ include "clusterwire.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* A component's image: (dict "ctx" $ "name" "cw-operator"). */}}
{{- define "clusterwire.image" -}}
{{- printf "%s/%s:%s" (.ctx.Values.image.repository | trimSuffix "/") .name (.ctx.Values.image.tag | default .ctx.Chart.AppVersion) -}}
{{- end -}}

{{/* Whether the operator reaches the broker through a kubeconfig (a remote broker). */}}
{{- define "clusterwire.remoteBroker" -}}
{{- if .Values.broker.server }}true{{ end -}}
{{- end -}}

{{/* The DNS endpoint the operator advertises (may be empty). */}}
{{- define "clusterwire.dnsEndpoint" -}}
{{- if .Values.operator.dnsEndpoint -}}
{{- .Values.operator.dnsEndpoint -}}
{{- else if .Values.dns.service.clusterIP -}}
{{- if contains ":" .Values.dns.service.clusterIP -}}
{{- printf "[%s]:53" .Values.dns.service.clusterIP -}}
{{- else -}}
{{- printf "%s:53" .Values.dns.service.clusterIP -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Checks across values that values.schema.json cannot express; each failure names the value.
*/}}
{{- define "clusterwire.validate" -}}
{{- range $list := list "podCIDRs" "serviceCIDRs" -}}
{{- $v4 := 0 -}}{{- $v6 := 0 -}}
{{- range (index $.Values $list) -}}
{{- if contains ":" . }}{{ $v6 = add1 $v6 }}{{ else }}{{ $v4 = add1 $v4 }}{{ end -}}
{{- end -}}
{{- if or (gt $v4 1) (gt $v6 1) -}}
{{- fail (printf "%s: at most one CIDR per family (IPv4, IPv6), got %v" $list (index $.Values $list)) -}}
{{- end -}}
{{- end -}}
{{- $mtu := int .Values.wireguard.mtu -}}
{{- if and (gt $mtu 0) (lt $mtu 1280) -}}
{{- fail (printf "wireguard.mtu: %d is below 1280, the least IPv6 allows (0: automatic, else 1280-65535)" $mtu) -}}
{{- end -}}
{{- if .Values.broker.enabled -}}
{{- $cs := .Values.broker.clusterSet -}}
{{- if and (empty $cs.ipv4.pools) (empty $cs.ipv6.pools) -}}
{{- fail "broker.clusterSet: broker.enabled needs pools in broker.clusterSet.ipv4.pools or broker.clusterSet.ipv6.pools" -}}
{{- end -}}
{{- range $family, $f := dict "ipv4" $cs.ipv4 "ipv6" $cs.ipv6 -}}
{{- if $f.pools -}}
{{- if gt (int $f.clusterPrefixLength) (int $f.nodePrefixLength) -}}
{{- fail (printf "broker.clusterSet.%s: clusterPrefixLength (%v) must not be longer than nodePrefixLength (%v)" $family $f.clusterPrefixLength $f.nodePrefixLength) -}}
{{- end -}}
{{- range $f.pools -}}
{{- $len := int (last (splitList "/" .)) -}}
{{- if gt $len (int $f.clusterPrefixLength) -}}
{{- fail (printf "broker.clusterSet.%s: pool %s is smaller than a cluster block (/%v)" $family . $f.clusterPrefixLength) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and (not .Values.broker.enabled) .Values.broker.members -}}
{{- fail "broker.members: member ServiceAccounts are made on the broker cluster only (set broker.enabled=true there)" -}}
{{- end -}}
{{- end -}}

{{/* The pod security context of the operator and the DNS server: no root, no privileges. */}}
{{- define "clusterwire.restrictedPodSecurity" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "clusterwire.restrictedContainerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* Preferred anti-affinity spreading one component's replicas over nodes. */}}
{{- define "clusterwire.spread" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "clusterwire.selectorLabels" . | nindent 12 }}
{{- end -}}

{{/*
The broker kubeconfig's volumes and mounts (operator and the leave hook), when the broker is
another cluster: the kubeconfig in a ConfigMap, the token (and CA) from the token Secret.
*/}}
{{- define "clusterwire.brokerVolumes" -}}
{{- if include "clusterwire.remoteBroker" . }}
- name: broker-kubeconfig
  configMap:
    name: {{ include "clusterwire.fullname" . }}-broker-kubeconfig
- name: broker-token
  secret:
    secretName: {{ .Values.broker.tokenSecret.name }}
    defaultMode: 0440
    items:
      - key: {{ .Values.broker.tokenSecret.tokenKey }}
        path: token
      {{- if not .Values.broker.caCert }}
      - key: {{ .Values.broker.tokenSecret.caKey }}
        path: ca.crt
      {{- end }}
{{- end }}
{{- end -}}

{{- define "clusterwire.brokerMounts" -}}
{{- if include "clusterwire.remoteBroker" . }}
- name: broker-kubeconfig
  mountPath: /etc/clusterwire/broker
  readOnly: true
- name: broker-token
  mountPath: /etc/clusterwire/broker-token
  readOnly: true
{{- end }}
{{- end -}}

{{/* The operator's flags that say which cluster and which broker (shared with the hook). */}}
{{- define "clusterwire.operatorBrokerArgs" -}}
- --cluster-id={{ .Values.clusterID }}
- --broker-namespace={{ .Values.broker.namespace }}
{{- if include "clusterwire.remoteBroker" . }}
- --broker-kubeconfig=/etc/clusterwire/broker/kubeconfig
{{- end }}
- --log-format={{ .Values.log.format }}
- --log-level={{ .Values.log.level }}
{{- end -}}
