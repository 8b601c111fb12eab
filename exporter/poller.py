"""What to ask the API, and when.

:func:`read_invoice` is one poll: pick the invoice, read it unfiltered, then drill down
as deep as the settings ask, each team's task starting its project calls as soon as
the team's answer arrives (no waiting for a whole phase). It returns a snapshot or
raises one :class:`~exporter.client.ApiError`.

:class:`Poller` runs polls on schedule, keeps within the request budget, renders each
outcome once and hands it to ``publish``; it drops the API's figures when they grow
older than the staleness bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from exporter import __version__, models
from exporter.client import Client
from exporter.errors import (
    PERMISSION_HINT,
    ApiError,
    ApiTimeoutError,
    AuthError,
    InvalidResponseError,
    first_api_error,
)
from exporter.exposition import (
    Exposition,
    Family,
    Health,
    cost_families,
    own_families,
    render,
)
from exporter.page import PageView, Summary, render_page, summarise
from exporter.settings import Settings
from exporter.snapshot import ResourceTypes, Snapshot, build, resource_types
from exporter.unbilled import Window, advance, restart_if_needed

log = logging.getLogger("exporter.poller")
POLL_DEADLINE_SECONDS = 120.0
TOKEN_CHECK_SECONDS = 86400.0  # GET /v1/auth at start, then once a day
TOKEN_RETRY_SECONDS = 3600.0  # ... or an hour after it failed


# --------------------------------------------------------------------------- one poll


def newest_invoice(invoices: list[models.InvoiceSummary]) -> tuple[float, str]:
    """(period end, ID) of the invoice that ends last (the list's order is not guaranteed)."""
    dated = [(inv.period.end, inv.id) for inv in invoices if inv.period and inv.period.end]
    if not dated:
        raise InvalidResponseError("list_invoices", "no invoice with a period end to pick")
    return max(dated)


@dataclass(frozen=True)
class PollResult:
    snapshot: Snapshot
    window: Window | None  # the unbilled usage summed so far
    invoice_teams: frozenset[str]  # every team the invoice lists


async def read_invoice(
    client: Client, settings: Settings, window: Window | None = None
) -> PollResult:
    """One poll's requests, concurrent up to the client's limit; the snapshot they make."""
    newest = None
    if settings.invoice_id is None or settings.unbilled:
        newest = newest_invoice(await client.list_invoices())
    invoice_id = settings.invoice_id or (newest[1] if newest else "")
    invoice = await client.get_invoice(invoice_id)
    wanted = set(settings.teams)
    teams = [team for team in invoice.teams if not wanted or team.id in wanted]
    team_answers: dict[str, models.Team] = {}
    project_answers: dict[tuple[str, str], ResourceTypes] = {}
    usage: list[models.UsageEntry] = []
    team_usage: dict[str, list[models.UsageEntry]] = {}
    base = None
    if newest is not None and settings.unbilled:
        base = restart_if_needed(window, invoice_id=newest[1], since=newest[0])

    async def drill_project(team_id: str, project_id: str) -> None:
        answer = await client.get_invoice(invoice_id, team_id=team_id, project_id=project_id)
        team = _find_team(answer, team_id)
        project = next((p for p in team.projects or () if p.id == project_id), None)
        if project is None:
            raise InvalidResponseError(
                "get_invoice", f"project {project_id} missing from its answer"
            )
        project_answers[(team_id, project_id)] = resource_types(project, settings.amount_unit)

    async def drill_team(team: models.Team) -> None:
        if team.projects is None:  # the unfiltered answer holds them only for a one-team invoice
            team = _find_team(await client.get_invoice(invoice_id, team_id=team.id), team.id)
            team_answers[team.id] = team
        if settings.depth == "resource":
            async with asyncio.TaskGroup() as group:
                for project in team.projects or ():
                    group.create_task(drill_project(team.id, project.id))

    async def read_usage(start: float) -> None:
        usage.extend(await client.list_usage(start))

    async def read_team_usage(team_id: str, start: float) -> None:
        team_usage[team_id] = await client.list_usage(start, team_id=team_id)

    async with asyncio.TaskGroup() as group:
        if settings.depth != "team":
            for team in teams:
                group.create_task(drill_team(team))
        if base is not None:
            group.create_task(read_usage(base.org_start()))
            for team in teams:
                group.create_task(read_team_usage(team.id, base.team_start(team.id)))
    new_window = advance(base, base.invoice_id, base.since, usage, team_usage) if base else None
    snapshot = build(
        invoice,
        team_answers=team_answers,
        project_answers=project_answers,
        teams=settings.teams,
        amount_unit=settings.amount_unit,
        window=new_window,
        budgets=settings.budgets,
        depth=settings.depth,
    )
    return PollResult(snapshot, new_window, frozenset(team.id for team in invoice.teams))


def _find_team(answer: models.Invoice, team_id: str) -> models.Team:
    for team in answer.teams:
        if team.id == team_id:
            return team
    raise InvalidResponseError("get_invoice", f"team {team_id} missing from its own answer")


# --------------------------------------------------------------------------- the schedule


@dataclass(frozen=True)
class Published:
    """What the server hands out until the next one replaces it."""

    exposition: Exposition
    ready: bool
    last_result: str  # "ok", a failure reason, or "pending"
    last_poll: float | None  # Unix time the last poll ended
    page: bytes  # the HTML page at /, made from the same poll


class Poller:
    def __init__(
        self,
        client: Client,
        settings: Settings,
        publish: Callable[[Published], None],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._settings = settings
        self._publish = publish
        self._clock = clock
        self._serving = False  # the API's figures are served (a good poll, not yet stale)
        self._window: Window | None = None
        # The last good poll's cost families: kept (encoded once) rather than its snapshot.
        self._families: list[Family] = []
        self._summary: Summary | None = None  # what the page at / shows of it
        self._warned_budgets: frozenset[str] = frozenset()
        self._errors: Counter[str] = Counter()
        self._up = False
        self._last_success: float | None = None
        self._duration: float | None = None
        self._last_result = "pending"
        self._last_poll: float | None = None
        self._poll_cost = 0  # requests the last full poll spent
        self._spent: int | None = None  # requests the last poll spent
        self._expiry: asyncio.TimerHandle | None = None
        self._stretched_to: float | None = None
        self._token: models.TokenInfo | None = None
        self._token_due = float("-inf")  # when GET /v1/auth is next asked (monotonic)

    # ----------------------------------------------------------------- one poll, published

    async def poll(self) -> bool:
        """Poll once, publish the outcome; True when it succeeded."""
        started, spent_before = self._clock(), self._client.stats.total
        self._client.set_deadline(POLL_DEADLINE_SECONDS)
        error: ApiError | None = None
        try:
            async with asyncio.timeout(POLL_DEADLINE_SECONDS):
                result = await read_invoice(self._client, self._settings, self._window)
            families = cost_families(result.snapshot)  # once per poll, kept until the next
        except TimeoutError:
            error = ApiTimeoutError("poll", f"gave up after {POLL_DEADLINE_SECONDS:.0f} s")
        except Exception as exc:
            error = first_api_error(exc)
            if error is None:  # a bug, or data so odd that it slipped past the models
                log.exception("poll failed on an unexpected error")
                error = InvalidResponseError("poll", f"{type(exc).__name__}: {exc}")
        self._duration = self._clock() - started
        spent = self._client.stats.total - spent_before
        self._spent = spent
        self._last_poll = time.time()
        if error is None:
            snapshot = result.snapshot
            self._serving, self._up, self._last_success = True, True, self._last_poll
            self._families = families
            self._summary = summarise(snapshot)
            self._window = result.window
            self._warn_unknown_budgets(result.invoice_teams)
            self._poll_cost = spent
            self._last_result = "ok"
            self._schedule_expiry()
        else:
            self._up = False
            self._errors[error.reason] += 1
            self._last_result = error.reason
            self._poll_cost = max(self._poll_cost, spent)
        exposition = self._render()
        fields = {
            "result": self._last_result,
            "duration_seconds": round(self._duration, 3),
            "requests": spent,
            "series": exposition.samples,
        }
        if error is None:
            log.info("poll succeeded", extra={"fields": {"invoice": snapshot.invoice.id, **fields}})
        else:
            hint = f"; {PERMISSION_HINT}" if isinstance(error, AuthError) else ""
            log.warning("poll failed: %s%s", error, hint, extra={"fields": fields})
        return error is None

    async def check_token(self) -> None:
        """``GET /v1/auth`` when due: after the first poll, then daily; an hour after a
        failure. A failure costs no poll: the token families are left out until it
        succeeds. Publishes again when it asked."""
        if self._clock() < self._token_due:
            return
        self._client.set_deadline(POLL_DEADLINE_SECONDS)
        try:
            async with asyncio.timeout(POLL_DEADLINE_SECONDS):
                self._token = await self._client.token_info()
        except Exception as exc:
            error = first_api_error(exc) or f"{type(exc).__name__}: {exc}"
            self._token = None
            self._token_due = self._clock() + TOKEN_RETRY_SECONDS
            log.warning(
                "token check (GET /v1/auth) failed, tried again in an hour: %s",
                error,
                extra={"fields": {"result": getattr(error, "reason", "invalid_response")}},
            )
        else:
            self._token_due = self._clock() + TOKEN_CHECK_SECONDS
        self._render()

    def _warn_unknown_budgets(self, invoice_teams: frozenset[str]) -> None:
        unknown = frozenset(self._settings.budgets) - invoice_teams - {"*"}
        if unknown and unknown != self._warned_budgets:
            log.warning(
                "NORTHFLANK_BUDGETS names teams the invoice does not list: %s",
                ", ".join(sorted(unknown)),
            )
        self._warned_budgets = unknown

    def _render(self) -> Exposition:
        stats = self._client.stats
        health = Health(
            version=__version__,
            up=self._up,
            last_success=self._last_success,
            poll_duration=self._duration,
            poll_errors=dict(self._errors),
            api_requests=dict(stats.requests),
            ratelimit_remaining=stats.ratelimit_remaining,
            token_entity=(
                (self._token.entity_type or "", self._token.entity_id or "")
                if self._token is not None
                else None
            ),
            token_expiry=self._token.expires_at if self._token is not None else None,
        )
        exposition = render([*self._families, *own_families(health)])
        self._publish(
            Published(
                exposition=exposition,
                ready=self._serving,
                last_result=self._last_result,
                last_poll=self._last_poll,
                page=render_page(
                    PageView(
                        version=__version__,
                        summary=self._summary if self._serving else None,
                        result=self._last_result,
                        last_poll=self._last_poll,
                        last_success=self._last_success,
                        requests=self._spent,
                        ratelimit_remaining=stats.ratelimit_remaining,
                        staleness_seconds=self._settings.staleness_seconds,
                    )
                ),
            )
        )
        return exposition

    # ----------------------------------------------------------------- staleness

    def _schedule_expiry(self) -> None:
        loop = asyncio.get_running_loop()
        if self._expiry is not None:
            self._expiry.cancel()
        self._expiry = loop.call_later(self._settings.staleness_seconds, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        if not self._serving:
            return
        log.warning(
            "figures dropped: no successful poll for %.0f s",
            self._settings.staleness_seconds,
            extra={"fields": {"result": "stale"}},
        )
        self._serving = False
        self._families = []
        self._summary = None
        self._render()

    # ----------------------------------------------------------------- the loop

    def interval(self) -> float:
        """Seconds from one poll's start to the next: the setting, stretched to the budget."""
        base = self._settings.poll_interval_seconds
        budget = self._settings.request_budget_per_hour
        needed = 3600.0 * self._poll_cost / budget
        if needed <= base:
            self._stretched_to = None
            return base
        if self._stretched_to != needed:
            self._stretched_to = needed
            log.warning(
                "polling every %.0f s instead of every %.0f s: a poll costs %d requests "
                "and the budget is %d an hour",
                needed,
                base,
                self._poll_cost,
                budget,
                extra={"fields": {"interval_seconds": round(needed, 1)}},
            )
        return needed

    def _rate_limit_wait(self) -> float:
        """Seconds to wait for the API's window when it has too few requests left."""
        stats = self._client.stats
        if stats.window_remaining is None or stats.window_reset_at is None:
            return 0.0
        if stats.window_remaining >= max(self._poll_cost, 1):
            return 0.0
        return max(0.0, stats.window_reset_at - self._clock())

    async def run(self, stop: asyncio.Event) -> None:
        """Poll on schedule until ``stop`` is set."""
        self._render()  # serve the exporter's own metrics before the first poll ends
        while not stop.is_set():
            started = self._clock()
            wait = self._rate_limit_wait()
            if wait > 0:
                log.warning(
                    "waiting %.0f s for the API's rate-limit window: %s requests left",
                    wait,
                    self._client.stats.window_remaining,
                )
                if await _sleep_or_stop(wait, stop):
                    break
            await self.poll()
            await self.check_token()
            next_start = started + self.interval()
            if await _sleep_or_stop(max(0.0, next_start - self._clock()), stop):
                break
        if self._expiry is not None:
            self._expiry.cancel()


async def _sleep_or_stop(seconds: float, stop: asyncio.Event) -> bool:
    """Sleep; True when ``stop`` was set first."""
    try:
        async with asyncio.timeout(seconds):
            await stop.wait()
    except TimeoutError:
        return False
    return True
