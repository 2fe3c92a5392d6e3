{{/* Chart name, overridable with .Values.nameOverride. */}}
{{- define "iotpipe-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name (63 chars max: DNS label). Reuses the release name when it already contains the chart name.
*/}}
{{- define "iotpipe-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "iotpipe-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Common labels on every object of the chart. */}}
{{- define "iotpipe-operator.labels" -}}
helm.sh/chart: {{ include "iotpipe-operator.chart" . }}
{{ include "iotpipe-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: iotpipe
{{- end }}

{{/* Selector labels: stable for the lifetime of a release (Deployment selectors are immutable). */}}
{{- define "iotpipe-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "iotpipe-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The ServiceAccount the operator runs as (created by the chart unless serviceAccount.create=false). */}}
{{- define "iotpipe-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "iotpipe-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference from {repository, tag, digest}: a digest wins over the tag; the tag falls back to the chart's
appVersion. Call with (dict "image" .Values.image "root" .).
*/}}
{{- define "iotpipe-operator.imageRef" -}}
{{- $img := .image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .root.Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end }}

{{/*
The namespaces the operator watches (and gets namespaced Roles in), as a list: empty when it watches every namespace
(watchAnyNamespace), otherwise watchNamespaces or, when that is empty, the release namespace.
Usage: {{ range (include "iotpipe-operator.watchNamespaces" . | fromJsonArray) }}
*/}}
{{- define "iotpipe-operator.watchNamespaces" -}}
{{- if .Values.watchAnyNamespace -}}
{{- list | toJson -}}
{{- else if .Values.watchNamespaces -}}
{{- .Values.watchNamespaces | uniq | toJson -}}
{{- else -}}
{{- list .Release.Namespace | toJson -}}
{{- end -}}
{{- end }}
