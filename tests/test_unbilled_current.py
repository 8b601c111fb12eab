"""Spend not yet invoiced in the current contract: the API's own sum of the window.

Every poll asks ``GET /v1/billing/usage?granularity=total&startTime=<since>&endTime=<end
of the running hour>`` once org-wide and once per team, ``through`` is that ``endTime``,
and the running hour is judged by the API's clock (its ``Date`` header), never the
host's. A server that refuses ``granularity=total`` (400) is read hour by hour in the same
poll, and asked for totals again a day later (virtual time, in process).
"""

from __future__ import annotations

import asyncio
import math

import pytest

from exporter import metrics as m
from exporter.api.client import Client
from exporter.poller import Outcome, Poller
from exporter.settings import Settings
from exporter.simulator import HOUR, ManualClock, Simulator, generate_organisation
from tests.contracts import major
from tests.e2e.helpers import run_once
from tests.harness import TOKEN, Exporter, MakeSim, Scrape, api_env, parse_exposition
from tests.virtual import FakeApi, VirtualTimeLoop

pytestmark = pytest.mark.e2e
TEAMS = ("team-1", "team-2", "team-3")


def simulator(make_sim: MakeSim, hours: float = 2.5, **options: object) -> Simulator:
    org = generate_organisation(teams=3, projects_per_team=2, fractional_cents=True)
    clock = ManualClock(org.newest_invoice().period_end + hours * HOUR)
    return make_sim(org, clock=clock, **options)


def spent(sim: Simulator, team_id: str | None = None) -> float:
    """The simulator's hours since the invoice, summed (cents, the running hour included)."""
    total = 0.0
    for entry in sim.org.render_usage(now=sim.clock(), team_id=team_id):
        total += entry["paasUsage"]["price"]["total"]
        if team_id is None and "byocUsage" in entry:
            total += entry["byocUsage"]["price"]["total"]
    return major(total)


def check_sums(sim: Simulator, scrape: Scrape) -> None:
    assert scrape.get(m.UNBILLED_COST.name, currency="usd") == pytest.approx(spent(sim), abs=1e-9)
    for team in TEAMS:
        [value] = [
            v for labels, v in scrape.family(m.TEAM_UNBILLED_COST.name).items()
            if ("team", team) in labels
        ]  # fmt: skip
        assert value == pytest.approx(spent(sim, team), abs=1e-9)


def usage_queries(sim: Simulator) -> list[dict[str, str]]:
    return [r.query for r in sim.requests if r.path.endswith("/billing/usage")]


def test_the_window_is_summed_by_the_api_to_the_end_of_the_running_hour(
    make_sim: MakeSim,
) -> None:
    sim = simulator(make_sim, contract="current")
    since = sim.org.newest_invoice().period_end
    running_end = (math.floor(sim.clock() / HOUR) + 1) * HOUR
    scrape = parse_exposition(run_once(sim, depth="team").stdout)
    check_sums(sim, scrape)
    assert scrape.get(m.UNBILLED_SINCE.name) == since
    assert scrape.get(m.UNBILLED_THROUGH.name) == running_end
    queries = usage_queries(sim)
    assert len(queries) == 1 + len(TEAMS)  # one request each: no pages, no lookback
    for query in queries:
        assert query["granularity"] == "total"
        assert (query["startTime"], query["endTime"]) == (str(int(since)), str(int(running_end)))


def test_the_running_hour_is_the_apis_not_the_hosts(make_sim: MakeSim) -> None:
    """The simulator's clock is months away from this machine's: its Date header rules."""
    sim = simulator(make_sim, hours=7.25, contract="current")
    run_once(sim, depth="team")
    [end] = {query["endTime"] for query in usage_queries(sim)}
    since = sim.org.newest_invoice().period_end
    assert float(end) == since + 8 * HOUR  # the hour running at 7.25 h, by the API's clock


def test_the_next_poll_asks_the_whole_window_again_and_replaces_it(make_sim: MakeSim) -> None:
    sim = simulator(make_sim, contract="current")
    since = sim.org.newest_invoice().period_end
    env = api_env(sim.url, TOKEN, depth="team", poll_interval_seconds="1")
    with Exporter(env=env) as exporter:
        check_sums(sim, exporter.wait_ready())
        sim.clock.advance(2 * HOUR)  # type: ignore[attr-defined]
        later = exporter.wait_metric(m.UNBILLED_THROUGH.name, lambda v: v == since + 5 * HOUR)
        check_sums(sim, later)
    starts = {query["startTime"] for query in usage_queries(sim)}
    assert starts == {str(int(since))}  # always from the window's start


def test_a_server_that_refuses_totals_is_read_hour_by_hour(make_sim: MakeSim) -> None:
    sim = simulator(make_sim, contract="current", granularity_total=False)
    since = sim.org.newest_invoice().period_end
    env = api_env(sim.url, TOKEN, depth="team", poll_interval_seconds="1")
    with Exporter(env=env) as exporter:
        first = exporter.wait_ready()
        check_sums(sim, first)
        assert first.get(m.UNBILLED_THROUGH.name) == since + 3 * HOUR  # the newest hour's end
        refused = [q for q in usage_queries(sim) if q.get("granularity") == "total"]
        assert len(refused) == 1 + len(TEAMS)  # asked once, refused, read hourly in that poll
        sim.clear_requests()
        sim.clock.advance(HOUR)  # type: ignore[attr-defined]
        later = exporter.wait_metric(m.UNBILLED_THROUGH.name, lambda v: v == since + 4 * HOUR)
        check_sums(sim, later)
        queries = usage_queries(sim)
    assert queries
    assert not [q for q in queries if "granularity" in q]  # not asked again within the day
    assert {q["startTime"] for q in queries} <= {str(int(since)), str(int(since + HOUR))}


def test_both_contracts_give_the_same_unbilled_figures(make_sim: MakeSim) -> None:
    sums = []
    for contract in ("current", "legacy-pinned"):
        sim = simulator(make_sim, contract=contract)
        scrape = parse_exposition(run_once(sim, depth="team").stdout)
        check_sums(sim, scrape)
        sums.append(
            {
                k: v
                for k, v in scrape.samples.items()
                if "unbilled" in k[0] and "through" not in k[0]
            }
        )
    assert sums[0] == sums[1]


def test_totals_are_asked_again_a_day_after_a_refusal() -> None:
    """In virtual time: refused at the first poll, hourly for a day, then totals again."""
    loop = VirtualTimeLoop()
    org = generate_organisation(teams=1, projects_per_team=1)
    api = FakeApi(org, loop, contract="current", granularity_total=False)
    settings = Settings(
        api_token=api.token,
        depth="team",
        poll_interval_seconds=3 * 3600,
        request_budget_per_hour=10**6,
    )
    outcomes: list[Outcome] = []

    def publish(outcome: Outcome) -> int:
        outcomes.append(outcome)
        return 0

    async def main() -> None:
        client = Client(
            "http://api.test", api.token, transport=api.transport(), clock=loop.time,
            wall_clock=api.wall_clock,
        )  # fmt: skip
        poller = Poller(client, settings, publish, clock=loop.time, wall_clock=api.wall_clock)
        stop = asyncio.Event()
        loop.call_later(30 * 3600, stop.set)
        await poller.run(stop)
        await client.aclose()

    loop.run(main())
    asked = [
        s.time for s in api.sent if s.path.endswith("/billing/usage") and s.query.get("granularity")
    ]
    # org-wide and the one team, at the first poll and at the poll a day after it (polls
    # every 3 hours: the 9th), not in between
    assert asked == [0.0, 0.0, 24 * 3600.0, 24 * 3600.0]
    assert all(o.last_result in ("ok", "pending") for o in outcomes)
