"""``GET /v1/billing/usage/{timestamp}``: one hour broken down like an invoice, in both
contracts: its teams equal the usage list's figures of the hour, projects add up to
their team, every resource costs what the documented rule says; filters, paging, the
running hour, history, and the 400s and 404s.

Every test talks real HTTP to a simulator on 127.0.0.1.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from exporter.simulator import ManualClock, Organisation, generate_organisation
from tests.simulator.helpers import (
    CURRENT,
    HOUR,
    NOW,
    as_current,
    body,
    error_of,
    fetch_pages,
    period_end,
    resource_hour,
    serve,
    summed,
)

pytestmark = pytest.mark.e2e  # every test talks HTTP to a simulator

ELAPSED = 6.75  # hours after the newest invoice's end: six ended, the seventh running


@pytest.fixture
def org() -> Organisation:
    return generate_organisation(fractional_cents=True, now=NOW)


def hour_of(client: httpx.Client, hour: int, path: str = "/v1", **query: str) -> Any:
    return body(client.get(f"{path}/billing/usage/{hour}", params=query))["data"]


def list_entry(client: httpx.Client, hour: int, team: str | None = None, **query: str) -> Any:
    path = "/v1/billing/usage" if team is None else f"/v1/teams/{team}/billing/usage"
    entries = body(client.get(path, params=query))["data"]["usage"]
    (found,) = [e for e in entries if e["timestamp"] == hour]
    return found


def test_a_whole_hours_teams_equal_the_usage_list(org: Organisation) -> None:
    since = int(period_end(org))
    clock = ManualClock(since + ELAPSED * HOUR)
    hour = since + 4 * HOUR
    with serve(org, clock=clock) as (_, c):
        for query, paas, byoc in (({}, "paasUsage", "byocUsage"), (CURRENT, "paas", "byoc")):
            data = hour_of(c, hour, **query)
            assert set(data) == {"timestamp", "currency", paas, byoc}
            assert (data["timestamp"], data["currency"]) == (hour, "usd")
            listed = list_entry(c, hour, **query)
            assert data[paas]["price"] == listed[paas]["price"]
            assert data[byoc] == listed[byoc]
            teams = data[paas]["teams"]
            assert [t["id"] for t in teams] == ["team-1", "team-2", "team-3", "team-4"]
            for team in teams:
                assert "projects" not in team  # as an invoice: teams only, unfiltered
                assert team["price"] == list_entry(c, hour, team["id"], **query)[paas]["price"]
        assert hour_of(c, hour) == org.render_usage_hour(hour, now=clock())
        assert hour_of(c, hour, **CURRENT) == org.render_usage_hour(
            hour, now=clock(), contract="current"
        )


def test_projects_and_resources_add_up_exactly(org: Organisation) -> None:
    since = int(period_end(org))
    clock = ManualClock(since + ELAPSED * HOUR)
    hour = since + 2 * HOUR
    invoice = org.newest_invoice()
    with serve(org, clock=clock) as (_, c):
        for team in invoice.teams:
            data = hour_of(c, hour, teamId=team.id)
            (entry,) = data["paasUsage"]["teams"]
            assert data["paasUsage"]["price"] == entry["price"]
            assert summed(p["price"] for p in entry["projects"]) == entry["price"]
            for project in team.projects:
                deep = hour_of(c, hour, teamId=team.id, projectId=project.id)
                (shown,) = deep["paasUsage"]["teams"][0]["projects"]
                groups = shown["resourceTypes"]
                assert summed(g["price"] for g in groups) == shown["price"]
                got = {r["id"]: r["price"] for g in groups for r in g["resources"]}
                assert got == {
                    r.id: summed([resource_hour(team.id, r, hour)]) for r in project.resources
                }
                for group in groups:
                    assert summed(r["price"] for r in group["resources"]) == group["price"]
        # a filter's slice: a resource type across a team's projects, a project in every team
        services = hour_of(c, hour, teamId="team-1", resourceType="service")["paasUsage"]
        assert services["price"] == summed(
            resource_hour("team-1", r, hour)
            for p in invoice.team("team-1").projects
            for r in p.resources
            if r.resource_type == "service"
        )
        web = hour_of(c, hour, projectId="web")["paasUsage"]
        assert [t["id"] for t in web["teams"]] == ["team-1", "team-2", "team-3", "team-4"]
        assert all([p["id"] for p in t["projects"]] == ["web"] for t in web["teams"])
        assert web["price"] == summed(
            resource_hour(t.id, r, hour) for t in invoice.teams for r in t.project("web").resources
        )
        team_path = hour_of(c, hour, "/v1/teams/team-3")
        assert "byocUsage" not in team_path  # team usage is PaaS only
        assert team_path["paasUsage"] == hour_of(c, hour, teamId="team-3")["paasUsage"]
        mismatch = c.get(f"/v1/teams/team-3/billing/usage/{hour}", params={"teamId": "team-1"})
        assert mismatch.status_code == 400
        assert c.get(f"/v1/billing/usage/{hour}", params={"projectId": "nope"}).status_code == 404
        assert c.get(f"/v1/billing/usage/{hour}", params={"resourceType": "x"}).status_code == 400
        current = hour_of(c, hour, teamId="team-1", projectId="web", **CURRENT)
        assert current == as_current(hour_of(c, hour, teamId="team-1", projectId="web"))


def test_the_running_hour_and_the_hours_not_served(org: Organisation) -> None:
    since = int(period_end(org))
    clock = ManualClock(since + ELAPSED * HOUR)
    running = since + 6 * HOUR
    with serve(org, clock=clock) as (sim, c):
        deep = hour_of(c, running, teamId="team-2", projectId="api")
        project = org.newest_invoice().team("team-2").project("api")
        got = {
            r["id"]: r["price"]
            for g in deep["paasUsage"]["teams"][0]["projects"][0]["resourceTypes"]
            for r in g["resources"]
        }
        assert got == {
            r.id: summed(
                [
                    {
                        d: round(v * 0.75 * 1024) / 1024
                        for d, v in resource_hour("team-2", r, running).items()
                    }
                ]
            )
            for r in project.resources
        }
        whole = hour_of(c, running)
        listed = list_entry(c, running)
        assert whole["byocUsage"] == listed["byocUsage"]  # the hour's BYOC, three quarters
        for text, status in (
            (str(running + HOUR), 404),  # not started
            (str(int(clock())), 400),  # not the start of an hour
            (str(since - HOUR), 404),  # before the first usage hour
            (str(running + 1800), 400),
            ("soon", 400),
            (f"{running}.0", 200),
            (str(running), 200),
        ):
            response = c.get(f"/v1/billing/usage/{text}")
            assert response.status_code == status, text
            if status != 200:
                error_of(response)
        clock.now = running + HOUR  # it has ended: its whole figures
        ended = hour_of(c, running)
        assert ended["paasUsage"]["price"] == list_entry(c, running)["paasUsage"]["price"]
        assert ended != whole
        clock.now = running + 0.5 * HOUR
        sim.running_hour = False
        assert c.get(f"/v1/billing/usage/{running}").status_code == 404
        assert c.get(f"/v1/billing/usage/{running - HOUR}").status_code == 200


def test_past_hours_with_usage_history(org: Organisation) -> None:
    since = int(period_end(org))
    clock = ManualClock(since + ELAPSED * HOUR)
    past = since - 100 * HOUR  # in the newest invoice's period
    with serve(org, clock=clock, usage_history=True) as (_, c):
        data = hour_of(c, past)
        listed = list_entry(c, past, startTime=str(past), endTime=str(past + HOUR))
        assert data["paasUsage"]["price"] == listed["paasUsage"]["price"]
        assert data["byocUsage"] == listed["byocUsage"]
        team = hour_of(c, past, teamId="team-1", projectId="web")["paasUsage"]["teams"][0]
        web = org.newest_invoice().team("team-1").project("web")  # priced from its period's
        assert team["price"] == summed(resource_hour("team-1", r, past) for r in web.resources)
    with serve(org, clock=clock) as (_, c):
        assert c.get(f"/v1/billing/usage/{past}").status_code == 404
        assert c.get(f"/v1/billing/usage/{since}").status_code == 200


def test_the_legacy_breakdown_pages_by_page(org: Organisation) -> None:
    since = int(period_end(org))
    clock = ManualClock(since + ELAPSED * HOUR)
    hour = since + HOUR
    path = f"/v1/billing/usage/{hour}"
    with serve(org, clock=clock, page_size=2) as (_, c):
        for query, dig in (
            ({}, lambda d: d["paasUsage"]["teams"]),
            ({"teamId": "team-4"}, lambda d: d["paasUsage"]["teams"][0]["projects"]),
        ):
            pages = fetch_pages(c, path, **query)
            assert len(pages) == 2
            whole = org.render_usage_hour(hour, now=clock(), team_id=query.get("teamId"))
            assert [x for p in pages for x in dig(p["data"])] == dig(whole)
            for page in pages:
                assert page["data"]["byocUsage"] == whole["byocUsage"]
                assert page["data"]["paasUsage"]["price"] == whole["paasUsage"]["price"]
