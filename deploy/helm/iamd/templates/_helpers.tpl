{{- define "iamd.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "iamd.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "iamd.labels" -}}
app.kubernetes.io/name: {{ include "iamd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "iamd.selector" -}}
app.kubernetes.io/name: {{ include "iamd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* A bundle path as a ConfigMap key: `/` is not allowed in keys. */}}
{{- define "iamd.key" -}}
{{- . | replace "/" "." -}}
{{- end -}}
