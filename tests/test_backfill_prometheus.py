"""``northflank-exporter backfill``, end to end with the real tools.

The module's Prometheus holds what a user would have after a backfill: the simulator
(4 monthly invoices, usage history) read by ``backfill`` into OpenMetrics, turned into
blocks by ``promtool tsdb create-blocks-from openmetrics``, and a live exporter scraped
from the moment the backfill stopped, with the same ``job`` and ``instance`` labels.
The figures Prometheus answers are compared with what the simulator says the API holds.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from exporter import metrics as m
from exporter.history import NOT_HISTORY
from exporter.metrics import COST, TEAM_BUDGET
from exporter.simulator import (
    HOUR,
    Organisation,
    Simulator,
    generate_organisation,
)
from tests.backfill_helpers import (
    DAY,
    JOB,
    ends,
    invoice_at,
    org_now,
    promtool_blocks,
    run_backfill,
)
from tests.harness import TOKEN, Exporter, api_env
from tests.promserver import PrometheusServer, static_job
from tests.test_dashboard import all_panels, load_dashboard, substitute

# --------------------------------------------------------------------------- the module's world


@dataclass
class World:
    org: Organisation
    sim: Simulator
    prom: PrometheusServer
    file: Path
    until: float  # where the backfill stopped and the live scrape took over
    instance: str
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    workdir = tmp_path_factory.mktemp("backfill")
    org = generate_organisation(teams=3, projects_per_team=2, invoices=4, now=org_now())
    with Simulator(org, token=TOKEN, usage_history=True) as sim:
        live = Exporter(env=api_env(sim.url, TOKEN, depth="project"))
        with live:
            live.wait_ready(timeout=30)
            instance = live.url.removeprefix("http://")
            until = time.time()
            file = workdir / "history.om"
            result = run_backfill(
                sim,
                "--since",
                str(ends(org)[0]),
                "--until",
                str(until),
                "--label",
                f"job={JOB}",
                "--label",
                f"instance={instance}",
                "--output",
                str(file),
            )
            assert result.returncode == 0, result.stderr
            prom = PrometheusServer(
                [static_job(JOB, [instance], scrape_interval="1s")],
                workdir=workdir / "prometheus",
                retention="10y",
            )
            blocks = promtool_blocks(file, prom.data_dir)
            assert blocks.returncode == 0, blocks.stdout + blocks.stderr
            with prom:
                prom.wait_for_series(f'count_over_time(northflank_up{{job="{JOB}"}}[1m]) >= 3')
                yield World(org, sim, prom, file, until, instance, result)


def scalar(prom: PrometheusServer, expr: str, at: float) -> float:
    (sample,) = prom.query(expr, at=at)
    return float(sample["value"][1])


# --------------------------------------------------------------------------- end to end


@pytest.mark.e2e
@pytest.mark.tools
def test_file_is_openmetrics_that_promtool_accepts(world: World) -> None:
    text = world.file.read_text(encoding="utf-8")
    assert text.endswith("# EOF\n")
    assert text.count("# EOF") == 1
    names = re.findall(r"^# TYPE (\S+) gauge$", text, re.M)
    assert len(names) == len(set(names)), "a family written twice"
    written = {spec.name for spec in COST} - {spec.name for spec in NOT_HISTORY}
    at_project = {n for n in written if "resource" not in n}
    # depth project: no resource families, no budgets, no credit balance (today's only)
    assert set(names) == at_project
    assert TEAM_BUDGET.name not in names
    # each series contiguous and in time order
    last: dict[str, float] = {}
    seen_done: set[str] = set()
    current = None
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        series, _value, stamp = line.rsplit(" ", 2)
        if series != current:
            assert series not in seen_done, f"series split: {series}"
            if current is not None:
                seen_done.add(current)
            current = series
        assert float(stamp) > last.get(series, float("-inf"))
        last[series] = float(stamp)
    assert "requests" in world.result.stderr  # the summary line


@pytest.mark.e2e
@pytest.mark.tools
def test_every_series_carries_the_labels_given(world: World) -> None:
    text = world.file.read_text(encoding="utf-8")
    labels = f'job="{JOB}",instance="{world.instance}"'
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    assert samples
    assert all(labels in line for line in samples)
    first, last = ends(world.org)[0], world.until
    series = world.prom.api(
        "series", **{"match[]": '{__name__=~"northflank_.+"}', "start": first, "end": last}
    )
    assert series
    for entry in series:
        assert entry["job"] == JOB, entry
        assert entry["instance"] == world.instance, entry


@pytest.mark.e2e
@pytest.mark.tools
def test_each_past_invoice_figures_inside_its_span(world: World) -> None:
    org, prom = world.org, world.prom
    for end in ends(org):
        invoice_id = invoice_at(org, end)
        at = end + 10 * DAY + 30  # a sample at end + 10 days, 30 s before the query
        whole = org.render_invoice(invoice_id)
        got = scalar(prom, f'northflank_invoice_amount{{job="{JOB}"}}', at)
        assert got == pytest.approx(whole["total"] / 100), invoice_id
        (info,) = prom.query(f'northflank_invoice_info{{job="{JOB}"}}', at=at)
        assert info["metric"]["invoice_id"] == invoice_id
        for team in whole["paasUsage"]["teams"]:
            got = scalar(prom, f'northflank_team_cost{{team="{team["id"]}"}}', at)
            assert got == pytest.approx(team["price"]["total"] / 100), (invoice_id, team["id"])
        team_id = whole["paasUsage"]["teams"][-1]["id"]
        (team_doc,) = org.render_invoice(invoice_id, team_id=team_id)["paasUsage"]["teams"]
        project = team_doc["projects"][-1]
        query = f'northflank_project_cost{{team="{team_id}",project="{project["id"]}"}}'
        assert scalar(prom, query, at) == pytest.approx(project["price"]["total"] / 100)


@pytest.mark.e2e
@pytest.mark.tools
def test_unbilled_figures_sum_the_usage_up_to_that_hour(world: World) -> None:
    org, prom = world.org, world.prom
    for end in ends(org):
        hours = 50
        sample_at = end + hours * HOUR  # the hours [end, end + 50 h) have ended by then
        assert sample_at < world.until
        usage = org.render_usage(
            now=world.until, start=end, end=sample_at, history=True, running_hour=False
        )
        assert len(usage) == hours
        total = sum(
            e["paasUsage"]["price"]["total"]
            + e.get("byocUsage", {}).get("price", {}).get("total", 0)
            for e in usage
        )
        at = sample_at + 30
        got = scalar(prom, f'northflank_unbilled_cost{{job="{JOB}"}}', at)
        assert got == pytest.approx(total / 100), end
        assert scalar(prom, m.UNBILLED_SINCE.name, at) == end
        assert scalar(prom, m.UNBILLED_THROUGH.name, at) == sample_at
        team_hours = org.render_usage(
            now=world.until,
            start=end,
            end=sample_at,
            team_id="team-2",
            history=True,
            running_hour=False,
        )
        team_total = sum(e["paasUsage"]["price"]["total"] for e in team_hours)
        got = scalar(prom, 'northflank_team_unbilled_cost{team="team-2"}', at)
        assert got == pytest.approx(team_total / 100)
        # the spend since an invoice restarts at 0 at its end
        assert scalar(prom, f'northflank_unbilled_cost{{job="{JOB}"}}', end + 30) == 0


def history_targets() -> list[tuple[str, str, str]]:
    """(panel, refId, expr) of every query that bridges hourly samples."""
    found = [
        (panel["title"], target["refId"], target["expr"])
        for panel in all_panels(load_dashboard())
        for target in panel.get("targets", [])
        if "last_over_time(" in target["expr"]
    ]
    assert len(found) >= 8
    return found


@pytest.mark.e2e
@pytest.mark.tools
def test_dashboard_history_panels_have_data_at_every_5_minutes(world: World) -> None:
    """Over every backfilled month and over the live scrape after it, at a 5-minute
    step (Grafana's resolution for a range of a few days), no point is missing."""
    prom = world.prom
    now = float(prom.query("time()")[0]["value"][0])
    edges = [*ends(world.org), world.until]
    ranges = list(itertools.pairwise(edges))
    ranges.append((world.until - HOUR, now))  # across the join of backfill and live
    titles = {panel["title"] for panel in all_panels(load_dashboard())}
    assert {"Invoice total by month", "Cost by team, invoice by invoice"} <= titles
    for title, ref, expr in history_targets():
        query = substitute(expr)
        for start, stop in ranges:
            start = start + 300 - start % 300 if start % 300 else start
            expected = int((stop - start) // 300) + 1
            result = prom.query_range(query, start, stop, 300)
            stamps = {float(t) for series in result for t, _ in series["values"]}
            assert len(stamps) == expected, (title, ref, start, stop, len(stamps), expected)
    # the live part is the scrape's own samples, not only the backfill's last one
    live = f'count_over_time(northflank_invoice_amount{{job="{JOB}"}}[30s])'
    assert scalar(prom, live, now) >= 2
    newest = invoice_at(world.org, ends(world.org)[-1])
    total = world.org.render_invoice(newest)["total"] / 100
    (panel,) = [p for p in all_panels(load_dashboard()) if p["title"] == "Invoice total by month"]
    first = substitute(panel["targets"][0]["expr"])
    assert scalar(prom, first, now) == pytest.approx(total)
