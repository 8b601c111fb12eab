"""The chart's dashboard, panel by panel, where its panels must agree with each other and
with the chart's values: this month's breakdown (Top N), payment and credit (the
projection the credit is measured against, the statuses the alert fires on), the
billing contract and the rate-limit waits. Static: no Prometheus, no helm.

The queries themselves run against a real Prometheus in tests/test_dashboard.py.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from exporter import metrics as m
from tests.helmchart import CHART
from tests.test_dashboard import all_panels, load_dashboard, substitute

# Families in major units of a currency, shown with a currency unit chosen by the code
# at the end of the series' name, "(usd)".
MONEY = (
    m.CREDIT_AVAILABLE,
    m.CREDIT_PENDING,
    m.CREDIT_GRANT_AVAILABLE,
    m.CREDIT_GRANT_PENDING,
    m.CUSTOMER_BALANCE,
    m.PROJECT_UNBILLED_COST,
    m.RESOURCE_TYPE_UNBILLED_COST,
)


def panel(title: str) -> dict[str, Any]:
    (found,) = [p for p in all_panels(load_dashboard()) if p.get("title") == title]
    return found


def row_of(title: str) -> str:
    """Title of the row a panel sits under (rows are full width, panels below them)."""
    dashboard = load_dashboard()
    y = panel(title)["gridPos"]["y"]
    rows = [p for p in dashboard["panels"] if p["type"] == "row" and p["gridPos"]["y"] < y]
    return str(max(rows, key=lambda r: r["gridPos"]["y"])["title"])


def expr(title: str, ref: str = "A") -> str:
    (target,) = [t for t in panel(title)["targets"] if t["refId"] == ref]
    return str(target["expr"])


def test_new_panels_sit_in_their_rows() -> None:
    for title in (
        "This month by project",
        "This month by resource",
        "This month by resource type",
        "Breakdown behind by",
    ):
        assert row_of(title) == "This month, broken down (not yet invoiced)", title
    for title in (
        "Invoice status",
        "Credit available",
        "Credit left at the period's end",
        "Customer balance",
        "Credit balance synced",
        "Credit balance",
    ):
        assert row_of(title) == "Payment and credit", title
    for title in ("Billing contract", "Waiting for the rate limit"):
        assert row_of(title) == "Exporter health", title


def test_this_month_shows_the_top_n() -> None:
    variables = {v["name"]: v for v in load_dashboard()["templating"]["list"]}
    topn = variables["topn"]
    assert topn["type"] == "custom"
    assert topn["current"]["value"] == "10"
    assert "10" in topn["query"].split(",")
    assert [o["value"] for o in topn["options"]] == topn["query"].split(",")
    project = expr("This month by project")
    assert project.startswith("topk($topn, ")
    assert m.PROJECT_UNBILLED_COST.name in project
    # every project of the same name in two teams stays apart
    assert "by (team, project, project_name, currency)" in project
    resource = expr("This month by resource")
    assert resource.startswith("topk($topn, ")
    assert m.RESOURCE_UNBILLED_COST.name in resource
    # as Grafana fills the variable in: a number, not the ".*" of the other variables
    assert substitute(project).startswith("topk(10, ")
    for title in ("This month by project", "This month by resource"):
        for name in ("job", "currency", "team", "project"):
            assert f'{name}=~"${name}"' in expr(title), (title, name)


def test_breakdown_lag_is_now_minus_through() -> None:
    lag = expr("Breakdown behind by")
    assert lag == f'time() - max({m.UNBILLED_BREAKDOWN_THROUGH.name}{{job=~"$job"}})'
    defaults = panel("Breakdown behind by")["fieldConfig"]["defaults"]
    assert defaults["unit"] == "s"
    # hours settle 3 hours after they end: green until 6 hours behind, red from a day
    steps = [(step["color"], step["value"]) for step in defaults["thresholds"]["steps"]]
    assert steps == [("green", None), ("orange", 6 * 3600), ("red", 86400)]


def test_credit_left_uses_the_projection_of_the_overview() -> None:
    """The credit is measured against the same projection the overview shows (and that
    NorthflankCreditRunsOut makes): the whole period's spend, not what is left of it."""
    projected = expr("Projected for the current period")
    left = expr("Credit left at the period's end")
    assert left.startswith(
        f'sum by (currency) ({m.CREDIT_AVAILABLE.name}{{job=~"$job", currency=~"$currency"}})'
        "\n  - on (currency)\n"
    )
    indented = "\n".join("    " + line for line in projected.split("\n"))
    assert left.endswith(f"(\n{indented}\n)")
    steps = panel("Credit left at the period's end")["fieldConfig"]["defaults"]["thresholds"]
    assert [(s["color"], s["value"]) for s in steps["steps"]] == [("red", None), ("green", 0)]


def test_invoice_status_colours_the_alert_statuses_red() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    statuses = values["prometheusRule"]["alerts"]["NorthflankInvoicePaymentFailed"]["statuses"]
    status = panel("Invoice status")
    assert expr("Invoice status") == f'{m.INVOICE_STATUS.name}{{job=~"$job"}} == 1'
    assert status["targets"][0]["legendFormat"] == "{{status}}"
    assert status["options"]["textMode"] == "name"
    colours: dict[str, str] = {}
    for override in status["fieldConfig"]["overrides"]:
        pattern = re.fullmatch(r"/(.*)/", override["matcher"]["options"])
        assert pattern, override
        (prop,) = override["properties"]
        for name in (*statuses, "open", "paid", "void", "draft"):
            if re.search(pattern.group(1), name):
                colours[name] = prop["value"]["fixedColor"]
    assert {name: colours.get(name) for name in statuses} == dict.fromkeys(statuses, "red")
    assert colours["paid"] == "green"
    assert colours["open"] == "orange"
    assert "void" not in colours  # statuses the API adds show in the text colour


@pytest.mark.parametrize("spec", MONEY, ids=lambda spec: spec.name)
def test_amounts_take_the_currency_unit(spec: Any) -> None:
    """Each panel of a money family names its series "... (<currency>)", which picks the
    currency unit, as every amount panel of the dashboard does."""
    reference = panel("Newest invoice total")["fieldConfig"]["overrides"]
    shown = 0
    for p in all_panels(load_dashboard()):
        for target in p.get("targets", []):
            if not re.search(rf"\b{spec.name}\b", target["expr"]):
                continue
            shown += 1
            if target["format"] == "table":
                continue  # tables show the currency in a column of their own
            assert target["legendFormat"].endswith("({{currency}})"), p["title"]
            assert re.search(r"\bby \([^)]*\bcurrency\)", target["expr"]), p["title"]
            assert p["fieldConfig"]["overrides"] == reference, p["title"]
            assert p["fieldConfig"]["defaults"]["decimals"] == 2, p["title"]
    assert shown, f"no panel shows {spec.name}"


def test_contract_and_rate_limit_waits() -> None:
    assert expr("Billing contract") == f'{m.API_CONTRACT.name}{{job=~"$job"}}'
    contract = panel("Billing contract")
    assert contract["targets"][0]["legendFormat"] == "{{contract}}"
    assert contract["options"]["textMode"] == "name"
    wait = expr("Waiting for the rate limit")
    assert wait == (f'sum(rate({m.RATELIMIT_WAIT.sample_name}{{job=~"$job"}}[$__rate_interval]))')
    # seconds waited per second: the share of the time spent waiting
    assert panel("Waiting for the rate limit")["fieldConfig"]["defaults"]["unit"] == "percentunit"
