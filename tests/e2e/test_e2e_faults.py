"""The exporter under API faults and limits: retries, staleness, failures, hangs, the
request budget, the API's rate-limit window and the concurrency limit, over real HTTP
against the simulator."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from exporter import metrics as m
from exporter.simulator import Simulator
from tests.e2e.helpers import exporter_env, run_once
from tests.harness import Exporter, parse_exposition, wait_for

pytestmark = pytest.mark.e2e


# --------------------------------------------------------------------------- faults


def test_short_503_burst_is_retried_within_the_poll(sim: Simulator) -> None:
    sim.faults.fail(503, count=2, match=lambda path, query: path == "/v1/billing/invoices")
    result = run_once(sim)
    assert result.returncode == 0, result.stderr
    scrape = parse_exposition(result.stdout)
    assert scrape.get(m.API_REQUESTS.sample_name, endpoint="list_invoices", code="503") == 2
    assert scrape.get(m.UP.name) == 1


def test_stale_figures_are_dropped_at_the_bound(sim: Simulator) -> None:
    env = exporter_env(sim, max_staleness_seconds="3", poll_interval_seconds="30")
    with Exporter(env=env) as exporter:
        exporter.wait_ready()
        sim.faults.fail(500, count=10_000)
        started = time.monotonic()
        # No poll is due for 30 s: the figures must go at the bound, not at a later poll.
        scrape = exporter.wait_metric(
            m.INVOICE_AMOUNT.name, lambda v: v is None, timeout=10, currency="usd"
        )
        assert time.monotonic() - started < 10
        assert scrape.family(m.TEAM_COST.name) == {}
        assert scrape.get(m.UP.name) == 1  # no poll has failed yet: it is the age
        assert scrape.get(m.BUILD_INFO.name, version=_version()) == 1
        assert exporter.http.get("/-/ready").status_code == 503
        assert "figures dropped" in exporter.logs()


def test_up_goes_to_zero_and_figures_go_stale_after_failures(sim: Simulator) -> None:
    env = exporter_env(sim, max_staleness_seconds="4")
    with Exporter(env=env) as exporter:
        exporter.wait_ready()
        sim.faults.fail(400, count=10_000)
        exporter.wait_metric(m.UP.name, lambda v: v == 0)
        scrape = exporter.wait_metric(
            m.TEAM_COST.name,
            lambda v: v is None,
            team="team-1",
            team_name="Platform Café",
            currency="usd",
        )
        assert (
            scrape.get(
                m.POLL_ERRORS.sample_name,
                reason="http",
            )
            >= 1
        )  # type: ignore[operator]
        sim.faults.reset()
        exporter.wait_metric(m.UP.name, lambda v: v == 1)
        assert exporter.http.get("/-/ready").status_code == 200


def test_connection_refused(sim: Simulator) -> None:
    env = exporter_env(sim)
    sim.stop()
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--once"],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "result=connection" in result.stderr


def test_metrics_answer_while_a_poll_hangs(sim: Simulator) -> None:
    env = exporter_env(sim, request_timeout_seconds="5")
    with Exporter(env=env) as exporter:
        exporter.wait_ready()
        sim.faults.hang(count=100, seconds=30)
        time.sleep(1.5)  # a poll is now stuck on a hung request
        for _ in range(20):
            started = time.monotonic()
            response = exporter.http.get("/metrics")
            assert response.status_code == 200
            assert time.monotonic() - started < 1.0
        code, took = exporter.stop()
    assert code == 0
    assert took < 2.0


def _version() -> str:
    from exporter import __version__

    return __version__


# --------------------------------------------------------------------------- budget and limits


# The schedule, the stretch and the rate-limit wait are tested in virtual time in
# tests/test_poller.py; these two check what the process adds: its settings from the
# environment, its log line, and the real simulator's headers read over HTTP.


def test_the_stretched_interval_is_logged(sim: Simulator) -> None:
    # 19 requests a poll (the credit balance too) within 3600 an hour: one poll every
    # 19 s, not every second.
    env = exporter_env(
        sim, request_budget_per_hour="3600", unbilled="false", invoice_refresh_seconds="0"
    )
    with Exporter(env=env) as exporter:
        exporter.wait_ready()
        line = wait_for(
            lambda: [
                line
                for line in exporter.logs().splitlines()
                if "polling every 19 s instead of every 1 s" in line
            ],
            5,
        )
    assert "interval_seconds=19.0" in line[0]


def test_concurrency_limit_holds(sim: Simulator) -> None:
    sim.faults.latency = 0.3
    result = run_once(sim, max_concurrency="2")
    assert result.returncode == 0, result.stderr
    scrape = parse_exposition(result.stdout)
    # list, invoice, then 16 calls two at a time: at least 10 x 0.3 s whatever the machine
    duration = scrape.get(m.POLL_DURATION.name)
    assert duration is not None
    assert duration >= 10 * 0.3 - 0.05
