"""Load and consistency: scrapes while polls swap snapshots; the request budget over an hour.

Bounded in count and time, loopback only. No timing is asserted: the figures for speed
are the benchmark's (benchmarks/), this file checks correctness under load.
"""

from __future__ import annotations

import asyncio
import gzip
import math
import selectors
import signal
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from exporter.client import Client
from exporter.poller import Outcome, Poller
from exporter.settings import Settings
from exporter.simulator import ManualClock, Simulator, generate_organisation
from tests.harness import Exporter, Scrape, api_env, parse_exposition

TOKEN = "load-test-token"
SCRAPERS = 12
SLOW_READERS = 4
DURATION = 6.0  # seconds of load


@pytest.fixture
def sim() -> Iterator[Simulator]:
    org = generate_organisation(teams=4, projects_per_team=3)
    clock = ManualClock(org.newest_invoice().period_end + 3.5 * 3600)
    with Simulator(org, token=TOKEN, clock=clock) as simulator:
        yield simulator


def bump_generation_on_each_poll(sim: Simulator) -> list[int]:
    """Change a figure as each poll starts (at its list call), so every poll differs.

    The change happens before the poll's other requests, so one poll sees one version
    of the organisation; a scrape that mixed two polls would not add up.
    """
    org = sim.org
    inv = org.newest_invoice().id
    resource = org.invoice(inv).team("team-1").project("web").resources[0]
    generations = [0]

    def hook(path: str, query: dict[str, str]) -> bool:
        if path == "/v1/billing/invoices":
            generations[0] += 1
            org.set_resource_price(inv, "team-1", "web", resource.id, cpu=100_00 * generations[0])
        return False  # never a fault: this only watches requests go by

    sim.faults.fail(500, count=1, match=hook)
    return generations


def check_consistent(scrape: Scrape) -> int:
    """Totals equal the sum of their parts, all from one poll; returns the generation."""
    paas = scrape.get("northflank_paas_cost", currency="usd")
    teams = scrape.family("northflank_team_cost")
    assert paas is not None
    assert math.isclose(sum(teams.values()), paas, abs_tol=1e-6)
    project_sums: dict[str, float] = defaultdict(float)
    for labels, value in scrape.family("northflank_project_cost").items():
        project_sums[dict(labels)["team"]] += value
    for labels, value in teams.items():
        assert math.isclose(project_sums[dict(labels)["team"]], value, abs_tol=1e-6)
    type_sums: dict[tuple[str, str], float] = defaultdict(float)
    for labels, value in scrape.family("northflank_resource_type_cost").items():
        d = dict(labels)
        type_sums[(d["team"], d["project"])] += value
    for labels, value in scrape.family("northflank_project_cost").items():
        d = dict(labels)
        assert math.isclose(type_sums[(d["team"], d["project"])], value, abs_tol=1e-6)
    marker = [
        value
        for labels, value in scrape.family("northflank_resource_dimension_cost").items()
        if ("team", "team-1") in labels
        and ("project", "web") in labels
        and ("dimension", "cpu") in labels
        and value >= 100
    ]
    return int(max(marker)) // 100


def scraper(url: str, stop: threading.Event, results: list[Any], gzip_it: bool) -> None:
    headers = {"Accept-Encoding": "gzip" if gzip_it else "identity"}
    with httpx.Client(base_url=url, timeout=10) as http:
        while not stop.is_set():
            try:
                response = http.get("/metrics", headers=headers)
                results.append((response.status_code, response.text))
            except httpx.HTTPError as exc:  # counted as a failure below
                results.append((0, repr(exc)))


def slow_reader(port: int, stop: threading.Event, results: list[Any]) -> None:
    """A client that reads its answer 2 KB at a time with pauses: a slow network."""
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(
                    b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n"
                    b"Connection: close\r\n\r\n"
                )
                data = b""
                while chunk := sock.recv(2048):
                    data += chunk
                    time.sleep(0.005)
        except OSError as exc:  # counted as a failure by the test that cares
            results.append((0, repr(exc)))
            continue
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        results.append((status, gzip.decompress(body).decode()))


def test_scrapes_under_load_are_whole_and_consistent(sim: Simulator) -> None:
    generations = bump_generation_on_each_poll(sim)
    env = api_env(sim.url, TOKEN, request_timeout_seconds="5")
    results: list[Any] = []
    stop = threading.Event()
    with Exporter(env=env) as exporter:
        exporter.wait_ready()
        threads = [
            threading.Thread(target=scraper, args=(exporter.url, stop, results, i % 2 == 0))
            for i in range(SCRAPERS)
        ] + [
            threading.Thread(target=slow_reader, args=(exporter.port, stop, results))
            for _ in range(SLOW_READERS)
        ]
        for thread in threads:
            thread.start()
        time.sleep(DURATION)
        stop.set()
        for thread in threads:
            thread.join(30)
        exporter.alive()
    failures = [body for status, body in results if status != 200]
    assert failures == []
    bodies = {body for _, body in results}  # a poll's body is the same for every scrape
    assert len(bodies) < len(results)
    seen = {check_consistent(parse_exposition(body)) for body in bodies}
    assert len(results) > 100
    assert len(seen) >= 3, f"polls did not swap snapshots during the load: {seen}"
    assert max(seen) <= generations[0]


def test_sigterm_during_scrapes_and_a_poll_exits_0_within_2_s(sim: Simulator) -> None:
    env = api_env(sim.url, TOKEN, request_timeout_seconds="30")
    results: list[Any] = []
    stop = threading.Event()
    with Exporter(env=env) as exporter:
        exporter.wait_ready()
        sim.faults.hang(count=10_000, seconds=30)  # the next poll hangs on its first request
        threads = [
            threading.Thread(target=slow_reader, args=(exporter.port, stop, results))
            for _ in range(SLOW_READERS)
        ] + [threading.Thread(target=scraper, args=(exporter.url, stop, results, True))]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        code, took = exporter.stop(signal.SIGTERM)
        stop.set()
        for thread in threads:
            thread.join(30)
    assert code == 0
    assert took < 2.0


# --------------------------------------------------------------------------- a simulated hour


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps ahead whenever nothing is ready: hours in seconds."""

    def __init__(self) -> None:
        self.now = 0.0
        loop = self

        class Selector(selectors.DefaultSelector):
            def select(self, timeout: float | None = None) -> Any:
                events = super().select(0)
                if not events and timeout:
                    loop.now += timeout
                return events

        super().__init__(Selector())

    def time(self) -> float:
        return self.now


def test_request_budget_holds_over_a_simulated_hour() -> None:
    org = generate_organisation()  # 18 requests a poll at depth resource, unbilled off
    inv = org.newest_invoice().id
    sent: list[float] = []
    token_checks: list[float] = []
    loop = VirtualTimeLoop()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/auth":
            token_checks.append(loop.time())
            return httpx.Response(200, json={"data": {"entityType": "org", "entityId": "o"}})
        sent.append(loop.time())
        query = dict(request.url.params)
        if request.url.path == "/v1/billing/invoices":
            return httpx.Response(200, json={"data": {"invoices": org.render_invoice_summaries()}})
        data = org.render_invoice(
            inv, team_id=query.get("teamId"), project_id=query.get("projectId")
        )
        return httpx.Response(200, json={"data": data})

    budget = 100
    settings = Settings(
        api_token="t",
        poll_interval_seconds=60,
        request_budget_per_hour=budget,
        unbilled=False,
    )

    async def run() -> None:
        client = Client(
            "http://api.test", "t", transport=httpx.MockTransport(handler), clock=loop.time
        )
        published: list[Outcome] = []

        def publish(outcome: Outcome) -> int:
            published.append(outcome)
            return 0

        poller = Poller(client, settings, publish, clock=loop.time)
        stop = asyncio.Event()
        loop.call_later(3 * 3600, stop.set)
        await poller.run(stop)
        await client.aclose()

    try:
        loop.run_until_complete(run())
    finally:
        loop.close()
    assert loop.time() >= 3 * 3600
    per_poll = 18
    assert len(sent) % per_poll == 0
    # In every hour-long window, at most the budget plus the first poll's overshoot.
    every = sorted(sent + token_checks)
    worst = max(sum(1 for t in every if start <= t < start + 3600) for start in every)
    assert worst <= budget + per_poll
    assert len(token_checks) == 1  # after the first poll; the next one is a day later
    # ... and the interval was stretched from 60 s, not left alone
    assert len(sent) // per_poll <= 3 * (budget // per_poll + 1)
