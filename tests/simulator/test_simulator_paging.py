"""The simulator's two paging schemes and its rate limit.

Every test talks real HTTP to a simulator on 127.0.0.1.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from exporter.simulator import (
    ManualClock,
    Simulator,
    generate_organisation,
)
from tests.simulator.helpers import (
    AUTH,
    HOUR,
    NOW,
    error_of,
    fetch_all,
    fetch_pages,
    merge_resources,
    newest,
    period_end,
)

pytestmark = pytest.mark.e2e  # every test talks HTTP to a simulator


# -- pagination -------------------------------------------------------------------------


def test_list_endpoints_page_by_cursor_and_ignore_page() -> None:
    org = generate_organisation(teams=5, projects_per_team=3, now=NOW)
    sim = Simulator(org, page_size=2, clock=ManualClock(period_end(org) + 5.5 * HOUR))
    with sim, httpx.Client(base_url=sim.url, headers=AUTH) as c:
        listed = fetch_all(c, "/v1/billing/invoices")
        assert len(listed) == 2
        merged = [i for page in listed for i in page["data"]["invoices"]]
        assert merged == org.render_invoice_summaries()
        assert len(fetch_all(c, "/v1/teams")) == 3
        assert len(fetch_all(c, "/v1/teams/team-1/billing/invoices")) == 2

        # page=2 is ignored (removed from the list pages in June 2026): page 1 again
        assert len(fetch_all(c, "/v1/billing/usage")) == 3  # six hours, the last running
        for path in (
            "/v1/billing/invoices",
            "/v1/teams",
            "/v1/teams/team-1/billing/invoices",
            "/v1/billing/usage",
            "/v1/teams/team-1/billing/usage",
        ):
            first = c.get(path).json()
            assert first["pagination"]["hasNextPage"] is True
            assert c.get(path, params={"page": "2"}).json() == first
            assert c.get(path, params={"page": "nonsense"}).status_code == 200

        small = c.get("/v1/teams", params={"per_page": "1"}).json()
        assert small["pagination"]["count"] == 1
        big = c.get("/v1/teams", params={"per_page": "1000"}).json()
        assert big["pagination"]["count"] == 5  # capped at 100, not an error


def test_breakdown_pages_by_page_with_a_decoy_cursor() -> None:
    org = generate_organisation(teams=5, projects_per_team=3, now=NOW)
    invoice_id = newest(org)
    path = f"/v1/billing/invoices/{invoice_id}"
    with Simulator(org, page_size=2) as sim, httpx.Client(base_url=sim.url, headers=AUTH) as c:
        cases: list[tuple[dict[str, str], Callable[[dict[str, Any]], list[Any]]]] = [
            ({}, lambda d: d["paasUsage"]["teams"]),
            ({"teamId": "team-2"}, lambda d: d["paasUsage"]["teams"][0]["projects"]),
        ]
        for query, dig in cases:
            pages = fetch_pages(c, path, **query)
            assert len(pages) > 1
            whole = org.render_invoice(invoice_id, team_id=query.get("teamId"))
            assert [x for p in pages for x in dig(p["data"])] == dig(whole)
            first = pages[0]
            cursor = first["pagination"]["cursor"]
            assert isinstance(cursor, str)
            assert cursor  # a decoy: non-null when hasNextPage
            # a cursor sent back is ignored: page 1 again
            again = c.get(path, params={**query, "cursor": cursor}).json()
            assert again == first
            assert c.get(path, params={**query, "cursor": "garbage!"}).json() == first
        bad = c.get(path, params={"page": "0"})
        assert bad.status_code == 400
        assert "page" in error_of(bad)["message"]
        beyond = c.get(path, params={"page": "99"}).json()
        assert beyond["data"]["paasUsage"]["teams"] == []
        assert beyond["pagination"] == {"hasNextPage": False, "cursor": None, "count": 0}


def test_breakdown_pages_count_resources_and_repeat_totals() -> None:
    org = generate_organisation(teams=2, projects_per_team=3, resources_per_type=2, now=NOW)
    invoice_id = newest(org)
    path = f"/v1/billing/invoices/{invoice_id}"
    with Simulator(org, page_size=5) as sim, httpx.Client(base_url=sim.url, headers=AUTH) as c:
        for query in (
            {"teamId": "team-2", "projectId": "api"},
            {"teamId": "team-2", "resourceType": "service"},
        ):
            pages = fetch_pages(c, path, max_count=5, **query)
            whole = org.render_invoice(
                invoice_id,
                team_id="team-2",
                project_id=query.get("projectId"),
                resource_type=query.get("resourceType"),
            )
            expected = merge_resources([{"data": whole}])
            assert merge_resources(pages) == expected
            assert sum(p["pagination"]["count"] for p in pages) == len(expected)
            assert len(pages) == -(-len(expected) // 5)
            (whole_team,) = whole["paasUsage"]["teams"]
            for page in pages:  # totals, line items and BYOC on every page
                data = page["data"]
                for key in ("total", "subTotal", "lineItems", "byocUsage", "tax", "period"):
                    assert data[key] == whole[key]
                assert data["paasUsage"]["price"] == whole["paasUsage"]["price"]
                (team,) = data["paasUsage"]["teams"]
                assert team["price"] == whole_team["price"]
                for project in team["projects"]:  # whole prices, this page's resources
                    full = next(p for p in whole_team["projects"] if p["id"] == project["id"])
                    assert project["price"] == full["price"]
                    for group in project["resourceTypes"]:
                        full_group = next(
                            g
                            for g in full["resourceTypes"]
                            if g["resourceType"] == group["resourceType"]
                        )
                        assert group["price"] == full_group["price"]


def test_bad_cursor_and_page_size_are_400(client: httpx.Client, sim: Simulator) -> None:
    for params in ({"cursor": "garbage!"}, {"per_page": "zero"}, {"per_page": "0"}):
        response = client.get("/v1/billing/invoices", params=params)
        assert response.status_code == 400, params
        error_of(response)
    with Simulator(page_size=1) as small, httpx.Client(base_url=small.url, headers=AUTH) as c:
        cursor = c.get("/v1/teams").json()["pagination"]["cursor"]
        assert c.get("/v1/teams", params={"cursor": cursor}).status_code == 200
        # a cursor belongs to the list it came from
        other = c.get("/v1/billing/invoices", params={"cursor": cursor})
        assert other.status_code == 400


# -- rate limit -------------------------------------------------------------------------


def test_rate_limit_headers_and_429() -> None:
    sim = Simulator(rate_limit=3, rate_window_seconds=120)
    with sim, httpx.Client(base_url=sim.url, headers=AUTH) as c:
        responses = [c.get(p) for p in ("/v1/teams", "/nowhere", "/v1/billing/invoices")]
        limited = c.get("/v1/teams")
    for response in (*responses, limited):
        assert response.headers["x-ratelimit-limit"] == "3"
        assert 0 < int(response.headers["x-ratelimit-reset"]) <= 120
    assert [r.headers["x-ratelimit-remaining"] for r in responses] == ["2", "1", "0"]
    assert [r.status_code for r in responses] == [200, 404, 200]
    assert limited.status_code == 429
    error_of(limited)
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert 0 < int(limited.headers["Retry-After"]) <= 120


def test_rate_limit_window_resets_and_retry_after_is_optional() -> None:
    sim = Simulator(rate_limit=1, rate_window_seconds=0.3, retry_after_on_429=False)
    with sim, httpx.Client(base_url=sim.url, headers=AUTH) as c:
        assert c.get("/v1/teams").status_code == 200
        limited = c.get("/v1/teams")
        time.sleep(0.35)
        again = c.get("/v1/teams")
    assert limited.status_code == 429
    assert "Retry-After" not in limited.headers
    assert again.status_code == 200
