"""The simulator at run time: a changed price shows in the next response at every level,
requests are recorded and counted, a large organisation is served quickly, and the
standalone ``python -m exporter.simulator`` prints its URL and stops on SIGTERM.

Every test talks real HTTP to a simulator on 127.0.0.1.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from exporter.simulator import (
    Simulator,
    generate_organisation,
)
from tests.simulator.helpers import (
    AUTH,
    get_invoice,
    newest,
)

pytestmark = pytest.mark.e2e  # every test talks HTTP to a simulator


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
