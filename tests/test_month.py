"""A month of polling in virtual time: the real Poller, Client and Bodies in process, the
simulator's endpoints behind ``httpx.MockTransport`` on a clock that jumps (tests/virtual.py),
nothing sleeping for real.

Through 31 days and an invoice rollover, with the default settings (a poll every 900 s,
900 requests an hour, a reserve of 100, the breakdown read again daily) against an API
that allows 1000 requests an hour: every hour of usage is counted exactly once (the
exporter's sums equal the simulator's, checked every hour), the new invoice is read once
when it appears and the window restarts at its end, the requests of any hour stay within
the budget, and the exporter's memory is flat: its series, and what tracemalloc counts of
its own code's allocations after the first day and at the end, within 10 % (that month
polled hourly: tracemalloc makes each allocation seven times slower).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import tracemalloc
from dataclasses import dataclass, field

import pytest

from exporter.bodies import Bodies
from exporter.poller import Outcome, Poller
from exporter.settings import Settings
from exporter.simulator import HOUR, generate_organisation
from tests.contracts import major
from tests.month_sums import simulated
from tests.virtual import FakeApi, VirtualTimeLoop, virtual_client
from tests.virtual_month import CatchupRun, catch_up

pytestmark = pytest.mark.slow
DAY = 24 * HOUR
DAYS = 31
ROLLOVER_DAY = 20  # the invoice in progress is finalized then


@dataclass
class Month:
    api: FakeApi
    polls: int = 0  # polls that ended
    failed: int = 0
    checked: int = 0  # hours whose unbilled figures were checked against the simulator
    last: Outcome | None = None  # the last poll's (the others are not kept: memory is measured)
    series: dict[int, int] = field(default_factory=dict)  # day -> samples served
    memory: dict[int, int] = field(default_factory=dict)  # day -> bytes traced (exporter/)
    new_invoice: str | None = None
    new_end: float | None = None
    served: int = 0  # samples served after the last publish


def exporter_bytes() -> int:
    """What tracemalloc counts of allocations made by the exporter's own code (the
    simulator and the tests, which keep every request, left out)."""
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [
            tracemalloc.Filter(True, "*/exporter/*"),
            tracemalloc.Filter(False, "*/exporter/simulator/*"),
        ]
    )
    return sum(stat.size for stat in snapshot.statistics("filename"))


def spent_cents(api: FakeApi, since: float, through: float) -> float:
    """The simulator's usage of the whole hours since ``since`` up to ``through``."""
    total = 0.0
    hours = api.org.render_usage(now=api.wall_clock(), start=since, end=through, running_hour=False)
    for entry in hours:
        total += entry["paasUsage"]["price"]["total"]
        total += entry.get("byocUsage", {}).get("price", {}).get("total", 0)
    return total


def run_month(contract: str, *, traced: bool = False, **settings: float) -> Month:
    """The month against ``contract``'s API; ``traced``: tracemalloc on throughout."""
    loop = VirtualTimeLoop()
    org = generate_organisation()
    start = org.newest_invoice().period_end + 0.5 * HOUR
    # a running hour partly filled: off, so that a poll's sums can be checked exactly
    api = FakeApi(
        org, loop, latency=0.05, start=start, rate_limit=1000, contract=contract,
        running_hour=False,
    )  # fmt: skip
    month = Month(api)
    config = Settings(api_token=api.token, **settings)  # the defaults but these
    bodies = Bodies("test")

    checked_hours: set[int] = set()

    def publish(outcome: Outcome) -> int:
        published = bodies.make(outcome)
        now = loop.time()
        if outcome.last_poll != api.start + now:
            return published.exposition.samples  # not a poll's end: a token check
        month.polls += 1
        month.failed += outcome.last_result != "ok"
        month.last = outcome
        snapshot = outcome.snapshot
        hour = int((api.start + now) // HOUR)
        if snapshot is not None and snapshot.unbilled is not None and hour not in checked_hours:
            checked_hours.add(hour)  # once an hour: the first poll of it
            u = snapshot.unbilled
            expected = spent_cents(api, u.since, u.through)
            assert u.total == pytest.approx(major(expected), abs=1e-9), (now / DAY, u)
            month.checked += 1
        month.served = published.exposition.samples
        return published.exposition.samples

    def measure(day: int) -> None:
        """Between two polls: what is served, and what the exporter holds."""
        month.series[day] = month.served
        if traced:
            gc.collect()
            month.memory[day] = exporter_bytes()

    def roll_over() -> None:
        end = (start // HOUR) * HOUR + ROLLOVER_DAY * DAY
        invoice = org.close_period(end)
        month.new_invoice, month.new_end = invoice.id, invoice.period_end

    async def main() -> None:
        client = virtual_client(api, config)
        poller = Poller(client, config, publish, clock=loop.time, wall_clock=api.wall_clock)
        stop = asyncio.Event()
        loop.call_later(DAYS * DAY, stop.set)
        loop.call_later(ROLLOVER_DAY * DAY + 0.3 * HOUR, roll_over)
        for day in (1, DAYS - 1):  # half an hour after a poll (hourly or every 900 s)
            loop.call_later(day * DAY + 0.5 * HOUR + 450, measure, day)
        await poller.run(stop)
        await client.aclose()

    quiet = logging.getLogger("exporter")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # a month of "poll succeeded", kept by pytest's capture
    if traced:
        tracemalloc.start()
    try:
        loop.run(main())
    finally:
        tracemalloc.stop()
        quiet.setLevel(level)
    return month


@pytest.mark.parametrize("contract", ["current", "legacy-pinned"])
def test_a_month_and_a_rollover_in_virtual_time(contract: str) -> None:
    month = run_month(contract)
    api = month.api
    assert month.polls >= DAYS * 96 - 2  # every 900 s, none stretched
    assert month.failed == 0
    assert month.checked >= DAYS * 24 - 1  # the usage checked every hour
    # the new invoice: read once as it appears, then daily by age, never in between
    assert month.new_invoice is not None
    unfiltered = [
        s.time
        for s in api.sent
        if s.path.endswith("/" + month.new_invoice) and "teamId" not in s.query
    ]
    appeared = ROLLOVER_DAY * DAY + 0.3 * HOUR
    assert appeared < unfiltered[0] < appeared + 900
    gaps = [b - a for a, b in itertools.pairwise(unfiltered)]
    assert all(DAY <= gap < DAY + 901 for gap in gaps)
    assert month.last is not None
    last = month.last.snapshot
    assert last is not None
    assert last.unbilled is not None
    assert last.unbilled.since == month.new_end  # the window restarted at its end
    # within the budget in any hour (and so within the API's 1000: no 429)
    sent = [s.time for s in api.sent]
    worst = max(
        sum(1 for t in sent[i : i + 2000] if t < start + HOUR) for i, start in enumerate(sent)
    )
    assert worst <= 900
    assert all(code != "429" for _, code in month.last.health.api_requests)
    assert month.series[1] == month.series[DAYS - 1]  # the same series


def test_the_exporters_memory_is_flat_over_a_month() -> None:
    """What tracemalloc counts of the exporter's own allocations still alive, after the
    first day and after the month and its rollover: within 10 %."""
    month = run_month("current", traced=True, poll_interval_seconds=3600)
    assert month.failed == 0
    assert month.polls >= DAYS * 24 - 1
    assert month.series[1] == month.series[DAYS - 1]
    first, last = month.memory[1], month.memory[DAYS - 1]
    print(f"exporter's memory (tracemalloc): day 1 {first:,} B, day {DAYS - 1} {last:,} B")
    assert first > 100_000  # it measured something: the breakdown's bytes, the figures
    assert abs(last - first) <= 0.1 * first, month.memory


# ------------------------------------------------------------------ this month, broken down


def assert_summed_once(run: CatchupRun, depth: str) -> None:
    """Each hour asked once with each filter, and the breakdown the simulator's sums of
    every settled hour, exactly."""
    twice = [read for read, n in run.hour_reads().items() if n > 1]
    assert not twice, twice[:3]
    month = run.month
    assert month is not None
    want = simulated(run.api.org, run.api.wall_clock(), month.since, month.through, depth)
    got = {key: (e.name, e.total, dict(e.dimensions)) for key, e in month.sums.items()}
    assert got == want


@pytest.mark.parametrize(
    ("contract", "depth"), [("current", "project"), ("legacy-pinned", "resource")]
)
def test_a_month_of_hours_caught_up_in_the_background_summed_once_each(
    contract: str, depth: str
) -> None:
    """Started 30 days into the window with the default settings (900 requests an hour, a
    reserve of 100) against an API that allows 1000: every poll on its 900 s schedule
    while the catch-up runs, no answer 429, never fewer than 100 requests left, and then
    every one of the 717 settled hours summed once."""
    run = catch_up(generate_organisation(), contract, depth, hours=30 * 24, after=2 * HOUR)
    assert run.caught_up_after is not None
    assert run.failed_polls == 0
    gaps = {b - a for a, b in itertools.pairwise(run.poll_starts)}
    assert gaps == {900.0}, gaps
    assert run.refused == 0
    assert run.lowest_remaining is not None
    assert run.lowest_remaining >= 100
    assert run.hours >= 30 * 24 - 3
    assert_summed_once(run, depth)
    # caught up, each hour that settles is read alone: the hour unfiltered, each team's
    # (4), and at depth resource each of its projects (3, fewer than its 7 types)
    assert run.steady_per_hour == (1 + 4 if depth == "project" else 1 + 4 + 4 * 3)
