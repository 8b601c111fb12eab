"""Polls: how long each takes and how many API requests it spends, from the exporter's log.

:func:`poll_organisation` is the building block: an organisation (teams x projects x
resources) simulated, an exporter polling it back to back, and per poll the
``requests`` and ``duration_seconds`` its ``poll succeeded`` line says, the first poll
included. A row such as "requests per poll, first and steady, 10 x 50" is then::

    run = poll_organisation(procs, cpus, Organisation(10, 50), 3, concurrency=8)
    first, steady = run.lines[0].requests, run.lines[-1].requests

:func:`measure_polls` is the table's ``poll_*`` rows: wall time of a read of the
breakdown against the ideal critical path and requests against the contract's
minimum, with the newest invoice looked up and then pinned (``NORTHFLANK_INVOICE_ID``),
every poll reading the breakdown (``NORTHFLANK_INVOICE_REFRESH_SECONDS=0``); after the
warm-up poll a team is read by resource type when that takes fewer requests.
:func:`measure_costs` is the ``cost_*`` rows: for larger organisations, with the usage
on, the requests and CPU of the first read, of a read again (by age: by resource type),
and of a steady poll (the list, the usage, the credit balance). :func:`measure_first_read`
is the ``reserve_*`` rows: a first read larger than the API's window leaves, with the
default budget and reserve.
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass

from benchmarks.config import RESOURCE_TYPES, BenchmarkError, Config, Organisation
from benchmarks.procs import Cpus, Processes
from benchmarks.servers import Exporter, PollLine, Simulator, scrape_value, start_simulator
from exporter import metrics
from exporter.api.contract import PER_PAGE

RATELIMIT_WAIT = metrics.RATELIMIT_WAIT.sample_name
REFUSED = metrics.API_REQUESTS.sample_name


def calls_per_team(org: Organisation, *, first: bool = False) -> int:
    """A team's calls at depth ``resource``: its ``teamId`` call, then one per project on
    the first poll, later the fewer of that and one per type (and page of 100 resources)."""
    type_calls = RESOURCE_TYPES * max(1, math.ceil(org.projects * org.resources / PER_PAGE))
    return 1 + (org.projects if first else min(org.projects, type_calls))


def ideal_poll_seconds(
    org: Organisation, concurrency: int, *, pinned: bool, first: bool = False
) -> float:
    """Critical path: list (unless pinned), invoice, then the teams' calls packed."""
    rounds = math.ceil(org.teams * calls_per_team(org, first=first) / concurrency)
    return org.latency * ((1 if pinned else 2) + rounds)


def minimum_requests(org: Organisation, *, pinned: bool, first: bool = False) -> int:
    """The contract's minimum: list (unless pinned), invoice, then each team's calls;
    and the credit balance, asked with every poll that reads the list."""
    return (1 if pinned else 3) + org.teams * calls_per_team(org, first=first)


def steady_requests(org: Organisation) -> int:
    """A poll that keeps the breakdown, the usage on: the list's first page, the usage
    org-wide and per team (one request each: the API's own sums), the credit balance."""
    return 2 + org.teams + 1


@dataclass(frozen=True)
class PollRun:
    """An exporter's first polls, as its log lines say, and its peak memory after them."""

    lines: list[PollLine]
    peak_rss_mb: float


def poll_log(
    procs: Processes,
    cpus: Cpus,
    sim: Simulator,
    polls: int,
    *,
    concurrency: int,
    interval: float = 1.0,
    **more: str,
) -> PollRun:
    """An exporter of ``sim`` polling every ``interval`` s (back to back when a poll takes
    longer), ``more`` as ``NORTHFLANK_*`` settings; its first ``polls`` polls, then stopped."""
    exporter = Exporter.start(procs, cpus, sim, interval, max_concurrency=str(concurrency), **more)
    lines = exporter.next_polls(polls)
    run = PollRun(lines, exporter.process.peak_rss_mb())
    procs.stop(exporter.process)
    return run


def poll_organisation(
    procs: Processes,
    cpus: Cpus,
    org: Organisation,
    polls: int,
    *,
    concurrency: int,
    interval: float = 1.0,
    **more: str,
) -> PollRun:
    """:func:`poll_log` against a simulator of ``org`` of its own, stopped after."""
    sim = start_simulator(procs, cpus, org)
    try:
        return poll_log(procs, cpus, sim, polls, concurrency=concurrency, interval=interval, **more)
    finally:
        procs.stop(sim.process)


@dataclass(frozen=True)
class PollFigures:
    """Polls measured after one warm-up: wall times and requests against their ideal."""

    durations: list[float]
    wall: float  # median
    ideal: float
    requests: list[int]
    minimum: int
    invoice_id: str | None  # when pinned

    @classmethod
    def of(
        cls, lines: list[PollLine], org: Organisation, concurrency: int, invoice_id: str | None
    ) -> PollFigures:
        pinned = invoice_id is not None
        durations = [line.duration_seconds for line in lines]
        return cls(
            durations=durations,
            wall=statistics.median(durations),
            ideal=ideal_poll_seconds(org, concurrency, pinned=pinned),
            requests=[line.requests for line in lines],
            minimum=minimum_requests(org, pinned=pinned),
            invoice_id=invoice_id,
        )

    @property
    def requests_met(self) -> bool:
        """Every poll spent exactly the minimum."""
        return set(self.requests) == {self.minimum}


def measure_polls(procs: Processes, cpus: Cpus, cfg: Config) -> tuple[PollFigures, PollFigures]:
    """Poll wall time and requests per poll, newest invoice looked up, then pinned."""
    org = cfg.poll_org
    sim = start_simulator(procs, cpus, org)
    reads = "0"  # NORTHFLANK_INVOICE_REFRESH_SECONDS: every poll reads the breakdown
    run = poll_log(
        procs, cpus, sim, 1 + cfg.polls, concurrency=cfg.concurrency, invoice_refresh_seconds=reads
    )
    looked_up = PollFigures.of(run.lines[1:], org, cfg.concurrency, None)
    invoice_id = run.lines[-1].invoice
    if not invoice_id:
        raise BenchmarkError("the exporter's poll line names no invoice")
    run = poll_log(
        procs,
        cpus,
        sim,
        1 + cfg.polls,
        concurrency=cfg.concurrency,
        invoice_id=invoice_id,
        invoice_refresh_seconds=reads,
    )
    pinned = PollFigures.of(run.lines[1:], org, cfg.concurrency, invoice_id)
    procs.stop(sim.process)
    return looked_up, pinned


BUDGET = 900  # NORTHFLANK_REQUEST_BUDGET_PER_HOUR's default
RESERVE = 100  # NORTHFLANK_RATELIMIT_RESERVE's


@dataclass(frozen=True)
class CostFigures:
    """Requests and CPU seconds of a poll at depth ``resource`` (usage on): the first read
    of the breakdown, a read again (by age: by resource type where cheaper), a steady poll."""

    org: Organisation
    first: int
    first_cpu: float  # the first poll of a fresh process, imports aside
    reread: int
    reread_cpu: float
    steady: int  # the most of the steady polls
    steady_cpu: float  # their median
    first_minimum: int
    reread_minimum: int
    steady_minimum: int

    @property
    def polls_an_hour(self) -> float:
        """What the default budget allows, the breakdown read once a day."""
        return BUDGET / (self.steady + self.reread * 900 / 86400)

    @property
    def polls_an_hour_before(self) -> float:
        """... when every poll read the breakdown (by type where cheaper)."""
        return BUDGET / self.reread


USAGE = {"unbilled": "true"}  # what a real exporter does: the usage is read every poll


def measure_costs(procs: Processes, cpus: Cpus, cfg: Config) -> list[CostFigures]:
    """For each of ``cfg.cost_orgs``: an exporter as configured by default (a read, then
    steady polls) and one that reads the breakdown at every poll."""
    out = []
    for org in cfg.cost_orgs:
        sim = start_simulator(procs, cpus, org)
        exporter = Exporter.start(
            procs, cpus, sim, 1.0, max_concurrency=str(cfg.concurrency), **USAGE
        )
        lines = exporter.next_polls(1 + cfg.steady_polls)
        first_cpu = lines[0].cpu_seconds - (exporter.listening_cpu or 0.0)
        steady = lines[1:]
        steady_cpu = [b.cpu_seconds - a.cpu_seconds for a, b in itertools.pairwise(lines)][1:]
        procs.stop(exporter.process)
        rereading = Exporter.start(
            procs,
            cpus,
            sim,
            1.0,
            max_concurrency=str(cfg.concurrency),
            invoice_refresh_seconds="0",
            **USAGE,
        )
        again = rereading.next_polls(3)
        procs.stop(rereading.process)
        procs.stop(sim.process)
        usage = 1 + org.teams  # one request each, org-wide and per team: the API's sums
        out.append(
            CostFigures(
                org,
                lines[0].requests,
                first_cpu,
                again[-1].requests,
                again[-1].cpu_seconds - again[-2].cpu_seconds,
                max(line.requests for line in steady),
                statistics.median(steady_cpu) if steady_cpu else math.nan,
                minimum_requests(org, pinned=False, first=True) + usage,
                minimum_requests(org, pinned=False) + usage,
                steady_requests(org),
            )
        )
    return out


@dataclass(frozen=True)
class FirstRead:
    """A first read larger than what the API's window leaves above the reserve."""

    org: Organisation
    limit: int  # the API's requests a window
    window: float  # its length, seconds
    reserve: int
    budget: int
    requests: int
    duration: float  # the first poll's, seconds
    waited: float  # northflank_api_ratelimit_wait_seconds_total after it
    lowest: float  # the smallest x-ratelimit-remaining the exporter served meanwhile
    refused: int  # 429s


def measure_first_read(procs: Processes, cpus: Cpus, cfg: Config) -> FirstRead:
    """The first read of ``cfg.first_read_org`` against an API of ``first_read_limit``
    requests (1000, the API's default) a short window, with the default budget (900) and
    reserve (100): it waits for each reset and goes on; the lowest
    ``x-ratelimit-remaining`` it saw meanwhile (its log line's ``ratelimit_lowest``)."""
    org, limit, window = cfg.first_read_org, cfg.first_read_limit, cfg.first_read_window
    sim = start_simulator(procs, cpus, org, rate_limit=limit, window_seconds=window)
    exporter = Exporter.start(
        procs,
        cpus,
        sim,
        86400,
        max_concurrency=str(cfg.concurrency),
        request_budget_per_hour=str(BUDGET),
        **USAGE,
    )
    line = exporter.next_poll(timeout=10 * window + 120)
    lowest = float(str(line.logged.get("ratelimit_lowest", "nan")))
    waited = scrape_value(exporter.url, RATELIMIT_WAIT) or 0.0
    refused = int(scrape_value(exporter.url, REFUSED, 'code="429"') or 0)  # any endpoint
    procs.stop(exporter.process)
    procs.stop(sim.process)
    return FirstRead(
        org,
        limit,
        window,
        100,
        BUDGET,
        line.requests,
        line.duration_seconds,
        waited,
        lowest,
        refused,
    )
