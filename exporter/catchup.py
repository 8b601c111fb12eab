"""This month's breakdown, read in the background: every settled hour once, oldest first,
between polls, within what the budget and the reserve leave the polls.

The poller says after each good poll which window to follow (:meth:`Catchup.follow`: the
newest invoice's ``period.end`` on, in the contract the poll read) and wakes the task
(:meth:`Catchup.run`). It then adds the hours due (:func:`exporter.month.due`), one
request unit at a time, while no poll is running and there is room: the requests a unit
costs (the last one's, at first ``1 + teams``) on top of what the polls need until the
API's window resets (``keep``) must fit in what the window and the budget have left
(:meth:`~exporter.api.limits.Limits.headroom`). Its requests never wait for the window
(:func:`~exporter.api.limits.never_waiting`): a unit that would, or that fails, is
dropped whole and tried again after the next poll. A poll is never held up: it runs on
its own schedule, and no request of its queues behind one of these.

Two ways to a span of hours, the cheaper taken: hour by hour (``GET
/v1/billing/usage/{ts}``, ``1 + teams`` requests an hour at depth project, more at depth
resource), or, in the current contract at depth project, the API's own sums of the whole
span by team and by project (``granularity=total``: ``teams + projects`` requests, and
the newest hour read first to know the projects), checked team by team: if a team's
projects do not add up to its total, the span is read hour by hour.

After each unit the sums are written to ``NORTHFLANK_STATE_FILE`` (when set), and the
poller told (``on_added``): it serves them at once with the last good poll's figures, and
each poll's snapshot carries them too (:meth:`Catchup.figures`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from exporter.api import model
from exporter.api.billing import Billing
from exporter.api.client import Client, counting
from exporter.api.contract import Contracts
from exporter.api.errors import first_api_error
from exporter.api.limits import never_waiting
from exporter.drill import TeamShape, learn
from exporter.month import HOUR, Month, add_hour, add_span, due, first_hour, start, teams
from exporter.month_read import HourRead, Scope, read_hour, read_span
from exporter.settings import Settings
from exporter.snapshot import MonthFigures
from exporter.state import load, save

log = logging.getLogger("exporter.month")
SPAN_AT_LEAST = 3  # hours due before the API's sums of a span are worth a try
MARGIN = 2  # requests of room a unit leaves besides its estimate (or a tenth of it)


class Catchup:
    """The month's sums, and the background task that adds hours to them."""

    def __init__(
        self,
        client: Client,
        settings: Settings,
        contracts: Contracts,
        *,
        keep: Callable[[], float] = lambda: 0.0,
        clock: Callable[[], float] = time.monotonic,
        on_added: Callable[[], None] = lambda: None,
    ) -> None:
        self._client = client
        self._settings = settings
        self._contracts = contracts
        self._depth = settings.month_depth
        self._path: Path | None = settings.state_file
        self.keep = keep  # requests the polls need until the API's window resets
        self._clock = clock
        self._on_added = on_added  # hours were added: the poller serves them at once
        self._month: Month | None = None
        self._loaded = False  # the state file was read (once, at the first window)
        self._scope = Scope(settings.view, self._depth)
        self._team_count = 0
        self._unit_cost: float | None = None  # the last hour's requests
        self._figures: MonthFigures | None = None
        self._wake = asyncio.Event()
        self._span_tried = False  # the API's sums of a span were tried in this window
        self._probe: HourRead | None = None  # the newest hour, read to know the projects
        self._failing = False  # the last unit failed (said once)
        self._waiting = False  # the last unit had no room (said once)
        self.requests = 0  # sent in all

    @property
    def month(self) -> Month | None:
        return self._month

    # ----------------------------------------------------------------- told by the poller

    def follow(
        self,
        invoice_id: str,
        since: float,
        contract: str,
        *,
        teams: int,
        single: tuple[str, str] | None = None,
        shapes: Mapping[str, TeamShape] | None = None,
    ) -> None:
        """The window a good poll saw; a new one (a new invoice) restarts the sums.
        ``shapes``: each team's resource figures as the poll's invoice read found them, for
        the first hour's way and cost (later hours learn from the hour before)."""
        window = start(
            invoice_id,
            contract,
            since=since,
            depth=self._depth,
            teams=frozenset(self._settings.teams),
        )
        month = self._month
        if month is None or not month.same_window(window):
            resumed = None
            if self._path is not None and not self._loaded:
                self._loaded = True
                resumed = load(self._path, window)
            if month is not None:
                log.info(
                    "this month's breakdown restarts at %s's end",
                    invoice_id,
                    extra={"fields": {"since": since}},
                )
            self._month = resumed or window
            self._unit_cost = None
            self._span_tried = False
            self._probe = None
        known = self._scope.shapes if self._unit_cost is not None else (shapes or {})
        self._scope = Scope(self._settings.view, self._depth, single, known)
        self._team_count = teams
        self._wake.set()

    def figures(self) -> MonthFigures | None:
        """The sums so far, for a snapshot (None: no window yet, or not broken down)."""
        month = self._month
        if month is None:
            return None
        key = (month.invoice_id, month.since, month.hours)
        if self._figures is None or self._figures.key != key:
            self._figures = MonthFigures(
                month.since, month.through, month.currency, teams(month), key
            )
        return self._figures

    # ----------------------------------------------------------------- the task

    async def run(self, stop: asyncio.Event, busy: Callable[[], bool]) -> None:
        """Add the hours due each time a poll ends, until ``stop``; ``busy``: a poll runs."""
        while not stop.is_set():
            await self._wake.wait()
            self._wake.clear()
            if not stop.is_set():
                await self.catch_up(busy)

    async def catch_up(self, busy: Callable[[], bool] = lambda: False) -> None:
        """Add the hours due while there is room and no poll runs."""
        while (month := self._month) is not None and not busy():
            hours = due(month, self._client.api_time())
            if not hours:
                return
            billing = Billing(self._client, self._contracts)
            try:
                with never_waiting(), counting() as spent:
                    added = await self._unit(billing, month, hours)
            except Exception as exc:  # the task must outlive any unit
                self.requests += spent.requests
                self._failed(month, exc)
                return
            self.requests += spent.requests
            if added is None:  # no room: after the next poll
                return
            self._failing = False
            if self._month is not month:  # a new window meanwhile: this unit is of the old
                continue
            self._month = added
            self._save(added)
            self._on_added()
            if not due(added, self._client.api_time()):
                log.info(
                    "this month's breakdown caught up: %d hours summed",
                    added.hours,
                    extra={"fields": {"through": added.through, "requests": self.requests}},
                )

    def _failed(self, month: Month, exc: Exception) -> None:
        """A unit failed: dropped whole, said once until one succeeds."""
        error = first_api_error(exc)
        if error is None:  # a bug, or data so odd that it slipped past the models
            log.exception("this month's breakdown failed on an unexpected error")
        elif not self._failing:
            log.warning(
                "this month's breakdown: %s; tried again after the next poll",
                error,
                extra={"fields": {"through": month.through, "result": error.reason}},
            )
        self._failing = True

    def _hourly_cost(self) -> float:
        """What the next hour costs: the last one's requests, or before any, the teams'
        calls as the poll's resource figures say (``1 + teams`` at depth project)."""
        if self._unit_cost is not None:
            return self._unit_cost
        teams = max(1, self._team_count)
        if self._depth != "resource":
            return 1 + teams
        shapes = self._scope.shapes.values()
        deeper = sum(min(s.project_calls, s.type_calls) for s in shapes)
        return 1 + teams + max(deeper, teams)

    async def _unit(self, billing: Billing, month: Month, hours: list[float]) -> Month | None:
        """One unit of requests: a span at once where cheaper, else the oldest hour; None
        when the budget and the reserve leave it no room (now)."""
        hourly = self._hourly_cost()
        if self._span_worth_trying(month, hours):
            if self._probe is None:  # the newest hour, read to know the projects
                if not self._room(hourly):
                    return self._no_room(hourly)
                self._probe = await self._read(billing, hours[-1])
            probe = self._probe
            listed = {
                team.id: [(p.id, p.name) for p in team.projects or ()] for team in probe.teams
            }
            span_cost = len(listed) + sum(len(projects) for projects in listed.values())
            end = probe.hour + HOUR
            if span_cost >= (end - first_hour(month)) / HOUR * hourly:
                self._span_tried = True  # hour by hour is as cheap
            elif self._room(span_cost):
                self._span_tried = True  # once a window: a catch-up's way, not a steady one
                span = await read_span(
                    billing, first_hour(month), end, listed, single=self._scope.single is not None
                )
                if span is not None:
                    log.info(
                        "this month's breakdown: %d hours from the API's sums by project",
                        (end - first_hour(month)) // HOUR,
                        extra={"fields": {"requests": span_cost}},
                    )
                    self._probe = None
                    return add_span(month, end, span, probe.currency)
            elif span_cost <= self._ceiling():
                return self._no_room(span_cost)  # it fits once the window resets: worth it
            else:
                self._span_tried = True  # it never fits: hour by hour
        if self._probe is not None and self._probe.hour == hours[0]:
            read, self._probe = self._probe, None  # read already: not again
        else:
            if not self._room(hourly):
                return self._no_room(hourly)
            read = await self._read(billing, hours[0])
        return add_hour(month, hours[0], read.teams, read.currency)

    async def _read(self, billing: Billing, hour: float) -> HourRead:
        """One hour to the depth; what it cost, and at depth resource each team's shape,
        learnt for the next."""
        with counting() as spent:
            read = await read_hour(billing, hour, self._scope)
        self._unit_cost = spent.requests
        if self._depth == "resource":
            shapes: dict[str, TeamShape] = learn(read.projects)
            self._scope = Scope(self._scope.view, self._depth, self._scope.single, shapes)
        return read

    def _span_worth_trying(self, month: Month, hours: list[float]) -> bool:
        """The API's sums of a span: in the current contract, at depth project, with at
        least :data:`SPAN_AT_LEAST` hours due, once a window."""
        return (
            len(hours) >= SPAN_AT_LEAST
            and self._depth == "project"
            and month.contract == model.CURRENT
            and not self._span_tried
        )

    def _ceiling(self) -> float:
        """The most a unit may cost once the API's window resets: the budget, or the
        account's limit but the reserve, less what the polls keep."""
        limits = self._client.limits
        top = math.inf if limits.budget is None else float(limits.budget)
        limit = self._client.stats.ratelimit_limit
        if limit is not None:
            top = min(top, limit - limits.reserve)
        return top - self.keep()

    def _room(self, cost: float) -> bool:
        """Room for ``cost`` requests, and a margin (an hour may hold more than the last)."""
        headroom = self._client.limits.headroom(self._clock())
        if headroom - self.keep() >= cost + max(MARGIN, cost / 10):
            self._waiting = False
            return True
        return False

    def _no_room(self, cost: float) -> Month | None:
        """None (no unit now), said once until there is room again."""
        if not self._waiting:
            log.info(
                "this month's breakdown waits: %.0f requests would leave the polls too few "
                "of the budget and the reserve",
                cost,
            )
        self._waiting = True
        return None

    def _save(self, month: Month) -> None:
        if self._path is None:
            return
        try:
            save(self._path, month)
        except OSError as exc:
            log.warning(
                "state file %s not written: %s", self._path, exc.strerror or exc
            )  # fmt: skip
