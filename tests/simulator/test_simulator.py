"""The simulated Northflank API: the generated organisation, totals, filters, the invoice
list and errors, and auth.

Every test talks real HTTP to a simulator on 127.0.0.1.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime

import httpx
import pytest

from exporter.simulator import (
    BYOC_DIMENSIONS,
    PAAS_DIMENSIONS,
    RESOURCE_TYPES,
    Simulator,
    generate_organisation,
)
from tests.simulator.helpers import (
    AUTH,
    NOW,
    add_prices,
    assert_price_consistent,
    error_of,
    get_invoice,
    newest,
)

pytestmark = pytest.mark.e2e  # every test talks HTTP to a simulator


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
