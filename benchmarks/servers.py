"""The parties of the benchmark, each started as its own process.

The simulated Northflank API (``python -m exporter.simulator``), the exporter
(``python -m exporter``, whose JSON log lines are read as they come), nginx serving fixed
bytes as ``/metrics`` and the per-scrape prometheus_client server
(:mod:`benchmarks.perscrape`).
"""

from __future__ import annotations

import json
import math
import os
import queue
import subprocess
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.config import PYTHON, BenchmarkError, Organisation, require
from benchmarks.procs import Cpus, Process, Processes, free_port, wait_http


@dataclass(frozen=True)
class Simulator:
    """``python -m exporter.simulator`` serving ``org``; the exporter's URL and token."""

    org: Organisation
    url: str
    token: str
    process: Process


def start_simulator(
    procs: Processes,
    cpus: Cpus,
    org: Organisation,
    *,
    rate_limit: int = 1_000_000_000,
    window_seconds: float = 3600,
) -> Simulator:
    """The simulator on a free port, on the load's CPU, with no rate limit to speak of
    unless given one."""
    sim = procs.add(
        Process(
            f"simulator {org.teams}x{org.projects}x{org.resources}",
            [
                PYTHON,
                "-m",
                "exporter.simulator",
                "--teams",
                str(org.teams),
                "--projects",
                str(org.projects),
                "--resources",
                str(org.resources),
                "--latency",
                str(org.latency),
                "--rate-limit",
                str(rate_limit),
                "--rate-window-seconds",
                str(window_seconds),
            ],
            cpus.load,
            stdout=subprocess.PIPE,
        )
    )
    assert sim.popen.stdout is not None
    line = sim.popen.stdout.readline().decode().split()
    if len(line) != 2:
        raise BenchmarkError(f"the simulator said {line!r} instead of 'URL TOKEN'")
    return Simulator(org, line[0], line[1], sim)


def exporter_env(sim: Simulator, port: int, interval: float, **more: str) -> dict[str, str]:
    """The exporter's environment: ``more`` as ``NORTHFLANK_<KEY>`` settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("NORTHFLANK_")}
    env.update(
        NORTHFLANK_API_URL=sim.url,
        NORTHFLANK_API_TOKEN=sim.token,
        NORTHFLANK_UNBILLED="false",
        # this month's breakdown runs beside the polls: measured on its own (catchup.py)
        NORTHFLANK_UNBILLED_DEPTH="team",
        NORTHFLANK_REQUEST_BUDGET_PER_HOUR="100000000",
        NORTHFLANK_POLL_INTERVAL_SECONDS=str(interval),
        NORTHFLANK_LISTEN_ADDRESS=f"127.0.0.1:{port}",
        NORTHFLANK_LOG_FORMAT="json",
        NORTHFLANK_DEPTH="resource",
    )
    env.update({f"NORTHFLANK_{key.upper()}": value for key, value in more.items()})
    return env


@dataclass(frozen=True)
class PollLine:
    """One ``poll succeeded`` log line, and the exporter's CPU when it was read."""

    duration_seconds: float
    requests: int
    series: int
    cpu_seconds: float
    invoice: str  # the invoice's ID
    logged: dict[str, object] = field(default_factory=dict, compare=False)  # the whole line


class Exporter:
    """``python -m exporter`` whose JSON log lines are read as they come."""

    def __init__(self, procs: Processes, cpus: Cpus, env: Mapping[str, str], port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.process = procs.add(
            Process(
                "exporter",
                [PYTHON, "-m", "exporter"],
                cpus.server,
                env=env,
                stderr=subprocess.PIPE,
            )
        )
        self.polls: queue.Queue[PollLine] = queue.Queue()
        self.log: list[str] = []
        self.listening_cpu: float | None = None  # CPU seconds when it began to serve (imports)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @classmethod
    def start(
        cls, procs: Processes, cpus: Cpus, sim: Simulator, interval: float, **more: str
    ) -> Exporter:
        """An exporter of ``sim`` on a free port, polling every ``interval`` seconds."""
        port = free_port()
        return cls(procs, cpus, exporter_env(sim, port, interval, **more), port)

    def _read(self) -> None:
        stream = self.process.popen.stderr
        assert stream is not None
        for raw in stream:
            line = raw.decode(errors="replace").rstrip()
            self.log.append(line)
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("message") == "listening":
                try:
                    self.listening_cpu = self.process.cpu_seconds()
                except OSError:
                    return
            elif entry.get("message") == "poll succeeded":
                try:
                    cpu = self.process.cpu_seconds()
                except OSError:
                    return
                self.polls.put(
                    PollLine(
                        float(entry["duration_seconds"]),
                        int(entry["requests"]),
                        int(entry["series"]),
                        cpu,
                        str(entry.get("invoice", "")),
                        entry,
                    )
                )
            elif entry.get("message", "").startswith("poll failed"):
                self.polls.put(PollLine(math.nan, int(entry.get("requests", 0)), 0, 0.0, ""))

    def next_poll(self, timeout: float = 120.0) -> PollLine:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.polls.get(timeout=0.5)
            except queue.Empty:
                self.process.check_alive()
                if time.monotonic() > deadline:
                    raise BenchmarkError(f"no poll within {timeout:.0f} s") from None
                continue
            if math.isnan(line.duration_seconds):
                tail = "\n".join(self.log[-5:])
                raise BenchmarkError(f"a poll failed:\n{tail}")
            return line

    def next_polls(self, count: int) -> list[PollLine]:
        return [self.next_poll() for _ in range(count)]


def scrape_value(url: str, name: str, having: str = "") -> float | None:
    """The sum of the samples of ``name`` on ``url``'s ``/metrics`` whose labels have
    ``having`` (text such as ``code="429"``); None when there is none."""
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as answer:  # noqa: S310
            text = answer.read().decode()
    except OSError:
        return None
    found = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((name + " ", name + "{")) and having in line
    ]
    return sum(found) if found else None


@dataclass(frozen=True)
class CpuSplit:
    """What the per-scrape server measured in its own process (``time.process_time``)."""

    read_cpu_seconds: float  # requests, parsing, snapshot
    render_cpu_seconds: float  # the exporter's families and render
    prometheus_client_render_cpu_seconds: float  # one prometheus_client scrape
    samples: int


def start_perscrape(
    procs: Processes, cpus: Cpus, sim: Simulator, **more: str
) -> tuple[Process, str, CpuSplit]:
    """:mod:`benchmarks.perscrape` polling ``sim``; the process, its URL and its figures."""
    port = free_port()
    reference = procs.add(
        Process(
            "per-scrape prometheus_client server",
            [PYTHON, "-m", "benchmarks.perscrape", "--port", str(port)],
            cpus.server,
            env=exporter_env(sim, free_port(), 86400, **more),
            stdout=subprocess.PIPE,
        )
    )
    assert reference.popen.stdout is not None
    first = reference.popen.stdout.readline()
    if not first:
        reference.check_alive()
        raise BenchmarkError("the per-scrape server said nothing")
    said = json.loads(first)
    split = CpuSplit(
        float(said["read_cpu_seconds"]),
        float(said["render_cpu_seconds"]),
        float(said["prometheus_client_render_cpu_seconds"]),
        int(said["samples"]),
    )
    return reference, f"http://127.0.0.1:{port}/metrics", split


NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 100000000;
    keepalive_timeout 60s;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {dir}/www;
        location = /metrics {{
            default_type "text/plain; version=0.0.4; charset=utf-8";
            gzip off;
            gzip_static on;
        }}
    }}
}}
"""


def start_nginx(
    procs: Processes, cpus: Cpus, workdir: Path, plain: bytes, gzipped: bytes
) -> tuple[Process, str]:
    """nginx serving ``plain`` as /metrics and ``gzipped`` as its ``.gz`` (gzip_static)."""
    nginx_dir = workdir / "nginx"
    (nginx_dir / "www").mkdir(parents=True)
    (nginx_dir / "www" / "metrics").write_bytes(plain)
    (nginx_dir / "www" / "metrics.gz").write_bytes(gzipped)
    for path in (workdir, nginx_dir, nginx_dir / "www"):
        path.chmod(0o755)  # nginx's worker may run as another user
    for path in (nginx_dir / "www").iterdir():
        path.chmod(0o644)
    port = free_port()
    conf = nginx_dir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=nginx_dir, port=port))
    nginx = procs.add(
        Process(
            "nginx",
            [require("nginx"), "-e", str(nginx_dir / "error.log"), "-c", str(conf)],
            cpus.server,
            stderr=subprocess.DEVNULL,
        )
    )
    url = f"http://127.0.0.1:{port}/metrics"
    wait_http(url, nginx)
    return nginx, url
