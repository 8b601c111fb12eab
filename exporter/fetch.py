"""One poll's requests: what a :class:`Plan` asks for, concurrently, as typed :class:`Answers`.

The order, per the contract's "How a poll reads the invoice":

1. the invoice list (``GET /v1/billing/invoices``; a current answer's first page, which
   lists newest first), when no invoice is pinned or when spend not yet invoiced is on:
   the newest invoice (:class:`NewestInvoice`) and its list entry;
2. a finalized invoice's figures do not change: when the plan knows the last read of
   this invoice (:class:`~exporter.snapshot.Read`), its list entry is unchanged in all
   but the payment status (a pinned invoice: whatever it says) and the read is not due
   by age, the breakdown is not read again (``Answers.invoice`` None);
3. otherwise that invoice, unfiltered: totals and every team's total. An answer that
   starts at the project level is a single-team token's: its team is the token's
   (``GET /v1/auth``, asked when the plan does not know it yet), its name from
   ``GET /v1/teams/{id}`` where the token may read it, and no ``teamId`` is sent; then
   each wanted team's projects and resources (:func:`exporter.drill.drill`);
4. with unbilled on, the usage since the window's start (org-wide and each wanted team):
   the API's own sum of the window where it offers one (``granularity=total``), else
   hourly entries, summed into the next :class:`~exporter.unbilled.UsageSums`.

The credit balance, when the plan says it is due, is asked beside all of it from the
start (its failure costs no poll: :attr:`Answers.credit_error`).

The answers are a :class:`~exporter.snapshot.Answers`, what ``snapshot.build`` (or, for a
poll that read no breakdown, ``snapshot.keep``) takes; the one
:class:`~exporter.api.billing.Billing` of the poll makes sure they are all in one
contract. The drilling and the usage run together; each team's project calls start as
soon as its answer arrives. Every task returns its answer: nothing is shared and
written to.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from exporter.api import model
from exporter.api.billing import Billing
from exporter.api.client import counting
from exporter.api.errors import ApiError, HttpStatusError, InvalidResponseError
from exporter.api.model import NO_PRICE, Team
from exporter.drill import TeamRead, TeamShape, drill, of_invoice
from exporter.settings import Settings, View
from exporter.snapshot import Answers, NewestInvoice, Read, ResourceTypes
from exporter.unbilled import HOUR, Answer, Hours, UsageSums, advance, restart_if_needed


@dataclass(frozen=True)
class Plan:
    """What one poll asks for."""

    view: View  # which teams to drill, how deep
    invoice_id: str | None = None  # pinned (NORTHFLANK_INVOICE_ID); None: the newest
    unbilled: bool = True
    usage: UsageSums | None = None  # what earlier polls summed of the usage
    shapes: Mapping[str, TeamShape] = field(default_factory=dict)  # learnt in the last read
    token: model.Token | None = None  # the token's owner, once known
    team_names: Mapping[str, str] = field(default_factory=dict)  # a single team's, once known
    credit: bool = False  # ask for the credit balance
    known: Read | None = None  # the last read of the breakdown
    refresh: bool = False  # read the breakdown again whatever the list says (by age)

    @classmethod
    def of(
        cls,
        settings: Settings,
        *,
        usage: UsageSums | None = None,
        shapes: Mapping[str, TeamShape] | None = None,
        token: model.Token | None = None,
        team_names: Mapping[str, str] | None = None,
        credit: bool = False,
        known: Read | None = None,
        refresh: bool = False,
    ) -> Plan:
        return cls(
            settings.view,
            settings.invoice_id,
            settings.unbilled,
            usage,
            shapes or {},
            token,
            team_names or {},
            credit,
            known,
            refresh,
        )

    @property
    def reads_list(self) -> bool:
        return self.invoice_id is None or self.unbilled

    @property
    def token_team(self) -> str | None:
        """The token's team, when it is known to be a team's (its billing paths)."""
        token = self.token
        return token.entity_id if token and token.entity_type == "team" else None

    def keeps(self, invoice_id: str, entry: model.InvoiceEntry | None) -> bool:
        """Whether the breakdown last read stands: the same invoice, not due by age, and
        its list entry the same but for the payment status (a pinned one: by age only)."""
        known = self.known
        if known is None or self.refresh or known.invoice.id != invoice_id:
            return False
        if self.invoice_id is not None:
            return True
        return entry is not None and known.entry is not None and entry.same_figures(known.entry)


def newest_invoice(listing: model.InvoiceList) -> NewestInvoice:
    """The invoice that ends last (a legacy list's order is not guaranteed); see
    :attr:`~exporter.api.model.InvoiceEntry.rank`."""
    dated = [entry for entry in listing.entries if entry.period_end]
    if not dated:
        raise InvalidResponseError("list_invoices", "no invoice with a period end to pick")
    newest = max(dated, key=lambda entry: entry.rank)
    return NewestInvoice(newest.id, newest.period_end or 0.0, newest)


def running_end(now: float) -> float:
    """The end of the hour running at ``now`` (the API's clock)."""
    return (math.floor(now / HOUR) + 1) * HOUR


async def fetch(billing: Billing, plan: Plan) -> Answers:
    """Every request of one poll; raises one :class:`~exporter.api.errors.ApiError` (maybe
    in an exception group) when any of them failed for good."""
    async with asyncio.TaskGroup() as group:
        # the credit balance beside the rest, on a single team's path once the token is known
        credit = group.create_task(_credit(billing, plan.token_team)) if plan.credit else None
        answers = await _read(billing, plan)
    found, credit_error = credit.result() if credit is not None else (None, None)
    return dataclasses.replace(answers, credit=found, credit_error=credit_error)


async def _read(billing: Billing, plan: Plan) -> Answers:
    listing = await billing.invoices(newest_only=True) if plan.reads_list else None
    newest = newest_invoice(listing) if listing is not None else None
    invoice_id = plan.invoice_id or (newest.id if newest else "")
    entry = next((e for e in listing.entries if e.id == invoice_id), None) if listing else None
    usage = None
    if plan.unbilled and newest is not None:
        usage = restart_if_needed(plan.usage, newest.id, newest.period_end)
    if plan.keeps(invoice_id, entry):
        known = plan.known
        assert known is not None  # keeps() says so
        if usage is not None:
            usage = await _usage(billing, usage, list(known.team_names), single=known.single)
        return Answers(
            newest, None, {}, {}, usage, {}, entry, billing.contract, single=known.single
        )
    with counting() as unfiltered:
        invoice = await billing.invoice(invoice_id)
        token = None
        single = invoice.teams is None
        if single:  # a single-team token's answer: it starts at the team's projects
            token = plan.token or await billing.token()
            team = await _token_team(billing, plan, invoice, token)
            invoice = dataclasses.replace(invoice, teams=(team,), projects=None)
    teams = [team for team in invoice.teams or () if plan.view.includes(team.id)]
    drilled: list[asyncio.Task[TeamRead]] = []
    async with asyncio.TaskGroup() as group:
        with counting() as drilling:
            if plan.view.depth != "team":
                drilled = [
                    group.create_task(
                        drill(
                            of_invoice(billing, invoice_id),
                            team,
                            depth=plan.view.depth,
                            shape=plan.shapes.get(team.id),
                            single=single,
                        )
                    )
                    for team in teams
                ]
        summed = None
        if usage is not None:
            summed = group.create_task(_usage(billing, usage, [t.id for t in teams], single=single))
    team_answers: dict[str, Team] = {}
    project_answers: dict[tuple[str, str], ResourceTypes] = {}
    spent = {"by_project": 0, "by_type": 0, "teams_by_type": 0}
    for team, task in zip(teams, drilled, strict=False):
        read = task.result()
        if read.answer is not None:
            team_answers[team.id] = read.answer
        project_answers.update(((team.id, pid), types) for pid, types in read.projects.items())
        spent["by_project"] += read.by_project
        spent["by_type"] += read.by_type
        spent["teams_by_type"] += read.by_type > 0
    spent["breakdown_requests"] = unfiltered.requests + drilling.requests
    return Answers(
        newest,
        invoice,
        team_answers,
        project_answers,
        summed.result() if summed is not None else None,
        spent,
        entry,
        contract=billing.contract,
        token=token,
        single=single,
    )


async def _token_team(
    billing: Billing, plan: Plan, invoice: model.Invoice, token: model.Token
) -> Team:
    """The one team of a single-team token's answer: the token's, named where it may."""
    if token.entity_type != "team" or not token.entity_id:
        raise InvalidResponseError(
            "get_invoice",
            "the answer starts at projects (a single team's), but GET /v1/auth says the "
            f"token is {token.entity_type or 'nobody'}'s, not a team's",
        )
    team_id = token.entity_id
    name = plan.team_names.get(team_id)
    if name is None:
        try:
            name = (await billing.team(team_id)).name
        except ApiError:  # the token may not read teams: its ID is the name then
            name = team_id
    return Team(team_id, name, invoice.paas or NO_PRICE, invoice.projects)


async def _usage(
    billing: Billing, usage: UsageSums, team_ids: Sequence[str], *, single: bool
) -> UsageSums:
    """The usage since the window's start, org-wide and per team (a single team's org-wide
    usage is its own: no team call), summed into the next sums."""
    totals = billing.offers_totals and usage.totals_due(billing.client.api_time())
    end = running_end(billing.client.api_time())
    async with asyncio.TaskGroup() as group:
        org_task = group.create_task(_series(billing, usage.paas_hours, None, totals, end))
        team_tasks = {
            team_id: group.create_task(
                _series(billing, usage.team_series(team_id), team_id, totals, end)
            )
            for team_id in ([] if single else team_ids)
        }
    org, refused = org_task.result()
    by_team = {team_id: task.result()[0] for team_id, task in team_tasks.items()}
    if single:
        by_team = {team_id: org for team_id in team_ids}
    summed = advance(usage, usage.invoice_id, usage.since, org, by_team)
    if refused or any(task.result()[1] for task in team_tasks.values()):
        summed = summed.refused(billing.client.api_time())
    return summed


async def _series(
    billing: Billing, hours: Hours, team_id: str | None, totals: bool, end: float
) -> tuple[Answer, bool]:
    """One series' usage answer, and whether the server refused ``granularity=total``
    (then asked again hourly, in the same poll)."""
    if totals:
        try:
            found = await billing.usage(hours.since, end=end, team_id=team_id, total=True)
        except HttpStatusError as error:
            if error.status != 400:
                raise
        else:
            return Answer(found.entries, end if found.total else None), False
        answer = await billing.usage(hours.ask_from(), team_id=team_id)
        return Answer(answer.entries), True
    answer = await billing.usage(hours.ask_from(), team_id=team_id)
    return Answer(answer.entries), False


async def _credit(
    billing: Billing, team_id: str | None
) -> tuple[model.Credit | None, ApiError | None]:
    """The credit balance, or what went wrong (which costs no poll)."""
    try:
        return await billing.credit(team_id), None
    except ApiError as error:
        return None, error
