"""Polls: how long each takes and how many API requests it spends, from the exporter's log.

:func:`poll_organisation` is the building block: an organisation (teams x projects x
resources) simulated, an exporter polling it back to back, and per poll the
``requests`` and ``duration_seconds`` its ``poll succeeded`` line says, the first poll
included. A row such as "requests per poll, first and steady, 10 x 50" is then::

    run = poll_organisation(procs, cpus, Organisation(10, 50), 3, concurrency=8)
    first, steady = run.lines[0].requests, run.lines[-1].requests

:func:`measure_polls` is the table's ``poll_*`` rows: wall time against the ideal
critical path and requests against the reference page's minimum, with the newest
invoice looked up and then pinned (``NORTHFLANK_INVOICE_ID``).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from benchmarks.config import BenchmarkError, Config, Organisation
from benchmarks.procs import Cpus, Processes
from benchmarks.servers import Exporter, PollLine, Simulator, start_simulator


def ideal_poll_seconds(
    teams: int, projects: int, latency: float, concurrency: int, *, pinned: bool
) -> float:
    """Critical path: list (unless pinned), invoice, then team + project calls packed."""
    rounds = math.ceil((teams + projects) / concurrency)
    return latency * ((1 if pinned else 2) + rounds)


def minimum_requests(teams: int, projects: int, *, pinned: bool) -> int:
    """The reference page's minimum: list (unless pinned), invoice, each team and project."""
    return (1 if pinned else 2) + teams + projects


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
            ideal=ideal_poll_seconds(
                org.teams, org.all_projects, org.latency, concurrency, pinned=pinned
            ),
            requests=[line.requests for line in lines],
            minimum=minimum_requests(org.teams, org.all_projects, pinned=pinned),
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
