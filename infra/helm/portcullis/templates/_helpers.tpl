{{/* Template helpers of the Portcullis chart: names (≤ 63 characters), labels, selectors, the rendered config. */}}

{{/* The chart name, or nameOverride. */}}
{{- define "portcullis.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name; short enough that "-<component>" suffixes stay within 63 characters. */}}
{{- define "portcullis.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of one component's objects: <fullname>-<component>. Call with (dict "root" $ "component" "gateway"). */}}
{{- define "portcullis.componentName" -}}
{{- printf "%s-%s" (include "portcullis.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "portcullis.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "portcullis.labels" -}}
helm.sh/chart: {{ include "portcullis.chart" . }}
{{ include "portcullis.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: portcullis
{{- end }}

{{- define "portcullis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "portcullis.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of one component's objects. Call with (dict "root" $ "component" "gateway"). */}}
{{- define "portcullis.componentLabels" -}}
{{ include "portcullis.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Selector of one component's pods: name, instance and component. */}}
{{- define "portcullis.componentSelectorLabels" -}}
{{ include "portcullis.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "portcullis.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "portcullis.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "portcullis.secretName" -}}
{{- default (printf "%s-secrets" (include "portcullis.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{/* The config file: .Values.config plus the cluster block from nats.servers / redis.url (config.cluster wins). */}}
{{- define "portcullis.config" -}}
{{- $servers := .Values.nats.servers }}
{{- if .Values.nats.enabled }}
{{- $servers = list (printf "nats://%s-nats:4222" .Release.Name) }}
{{- end }}
{{- $redisUrl := .Values.redis.url }}
{{- if .Values.redis.enabled }}
{{- $redisUrl = printf "redis://%s-redis-master:6379" .Release.Name }}
{{- end }}
{{- $cluster := dict "cluster" (dict "nats" (dict "servers" $servers) "redis" (dict "url" $redisUrl)) }}
{{- $config := mustMergeOverwrite $cluster (deepCopy .Values.config) }}
{{- toYaml $config }}
{{- end }}
