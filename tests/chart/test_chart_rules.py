"""What the chart's alert rules render from values: thresholds, budgets (invoice-wide,
per team, per project), the credit and payment alerts' settings, the alerts that need a
setting to exist, and the projection that three alerts share.

What the rules then do with series is tests/test_rules.py's (promtool). Needs helm.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.helmchart import (
    ALERTS,
    RULE_VALUES,
    alerts_of,
    render,
    rule_groups,
    rules_of,
    template,
)

pytestmark = pytest.mark.tools  # helm (scripts/install-tools)


def test_thresholds_come_from_values() -> None:
    docs = render(
        {
            "prometheusRule": {
                "enabled": True,
                "alerts": {
                    "NorthflankInvoiceUnpaid": {"days": 21},
                    "NorthflankDataStale": {"maxAgeSeconds": 4242},
                    "NorthflankSpendProjectedOverThreshold": {"minElapsedHours": 72},
                    "NorthflankTokenExpiringSoon": {"days": 30},
                },
            },
            "budgets": {"total": 1234.5, "default": 100, "teams": {"team-a": 500}},
        }
    )
    alerts = alerts_of(rule_groups(docs))
    assert alerts["NorthflankInvoiceOverThreshold"]["expr"].rstrip().endswith("> 1234.5")
    assert alerts["NorthflankSpendOverThreshold"]["expr"].rstrip().endswith("> 1234.5")
    assert "/ 86400 > 21" in alerts["NorthflankInvoiceUnpaid"]["expr"]
    assert alerts["NorthflankDataStale"]["expr"].endswith("> 4242")
    assert ">= 259200" in alerts["NorthflankSpendProjectedOverThreshold"]["expr"]
    assert alerts["NorthflankTokenExpiringSoon"]["expr"].endswith("< 30 * 86400")
    # per-team thresholds reach the rules through the exporter's northflank_team_budget,
    # made from NORTHFLANK_BUDGETS: a default and per-team overrides
    for name in ("NorthflankTeamInvoiceOverBudget", "NorthflankTeamSpendOverBudget"):
        assert "northflank_team_budget" in alerts[name]["expr"]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    env = {
        e["name"]: e.get("value")
        for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["NORTHFLANK_BUDGETS"] == "*=100,team-a=500"


def test_stale_threshold_follows_the_poll_interval() -> None:
    docs = render({"prometheusRule": {"enabled": True}, "config": {"pollIntervalSeconds": 3000}})
    alerts = alerts_of(rule_groups(docs))
    assert alerts["NorthflankDataStale"]["expr"].endswith("> 9000")  # 3 x 3000 s
    assert "[6000s]" in alerts["NorthflankPollsFailing"]["annotations"]["description"]


def test_spend_alerts_need_their_thresholds() -> None:
    """Without budgets only the health alerts (the token's expiry among them), the
    credit and the payment alerts exist; an alert switched off is not rendered."""
    alerts = alerts_of(rule_groups(render({"prometheusRule": {"enabled": True}})))
    assert sorted(alerts) == sorted(
        [
            "NorthflankExporterDown",
            "NorthflankDataStale",
            "NorthflankPollsFailing",
            "NorthflankTokenExpiringSoon",
            "NorthflankCreditRunsOut",
            "NorthflankInvoiceUnpaid",
            "NorthflankInvoicePaymentFailed",
        ]
    )
    docs = render(
        {
            **RULE_VALUES,
            "prometheusRule": {
                "enabled": True,
                "alerts": {
                    "NorthflankInvoiceUnpaid": {"enabled": False},
                    "NorthflankExporterDown": {"enabled": False},
                },
            },
        }
    )
    alerts = alerts_of(rule_groups(docs))
    assert "NorthflankInvoiceUnpaid" not in alerts
    assert "NorthflankExporterDown" not in alerts
    assert len(alerts) == len(ALERTS) - 2


def contains(lines: list[str], part: list[str]) -> bool:
    return any(lines[i : i + len(part)] == part for i in range(len(lines) - len(part) + 1))


def stripped(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def test_the_projections_share_one_template() -> None:
    """NorthflankCreditRunsOut projects the spend to the period's end as the projection
    alerts do: the same factor (period length / hours summed, once minElapsedHours are
    summed, while the period runs), from the same template."""
    alerts = alerts_of(rule_groups(render(RULE_VALUES)))
    s = 'job="northflank-exporter", namespace="monitoring"'
    period = (
        f"(northflank_invoice_period_end_timestamp_seconds{{{s}}}"
        f" - northflank_invoice_period_start_timestamp_seconds{{{s}}})"
    )
    summed = (
        f"(northflank_unbilled_through_timestamp_seconds{{{s}}}"
        f" - northflank_unbilled_since_timestamp_seconds{{{s}}})"
    )
    factor = [
        "(",
        period,
        f"/ {summed}",
        f"and ({summed} >= 172800)",
        f"and ((northflank_unbilled_since_timestamp_seconds{{{s}}} + {period}) > time())",
        ")",
    ]
    for name in (
        "NorthflankSpendProjectedOverThreshold",
        "NorthflankTeamSpendProjectedOverBudget",
        "NorthflankCreditRunsOut",
    ):
        assert contains(stripped(alerts[name]["expr"]), factor), name
    # credit is compared with the whole period's spend, in its own currency only, and
    # only where there is credit
    credit = stripped(alerts["NorthflankCreditRunsOut"]["expr"])
    assert credit[:3] == [
        "(",
        f"northflank_unbilled_cost{{{s}}}",
        "* ignoring (currency) group_left ()",
    ]
    assert credit[-4:] == [
        "or",
        f"northflank_unbilled_cost{{{s}}}",
        ")",
        f"> (northflank_credit_available_amount{{{s}}} > 0)",
    ]


def test_alert_settings_come_from_values() -> None:
    docs = render(
        {
            "prometheusRule": {
                "enabled": True,
                "alerts": {
                    "NorthflankCreditRunsOut": {"minElapsedHours": 1.5},
                    "NorthflankSpendProjectedOverThreshold": {"minElapsedHours": 0.5},
                    "NorthflankInvoicePaymentFailed": {
                        "statuses": ["payment_failed", "past_due"],
                        "severity": "warning",
                    },
                },
            },
            "budgets": {"total": 10},
        }
    )
    alerts = alerts_of(rule_groups(docs))
    # fractional hours are not truncated to whole ones
    assert ">= 5400)" in alerts["NorthflankCreditRunsOut"]["expr"]
    assert ">= 1800)" in alerts["NorthflankSpendProjectedOverThreshold"]["expr"]
    payment = alerts["NorthflankInvoicePaymentFailed"]
    assert 'status=~"payment_failed|past_due"} == 1' in payment["expr"]
    assert payment["labels"]["severity"] == "warning"
    assert "(payment_failed, past_due fire this alert)" in payment["annotations"]["description"]


def test_project_budgets_are_one_rule_each() -> None:
    rules = rules_of(rule_groups(render(RULE_VALUES)))
    project = [r for r in rules if r["alert"] == "NorthflankProjectSpendOverBudget"]
    s = 'job="northflank-exporter", namespace="monitoring"'
    own = [
        f'northflank_project_unbilled_cost{{{s}, team="team-a", project="web"}}',
        f'northflank_project_unbilled_cost{{{s}, team="team-b", project="web"}}',
    ]
    assert [r["expr"] for r in project] == [
        f"{own[0]} > 50",
        f"{own[1]} > 80",
        f"northflank_project_unbilled_cost{{{s}}} > 20\n  unless on (team, project)\n"
        f"(\n    {own[0]}\n  or\n    {own[1]}\n)",
    ]
    assert [(r["labels"].get("team"), r["labels"].get("project")) for r in project] == [
        ("team-a", "web"),
        ("team-b", "web"),
        (None, None),
    ]
    # no default: no default rule; no budget at all: no rule
    budgets = {**RULE_VALUES["budgets"], "projectDefault": None}
    docs = render({**RULE_VALUES, "budgets": budgets})
    assert [r["expr"] for r in rules_of(rule_groups(docs)) if "project_unbilled" in r["expr"]] == [
        f"{own[0]} > 50",
        f"{own[1]} > 80",
    ]
    docs = render({"prometheusRule": {"enabled": True}, "budgets": {"projectDefault": 0}})
    (default,) = [r for r in rules_of(rule_groups(docs)) if "project_unbilled" in r["expr"]]
    assert default["expr"] == f"northflank_project_unbilled_cost{{{s}}} > 0"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"unbilled": False}, "needs config.unbilled=true"),
        ({"unbilledDepth": "team"}, "needs config.unbilledDepth project or resource"),
    ],
)
def test_project_budgets_need_the_breakdown(config: dict[str, Any], message: str) -> None:
    result = template({**RULE_VALUES, "config": config})
    assert result.returncode != 0
    assert message in result.stderr
    # the alert switched off, or no rules at all: nothing to refuse
    alerts = {"NorthflankProjectSpendOverBudget": {"enabled": False}}
    for rule in ({"enabled": True, "alerts": alerts}, {"enabled": False}):
        assert template({**RULE_VALUES, "config": config, "prometheusRule": rule}).returncode == 0


def test_credit_alert_needs_the_spend_not_yet_invoiced() -> None:
    alerts = alerts_of(rule_groups(render({"prometheusRule": {"enabled": True}})))
    assert "NorthflankCreditRunsOut" in alerts
    docs = render({"prometheusRule": {"enabled": True}, "config": {"unbilled": False}})
    assert "NorthflankCreditRunsOut" not in alerts_of(rule_groups(docs))
