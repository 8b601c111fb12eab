"""The current contract's usage list: granularity (hour, day, month, total, and a server
that refuses total), the filters ``teamId``, ``projectId`` and ``resourceType``
(comma-separated), ``perPage`` and the timestamp cursor.

Every test talks real HTTP to a simulator on 127.0.0.1.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from exporter.simulator import ManualClock, Organisation, Resource, generate_organisation
from tests.simulator.helpers import (
    CURRENT,
    DAY,
    HOUR,
    NOW,
    as_current,
    body,
    error_of,
    period_end,
    resource_hour,
    serve,
    summed,
)

pytestmark = pytest.mark.e2e  # every test talks HTTP to a simulator

ELAPSED = 50.25  # hours after the newest invoice's end: 50 ended, the 51st a quarter run


@pytest.fixture
def org() -> Organisation:
    return generate_organisation(fractional_cents=True, now=NOW)


def usage(client: httpx.Client, path: str = "/v1/billing/usage", **query: str) -> Any:
    return body(client.get(path, params={**CURRENT, "perPage": "100", **query}))


def entry(timestamp: float, entries: list[dict[str, Any]], team: bool = False) -> Any:
    """A usage entry summing legacy ``entries`` (cents), as the current contract gives it."""
    made: dict[str, Any] = {"timestamp": timestamp}
    made["paasUsage"] = {"price": summed(e["paasUsage"]["price"] for e in entries)}
    if not team:
        made["byocUsage"] = {"price": summed(e["byocUsage"]["price"] for e in entries)}
    return as_current(made)


def test_day_month_and_total_sum_the_hours_exactly(org: Organisation) -> None:
    since = int(period_end(org))
    clock = ManualClock(since + ELAPSED * HOUR)
    hours = org.render_usage(now=clock())  # legacy, cents, newest first
    assert len(hours) == 51
    with serve(org, clock=clock) as (_, c):
        assert usage(c)["data"]["usage"] == as_current(hours)
        assert usage(c, granularity="hour")["data"]["usage"] == as_current(hours)
        days = sorted({h["timestamp"] - h["timestamp"] % DAY for h in hours}, reverse=True)
        assert days == [since + 2 * DAY, since + DAY, since]
        by_day = usage(c, granularity="day")
        assert by_day["data"]["usage"] == [
            entry(day, [h for h in hours if day <= h["timestamp"] < day + DAY]) for day in days
        ]
        assert by_day["pagination"] == {"hasNextPage": False, "cursor": None, "count": 3}
        by_month = usage(c, granularity="month")["data"]["usage"]
        assert by_month == [entry(since, hours)]  # the period starts with a month

        total = usage(c, granularity="total", startTime=str(since), endTime=str(since + 50 * HOUR))
        (whole,) = total["data"]["usage"]
        ended = entry(since, hours[1:])
        assert whole == {**ended, "startTime": since, "endTime": since + 50 * HOUR}
        assert total["pagination"]["hasNextPage"] is False
        (running,) = usage(c, granularity="total", startTime=str(since))["data"]["usage"]
        assert running == {**entry(since, hours), "startTime": since, "endTime": since + 51 * HOUR}
        start = since + 10 * HOUR + 0.5  # fractional: from the next whole hour on
        (late,) = usage(c, granularity="total", startTime=str(start))["data"]["usage"]
        assert (late["timestamp"], late["startTime"]) == (start, start)
        assert late == {**entry(start, hours[:40]), "startTime": start, "endTime": late["endTime"]}
        (team,) = usage(
            c, "/v1/teams/team-2/billing/usage", granularity="total", startTime=str(since)
        )["data"]["usage"]
        team_hours = org.render_usage(now=clock(), team_id="team-2")
        assert team == {
            **entry(since, team_hours, team=True),
            "startTime": since,
            "endTime": since + 51 * HOUR,
        }
        assert "byoc" not in team

        for query, message in (
            ({"granularity": "total"}, "startTime"),
            ({"granularity": "week"}, "hour, day, month, total"),
            ({"granularity": "HOUR"}, "granularity"),
        ):
            refused = c.get("/v1/billing/usage", params={**CURRENT, **query})
            assert refused.status_code == 400, query
            assert message in error_of(refused)["message"]
        assert (
            org.render_usage(now=clock(), contract="current", granularity="day")
            == by_day["data"]["usage"]
        )


def test_a_server_that_refuses_total(org: Organisation) -> None:
    clock = ManualClock(period_end(org) + ELAPSED * HOUR)
    with serve(org, clock=clock, granularity_total=False) as (_, c):
        refused = c.get(
            "/v1/billing/usage", params={**CURRENT, "granularity": "total", "startTime": "0"}
        )
        assert refused.status_code == 400
        assert (
            error_of(refused)["message"] == "Invalid granularity: must be one of hour, day, month"
        )
        assert len(usage(c)["data"]["usage"]) == 51
        assert len(usage(c, granularity="day")["data"]["usage"]) == 3
        legacy = c.get("/v1/billing/usage", params={"granularity": "total"})  # ignored: legacy
        assert legacy.status_code == 200


def test_pages_by_per_page_and_a_timestamp_cursor(org: Organisation) -> None:
    since = int(period_end(org))
    clock = ManualClock(since + ELAPSED * HOUR)
    whole = org.render_usage(now=clock(), contract="current")
    with serve(org, clock=clock, page_size=4) as (_, c):
        for granularity, size, expected_pages in (("hour", 7, 8), ("day", 1, 3), ("hour", 0, 13)):
            pages, cursor = [], None
            while True:
                query = {**CURRENT, "granularity": granularity}
                if size:
                    query["perPage"] = str(size)
                if cursor is not None:
                    query["cursor"] = cursor
                page = body(c.get("/v1/billing/usage", params=query))
                pages.append(page)
                pagination = page["pagination"]
                if not pagination["hasNextPage"]:
                    assert pagination["cursor"] is None
                    break
                cursor = pagination["cursor"]
                assert cursor == str(int(cursor))  # a Unix timestamp, as a string
            assert len(pages) == expected_pages, granularity
            stamps = [e["timestamp"] for p in pages for e in p["data"]["usage"]]
            for previous, page in itertools.pairwise(pages):
                assert previous["pagination"]["cursor"] == str(
                    page["data"]["usage"][0]["timestamp"]
                )
            if granularity == "hour":
                assert [e for p in pages for e in p["data"]["usage"]] == whole
            else:
                assert stamps == [since + 2 * DAY, since + DAY, since]
        for bad in ("abc", "1.5e9x"):
            refused = c.get("/v1/billing/usage", params={**CURRENT, "cursor": bad})
            assert refused.status_code == 400
            error_of(refused)
        assert c.get("/v1/billing/usage", params={**CURRENT, "perPage": "0"}).status_code == 400
        capped = usage(c, perPage="1000")  # at most the max page size (100)
        assert capped["pagination"]["count"] == 51


def test_at_most_twelve_months_a_page() -> None:
    org = generate_organisation(teams=1, projects_per_team=1, invoices=15, now=NOW)
    clock = ManualClock(period_end(org) + 1.5 * HOUR)
    with serve(org, clock=clock, usage_history=True) as (_, c):
        first = usage(c, granularity="month")
        assert first["pagination"]["count"] == 12
        assert first["pagination"]["hasNextPage"] is True
        rest = usage(c, granularity="month", cursor=first["pagination"]["cursor"])
        assert rest["pagination"] == {"hasNextPage": False, "cursor": None, "count": 3}
        months = [e["timestamp"] for e in first["data"]["usage"] + rest["data"]["usage"]]
        assert months[0] == period_end(org)  # November 2026, running
        assert len(set(months)) == 15
        assert usage(c, granularity="month", perPage="5")["pagination"]["count"] == 5


Keep = Callable[[str, str, Resource], bool]


def filtered(org: Organisation, hour: int, keep: Keep) -> dict[str, Any]:
    """The PaaS price (cents) of the resources ``keep(team, project, resource)`` keeps in
    ``hour``, by the documented rule."""
    invoice = org.newest_invoice()
    return summed(
        resource_hour(team.id, resource, hour)
        for team in invoice.teams
        for project in team.projects
        for resource in project.resources
        if keep(team.id, project.id, resource)
    )


FILTERS: list[tuple[dict[str, str], Keep]] = [
    ({}, lambda t, p, r: True),
    ({"teamId": "team-1"}, lambda t, p, r: t == "team-1"),
    ({"teamId": "team-1,team-3"}, lambda t, p, r: t in ("team-1", "team-3")),
    ({"projectId": "web"}, lambda t, p, r: p == "web"),  # in every team
    (
        {"projectId": "web,api", "resourceType": "service"},
        lambda t, p, r: p in ("web", "api") and r.resource_type == "service",
    ),
    ({"resourceType": "volume,job"}, lambda t, p, r: r.resource_type in ("volume", "job")),
    (
        {"teamId": "team-2", "projectId": "workers", "resourceType": "addon"},
        lambda t, p, r: (t, p, r.resource_type) == ("team-2", "workers", "addon"),
    ),
]


def test_filters_give_the_matching_resources_figures(org: Organisation) -> None:
    since = int(period_end(org))
    clock = ManualClock(since + ELAPSED * HOUR)
    hour = since + 17 * HOUR
    byoc = org.render_usage(now=clock(), contract="current")[-18]["byoc"]
    with serve(org, clock=clock) as (_, c):
        for query, keep in FILTERS:
            entries = usage(c, **query)["data"]["usage"]
            (at,) = [e for e in entries if e["timestamp"] == hour]
            assert at == {
                "timestamp": hour,
                **as_current({"paas": {"price": filtered(org, hour, keep)}}),
                "byoc": byoc,
            }, query
            (total,) = usage(
                c, **query, granularity="total", startTime=str(hour), endTime=str(hour + HOUR)
            )["data"]["usage"]
            assert total["paas"] == at["paas"]
            assert total["byoc"] == byoc  # customer-wide whatever the filter
        team_path = usage(c, "/v1/teams/team-4/billing/usage", projectId="api")["data"]["usage"]
        (at,) = [e for e in team_path if e["timestamp"] == hour]
        assert at == as_current(
            {
                "timestamp": hour,
                "paas": {"price": filtered(org, hour, lambda t, p, r: (t, p) == ("team-4", "api"))},
            }
        )
        same = usage(c, "/v1/teams/team-4/billing/usage", teamId="team-4", projectId="api")
        assert same["data"]["usage"] == team_path

        running = usage(c, teamId="team-1,team-2", projectId="web")["data"]["usage"][0]
        assert running["timestamp"] == since + 50 * HOUR
        parts = [
            filtered(org, since + 50 * HOUR, lambda t, p, r, team=team: (t, p) == (team, "web"))
            for team in ("team-1", "team-2")
        ]
        quarter = [
            {d: round(v * 0.25 * 1024) / 1024 for d, v in part.items() if d != "total"}
            for part in parts
        ]
        assert running["paas"] == as_current({"price": summed(quarter)})

        for query, status in (
            ({"resourceType": "database"}, 400),
            ({"teamId": "team-9"}, 404),
            ({"resourceType": "harness"}, 200),  # a known type no resource has: zeros
        ):
            assert c.get("/v1/billing/usage", params={**CURRENT, **query}).status_code == status
        mismatch = c.get("/v1/teams/team-4/billing/usage", params={**CURRENT, "teamId": "team-1"})
        assert mismatch.status_code == 400
        assert usage(c, resourceType="harness")["data"]["usage"][1]["paas"] == {
            "price": {"total": 0.0}
        }
        assert (
            org.render_usage(now=clock(), contract="current", teams="team-1,team-3")
            == usage(c, teamId="team-1,team-3")["data"]["usage"]
        )
