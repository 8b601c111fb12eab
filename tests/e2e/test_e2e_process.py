"""The exporter as a process: signals, ``--once``, ``--demo``, ``--help``, readiness,
content negotiation, the token kept out of output, and an IPv6 listen address."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import httpx
import pytest

from exporter import metrics as m
from exporter.simulator import Simulator
from tests.e2e.helpers import exporter_env, run_once
from tests.harness import TOKEN, Exporter, free_port, parse_exposition, wait_for

pytestmark = pytest.mark.e2e


# --------------------------------------------------------------------------- the process


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(sim: Simulator, sig: int) -> None:
    with Exporter(env=exporter_env(sim)) as exporter:
        exporter.wait_ready()
        code, took = exporter.stop(sig)
        logs = exporter.logs()
    assert code == 0
    assert took < 2.0
    assert "stopped" in logs


def test_once_prints_only_the_exposition(sim: Simulator) -> None:
    result = run_once(sim)
    assert result.returncode == 0
    scrape = parse_exposition(result.stdout)
    assert scrape.get(m.UP.name) == 1
    assert "poll succeeded" in result.stderr
    lines = result.stdout.splitlines()
    assert all(line.startswith(("# HELP ", "# TYPE ", "northflank_")) for line in lines)


def test_once_fails_with_exit_1_when_the_poll_fails(sim: Simulator) -> None:
    sim.token = "something-else"
    result = run_once(sim, status=1)
    assert result.stdout == ""
    assert "result=auth" in result.stderr
    assert TOKEN not in result.stderr


@pytest.mark.parametrize(
    ("flags", "contract"),
    [((), "current"), (("--demo-contract", "legacy"), "legacy")],
    ids=["current", "legacy"],
)
def test_demo_serves_figures_without_a_token(flags: tuple[str, ...], contract: str) -> None:
    exporter = Exporter("--demo", *flags, env={"NORTHFLANK_LOG_FORMAT": "json"})
    with exporter:
        scrape = exporter.wait_ready(timeout=20)
        page = exporter.http.get("/").text
        logs = exporter.logs()
    assert len(scrape.family(m.RESOURCE_COST.name)) == 4 * 3 * 7
    assert scrape.get(m.API_CONTRACT.name, contract=contract) == 1
    assert "Last poll: ok" in page
    assert ("<h2>Credit</h2>" in page) == (contract == "current")
    lines = [json.loads(line) for line in logs.splitlines()]
    assert f"({contract} billing contract)" in lines[0]["message"] + lines[1]["message"]
    polls = [line for line in lines if line["message"] == "poll succeeded"]
    # the invoice (18), the usage (5: the window's sums, or every hour so far), the credit
    # balance in the current contract
    assert polls[0]["requests"] >= 18 + 5 + (contract == "current")
    # the token families come a moment later, from the token check after the first poll
    polled = [
        (name, labels)
        for name, labels in scrape.samples
        if name not in (m.TOKEN_INFO.name, m.TOKEN_EXPIRY.name)
        and ("endpoint", "auth") not in labels
        and ("endpoint", "get_usage") not in labels
        and name not in {spec.name for spec in m.MONTH_FAMILIES}
    ]
    # this month's breakdown is summed beside the polls (its hours asked with get_usage):
    # at the first poll's end, nothing yet but its ``through`` (one series)
    assert polls[0]["series"] == len(polled) + 1


def test_ready_is_503_before_the_first_poll(sim: Simulator) -> None:
    sim.faults.hang(count=1, seconds=5)
    env = exporter_env(sim, request_timeout_seconds="5")
    with Exporter(env=env) as exporter:
        assert exporter.http.get("/-/ready").status_code == 503
        scrape = exporter.scrape()
        assert scrape.get(m.UP.name) == 0
        assert scrape.family(m.TEAM_COST.name) == {}


def test_content_negotiation(sim: Simulator) -> None:
    with Exporter(env=exporter_env(sim)) as exporter:
        exporter.wait_ready()
        plain = exporter.http.get("/metrics", headers={"Accept-Encoding": "identity"})
        zipped = httpx.get(f"{exporter.url}/metrics", headers={"Accept-Encoding": "gzip"})
        om = exporter.http.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
        missing = exporter.http.get("/nope")
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "content-encoding" not in plain.headers
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.text == plain.text  # httpx decompressed it
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.text.endswith("# EOF\n")
    assert missing.status_code == 404


def test_token_never_reaches_metrics_or_logs(sim: Simulator) -> None:
    env = exporter_env(sim, log_level="DEBUG")
    with Exporter(env=env) as exporter:
        scrape = exporter.wait_ready()
        sim.token = "other"
        exporter.wait_metric(m.UP.name, lambda v: v == 0)
        logs = exporter.logs()
    assert TOKEN not in scrape.text
    assert TOKEN not in logs


def test_help_works_without_settings() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0
    assert "NORTHFLANK_DEPTH" in result.stdout


def test_wait_for_helper_times_out() -> None:
    with pytest.raises(AssertionError, match="timed out"):
        wait_for(lambda: False, timeout=0.2)


def test_ipv6_listen_address(sim: Simulator) -> None:
    """The README's `[::]:9721` form: the server binds IPv6 and answers on it."""
    port = free_port()
    env = exporter_env(sim, listen_address=f"[::1]:{port}")
    process = subprocess.Popen(
        [sys.executable, "-m", "exporter"],
        env={"PATH": "/usr/bin:/bin", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: httpx.get(f"http://[::1]:{port}/-/ready").status_code == 200)
        assert m.TEAM_COST.name in httpx.get(f"http://[::1]:{port}/metrics").text
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(5) == 0
