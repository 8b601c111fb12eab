"""The simulated Northflank API behaves as the reference page and the API notes say.

Every test talks real HTTP to a simulator on 127.0.0.1.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from exporter.simulator import (
    BYOC_DIMENSIONS,
    DEFAULT_TOKEN,
    PAAS_DIMENSIONS,
    RESOURCE_TYPES,
    ApiError,
    ManualClock,
    Organisation,
    Simulator,
    generate_organisation,
    price_json,
)

pytestmark = pytest.mark.e2e  # every test talks HTTP to a simulator
AUTH = {"Authorization": "Bearer sim-token"}
NOW = datetime(2026, 11, 17, 12, 30, tzinfo=UTC).timestamp()


@pytest.fixture
def sim_org() -> Organisation:
    return generate_organisation(now=NOW)


@pytest.fixture
def sim_options() -> dict[str, Any]:
    return {"token": DEFAULT_TOKEN}  # what AUTH sends


@pytest.fixture
def client(sim: Simulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.url, headers=AUTH, timeout=5) as c:
        yield c


def newest(org: Organisation) -> str:
    return org.newest_invoice().id


def get_invoice(client: httpx.Client, invoice_id: str, **query: str) -> dict[str, Any]:
    response = client.get(f"/v1/billing/invoices/{invoice_id}", params=query)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def assert_price_consistent(price: dict[str, Any]) -> None:
    dims = {k: v for k, v in price.items() if k != "total"}
    assert price["total"] == sum(dims.values())
    assert all(v != 0 for v in dims.values()), "zero dimensions must be left out"


def add_prices(prices: list[dict[str, Any]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for price in prices:
        for key, value in price.items():
            total[key] = total.get(key, 0) + value
    return total


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    assert error["status"] == response.status_code
    assert error["message"]
    assert error["id"]
    assert error["details"] == {}
    return error


# -- the generated organisation -------------------------------------------------------


def test_generation_is_deterministic_and_shaped() -> None:
    org = generate_organisation(now=NOW)
    again = generate_organisation(now=NOW)
    other_seed = generate_organisation(seed=2, now=NOW)
    invoice_id = newest(org)
    assert org.render_invoice(invoice_id) == again.render_invoice(invoice_id)
    assert org.render_invoice(invoice_id) != other_seed.render_invoice(invoice_id)

    assert [t.id for t in org.teams] == ["team-1", "team-2", "team-3", "team-4"]
    invoice = org.invoice(invoice_id)
    project_ids = [[p.id for p in team.projects] for team in invoice.teams]
    assert project_ids == [["web", "api", "workers"]] * 4  # project IDs repeat across teams
    for team in invoice.teams:
        for project in team.projects:
            types = sorted(r.resource_type for r in project.resources)
            assert types == sorted(RESOURCE_TYPES)
            assert len({r.id for r in project.resources}) == len(project.resources)

    two_each = generate_organisation(teams=1, projects_per_team=1, resources_per_type=2)
    (project,) = two_each.invoices[0].teams[0].projects
    assert len(project.resources) == 2 * len(RESOURCE_TYPES)

    names = [t.name for t in org.teams] + [p.name for p in invoice.teams[0].projects]
    assert any(not n.isascii() for n in names)
    assert any('"' in n for n in names)


def test_invoices_are_monthly_and_distinct() -> None:
    org = generate_organisation(invoices=3, now=NOW)
    by_end = sorted(org.invoices, key=lambda i: i.period_end, reverse=True)
    assert [i.id for i in by_end] == ["inv-2026-10", "inv-2026-09", "inv-2026-08"]
    assert by_end[0].period_end == int(datetime(2026, 11, 1, tzinfo=UTC).timestamp())
    assert by_end[0].period_start == int(datetime(2026, 10, 1, tzinfo=UTC).timestamp())
    assert all(a.period_start == b.period_end for a, b in itertools.pairwise(by_end))
    assert [i.paid for i in by_end] == [False, True, True]
    totals = {org.render_invoice(i.id)["total"] for i in org.invoices}
    assert len(totals) == 3


def test_zero_dimensions_are_left_out(client: httpx.Client, sim: Simulator) -> None:
    data = get_invoice(client, newest(sim.org), teamId="team-2", projectId="web")
    (project,) = data["paasUsage"]["teams"][0]["projects"]
    types = {t["resourceType"]: t for t in project["resourceTypes"]}
    assert set(types["volume"]["price"]) == {"total", "storage"}
    assert set(types["job"]["price"]) == {"total", "cpu", "memory"}
    # team-2 uses no GPU: no gpu field at any level
    assert "gpu" not in data["paasUsage"]["teams"][0]["price"]
    assert "gpu" not in types["llm-model-deployment"]["price"]
    team1 = get_invoice(client, newest(sim.org), teamId="team-1")
    assert team1["paasUsage"]["teams"][0]["price"]["gpu"] > 0


def test_byoc_can_be_absent() -> None:
    org = generate_organisation(byoc=False)
    data = org.render_invoice(newest(org))
    assert "byocUsage" not in data
    assert [item["title"] for item in data["lineItems"]].count("BYOC usage") == 0


# -- totals -----------------------------------------------------------------------------


def test_totals_are_consistent_at_every_level(client: httpx.Client, sim: Simulator) -> None:
    invoice_id = newest(sim.org)
    top = get_invoice(client, invoice_id)
    items = top["lineItems"]
    assert top["subTotal"] == sum(i["total"] for i in items)
    assert all(i["total"] == i["base"] + i["proration"] for i in items)
    assert any(i["proration"] != 0 for i in items)
    taxable = top["subTotal"] - top["discounts"]["total"]
    assert top["tax"]["amount"] == round(taxable * top["tax"]["percent"] / 100)
    assert top["total"] == taxable + top["tax"]["amount"]
    assert top["currency"] == "usd"
    paas_item = next(i for i in items if i["title"] == "PaaS usage")
    byoc_item = next(i for i in items if i["title"] == "BYOC usage")
    assert paas_item["total"] == top["paasUsage"]["price"]["total"]
    assert byoc_item["total"] == top["byocUsage"]["price"]["total"]
    assert_price_consistent(top["byocUsage"]["price"])
    assert set(top["byocUsage"]["price"]) <= {"total", *BYOC_DIMENSIONS}

    teams = top["paasUsage"]["teams"]
    assert len(teams) == 4
    assert add_prices([t["price"] for t in teams]) == top["paasUsage"]["price"]
    for team in teams:
        assert_price_consistent(team["price"])
        assert set(team["price"]) <= {"total", *PAAS_DIMENSIONS}
        projects = get_invoice(client, invoice_id, teamId=team["id"])["paasUsage"]["teams"][0]
        assert add_prices([p["price"] for p in projects["projects"]]) == team["price"]
        for project in projects["projects"]:
            deep = get_invoice(client, invoice_id, teamId=team["id"], projectId=project["id"])
            (p,) = deep["paasUsage"]["teams"][0]["projects"]
            assert p["price"] == project["price"]
            assert add_prices([t["price"] for t in p["resourceTypes"]]) == p["price"]
            for rtype in p["resourceTypes"]:
                assert_price_consistent(rtype["price"])
                assert add_prices([r["price"] for r in rtype["resources"]]) == rtype["price"]
                for resource in rtype["resources"]:
                    assert_price_consistent(resource["price"])


# -- filters ----------------------------------------------------------------------------


def test_unfiltered_lists_every_team_without_projects(client: httpx.Client, sim: Simulator) -> None:
    data = get_invoice(client, newest(sim.org))
    teams = data["paasUsage"]["teams"]
    assert [t["id"] for t in teams] == ["team-1", "team-2", "team-3", "team-4"]
    assert all(set(t) == {"id", "name", "price"} for t in teams)
    assert teams[0]["name"] == "Platform Café"


def test_one_team_invoice_carries_projects_in_the_unfiltered_answer() -> None:
    org = generate_organisation(teams=1, projects_per_team=3)
    with Simulator(org) as sim, httpx.Client(base_url=sim.url, headers=AUTH) as client:
        data = get_invoice(client, newest(org))
    (team,) = data["paasUsage"]["teams"]
    assert [p["id"] for p in team["projects"]] == ["web", "api", "workers"]
    assert all("resourceTypes" not in p for p in team["projects"])
    assert add_prices([p["price"] for p in team["projects"]]) == team["price"]


def test_team_filter(client: httpx.Client, sim: Simulator) -> None:
    invoice_id = newest(sim.org)
    top = get_invoice(client, invoice_id)
    data = get_invoice(client, invoice_id, teamId="team-3")
    (team,) = data["paasUsage"]["teams"]
    full_team3 = next(t for t in top["paasUsage"]["teams"] if t["id"] == "team-3")
    assert team["price"] == full_team3["price"]
    assert [p["id"] for p in team["projects"]] == ["web", "api", "workers"]
    assert all(set(p) == {"id", "name", "price"} for p in team["projects"])
    assert data["paasUsage"]["price"] == team["price"] != top["paasUsage"]["price"]
    assert data["byocUsage"] == top["byocUsage"]
    for key in ("total", "subTotal", "lineItems", "tax", "discounts", "paid", "period"):
        assert data[key] == top[key]


def test_project_filter_gives_only_the_projects_slice(client: httpx.Client, sim: Simulator) -> None:
    invoice_id = newest(sim.org)
    top = get_invoice(client, invoice_id)
    full_team = get_invoice(client, invoice_id, teamId="team-2")["paasUsage"]["teams"][0]
    data = get_invoice(client, invoice_id, teamId="team-2", projectId="api")
    (team,) = data["paasUsage"]["teams"]
    (project,) = team["projects"]
    full_api = next(p for p in full_team["projects"] if p["id"] == "api")
    assert project["price"] == full_api["price"]
    assert team["price"] == project["price"] != full_team["price"]
    assert data["paasUsage"]["price"] == project["price"]
    assert data["byocUsage"] == top["byocUsage"]
    assert data["total"] == top["total"]
    assert [t["resourceType"] for t in project["resourceTypes"]] == list(RESOURCE_TYPES)
    assert all(t["resources"] for t in project["resourceTypes"])


def test_project_filter_without_team_matches_in_every_team(
    client: httpx.Client, sim: Simulator
) -> None:
    invoice_id = newest(sim.org)
    data = get_invoice(client, invoice_id, projectId="web")
    teams = data["paasUsage"]["teams"]
    assert [t["id"] for t in teams] == ["team-1", "team-2", "team-3", "team-4"]
    for team in teams:
        (project,) = team["projects"]
        assert project["id"] == "web"
        assert team["price"] == project["price"]
    prices = {json.dumps(t["price"], sort_keys=True) for t in teams}
    assert len(prices) == 4  # same project ID, different projects
    assert data["paasUsage"]["price"] == add_prices([t["price"] for t in teams])


def test_resource_type_filter(client: httpx.Client, sim: Simulator) -> None:
    invoice_id = newest(sim.org)
    top = get_invoice(client, invoice_id)
    data = get_invoice(client, invoice_id, resourceType="volume")
    teams = data["paasUsage"]["teams"]
    assert len(teams) == 4
    for team in teams:
        assert set(team["price"]) == {"total", "storage"}  # volumes cost storage only
        assert add_prices([p["price"] for p in team["projects"]]) == team["price"]
        for project in team["projects"]:
            (rtype,) = project["resourceTypes"]
            assert rtype["resourceType"] == "volume"
            assert rtype["price"] == project["price"]
            assert all(r["id"].startswith("volume-") for r in rtype["resources"])
    assert data["paasUsage"]["price"]["total"] < top["paasUsage"]["price"]["total"]
    assert data["byocUsage"] == top["byocUsage"]
    assert data["subTotal"] == top["subTotal"]

    combined = get_invoice(client, invoice_id, teamId="team-1", projectId="web", resourceType="job")
    (project,) = combined["paasUsage"]["teams"][0]["projects"]
    (rtype,) = project["resourceTypes"]
    assert combined["paasUsage"]["teams"][0]["price"] == project["price"] == rtype["price"]
    assert set(rtype["price"]) == {"total", "cpu", "memory"}


def test_bad_resource_type_is_400(client: httpx.Client, sim: Simulator) -> None:
    response = client.get(f"/v1/billing/invoices/{newest(sim.org)}?resourceType=database")
    assert response.status_code == 400
    assert "resourceType" in error_of(response)["message"]


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v1/billing/invoices/inv-1999-01", {}),
        ("/v1/billing/invoices/{inv}", {"teamId": "team-99"}),
        ("/v1/billing/invoices/{inv}", {"teamId": "team-1", "projectId": "nope"}),
        ("/v1/billing/invoices/{inv}", {"projectId": "nope"}),
        ("/v1/teams/team-99/billing/invoices", {}),
        ("/v1/billing/nothing", {}),
        ("/v2/teams", {}),
    ],
)
def test_not_found(client: httpx.Client, sim: Simulator, path: str, query: dict[str, str]) -> None:
    response = client.get(path.format(inv=newest(sim.org)), params=query)
    assert response.status_code == 404
    error_of(response)


def test_team_path_variant_scopes_to_the_team(client: httpx.Client, sim: Simulator) -> None:
    invoice_id = newest(sim.org)
    response = client.get(f"/v1/teams/team-2/billing/invoices/{invoice_id}")
    assert response.status_code == 200
    assert response.json()["data"] == get_invoice(client, invoice_id, teamId="team-2")
    listed = client.get("/v1/teams/team-2/billing/invoices").json()["data"]["invoices"]
    assert {i["id"] for i in listed} == {i.id for i in sim.org.invoices}


def test_non_get_is_405(client: httpx.Client) -> None:
    response = client.post("/v1/billing/invoices", json={"x": 1})
    assert response.status_code == 405
    error_of(response)
    assert client.get("/v1/billing/invoices").status_code == 200  # connection still fine


def test_teams_list(client: httpx.Client) -> None:
    body = client.get("/v1/teams").json()
    teams = body["data"]["teams"]
    assert [t["id"] for t in teams] == ["team-1", "team-2", "team-3", "team-4"]
    assert set(teams[0]) == {"id", "name", "description", "createdAt"}
    assert body["pagination"] == {"hasNextPage": False, "cursor": None, "count": 4}


# -- invoice list -----------------------------------------------------------------------


def test_invoice_list_is_shuffled_summaries(client: httpx.Client, sim: Simulator) -> None:
    body = client.get("/v1/billing/invoices").json()
    invoices = body["data"]["invoices"]
    ends = [i["period"]["end"] for i in invoices]
    assert len(ends) == 3
    assert ends not in (sorted(ends), sorted(ends, reverse=True))
    assert body == client.get("/v1/billing/invoices").json()  # deterministic
    newest_summary = max(invoices, key=lambda i: i["period"]["end"])
    full = get_invoice(client, newest_summary["id"])
    for key in ("id", "period", "currency", "total", "subTotal", "paid", "byocUsage"):
        assert newest_summary[key] == full[key]
    assert newest_summary["paasUsage"] == {"price": full["paasUsage"]["price"]}


# -- auth -------------------------------------------------------------------------------


def test_auth() -> None:
    with Simulator(forbidden_tokens=["read-only"]) as sim:
        url = f"{sim.url}/v1/billing/invoices"
        missing = httpx.get(url)
        wrong = httpx.get(url, headers={"Authorization": "Bearer nope"})
        basic = httpx.get(url, headers={"Authorization": "Basic sim-token"})
        forbidden = httpx.get(url, headers={"Authorization": "Bearer read-only"})
        good = httpx.get(url, headers=AUTH)
    assert [r.status_code for r in (missing, wrong, basic, forbidden, good)] == [
        401,
        401,
        401,
        403,
        200,
    ]
    for response in (missing, wrong, forbidden):
        error_of(response)
    assert error_of(missing)["id"] != error_of(wrong)["id"]


# -- pagination -------------------------------------------------------------------------


def fetch_all(
    client: httpx.Client, path: str, max_count: int = 2, **query: str
) -> list[dict[str, Any]]:
    pages = []
    params: dict[str, str] = dict(query)
    while True:
        response = client.get(path, params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body)
        assert body["pagination"]["count"] <= max_count
        if not body["pagination"]["hasNextPage"]:
            assert body["pagination"]["cursor"] is None
            return pages
        params = {**query, "cursor": body["pagination"]["cursor"]}


def fetch_pages(
    client: httpx.Client, path: str, max_count: int = 2, **query: str
) -> list[dict[str, Any]]:
    """The invoice breakdown's pages: ``page=1, 2, ...`` while ``hasNextPage``."""
    pages = []
    for number in itertools.count(1):
        response = client.get(path, params={**query, "page": str(number)})
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body)
        assert body["pagination"]["count"] <= max_count
        if not body["pagination"]["hasNextPage"]:
            assert body["pagination"]["cursor"] is None
            return pages
        assert number < 100
    raise AssertionError("unreachable")


def merge_resources(pages: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(project, resource type, resource) of every resource on a team's pages, in order."""
    return [
        (project["id"], group["resourceType"], resource["id"])
        for page in pages
        for project in page["data"]["paasUsage"]["teams"][0]["projects"]
        for group in project["resourceTypes"]
        for resource in group["resources"]
    ]


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


# -- faults -----------------------------------------------------------------------------


def test_fail_then_recover(client: httpx.Client, sim: Simulator) -> None:
    sim.faults.fail(503, count=2, retry_after=1.5)
    first, second, third = (client.get("/v1/teams") for _ in range(3))
    assert [first.status_code, second.status_code, third.status_code] == [503, 503, 200]
    assert first.headers["Retry-After"] == "1.5"
    error_of(first)
    assert "x-ratelimit-remaining" in first.headers
    assert sim.faults.pending == 0


def test_fail_429_with_reset_and_custom_body(client: httpx.Client, sim: Simulator) -> None:
    sim.faults.fail(429, ratelimit_reset=7)
    limited = client.get("/v1/teams")
    assert limited.status_code == 429
    assert limited.headers["x-ratelimit-reset"] == "7"
    assert "Retry-After" not in limited.headers

    sim.faults.fail(200, body="<html>login</html>", content_type="text/html")
    page = client.get("/v1/teams")
    assert page.status_code == 200
    assert page.text == "<html>login</html>"
    assert page.headers["content-type"].startswith("text/html")


def test_fault_match_selects_requests(client: httpx.Client, sim: Simulator) -> None:
    sim.faults.fail(500, count=5, match=lambda path, query: "projectId" in query)
    invoice_id = newest(sim.org)
    assert client.get(f"/v1/billing/invoices/{invoice_id}").status_code == 200
    assert client.get(f"/v1/billing/invoices/{invoice_id}?teamId=team-1").status_code == 200
    hit = client.get(f"/v1/billing/invoices/{invoice_id}?teamId=team-1&projectId=web")
    assert hit.status_code == 500
    assert sim.faults.pending == 4
    sim.faults.reset()
    assert sim.faults.pending == 0
    assert client.get(f"/v1/billing/invoices/{invoice_id}?projectId=web").status_code == 200


@pytest.mark.parametrize("kind", ["json", "truncated", "html", "schema"])
def test_malformed(client: httpx.Client, sim: Simulator, kind: str) -> None:
    invoice_id = newest(sim.org)
    proper = client.get(f"/v1/billing/invoices/{invoice_id}").content
    sim.faults.malformed(kind=kind)
    response = client.get(f"/v1/billing/invoices/{invoice_id}")
    assert response.status_code == 200
    if kind == "schema":
        assert response.json() == {"data": {"id": 5}}
        return
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    if kind == "truncated":
        assert proper.startswith(response.content)
        assert 0 < len(response.content) < len(proper)
    if kind == "html":
        assert response.headers["content-type"].startswith("text/html")
    assert client.get(f"/v1/billing/invoices/{invoice_id}").content == proper


def test_hang_gives_no_answer(client: httpx.Client, sim: Simulator) -> None:
    sim.faults.hang(seconds=0.3)
    started = time.monotonic()
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/v1/teams")
    assert time.monotonic() - started >= 0.25
    sim.faults.hang(seconds=5)
    with pytest.raises(httpx.ReadTimeout):
        client.get("/v1/teams", timeout=0.2)
    assert client.get("/v1/teams").status_code == 200
    assert [r.status for r in sim.requests] == [None, None, 200]


def test_stop_returns_promptly_while_a_request_hangs() -> None:
    sim = Simulator().start()
    sim.faults.hang(seconds=30)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            httpx.get(f"{sim.url}/v1/teams", headers=AUTH, timeout=10)
        except httpx.HTTPError as error:
            errors.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 2
    while sim.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sim.count() == 1
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < 2
    caller.join(timeout=3)
    assert not caller.is_alive()
    assert len(errors) == 1


def test_latency_is_added_and_requests_overlap(sim: Simulator) -> None:
    sim.faults.latency = 0.2

    with httpx.Client(base_url=sim.url, headers=AUTH, timeout=5) as shared:

        def call(_: int) -> int:
            return shared.get("/v1/teams").status_code

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            codes = list(pool.map(call, range(8)))
        elapsed = time.monotonic() - started
    assert codes == [200] * 8
    assert 0.2 <= elapsed < 8 * 0.2 * 0.75  # serial would take 1.6 s

    sim.faults.latency = 0.05
    with httpx.Client(base_url=sim.url, headers=AUTH) as c:
        c.get("/v1/teams")  # connect first
        started = time.monotonic()
        c.get("/v1/teams")
        assert 0.05 <= time.monotonic() - started < 0.5


# -- changing figures, records ----------------------------------------------------------


def test_a_changed_price_shows_in_the_next_response(client: httpx.Client, sim: Simulator) -> None:
    invoice_id = newest(sim.org)
    before = get_invoice(client, invoice_id, teamId="team-1", projectId="web")
    before_top = get_invoice(client, invoice_id)
    resource = sim.org.invoice(invoice_id).team("team-1").project("web").resource("service-1")
    old_cpu = resource.price["cpu"]
    sim.org.set_resource_price(invoice_id, "team-1", "web", "service-1", cpu=old_cpu + 1000)
    after = get_invoice(client, invoice_id, teamId="team-1", projectId="web")
    after_top = get_invoice(client, invoice_id)

    def service(data: dict[str, Any]) -> dict[str, Any]:
        project = data["paasUsage"]["teams"][0]["projects"][0]
        rtype = next(t for t in project["resourceTypes"] if t["resourceType"] == "service")
        resource: dict[str, Any] = rtype["resources"][0]
        return resource

    assert service(after)["price"]["cpu"] == old_cpu + 1000
    assert service(after)["price"]["total"] == service(before)["price"]["total"] + 1000
    for level in ("paasUsage", "subTotal"):
        b, a = before_top[level], after_top[level]
        if level == "paasUsage":
            b, a = b["price"]["total"], a["price"]["total"]
        assert a == b + 1000
    assert after_top["total"] == after_top["subTotal"] - 1500 + after_top["tax"]["amount"]
    assert after_top["paasUsage"]["teams"][0]["price"]["cpu"] == (
        before_top["paasUsage"]["teams"][0]["price"]["cpu"] + 1000
    )

    sim.org.set_resource_price(invoice_id, "team-1", "web", "volume-1", storage=0)
    volume = get_invoice(
        client, invoice_id, teamId="team-1", projectId="web", resourceType="volume"
    )
    assert volume["paasUsage"]["price"] == {"total": 0}

    with sim.org.mutate():
        sim.org.invoice(invoice_id).discount = 0
    assert get_invoice(client, invoice_id)["discounts"] == {"total": 0}


def test_requests_are_recorded(client: httpx.Client, sim: Simulator) -> None:
    invoice_id = newest(sim.org)
    client.get("/v1/billing/invoices")
    client.get(f"/v1/billing/invoices/{invoice_id}", params={"teamId": "team-1"})
    client.get(
        f"/v1/billing/invoices/{invoice_id}", params={"teamId": "team-1", "projectId": "web"}
    )
    assert sim.count() == 3
    assert sim.count(path_prefix="/v1/billing/invoices/") == 2
    assert sim.count(query_has="projectId") == 1
    assert sim.count(query_has={"teamId": "team-1"}) == 2
    record = sim.requests[-1]
    assert (record.method, record.status) == ("GET", 200)
    assert record.query == {"teamId": "team-1", "projectId": "web"}
    assert sim.requests[0].time <= record.time
    sim.clear_requests()
    assert sim.count() == 0


def test_a_large_organisation_is_served_quickly() -> None:
    org = generate_organisation(teams=10, projects_per_team=50, resources_per_type=3)
    invoice_id = newest(org)
    with Simulator(org) as sim, httpx.Client(base_url=sim.url, headers=AUTH) as c:
        started = time.monotonic()
        top = c.get(f"/v1/billing/invoices/{invoice_id}").json()
        team = c.get(f"/v1/billing/invoices/{invoice_id}", params={"teamId": "team-7"}).json()
        for _ in range(50):
            c.get(
                f"/v1/billing/invoices/{invoice_id}",
                params={"teamId": "team-7", "projectId": "api-3"},
            ).raise_for_status()
        elapsed = time.monotonic() - started
    assert len(top["data"]["paasUsage"]["teams"]) == 10
    assert team["pagination"]["count"] == 50
    assert elapsed < 3


def test_standalone_main_prints_url_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "exporter.simulator", "--port", "0", "--teams", "2"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url, token = process.stdout.readline().split()
        assert url.startswith("http://127.0.0.1:")
        response = httpx.get(f"{url}/v1/teams", headers={"Authorization": f"Bearer {token}"})
        assert len(response.json()["data"]["teams"]) == 2
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# -- hourly usage -----------------------------------------------------------------------

HOUR = 3600
TEAMS = ("team-1", "team-2", "team-3", "team-4")


@pytest.fixture
def usage_org() -> Organisation:
    return generate_organisation(now=NOW)


def period_end(org: Organisation) -> float:
    return org.newest_invoice().period_end


def get_usage(client: httpx.Client, team: str | None = None, **query: str) -> list[Any]:
    path = "/v1/billing/usage" if team is None else f"/v1/teams/{team}/billing/usage"
    response = client.get(path, params=query)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["pagination"]["hasNextPage"] is False
    usage: list[Any] = body["data"]["usage"]
    assert body["pagination"]["count"] == len(usage)
    return usage


def stamps(usage: list[dict[str, Any]], since: float) -> list[float]:
    """The entries' hours, counted from ``since``."""
    return [(entry["timestamp"] - since) / HOUR for entry in usage]


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


# -- /v1/auth and tokens ----------------------------------------------------------------


def test_auth_endpoint_with_and_without_expiry() -> None:
    with Simulator() as sim, httpx.Client(base_url=sim.url, headers=AUTH) as c:
        response = c.get("/v1/auth")
        assert response.status_code == 200
        data = response.json()["data"]
        assert data == {
            "entityType": "org",
            "entityId": "sim-org",
            "permissions": data["permissions"],
        }
        assert "Organisation > Admin > Billing > Read" in data["permissions"]
        assert all(isinstance(p, str) for p in data["permissions"])
        assert "x-ratelimit-remaining" in response.headers
        assert sim.count(path_prefix="/v1/auth") == 1
    expires = datetime(2027, 1, 1, tzinfo=UTC).timestamp()
    clock = ManualClock(NOW)
    sim = Simulator(token_entity=("team", "team-2"), token_expires_at=expires, clock=clock)
    with sim, httpx.Client(base_url=sim.url, headers=AUTH) as c:
        data = c.get("/v1/auth").json()["data"]
        assert (data["entityType"], data["entityId"]) == ("team", "team-2")
        assert data["expiresAt"] == "2027-01-01T00:00:00.000Z"
        clock.now = expires  # expired: 401 everywhere
        expired = c.get("/v1/auth")
        assert expired.status_code == 401
        assert "expired" in error_of(expired)["message"]
        assert c.get("/v1/teams").status_code == 401


def test_auth_endpoint_fails_through_faults(client: httpx.Client, sim: Simulator) -> None:
    sim.faults.fail(503, match=lambda path, query: path == "/v1/auth")
    assert client.get("/v1/teams").status_code == 200  # not matched
    failed = client.get("/v1/auth")
    assert failed.status_code == 503
    error_of(failed)
    assert client.get("/v1/auth").status_code == 200
    assert [r.status for r in sim.requests if r.path == "/v1/auth"] == [503, 200]


def test_a_token_without_billing_read() -> None:
    with Simulator(no_billing_tokens={"tok"}, forbidden_tokens={"bad"}) as sim:
        headers = {"Authorization": "Bearer tok"}
        with httpx.Client(base_url=sim.url, headers=headers) as c:
            auth = c.get("/v1/auth")
            assert auth.status_code == 200
            assert "Organisation > Admin > Billing > Read" not in auth.json()["data"]["permissions"]
            assert c.get("/v1/teams").status_code == 200
            invoice_id = newest(sim.org)
            for path in (
                "/v1/billing/invoices",
                "/v1/teams/team-1/billing/invoices",
                f"/v1/billing/invoices/{invoice_id}",
                f"/v1/teams/team-1/billing/invoices/{invoice_id}",
                "/v1/billing/usage",
                "/v1/teams/team-1/billing/usage",
            ):
                response = c.get(path)
                assert response.status_code == 403, path
                assert "Organisation > Admin > Billing > Read" in error_of(response)["message"]
        forbidden = httpx.get(f"{sim.url}/v1/auth", headers={"Authorization": "Bearer bad"})
        assert forbidden.status_code == 403
        unknown = httpx.get(f"{sim.url}/v1/auth", headers={"Authorization": "Bearer who"})
        assert unknown.status_code == 401


# -- the older billing API --------------------------------------------------------------


def test_legacy_billing_mode() -> None:
    org = generate_organisation(now=NOW)
    invoice_id = newest(org)
    sim = Simulator(org, legacy_billing=True, clock=ManualClock(NOW))
    with sim, httpx.Client(base_url=sim.url, headers=AUTH) as c:
        for path in ("/v1/billing/invoices", "/v1/teams/team-1/billing/invoices"):
            listed = c.get(path).json()["data"]["invoices"]
            assert len(listed) == 3
            for entry in listed:
                assert "id" not in entry
                assert "currency" not in entry
                assert {"period", "total", "subTotal", "paid", "paasUsage"} <= set(entry)
        for path in (
            f"/v1/billing/invoices/{invoice_id}",
            f"/v1/teams/team-1/billing/invoices/{invoice_id}",
            "/v1/billing/usage",
            "/v1/teams/team-1/billing/usage",
        ):
            response = c.get(path)
            assert response.status_code == 404, path
            error_of(response)
        preview = c.get("/v1/billing/invoices/details", params={"timestamp": str(int(NOW))})
        assert preview.status_code == 200
        expected = org.render_invoice(invoice_id)
        del expected["id"]
        assert preview.json()["data"] == expected
        assert c.get("/v1/billing/invoices/details").status_code == 400
    with Simulator(org) as sim, httpx.Client(base_url=sim.url, headers=AUTH) as c:
        assert c.get("/v1/billing/invoices/details", params={"timestamp": "1"}).status_code == 404


# -- fractional cents -------------------------------------------------------------------


def test_fractional_cents_add_up_exactly(client: httpx.Client, sim: Simulator) -> None:
    invoice_id = newest(sim.org)

    def levels() -> list[float]:
        top = get_invoice(client, invoice_id)
        team = get_invoice(client, invoice_id, teamId="team-1")["paasUsage"]["teams"][0]
        deep = get_invoice(client, invoice_id, teamId="team-1", projectId="web")
        project = deep["paasUsage"]["teams"][0]["projects"][0]
        rtype = next(t for t in project["resourceTypes"] if t["resourceType"] == "service")
        (resource,) = rtype["resources"]
        web = next(p for p in team["projects"] if p["id"] == "web")
        return [
            resource["price"]["cpu"],
            resource["price"]["total"],
            rtype["price"]["total"],
            web["price"]["total"],
            next(t for t in top["paasUsage"]["teams"] if t["id"] == "team-1")["price"]["total"],
            top["paasUsage"]["price"]["total"],
            next(i for i in top["lineItems"] if i["title"] == "PaaS usage")["total"],
            top["subTotal"],
        ]

    before = levels()
    resource = sim.org.invoice(invoice_id).team("team-1").project("web").resource("service-1")
    cpu, memory = resource.price["cpu"], resource.price["memory"]
    sim.org.set_resource_price(invoice_id, "team-1", "web", "service-1", cpu=cpu + 0.5)
    half = levels()
    assert [a - b for a, b in zip(half, before, strict=True)] == [0.5] * 8
    sim.org.set_resource_price(invoice_id, "team-1", "web", "service-1", memory=memory + 0.25)
    both = levels()
    assert both[0] == cpu + 0.5
    assert [a - b for a, b in zip(both[1:], before[1:], strict=True)] == [0.75] * 7
    sim.org.set_resource_price(
        invoice_id, "team-1", "web", "service-1", cpu=0.5, memory=0.25, storage=0
    )
    assert levels()[:2] == [0.5, 0.75]


def test_generated_fractional_cents() -> None:
    org = generate_organisation(fractional_cents=True, now=NOW)
    plain = generate_organisation(now=NOW)
    invoice_id = newest(org)
    fractions = {
        value % 1
        for team in org.invoice(invoice_id).teams
        for project in team.projects
        for resource in project.resources
        for value in resource.price.values()
    }
    assert fractions == {0, 0.5, 0.25}
    data = org.render_invoice(invoice_id)
    assert data["paasUsage"]["price"]["total"] % 1 in (0, 0.25, 0.5, 0.75)
    assert (
        data["paasUsage"]["price"]["total"]
        != plain.render_invoice(invoice_id)["paasUsage"]["price"]["total"]
    )
    teams = data["paasUsage"]["teams"]
    assert add_prices([t["price"] for t in teams]) == data["paasUsage"]["price"]
    assert data["subTotal"] == sum(i["total"] for i in data["lineItems"])
    assert org.render_usage(now=period_end(org) + 3 * HOUR)  # hours still whole cents


# -- resource types ---------------------------------------------------------------------


def test_add_resource_of_a_new_type_shows_and_pages() -> None:
    org = generate_organisation(teams=2, projects_per_team=3, now=NOW)
    invoice_id = newest(org)
    for project_id in ("web", "api", "workers"):
        for n in range(1, 4):
            org.add_resource(
                invoice_id, "team-2", project_id, "sandbox", f"sandbox-{n}", cpu=100 * n + 0.5
            )
    org.add_resource(invoice_id, "team-2", "web", "harness", "harness-1", "CI", memory=700)
    with pytest.raises(ValueError, match="already"):
        org.add_resource(invoice_id, "team-2", "web", "sandbox", "sandbox-1", cpu=1)
    path = f"/v1/billing/invoices/{invoice_id}"
    with Simulator(org, page_size=4) as sim, httpx.Client(base_url=sim.url, headers=AUTH) as c:
        deep = fetch_pages(c, path, max_count=4, teamId="team-2", projectId="web")
        types = [
            g["resourceType"]
            for p in deep
            for g in p["data"]["paasUsage"]["teams"][0]["projects"][0]["resourceTypes"]
        ]
        assert types[-2:] == ["harness", "sandbox"]  # known types first, then unknown ones
        sandboxes = [r for r in merge_resources(deep) if r[1] == "sandbox"]
        assert [r[2] for r in sandboxes] == ["sandbox-1", "sandbox-2", "sandbox-3"]

        pages = fetch_pages(c, path, max_count=4, teamId="team-2", resourceType="sandbox")
        assert [p["pagination"]["count"] for p in pages] == [4, 4, 1]  # nine resources
        assert merge_resources(pages) == [
            (project_id, "sandbox", f"sandbox-{n}")
            for project_id in ("web", "api", "workers")
            for n in range(1, 4)
        ]
        team_price = pages[0]["data"]["paasUsage"]["teams"][0]["price"]
        assert team_price == {"total": 3 * (100.5 + 200.5 + 300.5), "cpu": 1804.5}
        web = get_invoice(c, invoice_id, teamId="team-2")["paasUsage"]["teams"][0]["projects"][0]
        assert (
            web["price"]
            == org.render_invoice(invoice_id, team_id="team-2")["paasUsage"]["teams"][0][
                "projects"
            ][0]["price"]
        )
        unknown = c.get(path, params={"resourceType": "database"})
        assert unknown.status_code == 400
        assert c.get(path, params={"resourceType": "harness"}).status_code == 200
