"""The Grafana dashboard shipped with the chart: a valid dashboard model, and every query
in it answers with data from a real Prometheus that scraped the exporter in demo mode.

Needs Debian's ``prometheus`` and, for the model check, Grafana's dashboard model
(grafana-foundation-sdk in .tools/venv, from scripts/install-tools).
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter import metrics as m
from exporter.simulator import Simulator, generate_organisation
from tests.harness import TOKEN, Exporter, api_env
from tests.promserver import PrometheusServer, static_job

REPO = Path(__file__).resolve().parent.parent
DASHBOARD_FILE = REPO / "helm" / "northflank-exporter" / "dashboards" / "northflank-exporter.json"
TOOLS_PYTHON = REPO / ".tools" / "venv" / "bin" / "python"

# Grafana's own variables, replaced by concrete values the way Grafana would. The test's
# Prometheus scrapes every second, so short windows hold plenty of samples.
BUILTINS = {
    "__rate_interval": "20s",
    "__interval": "5s",
    "__range": "5m",
    "__range_s": "300",
    "__range_ms": "300000",
    "__interval_ms": "5000",
}
# Dashboard variables: "All" of each (they are all regex-matched with =~); a custom
# variable (the "This month" panels' Top N) takes its default, as Grafana does.
VARIABLE_VALUE = ".*"
VARIABLE_REF = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)(?::\w+)?\]\]")
LABEL_VALUES = re.compile(r"^label_values\((?:(?P<expr>.*),\s*)?(?P<label>\w+)\)$", re.S)


def load_dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD_FILE.read_text(encoding="utf-8")))


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # panels of a collapsed row


def panel_targets(dashboard: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(panel title, refId, expr) of every query of every panel."""
    out = []
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            out.append((panel["title"], target["refId"], target["expr"]))
    return out


def variable_names(dashboard: dict[str, Any]) -> set[str]:
    return {var["name"] for var in dashboard["templating"]["list"]}


@functools.cache
def custom_values() -> dict[str, str]:
    """The default value of each custom variable of the dashboard."""
    variables = load_dashboard()["templating"]["list"]
    return {v["name"]: v["current"]["value"] for v in variables if v["type"] == "custom"}


def substitute(expr: str) -> str:
    """Replace Grafana's variables in a PromQL expression as Grafana would."""

    def repl(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        return BUILTINS.get(name) or custom_values().get(name, VARIABLE_VALUE)

    return VARIABLE_REF.sub(repl, expr)


# --------------------------------------------------------------------------- the model


@pytest.mark.tools  # the Grafana Foundation SDK in .tools/venv
def test_dashboard_loads_as_a_grafana_dashboard_model() -> None:
    """Grafana's own dashboard model (grafana-foundation-sdk) decodes the JSON and gives
    back the same panels, queries and variables."""
    if not TOOLS_PYTHON.exists():
        pytest.fail(
            f"{TOOLS_PYTHON} not found: run scripts/install-tools "
            "(it installs grafana-foundation-sdk there)",
            pytrace=False,
        )
    script = textwrap.dedent(
        """
        import json, sys
        from grafana_foundation_sdk.cog import runtime
        from grafana_foundation_sdk.cog.encoder import JSONEncoder
        from grafana_foundation_sdk.cog.plugins import register_default_plugins
        from grafana_foundation_sdk.models.dashboard import Dashboard, RowPanel

        register_default_plugins()
        data = json.load(open(sys.argv[1], encoding="utf-8"))
        model = Dashboard.from_json(data)
        out = json.loads(json.dumps(model, cls=JSONEncoder))
        panels = []
        for panel in model.panels or []:
            kind = "row" if isinstance(panel, RowPanel) else panel.type_val
            options = None if kind == "row" else type(panel.options).__module__
            targets = [] if kind == "row" else [
                [type(t).__module__, t.to_json().get("expr")] for t in panel.targets or []
            ]
            panels.append({"type": kind, "options": options, "targets": targets})
        print(json.dumps({
            "out": out,
            "panels": panels,
            "panel_types": sorted(runtime.Runtime().panelcfg_variants),
        }))
        """
    )
    result = subprocess.run(
        [str(TOOLS_PYTHON), "-c", script, str(DASHBOARD_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    dashboard = load_dashboard()
    out = report["out"]

    assert out["title"] == dashboard["title"]
    assert out["uid"] == dashboard["uid"]
    assert out["schemaVersion"] == dashboard["schemaVersion"]
    assert [v["name"] for v in out["templating"]["list"]] == [
        v["name"] for v in dashboard["templating"]["list"]
    ]
    assert len(report["panels"]) == len(dashboard["panels"])
    for decoded, original in zip(report["panels"], dashboard["panels"], strict=True):
        assert decoded["type"] == original["type"]
        if original["type"] == "row":
            continue
        assert original["type"] in report["panel_types"], f"unknown panel type {original['type']}"
        # options decoded by the panel's own model, queries as Prometheus queries
        assert decoded["options"].endswith(f".{original['type']}"), (original["title"], decoded)
        assert [t[1] for t in decoded["targets"]] == [t["expr"] for t in original["targets"]]
        assert all(t[0].endswith(".prometheus") for t in decoded["targets"]), original["title"]


def test_dashboard_structure() -> None:
    dashboard = load_dashboard()
    assert dashboard["uid"]
    assert len(dashboard["uid"]) <= 40
    assert isinstance(dashboard["schemaVersion"], int)
    assert dashboard["schemaVersion"] >= 36
    # provisioned by the sidecar as it is: no import-time inputs to fill in
    assert "__inputs" not in dashboard
    assert "${DS_" not in DASHBOARD_FILE.read_text(encoding="utf-8")

    panels = list(all_panels(dashboard))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"

    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["w"] >= 1, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert grid["h"] >= 1, panel["title"]
        assert grid["y"] >= 0, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]
        if panel["type"] == "row":
            continue
        refs = [target["refId"] for target in panel["targets"]]
        assert refs, panel["title"]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert target["expr"].strip(), panel["title"]
        for override in panel["fieldConfig"].get("overrides", []):
            matcher = override["matcher"]
            if matcher["id"] == "byRegexp":
                pattern = re.fullmatch(r"/(.*)/([gimsuy]*)", matcher["options"])
                assert pattern, matcher
                re.compile(pattern.group(1))


def test_dashboard_variables() -> None:
    dashboard = load_dashboard()
    names = variable_names(dashboard)
    assert {"datasource", "job", "currency", "team", "project"} <= names
    variables = {var["name"]: var for var in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("team", "project"):
        assert variables[name]["multi"]
        assert variables[name]["includeAll"]
        assert variables[name]["allValue"] == ".*"

    used = set()
    texts = [expr for _, _, expr in panel_targets(dashboard)]
    texts += [var["definition"] for var in dashboard["templating"]["list"] if "definition" in var]
    for text in texts:
        for match in VARIABLE_REF.finditer(text):
            used.add(match.group(1) or match.group(2) or match.group(3))
    unknown = used - names - set(BUILTINS)
    assert not unknown, f"variables used but not defined: {unknown}"
    # every selector variable is matched as a regex, so "All" (.*) works
    for _, _, expr in panel_targets(dashboard):
        for name in ("job", "currency", "team", "project"):
            assert f'{name}="${name}"' not in expr, expr


def test_dashboard_covers_the_contract() -> None:
    """The layout the issues ask for: totals and trend, teams, projects and resources,
    resource types, dimensions, BYOC vs PaaS, invoice details and exporter health (the
    API token's expiry and owner among it); the invoice's status, the credit balance, the
    billing contract read, the waits for the rate limit, and this month broken down by
    project and resource with how far the breakdown goes."""
    text = json.dumps([expr for _, _, expr in panel_targets(load_dashboard())])
    for family in (
        m.INVOICE_AMOUNT.name,
        m.UNBILLED_COST.name,
        m.TEAM_COST.name,
        m.TEAM_UNBILLED_COST.name,
        m.TEAM_BUDGET.name,
        m.PROJECT_COST.name,
        m.RESOURCE_COST.name,
        m.RESOURCE_TYPE_COST.name,
        m.TEAM_DIMENSION_COST.name,
        m.PAAS_COST.name,
        m.BYOC_COST.name,
        m.PAAS_DIMENSION_COST.name,
        m.BYOC_DIMENSION_COST.name,
        m.INVOICE_PERIOD_START.name,
        m.INVOICE_PERIOD_END.name,
        m.INVOICE_TAX.name,
        m.INVOICE_TAX_RATIO.name,
        m.INVOICE_DISCOUNT.name,
        m.INVOICE_SUBTOTAL.name,
        m.INVOICE_PAID.name,
        m.INVOICE_INFO.name,
        m.LINE_ITEM.name,
        m.UP.name,
        m.LAST_SUCCESS.name,
        m.POLL_ERRORS.sample_name,
        m.API_REQUESTS.sample_name,
        m.BUILD_INFO.name,
        m.TOKEN_EXPIRY.name,
        m.TOKEN_INFO.name,
        m.INVOICE_STATUS.name,
        m.CREDIT_AVAILABLE.name,
        m.CREDIT_PENDING.name,
        m.CREDIT_GRANT_AVAILABLE.name,
        m.CREDIT_GRANT_PENDING.name,
        m.CUSTOMER_BALANCE.name,
        m.CREDIT_SYNCED.name,
        m.API_CONTRACT.name,
        m.RATELIMIT_WAIT.sample_name,
        m.PROJECT_UNBILLED_COST.name,
        m.RESOURCE_TYPE_UNBILLED_COST.name,
        m.RESOURCE_UNBILLED_COST.name,
        m.UNBILLED_BREAKDOWN_THROUGH.name,
    ):
        assert re.search(rf"\b{family}\b", text), f"no panel shows {family}"


# --------------------------------------------------------------------------- live queries


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """Prometheus that has scraped the exporter (budgets set, this month broken down to
    resources) polling the demo's organisation for a while. Not ``--demo`` itself: polls
    every 2 s would take the demo API's whole rate limit, leaving this month's breakdown
    no room (it only uses what the polls leave)."""
    workdir = tmp_path_factory.mktemp("prometheus")
    simulator = Simulator(
        generate_organisation(),
        token=TOKEN,
        contract="current",
        rate_limit=10**7,
        token_expires_at=time.time() + 90 * 86400,
    ).start()
    simulator.close = simulator.stop  # type: ignore[attr-defined]
    env = api_env(
        simulator.url,
        TOKEN,
        poll_interval_seconds="2",
        budgets="*=100, team-1=50000",
        unbilled_depth="resource",  # for the "This month by resource" panels
    )
    exporter = Exporter(env=env)
    with contextlib.closing(simulator), exporter:  # the simulator stopped last
        exporter.wait_ready(timeout=30)
        target = exporter.url.removeprefix("http://")
        job = static_job("northflank-exporter", [target], scrape_interval="1s")
        with PrometheusServer([job], workdir=workdir) as prom:
            try:
                prom.wait_for_series('northflank_team_cost{job="northflank-exporter"}')
                prom.wait_for_series('northflank_resource_unbilled_cost{job="northflank-exporter"}')
                # enough samples for every rate() and increase() window
                prom.wait_for_series("count_over_time(northflank_up[1m]) >= 6")
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n--- exporter log ---\n{exporter.logs()}") from exc
            yield prom


@pytest.mark.e2e
@pytest.mark.tools
def test_every_dashboard_query_returns_data(prometheus: PrometheusServer) -> None:
    dashboard = load_dashboard()
    empty, failed = [], []
    targets = panel_targets(dashboard)
    assert len(targets) >= 20
    for title, ref, expr in targets:
        query = substitute(expr)
        try:
            result = prometheus.query(query)
        except AssertionError as exc:
            failed.append(f"{title} [{ref}]: {exc}")
            continue
        if not result:
            empty.append(f"{title} [{ref}]: {query}")
    assert not failed, "queries that Prometheus rejected:\n" + "\n".join(failed)
    assert not empty, "queries that returned no data:\n" + "\n".join(empty)


@pytest.mark.e2e
@pytest.mark.tools
def test_every_variable_query_returns_values(prometheus: PrometheusServer) -> None:
    dashboard = load_dashboard()
    for var in dashboard["templating"]["list"]:
        if var["type"] != "query":
            continue
        match = LABEL_VALUES.match(var["definition"])
        assert match, f"{var['name']}: only label_values(...) queries are used: {var['definition']}"
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        assert query == var["definition"]
        expr = substitute(match.group("expr") or "up")
        values = {series["metric"].get(match.group("label")) for series in prometheus.query(expr)}
        values.discard(None)
        assert values, f"variable {var['name']}: {expr} gives no {match.group('label')} values"


def test_token_expiry_panel_says_no_expiry_without_data() -> None:
    """A token that never expires has no northflank_token_expiry_timestamp_seconds
    sample: the stat says so instead of Grafana's "No data"; less than 7 days is red,
    less than 14 (the alert's default) orange."""
    dashboard = load_dashboard()
    (panel,) = [p for p in all_panels(dashboard) if p["title"] == "API token expires in"]
    (target,) = panel["targets"]
    assert m.TOKEN_EXPIRY.name in target["expr"]
    assert "- time()" in target["expr"]
    defaults = panel["fieldConfig"]["defaults"]
    assert defaults["noValue"] == "no expiry"
    assert defaults["unit"] in ("s", "dtdurations")
    steps = [(step["color"], step["value"]) for step in defaults["thresholds"]["steps"]]
    assert steps == [("red", None), ("orange", 7 * 86400), ("green", 14 * 86400)]
    health = [p for p in dashboard["panels"] if p["type"] == "row"]
    (row,) = [r for r in health if r["title"] == "Exporter health"]
    assert panel["gridPos"]["y"] > row["gridPos"]["y"]


@pytest.mark.e2e
@pytest.mark.tools
def test_projection_panel_matches_a_hand_computation(prometheus: PrometheusServer) -> None:
    """The 'projected' stat: spend since the invoice x period length / elapsed."""
    dashboard = load_dashboard()
    (expr,) = [expr for title, _, expr in panel_targets(dashboard) if title.startswith("Projected")]

    # one evaluation time for every query: the figures change every poll
    at = float(prometheus.query("time()")[0]["value"][0])

    def scalar(query: str) -> float:
        (sample,) = prometheus.query(query, at=at)
        return float(sample["value"][1])

    spent = scalar('sum(northflank_unbilled_cost{job="northflank-exporter"})')
    start = scalar("max(northflank_invoice_period_start_timestamp_seconds)")
    end = scalar("max(northflank_invoice_period_end_timestamp_seconds)")
    since = scalar("max(northflank_unbilled_since_timestamp_seconds)")
    through = scalar("max(northflank_unbilled_through_timestamp_seconds)")
    (sample,) = prometheus.query(substitute(expr), at=at)
    expected = spent * (end - start) / max(through - since, 3600)
    assert float(sample["value"][1]) == pytest.approx(expected, rel=1e-6)
