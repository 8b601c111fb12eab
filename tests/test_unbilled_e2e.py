"""Unbilled spend and budgets, end to end: the exporter process against the simulator,
summed hour by hour (a simulator pinned to the legacy contract, whose usage list knows no
``granularity``; the API's own sums of the current contract: tests/test_unbilled_current.py).

The simulator's clock is a ManualClock, so the test decides which hours have ended.
"""

from __future__ import annotations

from typing import Any

import pytest

from exporter import metrics as m
from exporter.simulator import ManualClock, Organisation, Simulator, generate_organisation
from tests.harness import TOKEN, Exporter, Scrape, api_env, wait_for

HOUR = 3600
pytestmark = pytest.mark.e2e


@pytest.fixture
def sim_org() -> Organisation:
    return generate_organisation(teams=3, projects_per_team=2)


@pytest.fixture
def sim_options() -> dict[str, Any]:
    return {"contract": "legacy-pinned"}


@pytest.fixture
def sim_hours() -> float:
    """``sim`` runs on the ``clock`` fixture, two whole hours after the newest invoice."""
    return 2.5


def env(sim: Simulator, **extra: str) -> dict[str, str]:
    return api_env(sim.url, TOKEN, **{"depth": "team", **extra})


def sums(sim: Simulator, team_id: str | None = None) -> float:
    hours = sim.org.render_usage(now=sim.clock(), team_id=team_id)
    total = 0
    for entry in hours:
        total += entry["paasUsage"]["price"]["total"]
        if team_id is None and "byocUsage" in entry:
            total += entry["byocUsage"]["price"]["total"]
    return total / 100


def usage_calls(sim: Simulator) -> list[tuple[str, str]]:
    return [
        (record.path, record.query.get("startTime", ""))
        for record in sim.requests
        if record.path.endswith("/billing/usage")
    ]


def unbilled(scrape: Scrape) -> float | None:
    return scrape.get(m.UNBILLED_COST.name, currency="usd")


def test_usage_is_asked_from_three_hours_back_and_sums_match(
    sim: Simulator, clock: ManualClock
) -> None:
    since = sim.org.newest_invoice().period_end
    with Exporter(env=env(sim)) as exporter:
        first = exporter.wait_ready()
        assert unbilled(first) == pytest.approx(sums(sim))
        assert first.get(m.UNBILLED_SINCE.name) == since
        # two whole hours and the running one, half filled: through is the running hour's end
        assert first.get(m.UNBILLED_THROUGH.name) == since + 3 * HOUR
        for team in ("team-1", "team-2", "team-3"):
            [value] = [
                v
                for labels, v in first.family(m.TEAM_UNBILLED_COST.name).items()
                if ("team", team) in labels
            ]
            assert value == pytest.approx(sums(sim, team))
        first_calls = usage_calls(sim)
        assert len(first_calls) >= 4  # the first poll: org-wide and three teams, from since
        assert {start for _, start in first_calls[:4]} == {str(int(since))}

        clock.advance(3 * HOUR)  # three more hours end; the next one is half filled
        later = exporter.wait_metric(m.UNBILLED_THROUGH.name, lambda v: v == since + 6 * HOUR)
        assert unbilled(later) == pytest.approx(sums(sim))
        # from now on every usage call starts 3 hours before the newest hour summed
        sim.clear_requests()
        wait_for(lambda: len(usage_calls(sim)) >= 8)
        starts = {start for _, start in usage_calls(sim)}
        assert starts == {str(int(since + 3 * HOUR))}


def test_a_new_invoice_restarts_the_window(sim: Simulator, clock: ManualClock) -> None:
    old_end = sim.org.newest_invoice().period_end
    with Exporter(env=env(sim)) as exporter:
        exporter.wait_ready()
        new_end = old_end + 2 * HOUR
        sim.org.close_period(new_end)
        clock.advance(HOUR)  # now new_end + 1.5 h: one whole hour and the running one
        scrape = exporter.wait_metric(m.UNBILLED_SINCE.name, lambda v: v == new_end)
        scrape = exporter.wait_metric(m.UNBILLED_THROUGH.name, lambda v: v == new_end + 2 * HOUR)
        assert unbilled(scrape) == pytest.approx(sums(sim))
        info = scrape.family(m.INVOICE_INFO.name)
        assert [dict(labels)["invoice_id"] for labels in info] == [sim.org.newest_invoice().id]


def test_before_the_api_returns_any_hour_the_families_are_zero(
    sim: Simulator, clock: ManualClock
) -> None:
    clock.now = sim.org.newest_invoice().period_end + 0.5 * HOUR
    sim.running_hour = False  # an API that returns whole hours only: none has ended
    with Exporter(env=env(sim)) as exporter:
        scrape = exporter.wait_ready()
    since = sim.org.newest_invoice().period_end
    assert unbilled(scrape) == 0
    assert scrape.get(m.UNBILLED_THROUGH.name) == since
    assert scrape.get(m.UNBILLED_SINCE.name) == since
    assert set(scrape.family(m.TEAM_UNBILLED_COST.name).values()) == {0}


def test_unbilled_off_makes_no_usage_calls(sim: Simulator) -> None:
    with Exporter(env=env(sim, unbilled="false")) as exporter:
        scrape = exporter.wait_ready()
    assert usage_calls(sim) == []
    assert unbilled(scrape) is None
    assert scrape.family(m.TEAM_UNBILLED_COST.name) == {}


def test_budgets_for_polled_teams_and_a_warning_for_unknown_ones(sim: Simulator) -> None:
    budgets = "team-1=500, ghost-team=10, *=250.5"
    with Exporter(env=env(sim, budgets=budgets, unbilled="false", teams="team-1,team-2")) as exp:
        scrape = exp.wait_ready()
        wait_for(lambda: "ghost-team" in exp.logs())
        exp.wait_metric(m.UP.name, lambda v: v == 1)
        logs = exp.logs()
    budget = {dict(labels)["team"]: v for labels, v in scrape.family(m.TEAM_BUDGET.name).items()}
    assert budget == {"team-1": 500, "team-2": 250.5}  # team-3 is not polled, ghost not listed
    assert logs.count("names teams the invoice does not list: ghost-team") == 1  # once


def test_budget_goes_stale_with_the_figures(sim: Simulator) -> None:
    environment = env(sim, budgets="*=100", max_staleness_seconds="2", poll_interval_seconds="60")
    with Exporter(env=environment) as exporter:
        assert exporter.wait_ready().family(m.TEAM_BUDGET.name)
        scrape = exporter.wait_metric(m.INVOICE_AMOUNT.name, lambda v: v is None, currency="usd")
    assert scrape.family(m.TEAM_BUDGET.name) == {}
    assert scrape.family(m.UNBILLED_COST.name) == {}
