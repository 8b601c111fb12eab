"""The API side of ``northflank-exporter backfill``: every span's invoice and usage
hours (:func:`read`), within the request budget and the reserve (the client's
:class:`~exporter.api.limits.Limits`: a request that would spend more waits, and says so).

Span by span, oldest first: the invoice pinned, unfiltered and drilled to the depth as
a poll reads it (:func:`exporter.fetch.fetch` with unbilled off), then the span's usage
hours, org-wide and per team, in calls of 100 hours (one page, one request each, run
concurrently up to ``NORTHFLANK_MAX_CONCURRENCY``). The first API failure (after the
client's retries) ends the reading; the spans read whole are kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from exporter import fetch, history
from exporter.api.billing import Billing
from exporter.api.client import Client
from exporter.api.contract import Contracts
from exporter.api.errors import ApiError, first_api_error
from exporter.api.model import UsageEntry
from exporter.settings import View
from exporter.snapshot import build

log = logging.getLogger("exporter.backfill")


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
    client: Client, contracts: Contracts, what: What, window: history.Window
) -> history.Span:
    """One span: its invoice as a poll reads it, and its usage hours (one pass of reads,
    in one contract)."""
    view = what.view
    billing = Billing(client, contracts)
    answers = await fetch.fetch(
        billing, fetch.Plan(view=view, invoice_id=window.invoice_id, unbilled=False)
    )
    snapshot = build(answers, view)
    span = history.Span(window, history.constant_series(snapshot))
    if not what.unbilled:
        return span
    teams = [(team.id, team.name) for team in snapshot.teams or ()]

    async def usage(start: float, end: float, team_id: str | None) -> tuple[UsageEntry, ...]:
        return (await billing.usage(start, end=end, team_id=team_id)).entries

    calls = window.usage_calls()
    async with asyncio.TaskGroup() as group:
        org = [group.create_task(usage(start, end, None)) for start, end in calls]
        by_team = {
            team_id: [group.create_task(usage(start, end, team_id)) for start, end in calls]
            for team_id, _ in teams
        }
    hours = history.UsageHours(
        [entry for task in org for entry in task.result()],
        {team: [e for task in tasks for e in task.result()] for team, tasks in by_team.items()},
    )
    history.add_unbilled(span, snapshot.invoice, teams, hours)
    return span


async def read(
    client: Client,
    contracts: Contracts,
    what: What,
    on_span: Callable[[history.Window], object] = lambda window: None,
    on_windows: Callable[[list[history.Window]], object] = lambda windows: None,
) -> Reading:
    """Every span in the range, oldest first; stops at the first API failure."""
    reading = Reading([], [])
    try:
        listing = await Billing(client, contracts).invoices()
        reading.windows = history.windows(listing.entries, what.since, what.until, what.step)
        on_windows(reading.windows)
        for window in reading.windows:
            span = await read_span(client, contracts, what, window)
            reading.spans.append(span)
            on_span(window)
    except (ApiError, BaseExceptionGroup) as exc:
        found = first_api_error(exc)
        if found is None:
            raise
        reading.error = found
    return reading
