"""The big organisation: CPU and memory per poll, then ``/metrics`` under ``wrk``.

The exporter is held against nginx serving the very same bytes as static files
(``gzip_static``) and against prometheus_client rendering on every scrape
(:mod:`benchmarks.perscrape`); its exposition is checked with ``promtool``.
"""

from __future__ import annotations

import itertools
import statistics
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from benchmarks.config import BenchmarkError, Config, require
from benchmarks.polls import poll_log
from benchmarks.procs import Cpus, Processes, get
from benchmarks.servers import CpuSplit, Exporter, start_nginx, start_perscrape, start_simulator
from benchmarks.wrk import Series, wrk
from exporter import metrics

# Read from GET /v1/auth, which the per-scrape reference does not ask.
TOKEN_FAMILIES = frozenset({metrics.TOKEN_INFO.name, metrics.TOKEN_EXPIRY.name})
TARGETS = ("exporter", "nginx", "prometheus_client")
ENCODINGS = ("gzip", "identity")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape_samples(text: str) -> Samples:
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
    differ = [key for key in a if key[0] not in metrics.OWN_NAMES and a[key] != b[key]]
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


@dataclass(frozen=True)
class CpuFigures:
    """An exporter polling every ``cpu_interval`` s, and the one that was scraped."""

    per_poll: list[float]  # CPU seconds between consecutive reads of the breakdown
    cpu: float  # their median
    steady_per_poll: list[float]  # ... between consecutive polls that kept it
    steady_cpu: float  # their median
    series: int
    requests: int  # a poll's
    wall: float  # median poll wall time, after the first
    rss_polls: float  # MB, the polling exporter's peak
    rss_scraped: float  # MB, the scraped exporter's peak
    split: CpuSplit  # one poll, measured in the per-scrape server's process

    @property
    def rss(self) -> float:
        return max(self.rss_polls, self.rss_scraped)


@dataclass(frozen=True)
class ScrapeFigures:
    """The exposition's sizes and checks, and the wrk runs per target and encoding."""

    plain_bytes: int
    gzip_bytes: int
    same_as_reference: bool
    same_as_reference_note: str
    promtool_valid: bool
    promtool_said: str
    nginx_same_bytes: bool
    runs: dict[str, Series] = field(default_factory=dict)  # "exporter gzip": ...

    def of(self, target: str, encoding: str) -> Series:
        return self.runs[f"{target} {encoding}"]


def measure_big(
    procs: Processes, cpus: Cpus, cfg: Config, workdir: Path
) -> tuple[CpuFigures, ScrapeFigures]:
    """CPU and memory per poll, then scrapes: exporter, nginx, prometheus_client."""
    sim = start_simulator(procs, cpus, cfg.big_org)
    more = {"max_concurrency": str(cfg.concurrency)}

    # CPU per poll: consecutive polls of an exporter that polls every cpu_interval s,
    # reading the breakdown at every poll, then one as configured by default (a read,
    # then polls that keep it); the first poll pays for imports and warm-up.
    polled = poll_log(
        procs,
        cpus,
        sim,
        1 + cfg.cpu_polls,
        concurrency=cfg.concurrency,
        interval=cfg.cpu_interval,
        invoice_refresh_seconds="0",
    )
    lines = polled.lines
    per_poll = [b.cpu_seconds - a.cpu_seconds for a, b in itertools.pairwise(lines)]
    steady = poll_log(
        procs, cpus, sim, 1 + cfg.cpu_polls, concurrency=cfg.concurrency, interval=cfg.cpu_interval
    )
    steady_per_poll = [b.cpu_seconds - a.cpu_seconds for a, b in itertools.pairwise(steady.lines)]

    # The exporter to scrape (one poll, then nothing until the end) ...
    exporter = Exporter.start(procs, cpus, sim, 86400, **more)
    exporter.next_poll()
    # ... and the usual way: prometheus_client rendering on every scrape.
    reference, ref_url, split = start_perscrape(procs, cpus, sim, **more)

    url = f"{exporter.url}/metrics"
    plain = get(url)
    gzipped = get(url, {"Accept-Encoding": "gzip"})
    same_as_reference, same_note = same_series(plain, get(ref_url, timeout=300))
    valid, promtool_said = promtool_check(plain)

    nginx, nginx_url = start_nginx(procs, cpus, workdir, plain, gzipped)
    same = get(nginx_url) == plain and get(nginx_url, {"Accept-Encoding": "gzip"}) == gzipped
    if not same:
        raise BenchmarkError("nginx does not serve the exporter's bytes")

    # The simulator has nothing more to do: stop it so that it takes no CPU.
    procs.stop(sim.process)

    scrape = ScrapeFigures(
        plain_bytes=len(plain),
        gzip_bytes=len(gzipped),
        same_as_reference=same_as_reference,
        same_as_reference_note=same_note,
        promtool_valid=valid,
        promtool_said=promtool_said,
        nginx_same_bytes=same,
        runs={f"{name} {encoding}": Series() for name in TARGETS for encoding in ENCODINGS},
    )
    urls = {"exporter": url, "nginx": nginx_url}
    for _ in range(cfg.wrk_rounds):
        for encoding in ENCODINGS:
            for name, target in urls.items():
                run = wrk(
                    target, cpus, cfg.wrk_seconds, cfg.wrk_connections, gzip=encoding == "gzip"
                )
                scrape.of(name, encoding).runs.append(run)
    for encoding in ENCODINGS:
        run = wrk(
            ref_url, cpus, cfg.reference_seconds, cfg.wrk_connections, gzip=encoding == "gzip"
        )
        scrape.of("prometheus_client", encoding).runs.append(run)
    cpu = CpuFigures(
        per_poll=per_poll,
        cpu=statistics.median(per_poll),
        steady_per_poll=steady_per_poll,
        steady_cpu=statistics.median(steady_per_poll),
        series=lines[-1].series,
        requests=lines[-1].requests,
        wall=statistics.median(line.duration_seconds for line in lines[1:]),
        rss_polls=max(polled.peak_rss_mb, steady.peak_rss_mb),
        rss_scraped=exporter.process.peak_rss_mb(),
        split=split,
    )
    procs.stop(nginx)
    procs.stop(reference)
    procs.stop(exporter.process)
    return cpu, scrape
