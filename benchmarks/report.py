"""The figures of a run, the table's rows made from them, and how it was made.

Each row is data (:class:`Row`), made from :class:`Results` by one small function in
:data:`ROW_MAKERS`; :func:`table` renders them all as one Markdown table. Adding a row
is a figure in :class:`Results` and a function here.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import subprocess
from collections.abc import Callable
from dataclasses import astuple, dataclass
from pathlib import Path

from benchmarks.catchup import CatchupFigures
from benchmarks.config import RESOURCE_TYPES, Config, require
from benchmarks.polls import BUDGET, CostFigures, FirstRead, PollFigures
from benchmarks.procs import CLK_TCK, Cpus
from benchmarks.scrape import CpuFigures, ScrapeFigures
from benchmarks.wrk import paired_ratio, ratio


@dataclass(frozen=True)
class Results:
    config: Config
    poll: PollFigures
    pinned: PollFigures
    cpu: CpuFigures
    scrape: ScrapeFigures
    costs: list[CostFigures]
    first_read: FirstRead
    catchup: list[CatchupFigures]


@dataclass(frozen=True)
class Row:
    key: str
    measure: str
    exporter: str
    reference: str
    ratio: str
    target: str
    result: str  # "met", "MISSED" or "info"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def looked_up_and_pinned(results: Results) -> tuple[tuple[str, str, PollFigures], ...]:
    """(key suffix, measure suffix, figures): the newest invoice looked up, then pinned."""
    return (("", "", results.poll), ("_pinned", ", invoice pinned", results.pinned))


def poll_rows(results: Results) -> list[Row]:
    cfg = results.config
    shape = cfg.poll_org.shape()
    setting = f"{cfg.poll_org.latency * 1000:.0f} ms latency, concurrency {cfg.concurrency}"
    out = []
    for key, label, poll in looked_up_and_pinned(results):
        wall = ratio(poll.wall, poll.ideal)
        out.append(
            Row(
                f"poll_wall{key}",
                f"poll wall time, a read of the breakdown, {shape}, {setting}{label} (s)",
                f"{poll.wall:.3f}",
                f"{poll.ideal:.3f} ideal",
                f"{wall:.2f}x",
                "<= 1.2x",
                verdict(wall <= 1.2),
            )
        )
    for key, label, poll in looked_up_and_pinned(results):
        most = max(poll.requests)
        out.append(
            Row(
                f"poll_requests{key}",
                f"requests per read{label}",
                f"{most}",
                f"{poll.minimum} minimum",
                f"{ratio(most, poll.minimum):.2f}x",
                "= minimum",
                verdict(poll.requests_met),
            )
        )
    return out


def cost_rows(results: Results) -> list[Row]:
    """Requests and CPU of a poll at depth resource, the usage on: the first read, a read
    again (by age: by resource type where cheaper), a steady poll (the breakdown kept);
    and the polls an hour the default budget allows."""
    out = []
    for cost in results.costs:
        org = cost.org
        name = f"{org.teams}x{org.projects}" + (f"x{org.resources}" if org.resources > 1 else "")
        shape = org.shape() + (
            f" x {org.resources} resources per type" if org.resources > 1 else ""
        )
        out += [
            Row(
                f"cost_first_{name}",
                f"requests, first read, {shape}",
                f"{cost.first:,}",
                f"{cost.first_minimum:,} minimum",
                f"{ratio(cost.first, cost.first_minimum):.2f}x",
                "= minimum",
                verdict(cost.first == cost.first_minimum),
            ),
            Row(
                f"cost_reread_{name}",
                f"requests, a read again (by age), {shape}",
                f"{cost.reread:,}",
                f"{cost.reread_minimum:,} minimum",
                f"{ratio(cost.reread, cost.reread_minimum):.2f}x",
                "= minimum",
                verdict(cost.reread == cost.reread_minimum),
            ),
            Row(
                f"cost_steady_{name}",
                f"requests, steady poll (the breakdown kept), {shape}",
                f"{cost.steady:,}",
                f"{cost.first:,} first read",
                f"{ratio(cost.steady, cost.first):.3f}x",
                f"<= {cost.steady_minimum} (2 + teams + credit)",
                verdict(cost.steady <= cost.steady_minimum),
            ),
            Row(
                f"cost_cpu_{name}",
                f"CPU, steady poll, {shape} (s)",
                f"{cost.steady_cpu:.3f}",
                f"{cost.first_cpu:.3f} first read, {cost.reread_cpu:.3f} a read again",
                f"{ratio(cost.steady_cpu, cost.first_cpu):.3f}x",
                "-",
                "info",
            ),
            Row(
                f"cost_polls_{name}",
                f"polls an hour within {BUDGET} requests, {shape}",
                f"{cost.polls_an_hour:.1f}",
                f"{cost.polls_an_hour_before:.1f} reading at every poll",
                f"{ratio(cost.polls_an_hour, cost.polls_an_hour_before):.1f}x",
                "-",
                "info",
            ),
        ]
    return out


def reserve_rows(results: Results) -> list[Row]:
    """A first read larger than the API's window leaves above the reserve."""
    read = results.first_read
    org = read.org
    setting = (
        f"{org.teams} x {org.projects}, {read.limit} requests a {read.window:.0f} s window, "
        f"budget {read.budget}, reserve {read.reserve}"
    )
    return [
        Row(
            "reserve_first_read",
            f"first read, {setting} (s)",
            f"{read.duration:.1f}",
            f"{read.requests:,} requests",
            "-",
            "-",
            "info",
        ),
        Row(
            "reserve_waited",
            "  of which waiting for the window (s)",
            f"{read.waited:.1f}",
            "-",
            "-",
            "-",
            "info",
        ),
        Row(
            "reserve_lowest",
            "lowest x-ratelimit-remaining the exporter saw meanwhile",
            f"{read.lowest:.0f}",
            f"{read.reserve} reserve",
            "-",
            f">= {read.reserve}",
            verdict(read.lowest >= read.reserve),
        ),
        Row(
            "reserve_429",
            "429 answers during it",
            f"{read.refused}",
            "-",
            "-",
            "0",
            verdict(read.refused == 0),
        ),
    ]


def catchup_rows(results: Results) -> list[Row]:
    """This month's breakdown: a mid-month window caught up, then each hour as it settles."""
    out = []
    for f in results.catchup:
        case = f"{f.contract.split('-')[0]}_{f.depth}"
        where = f"{f.window_hours:.0f} h window, {f.org.teams} x {f.org.projects}"
        out += [
            Row(
                f"catchup_{case}",
                f"catch-up of a {where}, {f.contract}, depth {f.depth}: requests (hours summed)",
                f"{f.requests:,}",
                f"{f.hours} hours",
                "-",
                "-",
                "info",
            ),
            Row(
                f"catchup_time_{case}",
                "  with the default budget and reserve, caught up after (virtual h)",
                f"{f.caught_up_hours:.1f}",
                f"{f.cpu:.0f} s CPU",
                "-",
                "-",
                "info",
            ),
            Row(
                f"catchup_steady_{case}",
                "  then the breakdown's requests an hour (the polls')",
                f"{f.steady_per_hour:.0f}",
                f"{f.polls_per_hour:.0f}",
                "-",
                "-",
                "info",
            ),
        ]
    ok = all(
        f.on_schedule and f.once and f.refused == 0 and f.lowest >= 100 for f in results.catchup
    )
    lowest = min((f.lowest for f in results.catchup), default=-1)
    out.append(
        Row(
            "catchup_limits",
            "every case: polls on their 900 s schedule, each hour asked once, no 429, "
            "lowest x-ratelimit-remaining",
            f"{lowest}",
            "100 reserve",
            "-",
            ">= 100, all",
            verdict(ok),
        )
    )
    return out


def scrape_rows(results: Results) -> list[Row]:
    series = f"{results.cpu.series:,} series"
    out = []
    for encoding, least in (("gzip", 0.5), ("identity", 0.8)):
        ours, nginx = results.scrape.of("exporter", encoding), results.scrape.of("nginx", encoding)
        paired = paired_ratio(ours, nginx)
        out.append(
            Row(
                f"scrape_{encoding}",
                f"/metrics throughput, {encoding}, {series} (req/s)",
                f"{ours.rate:,.0f}",
                f"{nginx.rate:,.0f} nginx",
                f"{paired:.2f}x",
                f">= {least}x",
                verdict(paired >= least),
            )
        )
    for encoding in ("gzip", "identity"):
        ours, nginx = results.scrape.of("exporter", encoding), results.scrape.of("nginx", encoding)
        gzip = encoding == "gzip"
        out.append(
            Row(
                f"scrape_p99_{encoding}",
                f"/metrics p99 latency, {encoding} (ms)",
                f"{ours.p99:.2f}",
                f"{nginx.p99:.2f} nginx",
                f"{ratio(ours.p99, nginx.p99):.2f}x",
                "< 10 ms" if gzip else "-",
                verdict(ours.p99 < 10) if gzip else "info",
            )
        )
    return out


def reference_rows(results: Results) -> list[Row]:
    out = []
    for encoding in ("gzip", "identity"):
        ours = results.scrape.of("exporter", encoding)
        theirs = results.scrape.of("prometheus_client", encoding)
        times, gzip = ratio(ours.rate, theirs.rate), encoding == "gzip"
        out.append(
            Row(
                f"reference_{encoding}",
                f"throughput against per-scrape prometheus_client, {encoding} (req/s)",
                f"{ours.rate:,.0f}",
                f"{theirs.rate:,.2f} prometheus_client",
                f"{times:,.0f}x",
                ">= 1000x" if gzip else "-",
                verdict(times >= 1000) if gzip else "info",
            )
        )
    return out


def cpu_rows(results: Results) -> list[Row]:
    cpu, split = results.cpu, results.cpu.split
    series = f"{cpu.series:,} series"
    return [
        Row(
            "cpu_per_poll",
            f"exporter CPU per read of the breakdown, {series} (s)",
            f"{cpu.cpu:.2f}",
            "-",
            "-",
            "<= 1 s",
            verdict(cpu.cpu <= 1.0),
        ),
        Row(
            "cpu_steady",
            f"exporter CPU per steady poll (the breakdown kept), {series} (s)",
            f"{cpu.steady_cpu:.3f}",
            f"{cpu.cpu:.2f} per read",
            f"{ratio(cpu.steady_cpu, cpu.cpu):.3f}x",
            "<= 0.1x",
            verdict(cpu.steady_cpu <= 0.1 * cpu.cpu),
        ),
        Row(
            "cpu_read",
            "  of which requests, parsing, snapshot (in-process, s)",
            f"{split.read_cpu_seconds:.2f}",
            "-",
            "-",
            "-",
            "info",
        ),
        Row(
            "cpu_render",
            "  of which families and render (in-process, s)",
            f"{split.render_cpu_seconds:.2f}",
            f"{split.prometheus_client_render_cpu_seconds:.2f} prometheus_client, one scrape",
            "-",
            "-",
            "info",
        ),
    ]


def exposition_rows(results: Results) -> list[Row]:
    series = f"{results.cpu.series:,} series"
    valid = results.scrape.promtool_valid
    return [
        Row(
            "peak_rss",
            f"exporter peak RSS, {series} (MB)",
            f"{results.cpu.rss:.1f}",
            "-",
            "-",
            "<= 99 MB",
            verdict(results.cpu.rss <= 99),
        ),
        Row(
            "promtool",
            f"promtool check metrics, {series} (exit 0, no lint)",
            "valid" if valid else "INVALID",
            "-",
            "-",
            "valid",
            verdict(valid),
        ),
    ]


ROW_MAKERS: tuple[Callable[[Results], list[Row]], ...] = (
    poll_rows,
    cost_rows,
    reserve_rows,
    catchup_rows,
    scrape_rows,
    reference_rows,
    cpu_rows,
    exposition_rows,
)


def rows(results: Results) -> list[Row]:
    return [row for make in ROW_MAKERS for row in make(results)]


def table(table_rows: list[Row]) -> str:
    head = ["key", "measure", "exporter", "reference", "ratio", "target", "result"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(astuple(row)) + " |" for row in table_rows]
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


def _seconds(figures: list[float], digits: int) -> str:
    return ", ".join(f"{figure:.{digits}f}" for figure in figures)


def details(results: Results, cpus: Cpus) -> list[str]:
    cfg, cpu, scrape = results.config, results.cpu, results.scrape
    poll, big = cfg.poll_org, cfg.big_org
    out = [
        f"- pinning: {cpus.describe()}",
        f"- polls: simulator {poll.shape()}, --latency {poll.latency}; exporter "
        f"NORTHFLANK_MAX_CONCURRENCY={cfg.concurrency}, NORTHFLANK_UNBILLED=false; median of "
        f"{cfg.polls} polls after one warm-up: {_seconds(results.poll.durations, 3)} s "
        f"(pinned: {_seconds(results.pinned.durations, 3)} s)",
        f"- scrapes: simulator {big.shape()} x {big.resources} resources per type "
        f"({RESOURCE_TYPES} types), {cpu.requests} requests a poll; {cpu.series:,} series, "
        f"{scrape.plain_bytes:,} bytes, {scrape.gzip_bytes:,} gzipped; nginx serves the same "
        f"bytes: {'yes' if scrape.nginx_same_bytes else 'NO'}; prometheus_client server: "
        f"{scrape.same_as_reference_note}",
        f"- wrk -t1 -c{cfg.wrk_connections} -d{max(1, round(cfg.wrk_seconds))}s --latency, "
        f"{cfg.wrk_rounds} interleaved rounds (median; ratios: median of the rounds' "
        f"ratios), text format; "
        f"prometheus_client: one {max(1, round(cfg.reference_seconds))} s run each",
    ]
    out += [f"  - {name}: {series.summary()}" for name, series in scrape.runs.items()]
    out.append(
        f"- CPU per read (exporter process, {len(cpu.per_poll)} reads after one): "
        f"{_seconds(cpu.per_poll, 2)} s; per steady poll: {_seconds(cpu.steady_per_poll, 3)} s; "
        f"poll wall time {cpu.wall:.3f} s; peak RSS {cpu.rss_polls:.1f} MB after "
        f"{len(cpu.per_poll) + 1} polls, {cpu.rss_scraped:.1f} MB for the scraped one"
    )
    if results.catchup:
        out.append(
            "- catch-up: in process, virtual time (tests/virtual_month.py), the simulator "
            "answering in 50 ms, 1000 requests an hour; default settings (a poll every 900 s, "
            "budget 900, reserve 100, invoice depth resource); CPU of each case's process"
        )
    if scrape.promtool_said:
        out.append(f"- promtool said: {scrape.promtool_said}")
    return out


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
