"""The simulator's tokens and modes: /v1/auth, a token without billing read, the older
billing API, fractional cents, resource types added at run time.

Every test talks real HTTP to a simulator on 127.0.0.1.
"""

from __future__ import annotations

from datetime import UTC, datetime

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
    add_prices,
    error_of,
    fetch_pages,
    get_invoice,
    merge_resources,
    newest,
    period_end,
)

pytestmark = pytest.mark.e2e  # every test talks HTTP to a simulator


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
