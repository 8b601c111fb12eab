"""``northflank-exporter check [--json]``: asks the account once what the exporter depends
on, and says what it found, one line per point, in a form to paste into a public issue.

Against the demo (``northflank-exporter check --demo``), current contract, cut at 88
columns (the README has it whole)::

    ok    token      an org token (sim-org), expires 2027-03-02T02:53Z (in 90 days); bil...
    ok    invoices   current contract; 3 on the first page (paging: pagination{count, cur...
    ok    invoice    inv-2026-11 unfiltered: current contract, starts at teams, 4 teams; ...
    ok    usage      granularity=total taken; the newest hourly entry starts at 2026-12-0...
    ok    credit     a credit balance (usd)
    ok    ratelimit  limit 1000, 992 remaining, resets in 3600 s; depth resource here: a ...
    ok: the exporter can read this account (6 ok, 0 warn, 0 fail; 8 requests)

The requests, one after the other, through the poll's own client, billing calls and
readers (:class:`~exporter.api.billing.Billing`: one billing contract for the run, as
for a poll), at most :data:`MAX_REQUESTS`, never waiting for the rate-limit window:
``GET /v1/auth``; the invoice list's first page; the newest invoice (or
``NORTHFLANK_INVOICE_ID``) unfiltered; the usage of the running hour with
``granularity=total``, and hour by hour over the last six; the credit balance (current
contract); then one team's ``teamId`` answer (its projects, to count what a read costs)
and one of its projects' (the resource types). What each answer means is
:mod:`exporter.check_points`'s.

Exit status: 0 when every point is ``ok`` or ``warn``, 1 when one is ``fail``, 2 on a
bad setting (one line).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from exporter import __version__
from exporter.api import model
from exporter.api.billing import Billing
from exporter.api.client import Client, RetryPolicy
from exporter.api.errors import ApiError, AuthError, InvalidResponseError, first_api_error
from exporter.api.model import NO_PRICE, Team
from exporter.check_points import (
    Cost,
    Point,
    Report,
    cost,
    credit_point,
    failed,
    invoice_point,
    is_refusal,
    list_point,
    not_checked,
    ratelimit_point,
    token_failed,
    token_point,
    usage_point,
)
from exporter.drill import drill, of_invoice, project_types
from exporter.fetch import newest_invoice, running_end
from exporter.logs import configure
from exporter.settings import Settings, SettingsError, parse
from exporter.unbilled import HOUR

PROG = "northflank-exporter check"
MAX_REQUESTS = 10
HOURS_BACK = 6  # the hourly usage asked for
USAGE = (
    "usage: northflank-exporter check [--json] [--demo [--demo-contract legacy]] [settings flags]"
)
T = TypeVar("T")


def main(argv: Sequence[str]) -> int:
    """The command: parse, ask, print; the exit status."""
    args = list(argv)
    if "-h" in args or "--help" in args:
        print(USAGE + "\nSettings as for the exporter: NORTHFLANK_* variables, or their flags.")
        return 0
    as_json = "--json" in args
    args = [arg for arg in args if arg != "--json"]
    from exporter.cli import DEMO_DEFAULTS, start_demo

    try:
        for flag in ("--once", "--version"):
            if flag in args:
                raise SettingsError(f"{flag}: not a check flag")
        invocation = parse(args, demo_overrides=DEMO_DEFAULTS)
    except SettingsError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    settings = invocation.settings
    configure(settings.log_level, settings.log_format)
    simulator = None
    if invocation.demo:
        simulator = start_demo(invocation.demo_contract)
        settings = settings.model_copy(update={"api_url": simulator.url})
    try:
        report = asyncio.run(run(settings))
    finally:
        if simulator is not None:
            simulator.stop()
    sys.stdout.write(report.json() if as_json else report.text())
    sys.stdout.flush()
    return report.exit_code


async def run(settings: Settings, client: Client | None = None) -> Report:
    """Every point, asked of the API ``settings`` name (or through ``client``)."""
    own = client is None
    if client is None:
        client = Client(
            settings.api_url,
            settings.token(),
            timeout=settings.request_timeout_seconds,
            max_concurrency=1,
            retry=RetryPolicy(retries=1),
            reserve=settings.ratelimit_reserve,
        )
    try:
        return await Check(settings, client).points()
    finally:
        if own:
            await client.aclose()


@dataclass
class Check:
    """One run: the requests in order, and what each answer became."""

    settings: Settings
    client: Client
    bodies: dict[str, Any] = field(default_factory=dict)  # endpoint -> its last answer
    _hinted: bool = False  # a 401 or 403 said what to check

    def __post_init__(self) -> None:
        self.client.limits.cap = MAX_REQUESTS
        self.client.limits.max_wait = 0.0  # never wait for the window: say so instead
        self.client.on_answer = self._answer
        self.billing = Billing(self.client, self.settings.contracts())

    def _answer(self, endpoint: str, body: Any) -> None:
        self.bodies[endpoint] = body

    def _failed(self, name: str, error: ApiError, *, hard: bool = True) -> Point:
        """:func:`~exporter.check_points.failed`, what to check said once a report."""
        point = failed(name, error, self.bodies, hard=hard, hint=not self._hinted)
        self._hinted = self._hinted or isinstance(error, AuthError)
        return point

    async def points(self) -> Report:
        token, token_error = await attempt(self.billing.token())
        now = self.client.api_time()
        first = self._token(token, token_error, now)
        listed, list_error = await attempt(self.billing.invoices(newest_only=True))
        pagination = _pagination(self.bodies.get("list_invoices"))
        invoices, newest = self._list(listed, list_error, pagination)
        invoice_id = self.settings.invoice_id or (newest.id if newest else None)
        invoice, invoice_error = (None, None)
        if invoice_id is not None and (listed is not None or self.settings.invoice_id):
            invoice, invoice_error = await attempt(self.billing.invoice(invoice_id))
        usage = await self._usage()
        credit = await self._credit(token)
        breakdown, spent = await self._breakdown(invoice_id, invoice, invoice_error, token)
        if breakdown is None:
            why = "the invoice list failed" if list_error is not None else "no invoice to read"
            breakdown = not_checked("invoice", why)
        limit = self.client.stats
        reset = limit.ratelimit_reset_at
        rate = ratelimit_point(
            self.settings,
            limit.ratelimit_limit,
            limit.ratelimit_remaining,
            None if reset is None else max(0.0, reset - self.client.limits.clock()),
            spent,
        )
        points = (first, invoices, breakdown, usage, credit, rate)
        return Report(points, self.client.stats.total, __version__)

    # ----------------------------------------------------------------- the points

    def _token(self, token: model.Token | None, error: ApiError | None, now: float) -> Point:
        if error is not None:
            return token_failed(error, self.bodies)
        assert token is not None
        return token_point(token, now)

    def _list(
        self,
        listed: model.InvoiceList | None,
        error: ApiError | None,
        pagination: dict[str, Any] | None,
    ) -> tuple[Point, model.InvoiceEntry | None]:
        if error is not None or listed is None:
            assert error is not None
            return self._failed("invoices", error), None
        try:
            newest = newest_invoice(listed).entry if listed.entries else None
        except InvalidResponseError as exc:
            return self._failed("invoices", exc), None
        return list_point(listed, pagination, newest, self.settings.invoice_id), newest

    async def _usage(self) -> Point:
        hard = self.settings.unbilled  # a poll fails with it
        end = running_end(self.client.api_time())
        total, error = await attempt(self.billing.usage(end - HOUR, end=end, total=True))
        refused = error is not None and is_refusal(error)
        if error is not None and not refused:
            return self._failed("usage", error, hard=hard)
        hourly, error = await attempt(self.billing.usage(end - HOURS_BACK * HOUR))
        if error is not None or hourly is None:
            assert error is not None
            return self._failed("usage", error, hard=hard)
        return usage_point(
            total, refused, hourly, self.client.api_time(), unbilled=self.settings.unbilled
        )

    async def _credit(self, token: model.Token | None) -> Point:
        contract = self.billing.contract
        if contract is None:
            return not_checked("credit", "no answer told the billing contract")
        if contract == model.LEGACY:
            return credit_point(None, None, contract)
        team = token.entity_id if token and token.entity_type == "team" else None
        found, error = await attempt(self.billing.credit(team))
        return credit_point(found, error, contract)

    async def _breakdown(
        self,
        invoice_id: str | None,
        invoice: model.Invoice | None,
        error: ApiError | None,
        token: model.Token | None,
    ) -> tuple[Point | None, Cost | None]:
        """The invoice point, with one team's and one project's answers; what a read
        costs here."""
        if invoice_id is None or (invoice is None and error is None):
            return None, None
        if error is not None or invoice is None:
            assert error is not None
            return self._failed("invoice", error), None
        view = self.settings.view
        single = invoice.teams is None
        if single:
            owner = token.entity_id if token and token.entity_type == "team" else None
            paas = invoice.paas or NO_PRICE
            teams = [Team(owner or "the token's team", "", paas, invoice.projects)]
        else:
            teams = [team for team in invoice.teams or () if view.includes(team.id)]
        team_calls = sum(team.projects is None for team in teams)
        sampled = max(teams, key=lambda team: team.price.total or 0.0, default=None)
        projects: tuple[model.Project, ...] | None = None
        types: list[str] | None = None
        sample_error = None
        if sampled is not None:
            projects, types, sample_error = await self._sample(invoice_id, sampled, single)
        known = single or all(team.projects is not None for team in teams)
        if known:
            counted = sum(len(team.projects or ()) for team in teams)
        else:
            counted = len(projects or ()) * len(teams)
        point = invoice_point(invoice, len(teams), types, sampled.id if sampled else None)
        if sample_error is not None:
            broken = self._failed("invoice", sample_error)
            point = Point("invoice", broken.status, f"{point.says}; {broken.says}", point.facts)
        spent = cost(
            self.settings,
            teams=len(teams),
            team_calls=team_calls,
            projects=counted,
            estimated=not known and len(teams) > 1,
            single=single,
            credit=invoice.contract == model.CURRENT,
        )
        return point, spent

    async def _sample(
        self, invoice_id: str, team: Team, single: bool
    ) -> tuple[tuple[model.Project, ...] | None, list[str] | None, ApiError | None]:
        """One team's projects (its ``teamId`` answer) and the resource types of the
        largest of them (its ``projectId`` answer)."""
        try:
            ask = of_invoice(self.billing, invoice_id)
            read = await drill(ask, team, depth="project", shape=None, single=single)
            projects = (read.answer or team).projects or ()
            largest = max(projects, key=lambda p: p.price.total or 0.0, default=None)
            if largest is None:
                return projects, None, None
            scope = None if single else team.id
            kinds = await project_types(ask, team, scope, largest.id)
        except Exception as exc:  # an ApiError, maybe in an exception group
            error = first_api_error(exc)
            if error is None:
                raise
            return None, None, error
        return projects, [kind.resource_type for kind in kinds], None


async def attempt(call: Awaitable[T]) -> tuple[T | None, ApiError | None]:
    """An answer, or the API error it ended in."""
    try:
        return await call, None
    except ApiError as error:
        return None, error


def _pagination(body: Any) -> dict[str, Any] | None:
    found = body.get("pagination") if isinstance(body, dict) else None
    return found if isinstance(found, dict) else None
