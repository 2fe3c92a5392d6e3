{{/* Chart name, overridable with .Values.nameOverride. */}}
{{- define "iotpipe-platform.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Name prefix of every object: the release name (or fullnameOverride), so release "platform" gives platform-kafka,
platform-hbase, platform-grafana (the addresses examples/pipeline.yaml uses). At most 40 characters, because
component suffixes ("-kafka-headless", ...) and StatefulSet pod/claim suffixes are appended and names stay within 63.
*/}}
{{- define "iotpipe-platform.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- end }}

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "iotpipe-platform.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Common labels. Call with (dict "root" . "component" "kafka"). */}}
{{- define "iotpipe-platform.labels" -}}
helm.sh/chart: {{ include "iotpipe-platform.chart" .root }}
{{ include "iotpipe-platform.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: iotpipe
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component. Call with (dict "root" . "component" "kafka"). */}}
{{- define "iotpipe-platform.selectorLabels" -}}
app.kubernetes.io/name: {{ include "iotpipe-platform.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
An image reference from {repository, tag, digest}: a digest wins over the tag; an empty tag means the chart's
appVersion. Call with (dict "image" .Values.kafka.image "root" .).
*/}}
{{- define "iotpipe-platform.imageRef" -}}
{{- $img := .image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .root.Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end }}

{{/* Names of the component objects. */}}
{{- define "iotpipe-platform.kafka.fullname" -}}{{ include "iotpipe-platform.fullname" . }}-kafka{{- end }}
{{- define "iotpipe-platform.kafka.headless" -}}{{ include "iotpipe-platform.fullname" . }}-kafka-headless{{- end }}
{{- define "iotpipe-platform.hbase.fullname" -}}{{ include "iotpipe-platform.fullname" . }}-hbase{{- end }}
{{/* The Thrift Service is the one HBase endpoint clients use, so it carries the plain "-hbase" name. */}}
{{- define "iotpipe-platform.hbase.thrift" -}}{{ include "iotpipe-platform.fullname" . }}-hbase{{- end }}
{{- define "iotpipe-platform.grafana.fullname" -}}{{ include "iotpipe-platform.fullname" . }}-grafana{{- end }}

{{/* The in-cluster bootstrap address of Kafka (what an IoTPipeline's spec.kafka.bootstrapServers should name). */}}
{{- define "iotpipe-platform.kafka.bootstrap" -}}
{{- printf "%s.%s.svc:%d" (include "iotpipe-platform.kafka.fullname" .) .Release.Namespace (int .Values.kafka.port) -}}
{{- end }}

{{/* A StatefulSet volumeClaimTemplate or nothing. Call with (dict "name" "data" "p" .Values.kafka.persistence). */}}
{{- define "iotpipe-platform.claimTemplate" -}}
- metadata:
    name: {{ .name }}
  spec:
    accessModes: [ReadWriteOnce]
    {{- with .p.storageClassName }}
    storageClassName: {{ . | quote }}
    {{- end }}
    resources:
      requests:
        storage: {{ .p.size | quote }}
{{- end }}

{{/* Base URL of the websocket bridge's HTTP API that Grafana's datasource queries. */}}
{{- define "iotpipe-platform.grafana.bridgeUrl" -}}
{{- if .Values.grafana.bridgeUrl -}}
{{- .Values.grafana.bridgeUrl | trimSuffix "/" -}}
{{- else -}}
{{- $f := .Values.grafana.bridgeFrom -}}
{{- printf "http://%s-bridge.%s.svc:%d" $f.pipeline ($f.namespace | default .Release.Namespace) (int $f.port) -}}
{{- end -}}
{{- end }}
