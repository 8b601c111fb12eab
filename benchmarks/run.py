"""The exporter against the limits of the job, side by side in one run.

    python -m benchmarks.run            # the full benchmark, about three minutes
    python -m benchmarks.run --quick    # a small organisation and short runs (CI)
    benchmarks/run [--quick]            # the same on a fresh machine: installs first

Every party is its own process, so their CPU does not mix: the simulated Northflank API
(``python -m exporter.simulator``), the exporter (``python -m exporter``), nginx, a
per-scrape prometheus_client server (:mod:`benchmarks.perscrape`) and ``wrk``. On a
machine with two or more CPUs the servers under test (exporter, nginx,
prometheus_client) are pinned to the first CPU and their load (the simulator, ``wrk``,
this script) to the last, so each side has a core of its own.

It prints one Markdown table (``BENCHMARKS.md`` holds one), each row a measure, the
exporter's figure, the reference it is held against, their ratio, the target and
``met``, ``MISSED`` or ``info``:

1. Polls (simulator with ``--latency``, the exporter at ``NORTHFLANK_MAX_CONCURRENCY``):
   the wall time of a poll as the exporter logs it (median of several, after one
   warm-up) against the ideal critical path for that latency and concurrency: the
   invoice list, the invoice, then the team and project calls packed ``concurrency``
   at a time; and the requests a poll spends against the reference page's minimum
   ``2 + teams + projects`` (one less with ``NORTHFLANK_INVOICE_ID``). Both once with
   the newest invoice looked up and once pinned.
2. Scrapes of ``/metrics`` at about 50,000 series with ``wrk`` (text format, with and
   without ``Accept-Encoding: gzip``), rounds interleaved, medians reported: the
   exporter against nginx serving the very same bytes as static files
   (``gzip_static``), and against prometheus_client rendering on every scrape.
3. CPU seconds per poll of the exporter process at that size (``/proc/<pid>/stat``
   utime + stime between consecutive polls), the in-process split of one poll, and
   the exporter's peak resident memory (``VmHWM``); ``promtool check metrics`` on the
   exposition.

The exporter runs with ``NORTHFLANK_UNBILLED=false`` (the unbilled-usage calls are not
part of the reference page's minimum) and a request budget large enough never to
stretch the interval. Exit status 0 when the benchmark ran (whatever the figures), 1
when it could not (a tool missing, a process that failed).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import itertools
import json
import math
import os
import platform
import queue
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from prometheus_client.parser import text_string_to_metric_families

from exporter import metrics

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TOOLS = {"wrk": "wrk", "nginx": "nginx-light", "promtool": "prometheus"}  # binary: package
CLK_TCK = os.sysconf("SC_CLK_TCK")
OWN_FAMILIES = metrics.OWN_NAMES
# Read from GET /v1/auth, which the per-scrape reference does not ask.
TOKEN_FAMILIES = frozenset({metrics.TOKEN_INFO.name, metrics.TOKEN_EXPIRY.name})


class BenchmarkError(Exception):
    """The benchmark could not run: a tool is missing or a process failed."""


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Config:
    name: str
    # polls
    poll_teams: int
    poll_projects: int  # per team
    poll_latency: float  # seconds per simulated API request
    concurrency: int
    polls: int  # measured, after one warm-up poll
    # scrapes, CPU and memory
    big_teams: int
    big_projects: int
    big_resources: int  # per resource type (7 types)
    cpu_polls: int
    cpu_interval: float
    wrk_seconds: float
    wrk_rounds: int
    wrk_connections: int
    reference_seconds: float  # wrk against the per-scrape prometheus_client server


FULL = Config(
    name="full",
    poll_teams=20,
    poll_projects=10,
    poll_latency=0.05,
    concurrency=8,
    polls=5,
    big_teams=10,
    big_projects=50,
    big_resources=4,
    cpu_polls=5,
    cpu_interval=2.0,
    wrk_seconds=10.0,
    wrk_rounds=3,
    wrk_connections=4,
    reference_seconds=10.0,
)
QUICK = Config(
    name="quick",
    poll_teams=4,
    poll_projects=3,
    poll_latency=0.02,
    concurrency=8,
    polls=2,
    big_teams=2,
    big_projects=3,
    big_resources=1,
    cpu_polls=2,
    cpu_interval=1.0,
    wrk_seconds=1.0,
    wrk_rounds=1,
    wrk_connections=4,
    reference_seconds=1.0,
)


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Cpus:
    """Where the servers under test run, and where their load runs."""

    server: frozenset[int]
    load: frozenset[int]

    @classmethod
    def pick(cls) -> Cpus:
        cpus = sorted(os.sched_getaffinity(0))
        return cls(frozenset(cpus[:1]), frozenset(cpus[-1:]))

    def describe(self) -> str:
        if self.server == self.load:
            return f"one CPU ({min(self.server)}): everything shares it"
        return (
            f"servers under test (exporter, nginx with 1 worker, prometheus_client) on CPU "
            f"{min(self.server)}; simulator, wrk (1 thread) and this script on CPU "
            f"{min(self.load)}"
        )


def _pinned(cpus: frozenset[int]) -> Callable[[], None]:
    def pin() -> None:
        os.sched_setaffinity(0, cpus)

    return pin


class Process:
    """A child process pinned to some CPUs, stopped (by its own PID) when done."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        cpus: frozenset[int],
        *,
        env: Mapping[str, str] | None = None,
        stdout: int | IO[Any] | None = subprocess.DEVNULL,
        stderr: int | IO[Any] | None = subprocess.DEVNULL,
    ) -> None:
        self.name = name
        self.popen = subprocess.Popen(  # noqa: S603 - our own arguments
            list(args),
            cwd=ROOT,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            preexec_fn=_pinned(cpus),
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise BenchmarkError(f"{self.name} exited with status {self.popen.returncode}")

    def cpu_seconds(self) -> float:
        """utime + stime of every thread so far."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise BenchmarkError(f"no VmHWM for {self.name}")

    def stop(self, signum: int = 15, timeout: float = 10.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signum)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


class Processes:
    """Every process started, stopped in reverse order on the way out."""

    def __init__(self) -> None:
        self._started: list[Process] = []

    def add(self, process: Process) -> Process:
        self._started.append(process)
        return process

    def stop(self, process: Process, signum: int = 15) -> None:
        process.stop(signum)
        if process in self._started:
            self._started.remove(process)

    def stop_named(self, prefix: str) -> None:
        for process in [p for p in self._started if p.name.startswith(prefix)]:
            self.stop(process)

    def stop_all(self) -> None:
        while self._started:
            self._started.pop().stop()


def start_simulator(
    procs: Processes, cpus: Cpus, teams: int, projects: int, resources: int, latency: float
) -> tuple[str, str]:
    """``python -m exporter.simulator`` on a free port; (URL, token)."""
    sim = procs.add(
        Process(
            f"simulator {teams}x{projects}x{resources}",
            [
                PYTHON,
                "-m",
                "exporter.simulator",
                "--teams",
                str(teams),
                "--projects",
                str(projects),
                "--resources",
                str(resources),
                "--latency",
                str(latency),
                "--rate-limit",
                "1000000000",
            ],
            cpus.load,
            stdout=subprocess.PIPE,
        )
    )
    assert sim.popen.stdout is not None
    line = sim.popen.stdout.readline().decode().split()
    if len(line) != 2:
        raise BenchmarkError(f"the simulator said {line!r} instead of 'URL TOKEN'")
    return line[0], line[1]


def exporter_env(url: str, token: str, port: int, interval: float, **more: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("NORTHFLANK_")}
    env.update(
        NORTHFLANK_API_URL=url,
        NORTHFLANK_API_TOKEN=token,
        NORTHFLANK_UNBILLED="false",
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

    duration: float
    requests: int
    series: int
    cpu: float


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
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

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
            if entry.get("message") == "poll succeeded":
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
                    )
                )
            elif entry.get("message", "").startswith("poll failed"):
                self.polls.put(PollLine(math.nan, int(entry.get("requests", 0)), 0, 0.0))

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
            if math.isnan(line.duration):
                tail = "\n".join(self.log[-5:])
                raise BenchmarkError(f"a poll failed:\n{tail}")
            return line


def get(url: str, headers: Mapping[str, str] | None = None, timeout: float = 60) -> bytes:
    request = urllib.request.Request(url, headers=dict(headers or {}))  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        body: bytes = response.read()
        return body


def wait_http(url: str, process: Process, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        process.check_alive()
        try:
            get(url, timeout=5)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise BenchmarkError(f"{process.name} did not answer {url}") from None
            time.sleep(0.05)


# --------------------------------------------------------------------------- nginx


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


# --------------------------------------------------------------------------- wrk


@dataclass(frozen=True)
class WrkRun:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx answers, socket errors and timeouts


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise BenchmarkError(f"wrk: cannot read the duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> WrkRun:
    """The figures of ``wrk --latency`` output."""
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    count = re.search(r"^\s+(\d+) requests in", output, re.M)
    if not (rate and count):
        raise BenchmarkError(f"wrk: unexpected output:\n{output}")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors += int(non2xx.group(1)) if non2xx else 0
    return WrkRun(
        float(rate.group(1)),
        _ms(p50.group(1)) if p50 else math.nan,
        _ms(p99.group(1)) if p99 else math.nan,
        int(count.group(1)),
        errors,
    )


def wrk(url: str, cpus: Cpus, seconds: float, connections: int, *, gzip: bool) -> WrkRun:
    args = [
        require("wrk"),
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "60s",
    ]
    if gzip:
        args += ["-H", "Accept-Encoding: gzip"]
    result = subprocess.run(  # noqa: S603 - our own arguments
        [*args, url],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=False,
        preexec_fn=_pinned(cpus.load),
    )
    if result.returncode != 0:
        raise BenchmarkError(f"wrk failed ({result.returncode}): {result.stderr.strip()}")
    return parse_wrk(result.stdout)


@dataclass
class Series:
    """Repeated wrk runs of one target and encoding."""

    runs: list[WrkRun] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return statistics.median(run.requests_per_second for run in self.runs)

    @property
    def p99(self) -> float:
        return statistics.median(run.p99_ms for run in self.runs)

    @property
    def p50(self) -> float:
        return statistics.median(run.p50_ms for run in self.runs)

    @property
    def errors(self) -> int:
        return sum(run.errors for run in self.runs)

    def summary(self) -> str:
        rates = ", ".join(f"{run.requests_per_second:,.1f}" for run in self.runs)
        p99s = ", ".join(f"{run.p99_ms:.2f}" for run in self.runs)
        return f"req/s {rates}; p99 ms {p99s}; errors {self.errors}"


def paired_ratio(ours: Series, theirs: Series) -> float:
    """Median of the rounds' ratios: each round runs both back to back, so a noisy
    neighbour slows both sides of a ratio more often than one side of a median."""
    return statistics.median(
        _ratio(a.requests_per_second, b.requests_per_second)
        for a, b in zip(ours.runs, theirs.runs, strict=True)
    )


# --------------------------------------------------------------------------- measures


@dataclass
class Results:
    config: Config
    poll: dict[str, Any] = field(default_factory=dict)
    pinned: dict[str, Any] = field(default_factory=dict)
    cpu: dict[str, Any] = field(default_factory=dict)
    scrape: dict[str, Series] = field(default_factory=dict)
    sizes: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def ideal_poll_seconds(
    teams: int, projects: int, latency: float, concurrency: int, *, pinned: bool
) -> float:
    """Critical path: list (unless pinned), invoice, then team + project calls packed."""
    rounds = math.ceil((teams + projects) / concurrency)
    return latency * ((1 if pinned else 2) + rounds)


def minimum_requests(teams: int, projects: int, *, pinned: bool) -> int:
    return (1 if pinned else 2) + teams + projects


def measure_polls(procs: Processes, cpus: Cpus, cfg: Config, results: Results) -> None:
    """Poll wall time and requests per poll, newest invoice looked up, then pinned."""
    url, token = start_simulator(
        procs, cpus, cfg.poll_teams, cfg.poll_projects, 1, cfg.poll_latency
    )
    teams, projects = cfg.poll_teams, cfg.poll_teams * cfg.poll_projects
    invoice_id = ""
    for pinned, into in ((False, results.poll), (True, results.pinned)):
        port = free_port()
        more = {"max_concurrency": str(cfg.concurrency)}
        if pinned:
            more["invoice_id"] = invoice_id
        exporter = Exporter(procs, cpus, exporter_env(url, token, port, 1, **more), port)
        exporter.next_poll()  # warm-up
        lines = [exporter.next_poll() for _ in range(cfg.polls)]
        if not pinned:
            info = scrape_samples(get(f"{exporter.url}/metrics").decode())
            invoice_id = next(
                dict(labels)["invoice_id"]
                for (name, labels) in info
                if name == metrics.INVOICE_INFO.name
            )
        procs.stop(exporter.process)
        into.update(
            durations=[line.duration for line in lines],
            wall=statistics.median(line.duration for line in lines),
            ideal=ideal_poll_seconds(
                teams, projects, cfg.poll_latency, cfg.concurrency, pinned=pinned
            ),
            requests=[line.requests for line in lines],
            minimum=minimum_requests(teams, projects, pinned=pinned),
            invoice_id=invoice_id if pinned else None,
        )


def scrape_samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def same_series(ours: bytes, theirs: bytes) -> tuple[bool, str]:
    """Both hold the same series with the same values (the exporter's own values aside)."""
    a, b = scrape_samples(ours.decode()), scrape_samples(theirs.decode())
    a = {
        key: value
        for key, value in a.items()
        if key[0] not in TOKEN_FAMILIES and ("endpoint", "auth") not in key[1]
    }
    if set(a) != set(b):
        return False, f"{len(set(a) ^ set(b))} series differ"
    differ = [key for key in a if key[0] not in OWN_FAMILIES and a[key] != b[key]]
    if differ:
        return False, f"{len(differ)} values differ, e.g. {differ[0]}"
    return True, f"same {len(a):,} series and values"


def promtool_check(body: bytes) -> tuple[bool, str]:
    result = subprocess.run(  # noqa: S603 - our own arguments
        [require("promtool"), "check", "metrics"],
        input=body,
        capture_output=True,
        timeout=300,
        check=False,
    )
    said = (result.stdout + result.stderr).decode(errors="replace").strip()
    return result.returncode == 0 and not said, said[:300]


def measure_big(procs: Processes, cpus: Cpus, cfg: Config, results: Results, workdir: Path) -> None:
    """CPU and memory per poll, then scrapes: exporter, nginx, prometheus_client."""
    url, token = start_simulator(
        procs, cpus, cfg.big_teams, cfg.big_projects, cfg.big_resources, 0.0
    )
    more = {"max_concurrency": str(cfg.concurrency)}

    # CPU per poll: consecutive polls of an exporter that polls every cpu_interval s.
    port = free_port()
    poller = Exporter(procs, cpus, exporter_env(url, token, port, cfg.cpu_interval, **more), port)
    lines = [poller.next_poll()]  # the first poll pays for imports and warm-up
    lines += [poller.next_poll() for _ in range(cfg.cpu_polls)]
    per_poll = [b.cpu - a.cpu for a, b in itertools.pairwise(lines)]
    results.cpu.update(
        per_poll=per_poll,
        cpu=statistics.median(per_poll),
        series=lines[-1].series,
        requests=lines[-1].requests,
        wall=statistics.median(line.duration for line in lines[1:]),
        rss_polls=poller.process.peak_rss_mb(),
    )
    procs.stop(poller.process)

    # The exporter to scrape (one poll, then nothing until the end) ...
    port = free_port()
    exporter = Exporter(procs, cpus, exporter_env(url, token, port, 86400, **more), port)
    exporter.next_poll()
    # ... and the usual way: prometheus_client rendering on every scrape.
    ref_port = free_port()
    reference = procs.add(
        Process(
            "per-scrape prometheus_client server",
            [PYTHON, "-m", "benchmarks.perscrape", "--port", str(ref_port)],
            cpus.server,
            env=exporter_env(url, token, free_port(), 86400, **more),
            stdout=subprocess.PIPE,
        )
    )
    assert reference.popen.stdout is not None
    first = reference.popen.stdout.readline()
    if not first:
        reference.check_alive()
        raise BenchmarkError("the per-scrape server said nothing")
    results.cpu.update(json.loads(first))
    ref_url = f"http://127.0.0.1:{ref_port}/metrics"

    metrics = f"{exporter.url}/metrics"
    plain = get(metrics)
    gzipped = get(metrics, {"Accept-Encoding": "gzip"})
    results.sizes.update(plain_bytes=len(plain), gzip_bytes=len(gzipped))
    ok, said = same_series(plain, get(ref_url, timeout=300))
    results.sizes.update(same_as_reference=ok, same_as_reference_note=said)
    valid, said = promtool_check(plain)
    results.sizes.update(promtool_valid=valid, promtool_said=said)

    nginx, nginx_url = start_nginx(procs, cpus, workdir, plain, gzipped)
    same = get(nginx_url) == plain and get(nginx_url, {"Accept-Encoding": "gzip"}) == gzipped
    results.sizes.update(nginx_same_bytes=same)
    if not same:
        raise BenchmarkError("nginx does not serve the exporter's bytes")

    # The simulator has nothing more to do: stop it so that it takes no CPU.
    procs.stop_named("simulator")

    targets = {"exporter": metrics, "nginx": nginx_url}
    for name in ("exporter", "nginx", "prometheus_client"):
        for encoding in ("gzip", "identity"):
            results.scrape[f"{name} {encoding}"] = Series()
    for _ in range(cfg.wrk_rounds):
        for encoding in ("gzip", "identity"):
            for name, target in targets.items():
                run = wrk(
                    target, cpus, cfg.wrk_seconds, cfg.wrk_connections, gzip=encoding == "gzip"
                )
                results.scrape[f"{name} {encoding}"].runs.append(run)
    for encoding in ("gzip", "identity"):
        run = wrk(
            ref_url, cpus, cfg.reference_seconds, cfg.wrk_connections, gzip=encoding == "gzip"
        )
        results.scrape[f"prometheus_client {encoding}"].runs.append(run)
    results.cpu["rss_scraped"] = exporter.process.peak_rss_mb()
    procs.stop(nginx)
    procs.stop(reference)
    procs.stop(exporter.process)


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Row:
    key: str
    what: str
    ours: str
    reference: str
    ratio: str
    target: str
    verdict: str  # "met", "MISSED" or "info"


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.inf


def rows(results: Results) -> list[Row]:
    cfg = results.config
    poll, pinned, cpu, sizes, scrape = (
        results.poll,
        results.pinned,
        results.cpu,
        results.sizes,
        results.scrape,
    )
    shape = f"{cfg.poll_teams} teams x {cfg.poll_projects} projects"
    setting = f"{cfg.poll_latency * 1000:.0f} ms latency, concurrency {cfg.concurrency}"
    out: list[Row] = []
    for key, label, figures in (
        ("poll_wall", "", poll),
        ("poll_wall_pinned", ", invoice pinned", pinned),
    ):
        ratio = _ratio(figures["wall"], figures["ideal"])
        out.append(
            Row(
                key,
                f"poll wall time, {shape}, {setting}{label} (s)",
                f"{figures['wall']:.3f}",
                f"{figures['ideal']:.3f} ideal",
                f"{ratio:.2f}x",
                "<= 1.2x",
                _verdict(ratio <= 1.2),
            )
        )
    for key, label, figures in (
        ("poll_requests", "", poll),
        ("poll_requests_pinned", ", invoice pinned", pinned),
    ):
        most = max(figures["requests"])
        out.append(
            Row(
                key,
                f"requests per poll{label}",
                f"{most}",
                f"{figures['minimum']} minimum",
                f"{_ratio(most, figures['minimum']):.2f}x",
                "= minimum",
                _verdict(most == figures["minimum"] and min(figures["requests"]) == most),
            )
        )
    series = f"{cpu['series']:,} series"
    ex_gz, ng_gz = scrape["exporter gzip"], scrape["nginx gzip"]
    ex_id, ng_id = scrape["exporter identity"], scrape["nginx identity"]
    pc_gz, pc_id = scrape["prometheus_client gzip"], scrape["prometheus_client identity"]
    gz_ratio = paired_ratio(ex_gz, ng_gz)
    id_ratio = paired_ratio(ex_id, ng_id)
    out += [
        Row(
            "scrape_gzip",
            f"/metrics throughput, gzip, {series} (req/s)",
            f"{ex_gz.rate:,.0f}",
            f"{ng_gz.rate:,.0f} nginx",
            f"{gz_ratio:.2f}x",
            ">= 0.5x",
            _verdict(gz_ratio >= 0.5),
        ),
        Row(
            "scrape_identity",
            f"/metrics throughput, identity, {series} (req/s)",
            f"{ex_id.rate:,.0f}",
            f"{ng_id.rate:,.0f} nginx",
            f"{id_ratio:.2f}x",
            ">= 0.8x",
            _verdict(id_ratio >= 0.8),
        ),
        Row(
            "scrape_p99_gzip",
            "/metrics p99 latency, gzip (ms)",
            f"{ex_gz.p99:.2f}",
            f"{ng_gz.p99:.2f} nginx",
            f"{_ratio(ex_gz.p99, ng_gz.p99):.2f}x",
            "< 10 ms",
            _verdict(ex_gz.p99 < 10),
        ),
        Row(
            "scrape_p99_identity",
            "/metrics p99 latency, identity (ms)",
            f"{ex_id.p99:.2f}",
            f"{ng_id.p99:.2f} nginx",
            f"{_ratio(ex_id.p99, ng_id.p99):.2f}x",
            "-",
            "info",
        ),
    ]
    ref_gz = _ratio(ex_gz.rate, pc_gz.rate)
    ref_id = _ratio(ex_id.rate, pc_id.rate)
    out += [
        Row(
            "reference_gzip",
            "throughput against per-scrape prometheus_client, gzip (req/s)",
            f"{ex_gz.rate:,.0f}",
            f"{pc_gz.rate:,.2f} prometheus_client",
            f"{ref_gz:,.0f}x",
            ">= 1000x",
            _verdict(ref_gz >= 1000),
        ),
        Row(
            "reference_identity",
            "throughput against per-scrape prometheus_client, identity (req/s)",
            f"{ex_id.rate:,.0f}",
            f"{pc_id.rate:,.2f} prometheus_client",
            f"{ref_id:,.0f}x",
            "-",
            "info",
        ),
        Row(
            "cpu_per_poll",
            f"exporter CPU per poll, {series} (s)",
            f"{cpu['cpu']:.2f}",
            "-",
            "-",
            "<= 1 s",
            _verdict(cpu["cpu"] <= 1.0),
        ),
        Row(
            "cpu_read",
            "  of which requests, parsing, snapshot (in-process, s)",
            f"{cpu['read_cpu_seconds']:.2f}",
            "-",
            "-",
            "-",
            "info",
        ),
        Row(
            "cpu_render",
            "  of which families and render (in-process, s)",
            f"{cpu['render_cpu_seconds']:.2f}",
            f"{cpu['prometheus_client_render_cpu_seconds']:.2f} prometheus_client, one scrape",
            "-",
            "-",
            "info",
        ),
    ]
    rss = max(cpu["rss_polls"], cpu["rss_scraped"])
    out += [
        Row(
            "peak_rss",
            f"exporter peak RSS, {series} (MB)",
            f"{rss:.1f}",
            "-",
            "-",
            "<= 100 MB",
            _verdict(rss <= 100),
        ),
        Row(
            "promtool",
            f"promtool check metrics, {series} (exit 0, no lint)",
            "valid" if sizes["promtool_valid"] else "INVALID",
            "-",
            "-",
            "valid",
            _verdict(bool(sizes["promtool_valid"])),
        ),
    ]
    return out


def table(table_rows: list[Row]) -> str:
    head = ["key", "measure", "exporter", "reference", "ratio", "target", "result"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table_rows:
        cells = [
            row.key,
            row.what,
            row.ours,
            row.reference,
            row.ratio,
            row.target,
            row.verdict,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{model}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def packages() -> str:
    found = []
    for name in ("httpx", "httpcore", "sniffio", "pydantic", "pydantic-core", "prometheus-client"):
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} missing")
    tools = []
    for tool, flag in (("wrk", "-v"), ("nginx", "-v")):
        result = subprocess.run(  # noqa: S603 - our own arguments
            [require(tool), flag], capture_output=True, text=True, check=False, timeout=10
        )
        said = (result.stdout + result.stderr).split()
        tools.append(f"{tool} " + next((w.rsplit("/", 1)[-1] for w in said if "/" in w), "?"))
    return ", ".join(found + tools)


def details(results: Results, cpus: Cpus) -> list[str]:
    cfg = results.config
    cpu, sizes = results.cpu, results.sizes
    out = [
        f"- pinning: {cpus.describe()}",
        f"- polls: simulator {cfg.poll_teams} teams x {cfg.poll_projects} projects, "
        f"--latency {cfg.poll_latency}; exporter NORTHFLANK_MAX_CONCURRENCY="
        f"{cfg.concurrency}, NORTHFLANK_UNBILLED=false; median of {cfg.polls} polls after "
        f"one warm-up: {', '.join(f'{d:.3f}' for d in results.poll['durations'])} s "
        f"(pinned: {', '.join(f'{d:.3f}' for d in results.pinned['durations'])} s)",
        f"- scrapes: simulator {cfg.big_teams} teams x {cfg.big_projects} projects x "
        f"{cfg.big_resources} resources per type (7 types), {cpu['requests']} requests a poll; "
        f"{cpu['series']:,} series, {sizes['plain_bytes']:,} bytes, "
        f"{sizes['gzip_bytes']:,} gzipped; nginx serves the same bytes: "
        f"{'yes' if sizes['nginx_same_bytes'] else 'NO'}; prometheus_client server: "
        f"{sizes['same_as_reference_note']}",
        f"- wrk -t1 -c{cfg.wrk_connections} -d{max(1, round(cfg.wrk_seconds))}s --latency, "
        f"{cfg.wrk_rounds} interleaved rounds (median; ratios: median of the rounds' "
        f"ratios), text format; "
        f"prometheus_client: one {max(1, round(cfg.reference_seconds))} s run each",
    ]
    for name, series in results.scrape.items():
        out.append(f"  - {name}: {series.summary()}")
    out.append(
        f"- CPU per poll (exporter process, {len(cpu['per_poll'])} polls after one): "
        f"{', '.join(f'{c:.2f}' for c in cpu['per_poll'])} s; poll wall time "
        f"{cpu['wall']:.3f} s; peak RSS {cpu['rss_polls']:.1f} MB after "
        f"{len(cpu['per_poll']) + 1} polls, {cpu['rss_scraped']:.1f} MB for the scraped one"
    )
    if sizes["promtool_said"]:
        out.append(f"- promtool said: {sizes['promtool_said']}")
    return out


# --------------------------------------------------------------------------- main


class OtherWork:
    """User CPU time spent by processes other than this one and its children."""

    def __init__(self) -> None:
        self._start = self._all() - self._ours()

    @staticmethod
    def _all() -> float:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return (int(fields[1]) + int(fields[2])) / CLK_TCK  # user + nice, every CPU

    @staticmethod
    def _ours() -> float:
        times = os.times()
        return times.user + times.children_user

    def seconds(self) -> float:
        return max(0.0, self._all() - self._ours() - self._start)


def require(tool: str) -> str:
    path = shutil.which(tool) or (shutil.which(tool, path="/usr/sbin:/sbin"))
    if path is None:
        raise BenchmarkError(
            f"{tool} is missing: apt-get install {TOOLS[tool]} (or run benchmarks/run)"
        )
    return path


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="nf-bench-") as name:
        yield Path(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small organisation, short runs")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    try:
        for tool in TOOLS:
            require(tool)
    except BenchmarkError as exc:
        print(f"benchmark: {exc}", file=sys.stderr)
        return 1
    cpus = Cpus.pick()
    os.sched_setaffinity(0, cpus.load)
    results = Results(cfg)
    procs = Processes()
    started = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()[0]
    others = OtherWork()
    command = "python -m benchmarks.run" + (" --quick" if args.quick else "")
    print(f"# northflank-exporter benchmark ({cfg.name})", flush=True)
    try:
        with workspace() as workdir:
            measure_polls(procs, cpus, cfg, results)
            procs.stop_all()
            measure_big(procs, cpus, cfg, results, workdir)
    except (BenchmarkError, OSError, subprocess.SubprocessError) as exc:
        print(f"benchmark: {exc}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
    table_rows = rows(results)
    print()
    print(f"- command: `{command}`")
    print(f"- date: {started:%Y-%m-%d %H:%M} UTC, {time.time() - started.timestamp():.0f} s")
    print(f"- machine: {machine()}")
    print(f"- software: {packages()}")
    print(
        f"- other work on the machine: load average {load_before:.2f} before the run; "
        f"{others.seconds():.0f} CPU seconds of other processes' user time during it, "
        f"of {time.time() - started.timestamp():.0f} s x {os.cpu_count()} CPUs"
    )
    if args.quick:
        print("- quick run: a small organisation and short runs, to show that it works;")
        print("  the targets are for the full run, and only judged there")
    print()
    print(table(table_rows))
    print()
    print("\n".join(details(results, cpus)))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "config": cfg.__dict__,
                    "rows": [row.__dict__ for row in table_rows],
                    "poll": results.poll,
                    "pinned": results.pinned,
                    "cpu": results.cpu,
                    "sizes": results.sizes,
                    "scrape": {k: [r.__dict__ for r in v.runs] for k, v in results.scrape.items()},
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
