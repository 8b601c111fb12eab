"""The simulator's injected faults: failures, malformed answers, hangs, latency.

Every test talks real HTTP to a simulator on 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from exporter.simulator import (
    Simulator,
)
from tests.simulator.helpers import (
    AUTH,
    error_of,
    newest,
)

pytestmark = pytest.mark.e2e  # every test talks HTTP to a simulator


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
