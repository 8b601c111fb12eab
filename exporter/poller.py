"""When to poll, and what came of it: the schedule, the request budget, health, staleness.

:class:`Poller` runs :func:`~exporter.fetch.fetch` on schedule, builds each good poll's
snapshot, keeps the usage summed so far, and publishes an :class:`Outcome` (plain data:
the new snapshot, the exporter's health) after every poll, token check and expiry.
It renders nothing: ``publish`` (``bodies.Bodies``) turns outcomes into bytes and says
how many samples it serves. It stretches the interval to
the request budget, waits for the API's rate-limit window when too few requests are
left, and drops the figures once they are older than the staleness bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from exporter import __version__
from exporter.api import model
from exporter.api.billing import Billing
from exporter.api.client import Client, counting
from exporter.api.errors import (
    PERMISSION_HINT,
    ApiError,
    ApiTimeoutError,
    AuthError,
    InvalidResponseError,
    NotFoundError,
    first_api_error,
)
from exporter.catchup import Catchup
from exporter.drill import TeamShape, learn
from exporter.fetch import Plan, fetch
from exporter.own import Health
from exporter.settings import Settings
from exporter.snapshot import Answers, Read, Snapshot, build, keep
from exporter.unbilled import UsageSums

log = logging.getLogger("exporter.poller")
POLL_DEADLINE_SECONDS = 120.0
TOKEN_CHECK_SECONDS = 86400.0  # GET /v1/auth after the first poll, then once a day
TOKEN_RETRY_SECONDS = 3600.0  # ... or an hour after it failed
CREDIT_RETRY_SECONDS = 3600.0  # the credit balance: with every poll; an hour after a failure
CREDIT_ABSENT_SECONDS = 86400.0  # ... a day after a 404 (a legacy account has none)


@dataclass(frozen=True)
class Outcome:
    """What the poller publishes: its state after a poll, a token check or an expiry."""

    health: Health
    serving: bool  # figures are served: a poll succeeded within the staleness bound
    last_result: str  # "ok", a failure reason, or "pending"
    last_poll: float | None  # Unix time the last poll ended
    requests: int | None  # requests the last poll spent
    staleness_seconds: float
    snapshot: Snapshot | None = None  # a new poll's figures; None: the served ones stay


class Poller:
    def __init__(
        self,
        client: Client,
        settings: Settings,
        publish: Callable[[Outcome], int],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._settings = settings
        self._contracts = settings.contracts()  # what to ask for; the contract last seen
        self._publish = publish
        self._clock = clock
        self._wall_clock = wall_clock
        self._serving = False  # the API's figures are served (a good poll, not yet stale)
        self._usage: UsageSums | None = None
        self._shapes: dict[str, TeamShape] = {}  # each team's resource figures, last good poll
        self._warned_budgets: frozenset[str] = frozenset()
        self._errors: Counter[str] = Counter()
        self._up = False
        self._last_success: float | None = None
        self._duration: float | None = None
        self._last_result = "pending"
        self._last_poll: float | None = None
        self._spent: int | None = None  # requests the last poll spent, whatever its result
        self._expiry: asyncio.TimerHandle | None = None
        self._stretched_to: float | None = None
        self._token: model.Token | None = None
        self._token_due = float("-inf")  # when GET /v1/auth is next asked (monotonic)
        self._contract: model.Contract | None = None  # of the last good poll
        self._team_names: dict[str, str] = {}
        self._credit: model.Credit | None = None  # the last credit balance read
        self._credit_due = float("-inf")  # when it is next asked (monotonic)
        self._credit_absent_said = False
        self._read: Read | None = None  # what the last read of the breakdown left
        self._reads = 0  # reads of a breakdown so far
        self._polling = False  # a poll is running (this month's breakdown waits for its end)
        # this month broken down, in the background (NORTHFLANK_UNBILLED_DEPTH)
        self.catchup = (
            Catchup(
                client,
                settings,
                self._contracts,
                keep=self._keep,
                clock=clock,
                on_added=self._month_added,
            )
            if settings.month_depth != "team"
            else None
        )
        self._shown: Snapshot | None = None  # the last good poll's, as served
        self._steady_cost = 0  # requests of the last good poll but its breakdown's
        self._read_cost = 0  # requests of the last read of a breakdown

    # ----------------------------------------------------------------- one poll

    async def poll(self) -> bool:
        """Poll once, publish the outcome; True when it succeeded."""
        started = self._clock()
        self._client.stats.lowest_remaining = None  # the poll's own, for its log line
        error: ApiError | None = None
        self._polling = True
        # the poll's own requests (the breakdown of this month runs beside it: not these)
        with counting() as sent:
            try:
                answers, snapshot = await self._answers()
            except TimeoutError:
                error = ApiTimeoutError("poll", f"gave up after {POLL_DEADLINE_SECONDS:.0f} s")
            except Exception as exc:
                error = first_api_error(exc)
                if error is None:  # a bug, or data so odd that it slipped past the models
                    log.exception("poll failed on an unexpected error")
                    error = InvalidResponseError("poll", f"{type(exc).__name__}: {exc}")
        self._polling = False
        self._duration = self._clock() - started
        spent = self._spent = sent.requests
        self._last_poll = self._wall_clock()
        if error is None:
            self._serving, self._up, self._last_success = True, True, self._last_poll
            self._usage = answers.usage
            self._learn_from(answers, snapshot)
            read = answers.spent.get("breakdown_requests", 0)
            self._steady_cost = spent - read
            if answers.invoice is not None:
                self._read_cost = read
            self._last_result = "ok"
            self._schedule_expiry()
            snapshot = self._shown = self._follow_month(answers, snapshot)
            series = self._send(snapshot)
            fields = {
                "invoice": snapshot.invoice.id,
                "breakdown": "read" if answers.invoice is not None else "kept",
                **self._fields(spent, series),
            }
            if self._settings.depth == "resource" and answers.invoice is not None:
                ways = ("by_project", "by_type", "teams_by_type")  # what each way cost
                fields.update({way: answers.spent[way] for way in ways})
            log.info("poll succeeded", extra={"fields": fields})
        else:
            self._up = False
            self._errors[error.reason] += 1
            self._last_result = error.reason
            series = self._send()
            hint = f"; {PERMISSION_HINT}" if isinstance(error, AuthError) else ""
            extra = {"fields": self._fields(spent, series)}
            log.warning("poll failed: %s%s", error, hint, extra=extra)
        return error is None

    async def _answers(self) -> tuple[Answers, Snapshot]:
        async with asyncio.timeout(POLL_DEADLINE_SECONDS) as limit:
            # only waits for the rate-limit window take a poll past its deadline
            self._client.set_deadline(
                POLL_DEADLINE_SECONDS,
                max_wait=self._settings.staleness_seconds,
                on_wait=lambda seconds: limit.reschedule((limit.when() or 0.0) + seconds),
            )
            plan = self._plan()
            answers = self._learn_credit(plan, await fetch(self._billing(), plan))
        return answers, self._snapshot(answers)

    def _billing(self) -> Billing:
        return Billing(self._client, self._contracts)

    def _snapshot(self, answers: Answers) -> Snapshot:
        """This poll's figures: a new read of the breakdown, or the last one kept."""
        view = self._settings.view
        if answers.invoice is None:
            assert self._read is not None  # the plan kept a read it knew
            return keep(self._read, answers, view)
        self._reads += 1
        snapshot = build(answers, view, read=self._reads)
        self._read = Read.of(snapshot, answers, self._clock())
        self._shapes = learn(answers.projects)
        self._warn_unknown_budgets(frozenset(team.id for team in answers.invoice.teams or ()))
        return snapshot

    def _plan(self) -> Plan:
        asks_credit = (
            self._settings.api_contract != "legacy"  # a current-contract endpoint only
            and (self._settings.invoice_id is None or self._settings.unbilled)  # reads the list
            and self._clock() >= self._credit_due
        )
        read = self._read
        return Plan.of(
            self._settings,
            usage=self._usage,
            shapes=self._shapes,
            token=self._token,
            team_names=self._team_names,
            credit=asks_credit,
            known=read,
            refresh=read is not None
            and self._clock() - read.at >= self._settings.invoice_refresh_seconds,
        )

    def _learn_credit(self, plan: Plan, answers: Answers) -> Answers:
        """The credit balance to serve: this poll's, the last one read when it was not
        due, none after a failure (asked again an hour later, or a day after a 404)."""
        if not plan.credit:
            return dataclasses.replace(answers, credit=self._credit)
        error = answers.credit_error
        if error is None:
            self._credit, self._credit_absent_said = answers.credit, False
            return answers
        self._credit = None
        if isinstance(error, NotFoundError):
            self._credit_due = self._clock() + CREDIT_ABSENT_SECONDS
            if not self._credit_absent_said:
                log.info(
                    "no credit balance (GET /v1/billing/credit-balance: 404); asked again in a day"
                )
                self._credit_absent_said = True
        else:
            self._credit_due = self._clock() + CREDIT_RETRY_SECONDS
            log.warning(
                "credit balance (GET /v1/billing/credit-balance) failed, "
                "tried again in an hour: %s",
                error,
                extra={"fields": {"result": error.reason}},
            )
        return answers

    def _learn_from(self, answers: Answers, snapshot: Snapshot) -> None:
        """What a good poll says for the next: the contract, the token, team names."""
        if answers.contract is not None and answers.contract != self._contract:
            log.info(
                "reading the %s billing contract%s",
                answers.contract,
                f" (was {self._contract})" if self._contract else "",
                extra={"fields": {"contract": answers.contract}},
            )
            self._contract = answers.contract
        if answers.token is not None:  # asked for a single-team answer: a token check too
            self._token = answers.token
            self._token_due = self._clock() + TOKEN_CHECK_SECONDS
        if snapshot.teams is not None:
            self._team_names = {team.id: team.name for team in snapshot.teams}

    def _follow_month(self, answers: Answers, snapshot: Snapshot) -> Snapshot:
        """Tell this month's breakdown which window this poll saw; its figures so far."""
        if self.catchup is None or answers.usage is None or self._contract is None:
            return snapshot
        read = self._read
        single = None
        if read is not None and read.single:
            single = next(iter(read.team_names.items()), None)
        teams = len(read.team_names) if read is not None else 0
        self.catchup.follow(
            answers.usage.invoice_id,
            answers.usage.since,
            self._contract,
            teams=teams,
            single=single,
            shapes=self._shapes,
        )
        return dataclasses.replace(snapshot, month=self.catchup.figures())

    def _month_added(self) -> None:
        """Hours were added to this month's breakdown between polls: served at once, with
        the last good poll's figures (only the breakdown's families are rendered anew)."""
        shown = self._shown
        if self.catchup is None or shown is None or not self._serving:
            return
        # as a poll that kept the breakdown: the read's bytes are reused, not encoded again
        kept = shown if shown.teams is None else dataclasses.replace(shown, teams=None)
        self._shown = dataclasses.replace(kept, month=self.catchup.figures())
        self._send(self._shown)

    def _keep(self) -> float:
        """What the polls need of the API's window until it resets (of the last hour,
        where the API says nothing of one): this month's breakdown leaves them that."""
        now = self._clock()
        limits = self._client.limits
        left = limits.reset_at - now if limits.reset_at is not None else 3600.0
        settings = self._settings
        interval = max(
            settings.poll_interval_seconds,
            budget_interval(self.poll_cost, settings.request_budget_per_hour),
        )
        keep = self._steady_cost * (math.ceil(max(0.0, left) / interval) + 1)
        read = self._read
        if read is None or read.at + settings.invoice_refresh_seconds <= now + left:
            keep += self._read_cost  # a read of the breakdown may come before the reset
        return keep

    def _fields(self, spent: int, series: int) -> dict[str, object]:
        """What the poll's log line says besides the invoice."""
        fields: dict[str, object] = {
            "result": self._last_result,
            "duration_seconds": round(self._duration or 0.0, 3),
            "requests": spent,
            "series": series,
        }
        lowest = self._client.stats.lowest_remaining
        if lowest is not None:  # how close the poll came to the API's limit
            fields["ratelimit_lowest"] = round(lowest)
        return fields

    async def check_token(self) -> None:
        """``GET /v1/auth`` when due: after the first poll, then daily; an hour after a
        failure. A failure costs no poll: the token families are left out until it
        succeeds. Publishes again when it asked."""
        if self._clock() < self._token_due:
            return
        self._client.set_deadline(POLL_DEADLINE_SECONDS)
        try:
            async with asyncio.timeout(POLL_DEADLINE_SECONDS):
                self._token = await self._billing().token()
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
        self._send()

    def _warn_unknown_budgets(self, invoice_teams: frozenset[str]) -> None:
        unknown = frozenset(self._settings.budgets) - invoice_teams - {"*"}
        if unknown and unknown != self._warned_budgets:
            log.warning(
                "NORTHFLANK_BUDGETS names teams the invoice does not list: %s",
                ", ".join(sorted(unknown)),
            )
        self._warned_budgets = unknown

    def health(self) -> Health:
        stats, token = self._client.stats, self._token
        return Health(
            version=__version__,
            up=self._up,
            last_success=self._last_success,
            poll_duration=self._duration,
            poll_errors=dict(self._errors),
            api_requests=dict(stats.requests),
            ratelimit_remaining=stats.ratelimit_remaining,
            token_entity=(
                (token.entity_type or "", token.entity_id or "") if token is not None else None
            ),
            token_expiry=token.expires_at if token is not None else None,
            contract=self._contract,
            ratelimit_wait=self._client.limits.waited,
        )

    def _send(self, snapshot: Snapshot | None = None) -> int:
        """Publish the current state (with a new poll's snapshot, when there is one);
        how many samples are served now."""
        return self._publish(
            Outcome(
                health=self.health(),
                serving=self._serving,
                last_result=self._last_result,
                last_poll=self._last_poll,
                requests=self._spent,
                staleness_seconds=self._settings.staleness_seconds,
                snapshot=snapshot,
            )
        )

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
        self._send()

    # ----------------------------------------------------------------- the schedule

    @property
    def poll_cost(self) -> float:
        """What a poll costs on average, as the budget plans with it: the last good poll's
        requests but its breakdown's, and a read of the breakdown as often as the refresh
        comes (every poll at ``NORTHFLANK_INVOICE_REFRESH_SECONDS=0``)."""
        settings = self._settings
        return average_cost(
            self._steady_cost,
            self._read_cost,
            settings.poll_interval_seconds,
            settings.invoice_refresh_seconds,
        )

    def interval(self) -> float:
        """Seconds from one poll's start to the next: the setting, stretched to the budget."""
        base = self._settings.poll_interval_seconds
        budget = self._settings.request_budget_per_hour
        cost = self.poll_cost
        needed = budget_interval(cost, budget)
        if needed <= base:
            self._stretched_to = None
            return base
        if self._stretched_to != needed:
            self._stretched_to = needed
            log.warning(
                "polling every %.0f s instead of every %.0f s: a poll costs %.0f requests "
                "and the budget is %d an hour",
                needed,
                base,
                cost,
                budget,
                extra={"fields": {"interval_seconds": round(needed, 1)}},
            )
        return needed

    async def run(self, stop: asyncio.Event) -> None:
        """Poll on schedule until ``stop`` is set; this month's breakdown beside it."""
        self._send()  # serve the exporter's own metrics before the first poll ends
        background = None
        if self.catchup is not None:
            background = asyncio.create_task(self.catchup.run(stop, lambda: self._polling))
        try:
            while not stop.is_set():
                started = self._clock()
                await self.poll()
                await self.check_token()
                next_start = started + self.interval()
                if await _sleep_or_stop(max(0.0, next_start - self._clock()), stop):
                    break
        finally:
            if background is not None:
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
            if self._expiry is not None:
                self._expiry.cancel()


def average_cost(steady: float, read: float, interval: float, refresh: float) -> float:
    """Requests a poll costs on average: a steady poll's, and a read of the breakdown's as
    often as ``refresh`` comes round (every poll when it is no longer than ``interval``).

    >>> average_cost(13, 524, 900, 86400)  # 10 teams x 50 projects, the defaults
    18.458333333333332
    """
    share = 1.0 if refresh <= interval else interval / refresh
    return steady + read * share


def budget_interval(cost: float, budget: int) -> float:
    """The shortest interval at which polls of ``cost`` requests keep within ``budget``
    requests an hour."""
    return 3600.0 * cost / budget


async def _sleep_or_stop(seconds: float, stop: asyncio.Event) -> bool:
    """Sleep; True when ``stop`` was set first."""
    try:
        async with asyncio.timeout(seconds):
            await stop.wait()
    except TimeoutError:
        return False
    return True
