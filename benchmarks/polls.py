"""Polls: how long each takes and how many API requests it spends, from the exporter's log.

:func:`poll_organisation` is the building block: an organisation (teams x projects x
resources) simulated, an exporter polling it back to back, and per poll the
``requests`` and ``duration_seconds`` its ``poll succeeded`` line says, the first poll
included. A row such as "requests per poll, first and steady, 10 x 50" is then::

    run = poll_organisation(procs, cpus, Organisation(10, 50), 3, concurrency=8)
    first, steady = run.lines[0].requests, run.lines[-1].requests

:func:`measure_polls` is the table's ``poll_*`` rows: wall time against the ideal
critical path and requests against the contract's minimum, with the newest invoice
looked up and then pinned (``NORTHFLANK_INVOICE_ID``); after the warm-up poll a team
is read by resource type when that takes fewer requests. :func:`measure_costs` is the
``cost_*`` rows: requests a poll, first and steady, for larger organisations.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from benchmarks.config import RESOURCE_TYPES, BenchmarkError, Config, Organisation
from benchmarks.procs import Cpus, Processes
from benchmarks.servers import Exporter, PollLine, Simulator, start_simulator
from exporter.api.contract import PER_PAGE


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
    """The contract's minimum: list (unless pinned), invoice, then each team's calls."""
    return (1 if pinned else 2) + org.teams * calls_per_team(org, first=first)


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
    run = poll_log(procs, cpus, sim, 1 + cfg.polls, concurrency=cfg.concurrency)
    looked_up = PollFigures.of(run.lines[1:], org, cfg.concurrency, None)
    invoice_id = run.lines[-1].invoice
    if not invoice_id:
        raise BenchmarkError("the exporter's poll line names no invoice")
    run = poll_log(
        procs, cpus, sim, 1 + cfg.polls, concurrency=cfg.concurrency, invoice_id=invoice_id
    )
    pinned = PollFigures.of(run.lines[1:], org, cfg.concurrency, invoice_id)
    procs.stop(sim.process)
    return looked_up, pinned


BUDGET = 900  # NORTHFLANK_REQUEST_BUDGET_PER_HOUR's default


@dataclass(frozen=True)
class CostFigures:
    """Requests a poll spends at depth ``resource`` (unbilled off), first and steady."""

    org: Organisation
    first: int
    steady: int
    first_minimum: int
    steady_minimum: int

    @property
    def polls_an_hour(self) -> float:
        """What the default budget allows."""
        return BUDGET / self.steady

    @property
    def polls_an_hour_before(self) -> float:
        """... when every poll read by project (before type calls)."""
        return BUDGET / self.first_minimum


def measure_costs(procs: Processes, cpus: Cpus, cfg: Config) -> list[CostFigures]:
    """Three polls of each of ``cfg.cost_orgs``: the first, and the steady third."""
    out = []
    for org in cfg.cost_orgs:
        run = poll_organisation(procs, cpus, org, 3, concurrency=cfg.concurrency)
        out.append(
            CostFigures(
                org,
                run.lines[0].requests,
                run.lines[-1].requests,
                minimum_requests(org, pinned=False, first=True),
                minimum_requests(org, pinned=False),
            )
        )
    return out
