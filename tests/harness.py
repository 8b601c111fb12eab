"""Run the exporter as a real process on loopback and read what it serves.

Used by the end-to-end tests: the exporter under test is the installed console code
(``python -m exporter``), talking HTTP to a simulator in the test process.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from exporter.simulator import RequestRecord, Simulator

Labels = frozenset[tuple[str, str]]
TOKEN = "sim-secret-token-4711"  # the token of the `sim` fixture (tests/conftest.py)
MakeSim = Callable[..., Simulator]  # the `make_sim` fixture: make_sim(org=None, **options)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Call ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (httpx.HTTPError, OSError, AssertionError) as exc:
            last_error, value = exc, None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {predicate}: {last_error}")


def api_env(url: str, token: str, **settings: str) -> dict[str, str]:
    """The exporter's environment for a test API: fast polls, no budget stretching, this
    month not broken down (``unbilled_depth="project"`` to have it).

    ``settings`` are further settings by field name: ``api_env(url, t, depth="team")``.
    """
    env = {
        "NORTHFLANK_API_URL": url,
        "NORTHFLANK_API_TOKEN": token,
        "NORTHFLANK_POLL_INTERVAL_SECONDS": "1",
        "NORTHFLANK_REQUEST_BUDGET_PER_HOUR": "1000000",
        "NORTHFLANK_REQUEST_TIMEOUT_SECONDS": "1",
        # this month's breakdown only where a test asks for it (tests/test_month_e2e.py):
        # its background requests would blur the request counts the others check
        "NORTHFLANK_UNBILLED_DEPTH": "team",
    }
    env.update({f"NORTHFLANK_{name.upper()}": value for name, value in settings.items()})
    return env


def billing_requests(sim: Simulator) -> list[RequestRecord]:
    """The simulator's requests but the token check (``GET /v1/auth``, once after the
    first poll): what the request budget of polls is about."""
    return [record for record in sim.requests if record.path != "/v1/auth"]


@dataclass(frozen=True)
class Scrape:
    """One /metrics answer: samples by (name, labels)."""

    samples: Mapping[tuple[str, Labels], float]
    text: str

    def get(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))

    def family(self, name: str) -> dict[Labels, float]:
        return {labels: value for (n, labels), value in self.samples.items() if n == name}

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}


def parse_exposition(text: str) -> Scrape:
    samples: dict[tuple[str, Labels], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = sample.value
    return Scrape(samples, text)


class Exporter:
    """``python -m exporter`` as a subprocess, listening on a free loopback port."""

    def __init__(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        verify: ssl.SSLContext | None = None,
        auth: tuple[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        """``verify``: the exporter serves TLS; trust this context. ``auth``: basic auth."""
        self.port = port or free_port()
        self.url = f"{'https' if verify else 'http'}://127.0.0.1:{self.port}"
        self._log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        full_env = {
            key: value for key, value in os.environ.items() if not key.startswith("NORTHFLANK_")
        }
        full_env.update(env or {})
        full_env.setdefault("NORTHFLANK_LISTEN_ADDRESS", f"127.0.0.1:{self.port}")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "exporter", *args],
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        self.http = httpx.Client(base_url=self.url, timeout=5, verify=verify or True, auth=auth)

    def __enter__(self) -> Exporter:
        wait_for(lambda: self.alive() and self.http.get("/-/healthy").status_code == 200)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def alive(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"exporter exited {self.process.returncode}:\n{self.logs()}")
        return True

    def scrape(self) -> Scrape:
        response = self.http.get("/metrics")
        assert response.status_code == 200, response.text
        return parse_exposition(response.text)

    def value(self, name: str, **labels: str) -> float | None:
        return self.scrape().get(name, **labels)

    def wait_ready(self, timeout: float = 15.0) -> Scrape:
        wait_for(lambda: self.http.get("/-/ready").status_code == 200, timeout)
        return self.scrape()

    def wait_metric(
        self,
        name: str,
        predicate: Callable[[float | None], bool],
        timeout: float = 20,
        **labels: str,
    ) -> Scrape:
        def check() -> Scrape | None:
            scrape = self.scrape()
            return scrape if predicate(scrape.get(name, **labels)) else None

        result: Scrape = wait_for(check, timeout)
        return result

    def logs(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> tuple[int, float]:
        """Send ``sig``; return (exit status, seconds it took to exit)."""
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        took = time.monotonic() - started
        self.http.close()
        return self.process.returncode, took
