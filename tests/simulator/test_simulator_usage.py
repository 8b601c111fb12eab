"""The simulator's hourly usage: whole hours, the running hour, consistency with the
invoice, windows, history.

Every test talks real HTTP to a simulator on 127.0.0.1.
"""

from __future__ import annotations

import time

import httpx
import pytest

from exporter.simulator import (
    PAAS_DIMENSIONS,
    ApiError,
    ManualClock,
    Organisation,
    Simulator,
    generate_organisation,
    price_json,
)
from tests.simulator.helpers import (
    AUTH,
    HOUR,
    NOW,
    TEAMS,
    add_prices,
    assert_price_consistent,
    error_of,
    fetch_all,
    get_invoice,
    get_usage,
    period_end,
    simulator_org,
    stamps,
)

pytestmark = pytest.mark.e2e  # every test talks HTTP to a simulator


@pytest.fixture
def usage_org() -> Organisation:
    return simulator_org()


# -- hourly usage -----------------------------------------------------------------------


def test_usage_has_only_whole_ended_hours_newest_first(usage_org: Organisation) -> None:
    since = period_end(usage_org)
    clock = ManualClock(since + 5.5 * HOUR)
    with (
        Simulator(usage_org, clock=clock, running_hour=False) as sim,
        httpx.Client(base_url=sim.url, headers=AUTH) as c,
    ):
        usage = get_usage(c)
        assert stamps(usage, since) == [4, 3, 2, 1, 0]
        assert usage == usage_org.render_usage(now=clock(), running_hour=False)
        assert all(entry["timestamp"] % HOUR == 0 for entry in usage)

        clock.advance(0.4 * HOUR)  # 5.9 h: hour 5 has not ended
        assert stamps(get_usage(c), since) == [4, 3, 2, 1, 0]
        clock.advance(0.1 * HOUR)  # 6 h exactly: it has
        assert stamps(get_usage(c), since) == [5, 4, 3, 2, 1, 0]
        clock.advance(1.5 * HOUR)  # 7.5 h: one more hour, not the half hour
        later = get_usage(c)
        assert stamps(later, since) == [6, 5, 4, 3, 2, 1, 0]
        assert later[1:] == usage_org.render_usage(
            now=since + 6 * HOUR, running_hour=False
        )  # hours don't change

        sim.clock = ManualClock(since + 0.99 * HOUR)  # the attribute can be swapped
        assert get_usage(c) == []
        sim.clock = ManualClock(since - 10 * HOUR)  # before the newest invoice ends
        assert get_usage(c) == []
        assert get_usage(c, team="team-1") == []


def test_usage_uses_the_real_time_by_default() -> None:
    org = generate_organisation()  # the newest invoice ends at this month's start
    since = period_end(org)
    with (
        Simulator(org, running_hour=False) as sim,
        httpx.Client(base_url=sim.url, headers=AUTH) as c,
    ):
        before = (time.time() - since) // HOUR
        pages = fetch_all(c, "/v1/billing/usage", max_count=100, per_page="100")
        after = (time.time() - since) // HOUR
    usage = [e for p in pages for e in p["data"]["usage"]]
    assert before <= len(usage) <= after
    if usage:
        assert usage[0]["timestamp"] + HOUR <= time.time()
        assert usage[-1]["timestamp"] == since


def test_usage_figures_are_consistent(usage_org: Organisation) -> None:
    since = period_end(usage_org)
    invoice = usage_org.newest_invoice()
    clock = ManualClock(since + 48 * HOUR)
    with (
        Simulator(usage_org, clock=clock) as sim,
        httpx.Client(base_url=sim.url, headers=AUTH) as c,
    ):
        usage = get_usage(c)
        teams = {team: get_usage(c, team) for team in TEAMS}
    assert len(usage) == 48
    assert invoice.byoc is not None
    byoc = {dim: int(cents / 720 + 0.5) for dim, cents in invoice.byoc.items()}
    for i, entry in enumerate(usage):
        assert set(entry) == {"timestamp", "paasUsage", "byocUsage"}
        assert_price_consistent(entry["paasUsage"]["price"])
        assert_price_consistent(entry["byocUsage"]["price"])
        assert set(entry["paasUsage"]["price"]) <= {"total", *PAAS_DIMENSIONS}
        assert entry["paasUsage"]["price"]["total"] > 0  # every hour costs something here
        assert entry["byocUsage"]["price"] == {"total": sum(byoc.values()), **byoc}
        team_prices = []
        for team in TEAMS:
            team_entry = teams[team][i]
            assert set(team_entry) == {"timestamp", "paasUsage"}  # BYOC has no team share
            assert team_entry["timestamp"] == entry["timestamp"]
            assert_price_consistent(team_entry["paasUsage"]["price"])
            assert team_entry["paasUsage"]["price"]["total"] > 0
            team_prices.append(team_entry["paasUsage"]["price"])
        assert add_prices(team_prices) == entry["paasUsage"]["price"]
    # even-numbered teams use no GPU, so their hours have none either
    assert all("gpu" not in e["paasUsage"]["price"] for e in teams["team-2"])
    assert any("gpu" in e["paasUsage"]["price"] for e in teams["team-1"])
    # hours differ from each other, and teams from each other
    assert len({e["paasUsage"]["price"]["total"] for e in usage}) > 24
    assert teams["team-1"] != teams["team-3"]


def test_a_month_of_usage_is_about_the_invoice(usage_org: Organisation) -> None:
    since = period_end(usage_org)
    month = usage_org.render_usage(now=since + 720 * HOUR)
    assert len(month) == 720
    sums = usage_org.aggregates(usage_org.newest_invoice())
    for team in TEAMS:
        hours = usage_org.render_usage(now=since + 720 * HOUR, team_id=team)
        spent = sum(e["paasUsage"]["price"]["total"] for e in hours)
        billed = sum(sums.by_team[team].values())
        assert 0.9 * billed < spent < 1.1 * billed, team
    spent = sum(e["paasUsage"]["price"]["total"] for e in month)
    assert 0.9 * sum(sums.paas.values()) < spent < 1.1 * sum(sums.paas.values())


def test_a_changed_price_changes_the_usage(usage_org: Organisation) -> None:
    since = period_end(usage_org)
    now = since + 10 * HOUR
    invoice_id = usage_org.newest_invoice().id
    before = {team: usage_org.render_usage(now=now, team_id=team) for team in TEAMS}
    resource = usage_org.invoice(invoice_id).team("team-1").project("web").resource("service-1")
    added = 720 * 1000  # 1000 cents an hour, times the hour's factor (0.5 .. 1.5)
    usage_org.set_resource_price(
        invoice_id, "team-1", "web", "service-1", cpu=resource.price["cpu"] + added
    )
    after = {team: usage_org.render_usage(now=now, team_id=team) for team in TEAMS}
    for old, new in zip(before["team-1"], after["team-1"], strict=True):
        increase = new["paasUsage"]["price"]["cpu"] - old["paasUsage"]["price"]["cpu"]
        assert 500 <= increase <= 1500
        assert new["paasUsage"]["price"]["memory"] == old["paasUsage"]["price"]["memory"]
    for team in TEAMS[1:]:
        assert after[team] == before[team]


def test_usage_start_is_inclusive_and_end_exclusive(usage_org: Organisation) -> None:
    since = period_end(usage_org)
    clock = ManualClock(since + 10.5 * HOUR)
    with (
        Simulator(usage_org, clock=clock, running_hour=False) as sim,
        httpx.Client(base_url=sim.url, headers=AUTH) as c,
    ):

        def hours(**query: float | str) -> list[float]:
            return stamps(get_usage(c, **{k: str(v) for k, v in query.items()}), since)

        assert hours() == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
        assert hours(startTime=since + HOUR, endTime=since + 3 * HOUR) == [2, 1]
        assert hours(startTime=since + HOUR + 1, endTime=since + 3 * HOUR + 1) == [3, 2]
        assert hours(startTime=since + 7 * HOUR) == [9, 8, 7]
        assert hours(startTime=f"{since + 7 * HOUR}.0") == [9, 8, 7]
        assert hours(endTime=since + 2 * HOUR) == [1, 0]
        assert hours(startTime=since - 100 * HOUR) == hours()  # nothing before `since`
        assert hours(endTime=since + 100 * HOUR) == hours()  # nothing not yet ended
        assert hours(startTime=since + 3 * HOUR, endTime=since + 3 * HOUR) == []
        assert hours(startTime="", endTime="") == hours()  # empty: as if absent
        team = get_usage(c, "team-3", startTime=str(since + 8 * HOUR))
        assert team == usage_org.render_usage(
            now=clock(), start=since + 8 * HOUR, team_id="team-3", running_hour=False
        )
        assert stamps(team, since) == [9, 8]


def test_usage_pages_merge_to_the_whole(usage_org: Organisation) -> None:
    since = period_end(usage_org)
    clock = ManualClock(since + 7.5 * HOUR)
    sim = Simulator(usage_org, clock=clock, max_page_size=2, running_hour=False)
    with sim, httpx.Client(base_url=sim.url, headers=AUTH) as c:
        pages = fetch_all(c, "/v1/billing/usage")
        assert len(pages) == 4
        assert [e for p in pages for e in p["data"]["usage"]] == usage_org.render_usage(
            now=clock(), running_hour=False
        )
        start = str(since + 2 * HOUR)
        pages = fetch_all(c, "/v1/teams/team-2/billing/usage", startTime=start)
        assert len(pages) == 3
        assert [e for p in pages for e in p["data"]["usage"]] == usage_org.render_usage(
            now=clock(), start=since + 2 * HOUR, team_id="team-2", running_hour=False
        )
        # a cursor belongs to its list
        cursor = pages[0]["pagination"]["cursor"]
        assert c.get("/v1/billing/usage", params={"cursor": cursor}).status_code == 400
    with (
        Simulator(usage_org, clock=clock, running_hour=False) as sim,
        httpx.Client(base_url=sim.url, headers=AUTH) as c,
    ):
        pages = fetch_all(c, "/v1/billing/usage", max_count=3, per_page="3")
        assert [p["pagination"]["count"] for p in pages] == [3, 3, 1]


def test_usage_errors(usage_org: Organisation) -> None:
    clock = ManualClock(period_end(usage_org) + 3 * HOUR)
    with (
        Simulator(usage_org, clock=clock) as sim,
        httpx.Client(base_url=sim.url, headers=AUTH) as c,
    ):
        missing = c.get("/v1/teams/team-99/billing/usage")
        assert missing.status_code == 404
        assert "team-99" in error_of(missing)["message"]
        for query in ({"startTime": "yesterday"}, {"endTime": "1e9x"}, {"startTime": "nan"}):
            for path in ("/v1/billing/usage", "/v1/teams/team-1/billing/usage"):
                response = c.get(path, params=query)
                assert response.status_code == 400, (path, query)
                name = next(iter(query))
                assert name in error_of(response)["message"]
        assert c.get("/v1/billing/usage", params={"per_page": "0"}).status_code == 400
        assert c.get("/v1/billing/usage").status_code == 200
    with pytest.raises(ApiError) as raised:
        usage_org.render_usage(now=clock(), team_id="team-99")
    assert raised.value.status == 404


def test_close_period_makes_a_new_newest_invoice(usage_org: Organisation) -> None:
    old = usage_org.newest_invoice()
    since = old.period_end
    clock = ManualClock(since + 12.5 * HOUR)
    with (
        Simulator(usage_org, clock=clock, running_hour=False) as sim,
        httpx.Client(base_url=sim.url, headers=AUTH) as c,
    ):
        assert len(get_usage(c)) == 12
        new = usage_org.close_period(since + 10 * HOUR)
        assert new.id == "inv-2026-11"
        assert (new.period_start, new.period_end, new.paid) == (since, since + 10 * HOUR, False)
        assert usage_org.newest_invoice() is new

        listed = c.get("/v1/billing/invoices").json()["data"]["invoices"]
        assert len(listed) == 4
        newest_listed = max(listed, key=lambda i: i["period"]["end"])
        assert newest_listed["id"] == new.id
        ends = [i["period"]["end"] for i in listed]
        assert ends not in (sorted(ends), sorted(ends, reverse=True))
        full = get_invoice(c, new.id)
        assert full["total"] != get_invoice(c, old.id)["total"]
        assert [t["id"] for t in full["paasUsage"]["teams"]] == list(TEAMS)

        # the window restarts at the new invoice's end
        usage = get_usage(c)
        assert stamps(usage, new.period_end) == [1, 0]
        assert get_usage(c, startTime=str(since)) == usage  # nothing before it
        assert stamps(get_usage(c, "team-4"), new.period_end) == [1, 0]
        old_hour = usage_org.usage_rates(old).paas_hour(int(new.period_end))
        assert usage[-1]["paasUsage"]["price"] != price_json(old_hour)  # the new figures
        assert usage == usage_org.render_usage(now=clock(), running_hour=False)

        again = usage_org.close_period(since + 11 * HOUR)
        assert again.id == "inv-2026-11-2"
        assert stamps(get_usage(c), again.period_end) == [0]

    for bad in (since + 11 * HOUR, since + 20.5 * HOUR, since):
        with pytest.raises(ValueError, match="whole hour"):
            usage_org.close_period(bad)


def test_the_clock_does_not_move_the_rate_limit_window() -> None:
    clock = ManualClock(NOW)
    sim = Simulator(generate_organisation(now=NOW), clock=clock, rate_limit=1)
    with sim, httpx.Client(base_url=sim.url, headers=AUTH) as c:
        assert c.get("/v1/billing/usage").status_code == 200
        clock.advance(7 * 24 * HOUR)
        limited = c.get("/v1/billing/usage")
    assert limited.status_code == 429
    assert 3500 < int(limited.headers["x-ratelimit-reset"]) <= 3600


def test_a_month_of_usage_is_served_quickly() -> None:
    org = generate_organisation(teams=10, projects_per_team=50, resources_per_type=3)
    clock = ManualClock(period_end(org) + 720 * HOUR)
    with Simulator(org, clock=clock) as sim, httpx.Client(base_url=sim.url, headers=AUTH) as c:
        started = time.monotonic()
        for path in ("/v1/billing/usage", "/v1/teams/team-7/billing/usage"):
            pages = fetch_all(c, path, max_count=100, per_page="100")
            assert sum(p["pagination"]["count"] for p in pages) == 720
        for i in range(20):  # the exporter's polls: from the last summed hour on
            start = str(period_end(org) + (700 + i) * HOUR)
            assert len(get_usage(c, f"team-{i % 10 + 1}", startTime=start)) == 20 - i
        elapsed = time.monotonic() - started
    assert elapsed < 3


# -- the running hour -------------------------------------------------------------------


def test_the_running_hour_grows_and_settles(usage_org: Organisation) -> None:
    since = period_end(usage_org)
    clock = ManualClock(since + 2.25 * HOUR)
    with (
        Simulator(usage_org, clock=clock) as sim,
        httpx.Client(base_url=sim.url, headers=AUTH) as c,
    ):
        quarter = get_usage(c)
        assert stamps(quarter, since) == [2, 1, 0]  # hour 2 is running, a quarter gone
        assert quarter == usage_org.render_usage(now=clock())
        full = usage_org.render_usage(now=since + 3 * HOUR)[0]
        assert full["timestamp"] == quarter[0]["timestamp"] == since + 2 * HOUR
        for dim, cents in full["paasUsage"]["price"].items():
            assert quarter[0]["paasUsage"]["price"][dim] == pytest.approx(cents / 4, abs=0.001)
        for dim, cents in full["byocUsage"]["price"].items():
            assert quarter[0]["byocUsage"]["price"][dim] == pytest.approx(cents / 4, abs=0.001)
        assert quarter[1:] == usage_org.render_usage(now=since + 2 * HOUR)  # ended: whole

        clock.advance(0.5 * HOUR)  # three quarters
        grown = get_usage(c)
        assert grown[1:] == quarter[1:]
        total = grown[0]["paasUsage"]["price"]["total"]
        assert total == pytest.approx(full["paasUsage"]["price"]["total"] * 0.75, abs=0.01)
        assert quarter[0]["paasUsage"]["price"]["total"] < total

        # every hour, the running one too: the teams add up to the organisation
        teams = {team: get_usage(c, team) for team in TEAMS}
        for i, entry in enumerate(grown):
            assert entry["paasUsage"]["price"] == add_prices(
                [teams[team][i]["paasUsage"]["price"] for team in TEAMS]
            )
            assert_price_consistent(entry["paasUsage"]["price"])
        for team in TEAMS:
            assert teams[team] == usage_org.render_usage(now=clock(), team_id=team)

        clock.advance(0.25 * HOUR)  # the hour has ended: its full figures
        settled = get_usage(c)
        assert stamps(settled, since) == [2, 1, 0]
        assert settled[0] == full
        clock.advance(1)  # and the next one starts
        assert stamps(get_usage(c), since) == [3, 2, 1, 0]
    with (
        Simulator(usage_org, clock=clock, running_hour=False) as sim,
        httpx.Client(base_url=sim.url, headers=AUTH) as c,
    ):
        assert stamps(get_usage(c), since) == [2, 1, 0]  # off: whole hours only


def test_fractional_period_end_starts_usage_at_the_next_whole_hour() -> None:
    org = generate_organisation(now=NOW)
    invoice = org.newest_invoice()
    start, end = invoice.period_start + 0.25, invoice.period_end + 0.5
    org.set_period(invoice.id, start, end)
    summary = next(s for s in org.render_invoice_summaries() if s["id"] == invoice.id)
    assert summary["period"] == {"start": start, "end": end}
    assert org.render_invoice(invoice.id)["period"] == {"start": start, "end": end}
    first = invoice.period_end - 0.5 + HOUR  # the whole hour after period.end
    usage = org.render_usage(now=first + 1.5 * HOUR)
    assert [e["timestamp"] for e in usage] == [first + HOUR, first]
    assert org.render_usage(now=first) == []
