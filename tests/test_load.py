"""Load and consistency: scrapes while polls swap snapshots, a SIGTERM amid them.

Bounded in count and time, loopback only. No timing is asserted: the figures for speed
are the benchmark's (benchmarks/), this file checks correctness under load. The request
budget over simulated hours is tests/test_poller.py's, in virtual time.
"""

from __future__ import annotations

import gzip
import math
import signal
import socket
import threading
import time
from collections import defaultdict
from typing import Any

import httpx
import pytest

from exporter import metrics as m
from exporter.simulator import Simulator
from tests.harness import TOKEN, Exporter, Scrape, api_env, parse_exposition

SCRAPERS = 12
SLOW_READERS = 4
DURATION = 6.0  # seconds of load
pytestmark = pytest.mark.e2e


@pytest.fixture
def sim_hours() -> float:
    """``sim`` (tests/conftest.py): the demo organisation, 3.5 hours past its invoice."""
    return 3.5


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
    paas = scrape.get(m.PAAS_COST.name, currency="usd")
    teams = scrape.family(m.TEAM_COST.name)
    assert paas is not None
    assert math.isclose(sum(teams.values()), paas, abs_tol=1e-6)
    project_sums: dict[str, float] = defaultdict(float)
    for labels, value in scrape.family(m.PROJECT_COST.name).items():
        project_sums[dict(labels)["team"]] += value
    for labels, value in teams.items():
        assert math.isclose(project_sums[dict(labels)["team"]], value, abs_tol=1e-6)
    type_sums: dict[tuple[str, str], float] = defaultdict(float)
    for labels, value in scrape.family(m.RESOURCE_TYPE_COST.name).items():
        d = dict(labels)
        type_sums[(d["team"], d["project"])] += value
    for labels, value in scrape.family(m.PROJECT_COST.name).items():
        d = dict(labels)
        assert math.isclose(type_sums[(d["team"], d["project"])], value, abs_tol=1e-6)
    marker = [
        value
        for labels, value in scrape.family(m.RESOURCE_DIMENSION_COST.name).items()
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
