{{/* Chart name, truncated to the 63 characters that label values allow. */}}
{{- define "northflank-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: <release>-<chart>, or the release name when it contains the chart name. */}}
{{- define "northflank-exporter.fullname" -}}
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

{{- define "northflank-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "northflank-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "northflank-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "northflank-exporter.labels" -}}
helm.sh/chart: {{ include "northflank-exporter.chart" . }}
{{ include "northflank-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: northflank-exporter
{{- end }}

{{- define "northflank-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "northflank-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Secret that holds the API token: existingSecret, or the one named like the release. */}}
{{- define "northflank-exporter.tokenSecretName" -}}
{{- default (include "northflank-exporter.fullname" .) .Values.existingSecret }}
{{- end }}

{{- define "northflank-exporter.webConfigSecretName" -}}
{{- default (printf "%s-web-config" (include "northflank-exporter.fullname" .)) .Values.webConfig.existingSecret }}
{{- end }}

{{- define "northflank-exporter.webConfigEnabled" -}}
{{- if or .Values.webConfig.existingSecret .Values.webConfig.config }}true{{ end }}
{{- end }}

{{- define "northflank-exporter.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "northflank-exporter.scheme" -}}
{{- if .Values.webConfig.tls }}HTTPS{{ else }}HTTP{{ end }}
{{- end }}

{{/* A number without float formatting: 900 rather than 900.0 or 9e+02. */}}
{{- define "northflank-exporter.number" -}}
{{- $v := . -}}
{{- if eq (float64 $v) (float64 (int64 $v)) }}{{ int64 $v }}{{ else }}{{ $v }}{{ end }}
{{- end }}

{{/* NORTHFLANK_BUDGETS: "*=300,team-a=500" (empty when no team budget is set). */}}
{{- define "northflank-exporter.budgets" -}}
{{- $parts := list }}
{{- if not (kindIs "invalid" .Values.budgets.default) }}
{{- $parts = append $parts (printf "*=%s" (include "northflank-exporter.number" .Values.budgets.default)) }}
{{- end }}
{{- range $team, $amount := .Values.budgets.teams }}
{{- $parts = append $parts (printf "%s=%s" $team (include "northflank-exporter.number" $amount)) }}
{{- end }}
{{- join "," $parts }}
{{- end }}

{{/* The exporter's staleness bound in seconds, as the exporter computes it. */}}
{{- define "northflank-exporter.stalenessSeconds" -}}
{{- if not (kindIs "invalid" .Values.config.maxStalenessSeconds) }}
{{- include "northflank-exporter.number" .Values.config.maxStalenessSeconds }}
{{- else }}
{{- max 3600 (mul 3 (ceil .Values.config.pollIntervalSeconds | int64)) }}
{{- end }}
{{- end }}

{{/* PromQL matchers that select this release's series. */}}
{{- define "northflank-exporter.ruleSelector" -}}
{{- if .Values.prometheusRule.selector }}
{{- .Values.prometheusRule.selector }}
{{- else }}
{{- printf "job=%q, namespace=%q" (include "northflank-exporter.fullname" .) .Release.Namespace }}
{{- end }}
{{- end }}

{{/* "for" and "labels" of an alert: (list $root $cfg) */}}
{{- define "northflank-exporter.alertLabels" -}}
{{- $root := index . 0 }}
{{- $cfg := index . 1 -}}
for: {{ $cfg.for }}
labels:
  severity: {{ $cfg.severity }}
  {{- with $root.Values.prometheusRule.alertLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/* runbook_url annotation of an alert, when prometheusRule.runbookUrl is set: (list $root "AlertName") */}}
{{- define "northflank-exporter.runbook" -}}
{{- $root := index . 0 }}
{{- $name := index . 1 }}
{{- with $root.Values.prometheusRule.runbookUrl -}}
runbook_url: {{ printf "%s#%s" . (lower $name) | quote }}
{{- end }}
{{- end }}

{{/* Where the state file's volume is mounted (NORTHFLANK_STATE_FILE is state.json in it). */}}
{{- define "northflank-exporter.stateDir" -}}
/var/lib/northflank-exporter
{{- end }}

{{/* Claim that holds the state: persistence.existingClaim, or the one the chart makes. */}}
{{- define "northflank-exporter.claimName" -}}
{{- default (include "northflank-exporter.fullname" .) .Values.persistence.existingClaim }}
{{- end }}

{{/* Settings that the schema cannot check one by one: the unbilled breakdown goes at
most as deep as the invoice's (the contract: NORTHFLANK_UNBILLED_DEPTH is at most
NORTHFLANK_DEPTH). */}}
{{- define "northflank-exporter.checkSettings" -}}
{{- $rank := dict "team" 0 "project" 1 "resource" 2 }}
{{- if gt (get $rank .Values.config.unbilledDepth) (get $rank .Values.config.depth) }}
{{- fail (printf "config.unbilledDepth (%s) goes deeper than config.depth (%s): the breakdown of the spend not yet invoiced goes at most as deep as the invoice's; set config.unbilledDepth=%s, or config.depth=%s" .Values.config.unbilledDepth .Values.config.depth .Values.config.depth .Values.config.unbilledDepth) }}
{{- end }}
{{- end }}
