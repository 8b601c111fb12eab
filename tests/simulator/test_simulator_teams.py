"""The simulator's single-team tokens (answers at the project level in the current
contract, a one-team invoice in the legacy one, ``teamId`` refused), ``GET
/v1/teams/{teamId}`` and a token without team read, and the credit balance.

Every test talks real HTTP to a simulator on 127.0.0.1.
"""

from __future__ import annotations

from typing import Any

import pytest

from exporter.simulator import (
    TEAM_READ,
    Credit,
    ManualClock,
    Organisation,
    generate_organisation,
    team_json,
)
from tests.simulator.helpers import (
    CURRENT,
    HOUR,
    NOW,
    as_current,
    body,
    error_of,
    newest,
    period_end,
    serve,
)

pytestmark = pytest.mark.e2e  # every test talks HTTP to a simulator

ONE_TEAM = "teamId is not accepted from a token that can only read one team"


@pytest.fixture
def org() -> Organisation:
    return generate_organisation(fractional_cents=True, now=NOW)


def without(doc: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in keys}


# -- single-team tokens: the current contract -----------------------------------------------


def test_a_single_team_tokens_current_answers_start_at_projects(org: Organisation) -> None:
    invoice_id = newest(org)
    clock = ManualClock(period_end(org) + 4.5 * HOUR)
    path = f"/v1/billing/invoices/{invoice_id}"
    with serve(org, single_team="team-2", contract="current", clock=clock) as (_, c):
        auth = body(c.get("/v1/auth"))["data"]
        assert (auth["entityType"], auth["entityId"]) == ("team", "team-2")

        whole = org.render_invoice(invoice_id, contract="current")
        team = org.render_invoice(invoice_id, team_id="team-2", contract="current")
        for query in ({}, {"projectId": "web"}, {"resourceType": "service"}):
            data = body(c.get(path, params=query))["data"]
            assert "teams" not in data["paas"]
            sliced = org.render_invoice(
                invoice_id,
                team_id="team-2",
                project_id=query.get("projectId"),
                resource_type=query.get("resourceType"),
                contract="current",
            )
            (team_entry,) = sliced["paas"]["teams"]
            assert data["paas"] == {
                "price": team_entry["price"],
                "projects": team_entry["projects"],
            }
            for key in ("byoc", "lineItems", "subTotal", "discounts", "tax", "total", "status"):
                assert data[key] == whole[key]  # the organisation's
            assert data == org.render_invoice(
                invoice_id,
                project_id=query.get("projectId"),
                resource_type=query.get("resourceType"),
                contract="current",
                single_team="team-2",
            )
        assert data["paas"]["price"] != whole["paas"]["price"]
        resources = data["paas"]["projects"][0]["resourceTypes"][0]["resources"]
        assert resources  # the resource level under a filter, as with teamId
        assert body(c.get(path))["data"]["paas"]["price"] == team["paas"]["price"]
        # the team path: the same answers; another team's path: 403
        on_path = body(c.get(f"/v1/teams/team-2/billing/invoices/{invoice_id}"))
        assert on_path == body(c.get(path))
        assert c.get(f"/v1/teams/team-1/billing/invoices/{invoice_id}").status_code == 403
        listed = body(c.get("/v1/billing/invoices"))["data"]["invoices"]
        newest_entry = next(e for e in listed if e["id"] == invoice_id)
        assert newest_entry["paas"]["price"] == team["paas"]["price"]
        assert newest_entry["total"] == whole["total"]

        for refused in (
            path,
            "/v1/billing/invoices",
            "/v1/billing/usage",
            f"/v1/billing/usage/{int(period_end(org)) + HOUR}",
            "/v1/billing/credit-balance",
            "/v1/teams/team-2/billing/usage",
        ):
            response = c.get(refused, params={"teamId": "team-2"})
            assert response.status_code == 400, refused
            assert error_of(response)["message"] == ONE_TEAM

        usage = body(c.get("/v1/billing/usage"))["data"]["usage"]
        team_usage = org.render_usage(now=clock(), team_id="team-2", contract="current")
        org_usage = org.render_usage(now=clock(), contract="current")
        assert [u["paas"] for u in usage] == [u["paas"] for u in team_usage]
        assert [u["byoc"] for u in usage] == [u["byoc"] for u in org_usage]  # customer-wide
        assert usage == org.render_usage(now=clock(), contract="current", single_team="team-2")
        assert body(c.get("/v1/teams/team-2/billing/usage"))["data"]["usage"] == team_usage

        hour = int(period_end(org)) + 2 * HOUR
        broken = body(c.get(f"/v1/billing/usage/{hour}"))["data"]
        assert "teams" not in broken["paas"]
        assert broken["paas"]["price"] == team_usage[-3]["paas"]["price"]
        assert [p["id"] for p in broken["paas"]["projects"]] == ["web", "api", "workers"]
        for credit_path in (
            "/v1/billing/credit-balance",
            "/v1/teams/team-2/billing/credit-balance",
        ):
            assert body(c.get(credit_path))["data"]["currency"] == "usd"


# -- single-team tokens: the legacy contract ------------------------------------------------


def test_a_single_team_tokens_legacy_answer_is_a_one_team_invoice(org: Organisation) -> None:
    invoice_id = newest(org)
    path = f"/v1/billing/invoices/{invoice_id}"
    clock = ManualClock(period_end(org) + 3.5 * HOUR)
    with serve(org, single_team="team-3", clock=clock, page_size=2) as (_, c):
        assert body(c.get("/v1/auth"))["data"]["entityType"] == "team"
        answer = body(c.get(path))
        (team,) = answer["data"]["paasUsage"]["teams"]
        expected = org.render_invoice(invoice_id, team_id="team-3")
        assert team == expected["paasUsage"]["teams"][0]  # with all its projects
        assert answer["data"]["paasUsage"]["price"] == team["price"]
        assert answer["pagination"]["count"] == 1  # a one-team invoice pages its teams
        assert answer["data"] == org.render_invoice(invoice_id, single_team="team-3")
        by_team = body(c.get(path, params={"teamId": "team-3"}))  # accepted: its own
        assert by_team["pagination"]["count"] == 2  # pages the team's projects
        assert by_team["data"]["paasUsage"]["teams"][0]["price"] == team["price"]
        other = c.get(path, params={"teamId": "team-1"})
        assert other.status_code == 403
        assert "team-3" in error_of(other)["message"]
        usage = body(c.get("/v1/billing/usage"))["data"]["usage"]
        team_usage = org.render_usage(now=clock(), team_id="team-3")
        assert [u["paasUsage"] for u in usage] == [u["paasUsage"] for u in team_usage[:2]]
        assert all("byocUsage" in u for u in usage)
        listed = body(c.get("/v1/billing/invoices"))["data"]["invoices"]
        entry = next(e for e in listed if e["id"] == invoice_id)
        assert entry["paasUsage"]["price"] == team["price"]
        assert entry["total"] == expected["total"]
        assert c.get("/v1/billing/credit-balance").status_code == 404  # legacy: none
        # asking for the current contract: the project level, teamId refused
        current = body(c.get(path, params=CURRENT))
        assert current["pagination"] == {"projects": {"hasNextPage": True, "count": 2}}
        more = body(c.get(path, params={**CURRENT, "projectsPerPage": "3"}))["data"]
        assert more["paas"]["projects"] == as_current(team)["projects"]
        assert c.get(path, params={**CURRENT, "teamId": "team-3"}).status_code == 400


# -- GET /v1/teams/{teamId} and team read ---------------------------------------------------


def test_get_team_and_a_token_without_team_read(org: Organisation) -> None:
    invoice_id = newest(org)
    with serve(org) as (_, c):
        team = body(c.get("/v1/teams/team-3"))["data"]
        assert team == team_json(org.teams[2])
        assert set(team) == {"id", "name", "description", "createdAt"}
        assert team["name"] == "Growth & Marketing"
        missing = c.get("/v1/teams/team-99")
        assert missing.status_code == 404
        error_of(missing)
    with serve(org, team_read=False) as (_, c):
        assert TEAM_READ not in body(c.get("/v1/auth"))["data"]["permissions"]
        for path in ("/v1/teams", "/v1/teams/team-1"):
            refused = c.get(path)
            assert refused.status_code == 403, path
            assert TEAM_READ in error_of(refused)["message"]
        for path in ("/v1/billing/invoices", f"/v1/teams/team-1/billing/invoices/{invoice_id}"):
            assert c.get(path).status_code == 200
    with serve(org, single_team="team-1", team_read=False) as (_, c):
        assert c.get("/v1/teams/team-1").status_code == 403
        assert c.get(f"/v1/billing/invoices/{invoice_id}", params=CURRENT).status_code == 200


# -- the credit balance ---------------------------------------------------------------------


def test_credit_balance_in_the_current_contract(org: Organisation) -> None:
    clock = ManualClock(NOW + 59.9)
    with serve(org, clock=clock, contract="current") as (_, c):
        data = body(c.get("/v1/billing/credit-balance"))["data"]
        assert data == {
            "currency": "usd",
            "total": {"available": 525.505, "pending": 200.0},
            "grants": {"available": 500.0, "pending": 200.0},
            "customerBalance": {"amount": 25.505},
            "lastSyncedAt": "2026-11-17T12:00:00Z",  # synced hourly: the hour's start
        }
        assert data == org.render_credit_balance(now=clock())
        assert body(c.get("/v1/teams/team-2/billing/credit-balance"))["data"] == data
        assert c.get("/v1/teams/team-9/billing/credit-balance").status_code == 404
        clock.advance(3600)
        later = body(c.get("/v1/billing/credit-balance"))["data"]
        assert later["lastSyncedAt"] == "2026-11-17T13:00:00Z"
        org.set_credit(synced_at=NOW + 0.75)  # a balance of its own time, to the second
        assert body(c.get("/v1/billing/credit-balance"))["data"]["lastSyncedAt"] == (
            "2026-11-17T12:30:00Z"
        )

        org.set_credit(customer_balance=-1234.5)  # owed: not available, still shown
        owed = body(c.get("/v1/billing/credit-balance"))["data"]
        assert owed["customerBalance"] == {"amount": -12.345}
        assert owed["total"] == {"available": 500.0, "pending": 200.0}
        org.set_credit(Credit(grants_available=10, grants_pending=0.5, currency="eur"))
        assert body(c.get("/v1/billing/credit-balance"))["data"]["total"] == {
            "available": 0.1,
            "pending": 0.005,
        }
        org.set_credit(None)
        gone = c.get("/v1/billing/credit-balance")
        assert gone.status_code == 404
        error_of(gone)
        org.set_credit(grants_available=100)  # from a zero balance
        assert body(c.get("/v1/billing/credit-balance"))["data"]["grants"]["available"] == 1.0


def test_credit_balance_is_404_in_the_legacy_contract(org: Organisation) -> None:
    with serve(org) as (_, c):
        for path in ("/v1/billing/credit-balance", "/v1/teams/team-1/billing/credit-balance"):
            legacy = c.get(path)
            assert legacy.status_code == 404
            assert error_of(legacy)["message"] == "Not found"
            assert c.get(path, params=CURRENT).status_code == 200
    with serve(org, contract="legacy-pinned") as (_, c):
        assert c.get("/v1/billing/credit-balance", params=CURRENT).status_code == 404
    with serve(org, endpoint_contracts={"credit_balance": "current"}) as (_, c):
        assert c.get("/v1/billing/credit-balance").status_code == 200
    with serve(org, no_billing_tokens={"sim-token"}, token="other") as (_, c):
        assert c.get("/v1/billing/credit-balance", params=CURRENT).status_code == 403
    assert without(generate_organisation(now=NOW).render_credit_balance(now=NOW), "lastSyncedAt")[
        "customerBalance"
    ] == {"amount": 25.5}
