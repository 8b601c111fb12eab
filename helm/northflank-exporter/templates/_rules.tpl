{{/* Alert rules of the PrometheusRule, by group; each renders a YAML list or nothing. */}}
{{- /* The current billing period's projection, as a factor on spend so far. Two ways:
  - invoiceToPeriod: the newest invoice's period is still running (start <= time() < end):
    its length / the time elapsed in it, once minSeconds of it have passed;
  - unbilledToPeriod: the newest invoice is finalized, the current period started at its
    end (northflank_unbilled_since_timestamp_seconds) and is taken to be as long as it:
    its length / the hours of usage summed so far, once minSeconds are summed and while
    that period has not ended (since + length > time()).
  Both take (list $root minSeconds) and render one parenthesised PromQL expression
  without currency, for "* ignoring (currency, ...) group_left ()". */}}
{{- define "northflank-exporter.periodLength" -}}
{{- $s := include "northflank-exporter.ruleSelector" . -}}
(northflank_invoice_period_end_timestamp_seconds{ {{- $s -}} } - northflank_invoice_period_start_timestamp_seconds{ {{- $s -}} })
{{- end }}

{{- define "northflank-exporter.unbilledElapsed" -}}
{{- $s := include "northflank-exporter.ruleSelector" . -}}
(northflank_unbilled_through_timestamp_seconds{ {{- $s -}} } - northflank_unbilled_since_timestamp_seconds{ {{- $s -}} })
{{- end }}

{{- define "northflank-exporter.invoiceToPeriod" -}}
{{- $root := index . 0 }}
{{- $min := index . 1 }}
{{- $s := include "northflank-exporter.ruleSelector" $root -}}
(
    {{ include "northflank-exporter.periodLength" $root }}
  / (time() - northflank_invoice_period_start_timestamp_seconds{ {{- $s -}} })
  and (northflank_invoice_period_end_timestamp_seconds{ {{- $s -}} } > time())
  and ((time() - northflank_invoice_period_start_timestamp_seconds{ {{- $s -}} }) >= {{ $min }})
)
{{- end }}

{{- define "northflank-exporter.unbilledToPeriod" -}}
{{- $root := index . 0 }}
{{- $min := index . 1 }}
{{- $s := include "northflank-exporter.ruleSelector" $root }}
{{- $periodLen := include "northflank-exporter.periodLength" $root }}
{{- $unbilledElapsed := include "northflank-exporter.unbilledElapsed" $root -}}
(
    {{ $periodLen }}
  / {{ $unbilledElapsed }}
  and ({{ $unbilledElapsed }} >= {{ $min }})
  and ((northflank_unbilled_since_timestamp_seconds{ {{- $s -}} } + {{ $periodLen }}) > time())
)
{{- end }}

{{- define "northflank-exporter.rulesHealth" -}}
{{- $s := include "northflank-exporter.ruleSelector" . }}
{{- $a := .Values.prometheusRule.alerts }}
{{- /* Failed polls are summed over max(1h, 2 x poll interval) for the reason. */}}
{{- $errWindow := printf "%ds" (max 3600 (mul 2 (ceil .Values.config.pollIntervalSeconds | int64)) | int64) }}
{{- with $a.NorthflankExporterDown }}{{ if .enabled }}
- alert: NorthflankExporterDown
  expr: up{ {{- $s -}} } == 0 or absent(up{ {{- $s -}} })
  {{- include "northflank-exporter.alertLabels" (list $ .) | nindent 2 }}
  annotations:
    summary: The Northflank exporter is down or not scraped.
    description: >-
      {{`Prometheus has not scraped the Northflank exporter {{ $labels.namespace }}/{{ $labels.job }}{{ with $labels.instance }} ({{ . }}){{ end }}`}}
      for {{ .for }}, or has no target for it: no cost figures are being collected.
    {{- include "northflank-exporter.runbook" (list $ "NorthflankExporterDown") | nindent 4 }}
{{- end }}{{ end }}
{{- with $a.NorthflankDataStale }}{{ if .enabled }}
{{- $maxAge := include "northflank-exporter.stalenessSeconds" $ }}
{{- if not (kindIs "invalid" .maxAgeSeconds) }}{{ $maxAge = include "northflank-exporter.number" .maxAgeSeconds }}{{ end }}
- alert: NorthflankDataStale
  expr: time() - northflank_last_success_timestamp_seconds{ {{- $s -}} } > {{ $maxAge }}
  {{- include "northflank-exporter.alertLabels" (list $ .) | nindent 2 }}
  annotations:
    summary: The Northflank exporter has had no successful poll for too long.
    description: >-
      {{`The last successful poll of the Northflank API by {{ $labels.namespace }}/{{ $labels.job }} ended {{ $value | humanizeDuration }} ago`}}
      (threshold {{ $maxAge }}s): its cost figures are stale, and past the exporter's
      staleness bound they are no longer served.
    {{- include "northflank-exporter.runbook" (list $ "NorthflankDataStale") | nindent 4 }}
{{- end }}{{ end }}
{{- with $a.NorthflankPollsFailing }}{{ if .enabled }}
- alert: NorthflankPollsFailing
  expr: northflank_up{ {{- $s -}} } == 0
  {{- include "northflank-exporter.alertLabels" (list $ .) | nindent 2 }}
  annotations:
    summary: Polls of the Northflank API are failing.
    description: >-
      {{`Polls of the Northflank API by {{ $labels.namespace }}/{{ $labels.job }} have failed`}}
      for {{ .for }}; the figures served are those of the last good poll. Failed polls in
      the last {{ $errWindow }} by reason:
      {{`{{ range $i, $r := printf "sum by (reason) (increase(northflank_poll_errors_total{job=%q, instance=%q}[`}}{{ $errWindow }}{{`])) > 0" $labels.job $labels.instance | query | sortByLabel "reason" }}{{ if $i }}, {{ end }}{{ $r.Labels.reason }} ({{ printf "%.0f" $r.Value }}){{ else }}none recorded{{ end }}.`}}
    {{- include "northflank-exporter.runbook" (list $ "NorthflankPollsFailing") | nindent 4 }}
{{- end }}{{ end }}
{{- with $a.NorthflankTokenExpiringSoon }}{{ if .enabled }}
{{- /* No sample for a token that never expires: the alert stays quiet then. */}}
- alert: NorthflankTokenExpiringSoon
  expr: northflank_token_expiry_timestamp_seconds{ {{- $s -}} } - time() < {{ include "northflank-exporter.number" .days }} * 86400
  {{- include "northflank-exporter.alertLabels" (list $ .) | nindent 2 }}
  annotations:
    summary: The Northflank API token of the exporter expires soon.
    description: >-
      {{`The Northflank API token{{ with printf "northflank_token_info{job=%q, instance=%q}" $labels.job $labels.instance | query }}{{ with . | first }} of {{ .Labels.entity_type }} {{ .Labels.entity_id }}{{ end }}{{ end }} used by {{ $labels.namespace }}/{{ $labels.job }} {{ if ge $value 0.0 }}expires in {{ $value | humanizeDuration }}{{ else }}expired {{ reReplaceAll "^-" "" ($value | humanizeDuration) }} ago{{ end }}{{ with printf "northflank_token_expiry_timestamp_seconds{job=%q, instance=%q}" $labels.job $labels.instance | query }} ({{ . | first | value | humanizeTimestamp }}){{ end }}`}}
      (threshold {{ include "northflank-exporter.number" .days }} days). Once it has expired every
      poll fails with reason auth: create a new token and replace the Secret's value.
    {{- include "northflank-exporter.runbook" (list $ "NorthflankTokenExpiringSoon") | nindent 4 }}
{{- end }}{{ end }}
{{- end }}

{{- define "northflank-exporter.rulesSpend" -}}
{{- $s := include "northflank-exporter.ruleSelector" . }}
{{- $a := .Values.prometheusRule.alerts }}
{{- $total := .Values.budgets.total }}
{{- $hasTotal := not (kindIs "invalid" $total) }}
{{- $hasTeamBudgets := or (not (kindIs "invalid" .Values.budgets.default)) (gt (len .Values.budgets.teams) 0) }}
{{- if $hasTotal }}
{{- with $a.NorthflankInvoiceOverThreshold }}{{ if .enabled }}
- alert: NorthflankInvoiceOverThreshold
  expr: |-
    northflank_invoice_amount{ {{- $s -}} }
      * ignoring (invoice_id) group_left (invoice_id)
    northflank_invoice_info{ {{- $s -}} }
    > {{ include "northflank-exporter.number" $total }}
  {{- include "northflank-exporter.alertLabels" (list $ .) | nindent 2 }}
  annotations:
    summary: The newest Northflank invoice is over the spend threshold.
    description: >-
      {{`Invoice {{ $labels.invoice_id }} totals {{ printf "%.2f" $value }} {{ $labels.currency | toUpper }},`}}
      over the threshold of {{ include "northflank-exporter.number" $total }}.
    {{- include "northflank-exporter.runbook" (list $ "NorthflankInvoiceOverThreshold") | nindent 4 }}
{{- end }}{{ end }}
{{- with $a.NorthflankSpendOverThreshold }}{{ if .enabled }}
- alert: NorthflankSpendOverThreshold
  expr: northflank_unbilled_cost{ {{- $s -}} } > {{ include "northflank-exporter.number" $total }}
  {{- include "northflank-exporter.alertLabels" (list $ .) | nindent 2 }}
  annotations:
    summary: Spend in the current billing period is over the threshold.
    description: >-
      {{`Spend not yet invoiced, since {{ with printf "northflank_unbilled_since_timestamp_seconds{job=%q, instance=%q}" $labels.job $labels.instance | query }}{{ . | first | value | humanizeTimestamp }}{{ else }}the newest invoice{{ end }}, is {{ printf "%.2f" $value }} {{ $labels.currency | toUpper }},`}}
      over the threshold of {{ include "northflank-exporter.number" $total }}.
    {{- include "northflank-exporter.runbook" (list $ "NorthflankSpendOverThreshold") | nindent 4 }}
{{- end }}{{ end }}
{{- with $a.NorthflankSpendProjectedOverThreshold }}{{ if .enabled }}
{{- $min := include "northflank-exporter.number" (mulf 3600 .minElapsedHours) }}
- alert: NorthflankSpendProjectedOverThreshold
  expr: |-
    (
        northflank_invoice_amount{ {{- $s -}} }
          * ignoring (currency) group_left ()
        {{- include "northflank-exporter.invoiceToPeriod" (list $ $min) | nindent 8 }}
      or
        northflank_unbilled_cost{ {{- $s -}} }
          * ignoring (currency) group_left ()
        {{- include "northflank-exporter.unbilledToPeriod" (list $ $min) | nindent 8 }}
    )
    > {{ include "northflank-exporter.number" $total }}
  {{- include "northflank-exporter.alertLabels" (list $ .) | nindent 2 }}
  annotations:
    summary: Spend is on course to exceed the threshold by the end of the billing period.
    description: >-
      {{`At the rate of the billing period so far, spend will reach {{ printf "%.2f" $value }} {{ $labels.currency | toUpper }} by the period's end,`}}
      over the threshold of {{ include "northflank-exporter.number" $total }} (linear
      projection; the current period is taken to be as long as the newest invoice's).
    {{- include "northflank-exporter.runbook" (list $ "NorthflankSpendProjectedOverThreshold") | nindent 4 }}
{{- end }}{{ end }}
{{- end }}
{{- if $hasTeamBudgets }}
{{- with $a.NorthflankTeamInvoiceOverBudget }}{{ if .enabled }}
- alert: NorthflankTeamInvoiceOverBudget
  expr: northflank_team_cost{ {{- $s -}} } > northflank_team_budget{ {{- $s -}} }
  {{- include "northflank-exporter.alertLabels" (list $ .) | nindent 2 }}
  annotations:
    summary: A team's cost on the newest Northflank invoice is over its budget.
    description: >-
      {{`Team {{ $labels.team_name }} ({{ $labels.team }}) cost {{ printf "%.2f" $value }} {{ $labels.currency | toUpper }} on the newest invoice, over its budget of {{ with printf "northflank_team_budget{job=%q, instance=%q, team=%q}" $labels.job $labels.instance $labels.team | query }}{{ . | first | value | printf "%.2f" }}{{ end }}.`}}
    {{- include "northflank-exporter.runbook" (list $ "NorthflankTeamInvoiceOverBudget") | nindent 4 }}
{{- end }}{{ end }}
{{- with $a.NorthflankTeamSpendOverBudget }}{{ if .enabled }}
- alert: NorthflankTeamSpendOverBudget
  expr: northflank_team_unbilled_cost{ {{- $s -}} } > northflank_team_budget{ {{- $s -}} }
  {{- include "northflank-exporter.alertLabels" (list $ .) | nindent 2 }}
  annotations:
    summary: A team's spend in the current billing period is over its budget.
    description: >-
      {{`Team {{ $labels.team_name }} ({{ $labels.team }}) has spent {{ printf "%.2f" $value }} {{ $labels.currency | toUpper }} since the newest invoice (PaaS usage), over its budget of {{ with printf "northflank_team_budget{job=%q, instance=%q, team=%q}" $labels.job $labels.instance $labels.team | query }}{{ . | first | value | printf "%.2f" }}{{ end }}.`}}
    {{- include "northflank-exporter.runbook" (list $ "NorthflankTeamSpendOverBudget") | nindent 4 }}
{{- end }}{{ end }}
{{- with $a.NorthflankTeamSpendProjectedOverBudget }}{{ if .enabled }}
{{- $min := include "northflank-exporter.number" (mulf 3600 .minElapsedHours) }}
- alert: NorthflankTeamSpendProjectedOverBudget
  expr: |-
    (
        northflank_team_cost{ {{- $s -}} }
          * ignoring (team, team_name, currency) group_left ()
        {{- include "northflank-exporter.invoiceToPeriod" (list $ $min) | nindent 8 }}
      or
        northflank_team_unbilled_cost{ {{- $s -}} }
          * ignoring (team, team_name, currency) group_left ()
        {{- include "northflank-exporter.unbilledToPeriod" (list $ $min) | nindent 8 }}
    )
    > northflank_team_budget{ {{- $s -}} }
  {{- include "northflank-exporter.alertLabels" (list $ .) | nindent 2 }}
  annotations:
    summary: A team's spend is on course to exceed its budget by the end of the billing period.
    description: >-
      {{`At the rate of the billing period so far, team {{ $labels.team_name }} ({{ $labels.team }}) will have spent {{ printf "%.2f" $value }} {{ $labels.currency | toUpper }} by the period's end, over its budget of {{ with printf "northflank_team_budget{job=%q, instance=%q, team=%q}" $labels.job $labels.instance $labels.team | query }}{{ . | first | value | printf "%.2f" }}{{ end }}`}}
      (linear projection; the current period is taken to be as long as the newest invoice's).
    {{- include "northflank-exporter.runbook" (list $ "NorthflankTeamSpendProjectedOverBudget") | nindent 4 }}
{{- end }}{{ end }}
{{- end }}
{{- with $a.NorthflankCreditRunsOut }}{{ if and .enabled $.Values.config.unbilled }}
{{- /* Credit is applied when the period's invoice is finalized, against all of it: so it
  must cover the whole period's spend (projected at the rate so far), not only what is
  left of it. Spend already over the credit fires without waiting for a projection. An
  account without credit (available 0, or no credit balance at all) never fires it. */}}
{{- $min := include "northflank-exporter.number" (mulf 3600 .minElapsedHours) }}
- alert: NorthflankCreditRunsOut
  expr: |-
    (
        northflank_unbilled_cost{ {{- $s -}} }
          * ignoring (currency) group_left ()
        {{- include "northflank-exporter.unbilledToPeriod" (list $ $min) | nindent 8 }}
      or
        northflank_unbilled_cost{ {{- $s -}} }
    )
    > (northflank_credit_available_amount{ {{- $s -}} } > 0)
  {{- include "northflank-exporter.alertLabels" (list $ .) | nindent 2 }}
  annotations:
    summary: The credit will not cover the current billing period's spend.
    description: >-
      {{`At the rate of spend so far, the current billing period will cost {{ printf "%.2f" $value }} {{ $labels.currency | toUpper }} by its end{{ with printf "northflank_unbilled_since_timestamp_seconds{job=%q, instance=%q} + northflank_invoice_period_end_timestamp_seconds{job=%q, instance=%q} - northflank_invoice_period_start_timestamp_seconds{job=%q, instance=%q}" $labels.job $labels.instance $labels.job $labels.instance $labels.job $labels.instance | query }} (about {{ . | first | value | humanizeTimestamp }}){{ end }}, more than the credit available ({{ with printf "northflank_credit_available_amount{job=%q, instance=%q, currency=%q}" $labels.job $labels.instance $labels.currency | query }}{{ . | first | value | printf "%.2f" }}{{ end }}).`}}
      Credit is applied when the invoice is finalized; what it does not cover is owed as
      an unpaid invoice (linear projection, the period taken to be as long as the newest
      invoice's; spend already over the credit counts as it is).
    {{- include "northflank-exporter.runbook" (list $ "NorthflankCreditRunsOut") | nindent 4 }}
{{- end }}{{ end }}
{{- $projects := .Values.budgets.projects }}
{{- $projectDefault := .Values.budgets.projectDefault }}
{{- with $a.NorthflankProjectSpendOverBudget }}{{ if and .enabled (or $projects (not (kindIs "invalid" $projectDefault))) }}
{{- /* One rule per budget: a plain selector and its amount, which Prometheus, promtool and
  the alert's description name as they are; the default rule leaves out the projects
  that have their own. */}}
{{- if not $.Values.config.unbilled }}
{{- fail "budgets.projects and budgets.projectDefault are checked against northflank_project_unbilled_cost, which needs config.unbilled=true" }}
{{- end }}
{{- if eq $.Values.config.unbilledDepth "team" }}
{{- fail "budgets.projects and budgets.projectDefault are checked against northflank_project_unbilled_cost, which needs config.unbilledDepth project or resource (not team)" }}
{{- end }}
{{- $cfg := . }}
{{- $own := list }}
{{- range $key, $amount := $projects }}
{{- $id := splitList "/" $key }}
{{- $one := printf "northflank_project_unbilled_cost{%s, team=%s, project=%s}" $s (index $id 0 | quote) (index $id 1 | quote) }}
{{- $own = append $own $one }}
- alert: NorthflankProjectSpendOverBudget
  expr: |-
    {{ $one }} > {{ include "northflank-exporter.number" $amount }}
  {{- include "northflank-exporter.alertLabels" (list $ $cfg) | nindent 2 }}
  {{- /* The project's team and project, which its series carry anyway: they tell the
    rules apart (promtool's lint wants no two rules of one name with the same labels). */}}
  {{- if not (hasKey $.Values.prometheusRule.alertLabels "team") }}
    team: {{ index $id 0 | quote }}
  {{- end }}
  {{- if not (hasKey $.Values.prometheusRule.alertLabels "project") }}
    project: {{ index $id 1 | quote }}
  {{- end }}
  annotations:
    summary: A project's spend in the current billing period is over its budget.
    description: >-
      {{`Project {{ $labels.project_name }} ({{ $labels.team }}/{{ $labels.project }}) has spent {{ printf "%.2f" $value }} {{ $labels.currency | toUpper }} since the newest invoice (PaaS usage, summed from settled hours),`}}
      over its budget of {{ include "northflank-exporter.number" $amount }}.
    {{- include "northflank-exporter.runbook" (list $ "NorthflankProjectSpendOverBudget") | nindent 4 }}
{{- end }}
{{- if not (kindIs "invalid" $projectDefault) }}
- alert: NorthflankProjectSpendOverBudget
  expr: |-
    northflank_project_unbilled_cost{ {{- $s -}} } > {{ include "northflank-exporter.number" $projectDefault }}
    {{- with $own }}
      unless on (team, project)
    (
        {{ join "\n      or\n        " . }}
    )
    {{- end }}
  {{- include "northflank-exporter.alertLabels" (list $ $cfg) | nindent 2 }}
  annotations:
    summary: A project's spend in the current billing period is over its budget.
    description: >-
      {{`Project {{ $labels.project_name }} ({{ $labels.team }}/{{ $labels.project }}) has spent {{ printf "%.2f" $value }} {{ $labels.currency | toUpper }} since the newest invoice (PaaS usage, summed from settled hours),`}}
      over the default project budget of {{ include "northflank-exporter.number" $projectDefault }}.
    {{- include "northflank-exporter.runbook" (list $ "NorthflankProjectSpendOverBudget") | nindent 4 }}
{{- end }}
{{- end }}{{ end }}
{{- with $a.NorthflankInvoiceUnpaid }}{{ if .enabled }}
- alert: NorthflankInvoiceUnpaid
  expr: |-
    (
        (time() - northflank_invoice_period_end_timestamp_seconds{ {{- $s -}} }) / 86400 > {{ include "northflank-exporter.number" .days }}
      and
        northflank_invoice_paid{ {{- $s -}} } == 0
    )
      * ignoring (invoice_id, currency) group_left (invoice_id, currency)
    northflank_invoice_info{ {{- $s -}} }
  {{- include "northflank-exporter.alertLabels" (list $ .) | nindent 2 }}
  annotations:
    summary: The newest Northflank invoice is still unpaid.
    description: >-
      {{`Invoice {{ $labels.invoice_id }} is unpaid {{ printf "%.0f" $value }} days after its billing period ended`}}
      (threshold {{ include "northflank-exporter.number" .days }} days).
    {{- include "northflank-exporter.runbook" (list $ "NorthflankInvoiceUnpaid") | nindent 4 }}
{{- end }}{{ end }}
{{- with $a.NorthflankInvoicePaymentFailed }}{{ if .enabled }}
{{- /* The status label holds what the API says (open, paid, void, uncollectible,
  payment_failed, ...): an open set, matched against the statuses given. */}}
- alert: NorthflankInvoicePaymentFailed
  expr: |-
    (northflank_invoice_status{ {{- $s }}, status=~{{ join "|" .statuses | quote }}} == 1)
      * ignoring (status, invoice_id, currency) group_left (invoice_id)
    northflank_invoice_info{ {{- $s -}} }
  {{- include "northflank-exporter.alertLabels" (list $ .) | nindent 2 }}
  annotations:
    summary: The payment of the newest Northflank invoice failed.
    description: >-
      {{`Invoice {{ $labels.invoice_id }} has the payment status {{ $labels.status }}`}}
      ({{ join ", " .statuses }} fire this alert): Northflank has not been paid for it and
      may restrict the account. Fix the payment method and pay it on Northflank's billing page.
    {{- include "northflank-exporter.runbook" (list $ "NorthflankInvoicePaymentFailed") | nindent 4 }}
{{- end }}{{ end }}
{{- end }}
