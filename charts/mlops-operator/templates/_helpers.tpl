{{/* Chart name, overridable. */}}
{{- define "mlops-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Base name of every resource: the release name, unless it already holds the chart name. */}}
{{- define "mlops-operator.fullname" -}}
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

{{- define "mlops-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlops-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mlops-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "mlops-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mlops-operator
{{- end }}

{{- define "mlops-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mlops-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* "true" when the operator watches the whole cluster. */}}
{{- define "mlops-operator.clusterwide" -}}
{{- if not .Values.watch.namespaces }}true{{ end }}
{{- end }}

{{/* "true" when kopf peering is on: several replicas, or asked for. */}}
{{- define "mlops-operator.peering" -}}
{{- if or (gt (int .Values.replicas) 1) .Values.peering.enabled }}true{{ end }}
{{- end }}

{{/* <image.registry>/<repository>:<tag>, called with (list $ repository). */}}
{{- define "mlops-operator.imageOf" -}}
{{- $ := index . 0 }}
{{- $repository := index . 1 }}
{{- $tag := default $.Chart.AppVersion $.Values.image.tag }}
{{- with $.Values.image.registry }}
{{- printf "%s/%s:%s" (trimSuffix "/" .) $repository $tag }}
{{- else }}
{{- printf "%s:%s" $repository $tag }}
{{- end }}
{{- end }}

{{- define "mlops-operator.image" -}}
{{- include "mlops-operator.imageOf" (list . .Values.image.repository) }}
{{- end }}

{{- define "mlops-operator.runtimeImage" -}}
{{- default (include "mlops-operator.imageOf" (list . .Values.image.runtimeRepository)) .Values.settings.runtimeImage }}
{{- end }}

{{/* "true" when the operator reads Secrets and the chart grants it apart, per namespace. */}}
{{- define "mlops-operator.secretsApart" -}}
{{- if and .Values.settings.s3.checkCredentials .Values.rbac.secretNamespaces }}true{{ end }}
{{- end }}

{{/* "true" when the operator's main rules include reading Secrets. */}}
{{- define "mlops-operator.secretsWithRules" -}}
{{- if and .Values.settings.s3.checkCredentials (not .Values.rbac.secretNamespaces) }}true{{ end }}
{{- end }}
