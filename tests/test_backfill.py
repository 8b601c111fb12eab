"""``northflank-exporter backfill``, end to end with the real tools.

The module's Prometheus holds what a user would have after a backfill: the simulator
(4 monthly invoices, usage history) read by ``backfill`` into OpenMetrics, turned into
blocks by ``promtool tsdb create-blocks-from openmetrics``, and a live exporter scraped
from the moment the backfill stopped, with the same ``job`` and ``instance`` labels.
The figures Prometheus answers are compared with what the simulator says the API holds.
"""

from __future__ import annotations

import asyncio
import fcntl
import itertools
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter import backfill, history
from exporter import metrics as m
from exporter.history_fetch import Budget
from exporter.metrics import COST, TEAM_BUDGET
from exporter.settings import SettingsError
from exporter.simulator import (
    HOUR,
    Organisation,
    Simulator,
    generate_organisation,
    price_json,
    pricing_invoice,
    usage_entries,
    usage_since,
)
from tests.harness import TOKEN, Exporter, api_env
from tests.promserver import PrometheusServer, require_binary, static_job
from tests.test_dashboard import all_panels, load_dashboard, substitute

DAY = 86400
JOB = "northflank"
MAX_BLOCK = "--max-block-duration=1458h"  # a few passes over the file, not one per 2 hours


def org_now() -> float:
    """Ten days ago: the newest invoice ends at least ten days before the test runs."""
    return time.time() - 10 * DAY


def run_backfill(
    sim: Simulator, *args: str, timeout: float = 300, **settings: str
) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("NORTHFLANK_")}
    env.update(api_env(sim.url, TOKEN, **settings))
    return subprocess.run(
        [sys.executable, "-m", "exporter", "backfill", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def promtool_blocks(openmetrics: Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    promtool = require_binary("promtool")
    return subprocess.run(
        [
            promtool,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            MAX_BLOCK,
            *(str(openmetrics), str(data_dir)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def ends(org: Organisation) -> list[float]:
    return sorted(invoice.period_end for invoice in org.invoices)


def invoice_at(org: Organisation, end: float) -> str:
    return next(invoice.id for invoice in org.invoices if invoice.period_end == end)


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
    written = {spec.name for spec in COST} - {TEAM_BUDGET.name}
    at_project = {n for n in written if "resource" not in n}
    assert set(names) == at_project  # depth project: no resource families, no budgets
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


# --------------------------------------------------------------------------- a fault halfway


@pytest.mark.e2e
@pytest.mark.tools
def test_api_failing_halfway_exits_1_with_a_valid_file(tmp_path: Path) -> None:
    org = generate_organisation(teams=2, projects_per_team=2, invoices=4, now=org_now())
    order = ends(org)
    broken = invoice_at(org, order[2])
    with Simulator(org, token=TOKEN, usage_history=True) as sim:
        sim.faults.fail(503, count=1000, match=lambda path, query: path.endswith("/" + broken))
        file = tmp_path / "history.om"
        result = run_backfill(sim, "--since", str(order[0]), "--output", str(file))
    assert result.returncode == 1, result.stderr
    assert "the API failed" in result.stderr
    assert "wrote the 2 whole invoices read" in result.stderr
    text = file.read_text(encoding="utf-8")
    assert text.endswith("# EOF\n")
    written = set(re.findall(r'invoice_id="([^"]+)"', text))
    assert written == {invoice_at(org, order[0]), invoice_at(org, order[1])}
    stamps = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line[0] != "#"]
    assert max(stamps) < order[2]  # the second span stops where the broken invoice starts
    blocks = promtool_blocks(file, tmp_path / "data")
    assert blocks.returncode == 0, blocks.stdout + blocks.stderr


# --------------------------------------------------------------------------- flags


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--output", "x"], "--since"),
        (["--since", "2026-01-01"], "--output"),
        (["--since", "last tuesday", "--output", "x"], "--since"),
        (["--since", "2026-02-01", "--until", "2026-01-01", "--output", "x"], "--until"),
        (["--since", "2026-01-01", "--step-seconds", "0", "--output", "x"], "--step-seconds"),
        (["--since", "2026-01-01", "--step-seconds", "1h", "--output", "x"], "--step-seconds"),
        (["--since", "2026-01-01", "--depth", "org", "--output", "x"], "--depth"),
        (["--since", "2026-01-01", "--label", "team=a", "--output", "x"], "--label"),
        (["--since", "2026-01-01", "--label", "currency=a", "--output", "x"], "--label"),
        (["--since", "2026-01-01", "--label", "bad-name=a", "--output", "x"], "--label"),
        (["--since", "2026-01-01", "--label", "__name__=a", "--output", "x"], "--label"),
        (
            ["--since", "2026-01-01", "--label", "job=a", "--label", "job=b", "--output", "x"],
            "--label",
        ),
        (["--since", "2026-01-01", "--label", "job", "--output", "x"], "--label"),
        (["--since", "2026-01-01", "--once", "--output", "x"], "--once"),
        (["--since", "2026-01-01", "--nonsense", "--output", "x"], "--nonsense"),
        (["--since", "2026-01-01", "--api-url", "ftp://x", "--output", "x"], "--api-url"),
        (["--since", "2026-01-01", "--output", "/nonexistent-dir/x.om"], "--output"),
    ],
)
def test_bad_flags_exit_2_with_one_line(
    args: list[str], says: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("NORTHFLANK_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NORTHFLANK_API_TOKEN", "t")
    assert backfill.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("northflank-exporter backfill: ")
    assert says in err


def test_missing_token_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("NORTHFLANK_"):
            monkeypatch.delenv(name)
    assert backfill.main(["--since", "2026-01-01", "--output", "-"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "NORTHFLANK_API_TOKEN" in err


def test_options_parse_dates_depth_and_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NORTHFLANK_API_TOKEN", "t")
    monkeypatch.setenv("NORTHFLANK_DEPTH", "resource")  # the exporter's: backfill has its own
    options = backfill.parse(
        [
            "--since",
            "2026-01-01",
            "--until",
            "2026-02-01T12:00:00Z",
            "--output",
            "-",
            "--label",
            "job=northflank",
            "--label",
            'instance=a "b"',
        ],
        now=0,
    )
    assert options.since == 1767225600
    assert options.until == 1769947200
    assert options.settings.depth == "project"
    assert options.step == 3600
    assert options.labels == (("job", "northflank"), ("instance", 'a "b"'))
    assert history.label_text(options.labels) == 'job="northflank",instance="a \\"b\\""'
    deep = backfill.parse(["--since", "1767225600", "--depth", "resource", "--output", "-"])
    assert deep.settings.depth == "resource"
    with pytest.raises(SettingsError):
        backfill.parse(["--since", "2026-01-01", "--output", "-", "--label", "dimension=x"])


# --------------------------------------------------------------------------- budget, progress


def test_budget_waits_when_the_hour_is_spent_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    async def go() -> None:
        budget = Budget(5, clock=lambda: now[0], sleep=sleep)
        for _ in range(3):
            await budget.take()
            now[0] += 10
        await budget.take(2)  # 5 in the hour: still no wait
        assert slept == []
        await budget.take()  # the 6th waits until the first is an hour old
        assert slept == [pytest.approx(3600 - 30)]
        budget.settle(budget.taken + 4)  # 4 more pages than taken: counted
        await budget.take()
        assert len(slept) == 2

    with caplog.at_level("WARNING"):
        asyncio.run(go())
    assert "NORTHFLANK_REQUEST_BUDGET_PER_HOUR is 5; waiting 3570 s" in caplog.text


@pytest.mark.e2e
def test_progress_on_a_terminal_only(tmp_path: Path) -> None:
    org = generate_organisation(teams=1, projects_per_team=1, invoices=2, now=org_now())
    with Simulator(org, token=TOKEN, usage_history=True) as sim:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NORTHFLANK_")}
        env.update(api_env(sim.url, TOKEN))
        args = [sys.executable, "-m", "exporter", "backfill", "--since", str(ends(org)[0])]
        leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
        process = subprocess.Popen(
            [*args, "--output", str(tmp_path / "a.om")], env=env, stderr=follower
        )
        os.close(follower)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        assert process.wait(60) == 0
        os.close(leader)
        plain = run_backfill(sim, "--since", str(ends(org)[0]), "--output", str(tmp_path / "b.om"))
    shown = seen.decode(errors="replace")
    assert "reading" in shown
    assert "writing" in shown
    assert "100%" in shown
    assert plain.returncode == 0
    assert "reading" not in plain.stderr
    assert "%|" not in plain.stderr


# --------------------------------------------------------------------------- the simulator


def test_simulator_serves_past_hours_priced_from_the_invoice_that_bills_them() -> None:
    org = generate_organisation(teams=2, projects_per_team=2, invoices=3, now=org_now())
    oldest, middle, newest = sorted(org.invoices, key=lambda i: i.period_end)
    now = newest.period_end + 5 * HOUR
    start = usage_since(oldest)
    hours = org.render_usage(now=now, start=start, end=start + 3 * HOUR, history=True)
    assert [e["timestamp"] for e in hours] == [start + 2 * HOUR, start + HOUR, start]
    assert hours == usage_entries(
        [start + 2 * HOUR, start + HOUR, start], org.usage_rates(middle), None, now
    )
    assert pricing_invoice(org, start) is middle
    assert pricing_invoice(org, usage_since(middle)) is newest
    assert pricing_invoice(org, usage_since(newest) + HOUR) is newest
    # every hour from the oldest invoice's end, without gaps; none before it
    every = org.render_usage(now=now, history=True, running_hour=False)
    stamps = sorted(e["timestamp"] for e in every)
    assert stamps == list(range(start, int(now), HOUR))
    assert org.render_usage(now=now, end=start, history=True) == []
    # without history: from the newest invoice's end only, as before
    assert org.render_usage(now=now, running_hour=False) == [
        e for e in every if e["timestamp"] >= newest.period_end
    ]
    # a span's hours add up to about the invoice that bills them (factor 0.5..1.5, ~1)
    span = org.render_usage(now=now, start=oldest.period_end, end=middle.period_end, history=True)
    paas = sum(e["paasUsage"]["price"]["total"] for e in span)
    billed = price_json(org.aggregates(middle).paas)["total"]
    assert 0.9 < paas / (billed * len(span) / 720) < 1.1


def test_simulator_api_pages_the_history() -> None:
    org = generate_organisation(teams=2, projects_per_team=1, invoices=3, now=org_now())
    oldest = min(org.invoices, key=lambda i: i.period_end)
    start = oldest.period_end
    query = {"startTime": str(start), "endTime": str(start + 250 * HOUR), "per_page": "100"}
    got: list[Any] = []
    with (
        Simulator(org, token=TOKEN, usage_history=True, running_hour=False) as sim,
        httpx.Client(base_url=sim.url, headers={"Authorization": f"Bearer {TOKEN}"}) as c,
    ):
        while True:
            body = c.get("/v1/teams/team-1/billing/usage", params=query).json()
            got += body["data"]["usage"]
            if not body["pagination"]["hasNextPage"]:
                break
            query["cursor"] = body["pagination"]["cursor"]
    assert len(got) == 250
    assert got == org.render_usage(
        now=time.time(),
        start=start,
        end=start + 250 * HOUR,
        team_id="team-1",
        history=True,
        running_hour=False,
    )
    assert got[-1]["paasUsage"]["price"] == price_json(
        org.usage_rates(pricing_invoice(org, int(start))).team_hour("team-1", int(start))
    )


@pytest.mark.e2e
def test_backfill_waits_for_the_request_budget_and_says_so(tmp_path: Path) -> None:
    """With a budget of 3 requests an hour, the requests after the first invoice wait:
    the log says so and nothing more is sent (the test stops it there)."""
    org = generate_organisation(teams=2, projects_per_team=1, invoices=2, now=org_now())
    with Simulator(org, token=TOKEN, usage_history=True) as sim:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NORTHFLANK_")}
        env.update(api_env(sim.url, TOKEN, request_budget_per_hour="3"))
        args = ["--since", str(ends(org)[0]), "--output", str(tmp_path / "a.om")]
        process = subprocess.Popen(
            [sys.executable, "-m", "exporter", "backfill", *args],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stderr is not None
            line = process.stderr.readline()
            assert "NORTHFLANK_REQUEST_BUDGET_PER_HOUR is 3; waiting" in line
            sent = len(sim.requests)
            # the first invoice may overshoot by its own size (its teams are unknown
            # until its first answer), as the exporter's first poll may
            assert sent == 1 + 1 + 2  # the list, the invoice, its two teams
            time.sleep(0.5)
            assert process.poll() is None  # still waiting
            assert len(sim.requests) == sent
        finally:
            process.terminate()
            process.wait(10)
    assert not (tmp_path / "a.om").exists()  # nothing half-written under the name
