"""This month, broken down, end to end: the exporter process against the simulator on a
ManualClock, so the test decides which hours have settled.

After catching up, every family equals the simulator's own sums of the settled hours
(``render_usage_hour``, one project at a time) exactly, at depths project and resource, in
both contracts; each hour is read once (the request log); polls keep their schedule while
the catch-up runs, and the catch-up stops at the reserve; a restart with the state file
reads no hour twice and gives the same figures; a corrupt, foreign or old state file is
ignored with one line; a new invoice restarts the breakdown at its end.
"""

from __future__ import annotations

import collections
import itertools
import json
import re
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from exporter import metrics as m
from exporter.simulator import ManualClock, Organisation, Simulator, generate_organisation
from tests.harness import TOKEN, Exporter, Scrape, api_env, wait_for
from tests.month_sums import simulated

HOUR = 3600
ELAPSED = 8.5  # hours since the invoice's end: five have settled (ended 3 h ago or more)
pytestmark = pytest.mark.e2e

Key = frozenset[tuple[str, str]]  # labels but currency


@pytest.fixture
def sim_org() -> Organisation:
    return generate_organisation(teams=3, projects_per_team=2, fractional_cents=True)


@pytest.fixture
def sim_hours() -> float:
    return ELAPSED


def env(sim: Simulator, depth: str, **extra: str) -> dict[str, str]:
    return api_env(sim.url, TOKEN, unbilled_depth=depth, depth="resource", **extra)


def settled_end(now: float) -> float:
    return (now - 3 * HOUR) // HOUR * HOUR


def expected(
    sim: Simulator, since: float, through: float, depth: str
) -> dict[str, dict[Key, Fraction]]:
    """The simulator's sums of the hours from ``since`` to ``through`` (tests/month_sums.py),
    by family and labels."""
    out: dict[str, dict[Key, Fraction]] = collections.defaultdict(dict)
    for key, (name, total, dimensions) in simulated(
        sim.org, sim.clock(), since, through, depth
    ).items():
        labels = dict(zip(("team", "project", "resource_type", "resource"), key, strict=False))
        if len(key) == 2:
            labels["project_name"] = name
            family = "project"
        elif len(key) == 3:
            family = "resource_type"
        else:
            labels["resource_name"] = name
            family = "resource"
        out[f"northflank_{family}_unbilled_cost"][frozenset(labels.items())] = total
        for dimension, value in dimensions.items():
            where = frozenset({**labels, "dimension": dimension}.items())
            out[f"northflank_{family}_unbilled_dimension_cost"][where] = value
    return out


def served(scrape: Scrape, family: str) -> dict[Key, float]:
    """A family's samples by their labels but ``currency`` (all usd)."""
    out = {}
    for labels, value in scrape.family(family).items():
        assert ("currency", "usd") in labels
        out[frozenset(kv for kv in labels if kv[0] != "currency")] = value
    return out


def assert_sums(scrape: Scrape, sim: Simulator, since: float, through: float, depth: str) -> None:
    """Every family of the depth equals the simulator's sums, exactly (as floats)."""
    want = expected(sim, since, through, depth)
    families = [m.PROJECT_UNBILLED_COST, m.PROJECT_UNBILLED_DIMENSION_COST]
    if depth == "resource":
        families += [
            m.RESOURCE_TYPE_UNBILLED_COST,
            m.RESOURCE_TYPE_UNBILLED_DIMENSION_COST,
            m.RESOURCE_UNBILLED_COST,
            m.RESOURCE_UNBILLED_DIMENSION_COST,
        ]
    else:
        assert not scrape.family(m.RESOURCE_UNBILLED_COST.name)
        assert not scrape.family(m.RESOURCE_TYPE_UNBILLED_COST.name)
    for spec in families:
        got = served(scrape, spec.name)
        assert got, spec.name
        assert got.keys() == want[spec.name].keys(), spec.name
        for labels, value in want[spec.name].items():
            assert got[labels] == pytest.approx(float(value), abs=1e-9), (spec.name, labels)


def hour_reads(sim: Simulator) -> list[tuple[int, tuple[tuple[str, str], ...]]]:
    """Each ``GET /v1/billing/usage/{timestamp}``: the hour and the filters."""
    out = []
    for record in sim.requests:
        found = re.fullmatch(r"/v1/(?:teams/[^/]+/)?billing/usage/(\d+)", record.path)
        if found:
            filters = tuple(
                sorted(
                    (k, v)
                    for k, v in record.query.items()
                    if k in ("teamId", "projectId", "resourceType")
                )
            )
            out.append((int(found.group(1)), filters))
    return out


def assert_each_hour_read_once(sim: Simulator, through: float) -> None:
    reads = hour_reads(sim)
    assert reads, "no hour was read"
    twice = [read for read, n in collections.Counter(reads).items() if n > 1]
    assert not twice, f"read more than once: {twice[:5]}"
    assert all(hour + HOUR <= through for hour, _ in reads), "an hour not yet settled was read"


def caught_up(exporter: Exporter, through: float, timeout: float = 60) -> Scrape:
    return exporter.wait_metric(
        m.UNBILLED_BREAKDOWN_THROUGH.name, lambda v: v == through, timeout=timeout
    )


CASES = [
    pytest.param("current", "project", id="current-project"),
    pytest.param("current", "resource", id="current-resource"),
    pytest.param("legacy-pinned", "project", id="legacy-project"),
    pytest.param("legacy-pinned", "resource", id="legacy-resource"),
]


@pytest.mark.parametrize(("contract", "depth"), CASES)
def test_after_catching_up_each_family_equals_the_simulators_sums(
    make_sim: Any, sim_org: Organisation, clock: ManualClock, contract: str, depth: str
) -> None:
    since = sim_org.newest_invoice().period_end
    clock.now = since + ELAPSED * HOUR
    sim = make_sim(sim_org, clock=clock, contract=contract, rate_limit=10**6)
    through = settled_end(clock.now)
    with Exporter(env=env(sim, depth)) as exporter:
        scrape = caught_up(exporter, through)
        assert_sums(scrape, sim, since, through, depth)
        assert_each_hour_read_once(sim, through)
        # the invoice's breakdown is served beside it, whole (3 teams x 2 projects x 7 types)
        assert len(scrape.family(m.RESOURCE_COST.name)) == 3 * 2 * 7
        # an hour settles: it alone is read, then the figures hold it too
        clock.advance(HOUR)
        scrape = caught_up(exporter, through + HOUR)
        assert_sums(scrape, sim, since, through + HOUR, depth)
        assert_each_hour_read_once(sim, through + HOUR)
        assert {hour for hour, _ in hour_reads(sim)} >= {int(through)}
        assert exporter.value(m.UP.name) == 1


def test_the_current_contract_catches_up_from_the_apis_sums_by_project(
    make_sim: Any, sim_org: Organisation, clock: ManualClock
) -> None:
    """At depth project, five hours due: the newest hour read, then one ``granularity=total``
    request per team and per project instead of every hour's."""
    since = sim_org.newest_invoice().period_end
    clock.now = since + ELAPSED * HOUR
    sim = make_sim(sim_org, clock=clock, contract="current", rate_limit=10**6)
    through = settled_end(clock.now)
    with Exporter(env=env(sim, "project")) as exporter:
        caught_up(exporter, through)
    spans = [
        r
        for r in sim.requests
        if r.path.endswith("/billing/usage") and r.query.get("granularity") == "total"
        and r.query.get("endTime") == str(int(through))
    ]  # fmt: skip
    # three teams, six projects: one each, and the hour read at most once (1 + 3 requests)
    assert len(spans) == 3 + 6
    assert len(hour_reads(sim)) == 1 + 3
    assert {hour for hour, _ in hour_reads(sim)} == {int(through - HOUR)}


def test_polls_keep_their_schedule_while_the_catch_up_runs(
    make_sim: Any, sim_org: Organisation, clock: ManualClock
) -> None:
    """Forty hours at depth resource, with 50 ms an answer: the catch-up takes seconds,
    and the polls (one a second) go on between its requests."""
    since = sim_org.newest_invoice().period_end
    clock.now = since + 43.5 * HOUR
    sim = make_sim(sim_org, clock=clock, contract="current", rate_limit=10**6)
    sim.faults.latency = 0.05
    through = settled_end(clock.now)
    with Exporter(env=env(sim, "resource")) as exporter:
        caught_up(exporter, through, timeout=120)
    reads = [r.time for r in sim.requests if re.search(r"/billing/usage/\d+$", r.path)]
    polls = [r.time for r in sim.requests if r.path == "/v1/billing/invoices"]
    during = [t for t in polls if reads[0] <= t <= reads[-1]]
    assert reads[-1] - reads[0] > 3, "the catch-up was too quick to say anything"
    assert len(during) >= 2
    gaps = [b - a for a, b in itertools.pairwise(polls) if reads[0] <= b <= reads[-1]]
    # one a second, each a few requests long: never held up behind the hours' requests
    assert max(gaps) < 2.0, gaps


def test_the_catch_up_stops_at_the_reserve(
    make_sim: Any, sim_org: Organisation, clock: ManualClock
) -> None:
    """An API that allows 300 requests an hour, a reserve of 100 and polls an hour apart:
    the catch-up of 200 hours stops short, and never leaves fewer than 100 requests."""
    since = sim_org.newest_invoice().period_end
    clock.now = since + 203.5 * HOUR
    sim = make_sim(sim_org, clock=clock, contract="current", rate_limit=300)
    settings = {
        "poll_interval_seconds": "3600",
        "ratelimit_reserve": "100",
        "request_budget_per_hour": "900",
    }
    with Exporter(env=env(sim, "resource", **settings)) as exporter:
        exporter.wait_ready()
        exporter.wait_metric(
            m.UNBILLED_BREAKDOWN_THROUGH.name, lambda v: v is not None and v > since
        )
        wait_for(lambda: "this month's breakdown waits" in exporter.logs(), timeout=30)
        used = len(sim.requests)
        time.sleep(1)
        assert len(sim.requests) == used  # it stopped: nothing more is sent
        through = exporter.value(m.UNBILLED_BREAKDOWN_THROUGH.name)
        assert exporter.value(m.UP.name) == 1
    assert through is not None
    assert since + 10 * HOUR < through < settled_end(clock.now)
    assert all(r.status != 429 for r in sim.requests)
    # never below the reserve, and as near it as the polls' share until the window resets
    # (two steady polls) and one more hour allow
    assert 150 <= used <= 200, used


@pytest.mark.parametrize("depth", ["project", "resource"])
def test_a_restart_with_the_state_file_reads_no_hour_twice(
    make_sim: Any, sim_org: Organisation, clock: ManualClock, tmp_path: Path, depth: str
) -> None:
    since = sim_org.newest_invoice().period_end
    clock.now = since + ELAPSED * HOUR
    sim = make_sim(sim_org, clock=clock, contract="current", rate_limit=10**6)
    state = tmp_path / "month.json"
    through = settled_end(clock.now)
    with Exporter(env=env(sim, depth, state_file=str(state))) as exporter:
        first = caught_up(exporter, through)
    assert json.loads(state.read_text())["through"] == through
    before = hour_reads(sim)
    clock.advance(2 * HOUR)
    with Exporter(env=env(sim, depth, state_file=str(state))) as exporter:
        again = caught_up(exporter, through + 2 * HOUR)
        logs = exporter.logs()
    assert "resumed from" in logs
    new = hour_reads(sim)[len(before) :]
    assert {hour for hour, _ in new} == {int(through), int(through + HOUR)}
    assert_each_hour_read_once(sim, through + 2 * HOUR)
    assert_sums(again, sim, since, through + 2 * HOUR, depth)
    # the hours the first run summed give the same figures after the restart
    old = served(first, m.PROJECT_UNBILLED_COST.name)
    later = served(again, m.PROJECT_UNBILLED_COST.name)
    want = expected(sim, through, through + 2 * HOUR, depth)[m.PROJECT_UNBILLED_COST.name]
    for labels, value in old.items():
        step = [v for k, v in want.items() if set(k) == set(labels)]
        assert later[labels] == pytest.approx(value + float(sum(step)), abs=1e-9)


def test_a_corrupt_state_file_is_ignored_with_one_line(
    make_sim: Any, sim_org: Organisation, clock: ManualClock, tmp_path: Path
) -> None:
    since = sim_org.newest_invoice().period_end
    clock.now = since + ELAPSED * HOUR
    sim = make_sim(sim_org, clock=clock, contract="legacy-pinned", rate_limit=10**6)
    state = tmp_path / "month.json"
    state.write_text('{"format": "northflank-exporter month", "version": 1, "sums": [')
    through = settled_end(clock.now)
    with Exporter(env=env(sim, "project", state_file=str(state))) as exporter:
        scrape = caught_up(exporter, through)
        logs = exporter.logs()
    assert len(re.findall(r"state file .* ignored", logs)) == 1, logs
    assert_sums(scrape, sim, since, through, "project")
    assert json.loads(state.read_text())["through"] == through  # written whole, anew


@pytest.mark.parametrize("contract", ["current", "legacy-pinned"])
def test_a_new_invoice_restarts_the_breakdown_at_its_end(
    make_sim: Any, sim_org: Organisation, clock: ManualClock, contract: str
) -> None:
    since = sim_org.newest_invoice().period_end
    clock.now = since + ELAPSED * HOUR
    sim = make_sim(sim_org, clock=clock, contract=contract, rate_limit=10**6)
    with Exporter(env=env(sim, "project")) as exporter:
        caught_up(exporter, settled_end(clock.now))
        new_end = since + 6 * HOUR
        sim.org.close_period(new_end)
        clock.advance(4 * HOUR)  # new_end + 6.5 h: three hours of the new window settled
        scrape = exporter.wait_metric(m.UNBILLED_SINCE.name, lambda v: v == new_end)
        scrape = caught_up(exporter, new_end + 3 * HOUR)
        assert_sums(scrape, sim, new_end, new_end + 3 * HOUR, "project")
