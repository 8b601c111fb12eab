"""The API side of ``northflank-exporter backfill``: every span's invoice and usage
hours (:func:`read`), within the request budget (:class:`Budget`).

Span by span, oldest first: the invoice pinned, unfiltered and drilled to the depth as
a poll reads it (:func:`exporter.fetch.fetch` with unbilled off), then the span's usage
hours, org-wide and per team, in calls of 100 hours (one page, one request each, run
concurrently up to ``NORTHFLANK_MAX_CONCURRENCY``). The first API failure (after the
client's retries) ends the reading; the spans read whole are kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from exporter import fetch, history
from exporter.api.billing import Billing
from exporter.api.client import Client
from exporter.api.contract import Contracts
from exporter.api.errors import ApiError, first_api_error
from exporter.api.model import UsageEntry
from exporter.metrics import TEAM_COST
from exporter.settings import View
from exporter.snapshot import build

log = logging.getLogger("exporter.backfill")
WINDOW = 3600.0  # the budget is per hour, over any hour


# --------------------------------------------------------------------------- the budget


class Budget:
    """At most ``per_hour`` requests in any hour: :meth:`take` waits (and logs) when the
    next ones would go over, :meth:`settle` counts what was sent beyond what was taken
    (extra pages, retries)."""

    def __init__(
        self,
        per_hour: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.per_hour = per_hour
        self.clock = clock
        self.sleep = sleep
        self.sent: deque[float] = deque()  # when each request was (to be) sent
        self.taken = 0
        self.waited = 0.0
        self._lock = asyncio.Lock()

    def _prune(self, now: float) -> None:
        while self.sent and self.sent[0] <= now - WINDOW:
            self.sent.popleft()

    async def take(self, count: int = 1) -> None:
        async with self._lock:
            while True:
                now = self.clock()
                self._prune(now)
                if not self.sent or len(self.sent) + count <= self.per_hour:
                    break
                # wait until enough of the hour's requests have aged out
                index = min(len(self.sent) - 1, max(0, len(self.sent) + count - self.per_hour - 1))
                wait = max(0.0, self.sent[index] + WINDOW - now)
                log.warning(
                    "request budget: %d requests sent in the last hour, "
                    "NORTHFLANK_REQUEST_BUDGET_PER_HOUR is %d; waiting %.0f s",
                    len(self.sent),
                    self.per_hour,
                    wait,
                )
                self.waited += wait
                await self.sleep(wait)
            self.sent.extend([now] * count)
            self.taken += count

    def settle(self, sent_total: int) -> None:
        """The client has sent ``sent_total`` requests in all: count those not taken."""
        extra = sent_total - self.taken
        if extra > 0:
            now = self.clock()
            self.sent.extend([now] * extra)
            self.taken += extra


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class What:
    """What to read: the range, the step, the view (teams, depth, unit) and whether the
    usage (the unbilled families) is read."""

    since: float
    until: float
    step: int
    view: View
    unbilled: bool = True


@dataclass
class Reading:
    spans: list[history.Span]
    windows: list[history.Window]
    error: ApiError | None = None


async def read_span(
    client: Client,
    contracts: Contracts,
    budget: Budget,
    what: What,
    window: history.Window,
    expected: int,
) -> history.Span:
    """One span: its invoice as a poll reads it, and its usage hours (one pass of reads,
    in one contract)."""
    view = what.view
    billing = Billing(client, contracts)
    await budget.take(expected)
    answers = await fetch.fetch(
        billing, fetch.Plan(view=view, invoice_id=window.invoice_id, unbilled=False)
    )
    budget.settle(client.stats.total)
    snapshot = build(answers, view)
    span = history.Span(window, history.constant_series(snapshot))
    if not what.unbilled:
        return span
    teams = [(team.id, team.name) for team in snapshot.teams]

    async def usage(start: float, end: float, team_id: str | None) -> tuple[UsageEntry, ...]:
        await budget.take(1)
        return (await billing.usage(start, end=end, team_id=team_id)).entries

    calls = window.usage_calls()
    async with asyncio.TaskGroup() as group:
        org = [group.create_task(usage(start, end, None)) for start, end in calls]
        by_team = {
            team_id: [group.create_task(usage(start, end, team_id)) for start, end in calls]
            for team_id, _ in teams
        }
    budget.settle(client.stats.total)
    hours = history.UsageHours(
        [entry for task in org for entry in task.result()],
        {team: [e for task in tasks for e in task.result()] for team, tasks in by_team.items()},
    )
    history.add_unbilled(span, snapshot.invoice, teams, hours)
    return span


async def read(
    client: Client,
    contracts: Contracts,
    budget: Budget,
    what: What,
    on_span: Callable[[history.Window], object] = lambda window: None,
    on_windows: Callable[[list[history.Window]], object] = lambda windows: None,
) -> Reading:
    """Every span in the range, oldest first; stops at the first API failure."""
    reading = Reading([], [])
    view = what.view
    try:
        await budget.take(1)
        listing = await Billing(client, contracts).invoices()
        budget.settle(client.stats.total)
        reading.windows = history.windows(listing.entries, what.since, what.until, what.step)
        on_windows(reading.windows)
        expected = 1
        for window in reading.windows:
            span = await read_span(client, contracts, budget, what, window, expected)
            teams = len(span.constant.get(TEAM_COST, {}))
            expected = 1 + (teams if view.depth != "team" else 0)
            reading.spans.append(span)
            on_span(window)
    except (ApiError, BaseExceptionGroup) as exc:
        found = first_api_error(exc)
        if found is None:
            raise
        reading.error = found
    return reading
