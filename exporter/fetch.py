"""One poll's requests: what a :class:`Plan` asks for, concurrently, as typed :class:`Answers`.

The order, per the contract's "How a poll reads the invoice":

1. the invoice list (``GET /v1/billing/invoices``), when no invoice is pinned or when
   spend not yet invoiced is on: the newest invoice (:class:`NewestInvoice`);
2. that invoice (or the pinned one), unfiltered: totals and every team's total. An
   answer that starts at the project level is a single-team token's: its team is the
   token's (``GET /v1/auth``, asked when the plan does not know it yet), its name from
   ``GET /v1/teams/{id}`` where the token may read it, and no ``teamId`` is sent;
3. at depth ``project`` or deeper, each wanted team's ``teamId`` answer (its projects),
   unless the unfiltered answer already holds them (a one-team invoice);
4. at depth ``resource``, each team's resource types and resources, the cheaper way
   (:class:`TeamShape`, from what the last good poll learnt; ties and first polls go to
   project calls): one ``projectId`` call per project, or one ``teamId`` +
   ``resourceType`` call per type the team used, checked in the same poll (each
   project's total must equal the sum of its type slices within half a cent; a project
   that does not add up gets a ``projectId`` call);
5. with unbilled on, the usage since the window's start (org-wide and each wanted team):
   the API's own sum of the window where it offers one (``granularity=total``), else
   hourly entries, summed into the next :class:`~exporter.unbilled.UsageSums`.

The credit balance, when the plan says it is due, is asked beside all of it from the
start (its failure costs no poll: :attr:`Answers.credit_error`).

The answers are a :class:`~exporter.snapshot.Answers`, what ``snapshot.build`` takes;
the one :class:`~exporter.api.billing.Billing` of the poll makes sure they are all in
one contract. Steps 3 to 5 run together; each team's project calls start as soon as its
answer arrives. Every task returns its answer: nothing is shared and written to.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from exporter.api import model
from exporter.api.billing import Billing
from exporter.api.client import counting
from exporter.api.contract import PER_PAGE
from exporter.api.errors import ApiError, HttpStatusError, InvalidResponseError
from exporter.api.model import NO_PRICE, Team
from exporter.settings import Settings, View
from exporter.snapshot import Answers, NewestInvoice, ResourceTypes
from exporter.unbilled import HOUR, Answer, Hours, UsageSums, advance, restart_if_needed


@dataclass(frozen=True)
class Plan:
    """What one poll asks for."""

    view: View  # which teams to drill, how deep
    invoice_id: str | None = None  # pinned (NORTHFLANK_INVOICE_ID); None: the newest
    unbilled: bool = True
    usage: UsageSums | None = None  # what earlier polls summed of the usage
    shapes: Mapping[str, TeamShape] = field(default_factory=dict)  # learnt in the last good poll
    token: model.Token | None = None  # the token's owner, once known
    team_names: Mapping[str, str] = field(default_factory=dict)  # a single team's, once known
    credit: bool = False  # ask for the credit balance

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
        )

    @property
    def reads_list(self) -> bool:
        return self.invoice_id is None or self.unbilled

    @property
    def token_team(self) -> str | None:
        """The token's team, when it is known to be a team's (its billing paths)."""
        token = self.token
        return token.entity_id if token and token.entity_type == "team" else None


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
    newest = newest_invoice(await billing.invoices()) if plan.reads_list else None
    invoice_id = plan.invoice_id or (newest.id if newest else "")
    invoice = await billing.invoice(invoice_id)
    token = None
    single = invoice.teams is None
    if single:  # a single-team token's answer: it starts at the team's projects
        token = plan.token or await billing.token()
        invoice = dataclasses.replace(
            invoice, teams=(await _token_team(billing, plan, invoice, token),), projects=None
        )
    teams = [team for team in invoice.teams or () if plan.view.includes(team.id)]
    usage = None
    if plan.unbilled and newest is not None:
        usage = restart_if_needed(plan.usage, newest.id, newest.period_end)
    drilled: list[asyncio.Task[TeamRead]] = []
    team_usage: dict[str, asyncio.Task[tuple[Answer, bool]]] = {}
    async with asyncio.TaskGroup() as group:
        if plan.view.depth != "team":
            drilled = [
                group.create_task(_drill(billing, plan, invoice_id, t, single)) for t in teams
            ]
        if usage is not None:
            totals = billing.offers_totals and usage.totals_due(billing.client.api_time())
            end = running_end(billing.client.api_time())
            org_usage = group.create_task(_usage(billing, usage.paas_hours, None, totals, end))
            if not single:  # a single team's org-wide usage is its own
                team_usage = {
                    t.id: group.create_task(
                        _usage(billing, usage.team_series(t.id), t.id, totals, end)
                    )
                    for t in teams
                }
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
    if usage is not None:
        org, refused = org_usage.result()
        by_team = {team_id: task.result()[0] for team_id, task in team_usage.items()}
        if single and teams:
            by_team = {teams[0].id: org}
        usage = advance(usage, usage.invoice_id, usage.since, org, by_team)
        if refused or any(task.result()[1] for task in team_usage.values()):
            usage = usage.refused(billing.client.api_time())
    return Answers(
        newest,
        invoice,
        team_answers,
        project_answers,
        usage,
        spent,
        contract=billing.contract,
        token=token,
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


@dataclass(frozen=True)
class TeamShape:
    """What a team's resource figures held in the last good poll: the cost of each way
    to read them at depth ``resource``.

    >>> shape = TeamShape(types=(("service", 60), ("addon", 12)), projects=(24, 24, 24))
    >>> (shape.project_calls, shape.type_calls, shape.by_types)
    (3, 2, True)
    """

    types: tuple[tuple[str, int], ...]  # each resource type, first seen first, and its resources
    projects: tuple[int, ...]  # resources in each project

    @property
    def project_calls(self) -> int:
        return sum(_pages(count) for count in self.projects)

    @property
    def type_calls(self) -> int:
        return sum(_pages(count) for _, count in self.types)

    @property
    def by_types(self) -> bool:
        """Fewer requests by type than by project (ties go to project calls)."""
        return self.type_calls < self.project_calls


def _pages(entries: int) -> int:
    return max(1, -(-entries // PER_PAGE))


def learn(answers: Answers) -> dict[str, TeamShape]:
    """Each team's shape, from one poll's resource figures (depth ``resource`` only)."""
    types: dict[str, dict[str, int]] = {}
    projects: dict[str, list[int]] = {}
    for (team_id, _), kinds in answers.projects.items():
        seen = types.setdefault(team_id, {})
        for kind in kinds:
            seen[kind.resource_type] = seen.get(kind.resource_type, 0) + len(kind.resources)
        projects.setdefault(team_id, []).append(sum(len(kind.resources) for kind in kinds))
    return {
        team_id: TeamShape(tuple(types[team_id].items()), tuple(counts))
        for team_id, counts in projects.items()
    }


@dataclass(frozen=True)
class TeamRead:
    """One team's part of a poll: its ``teamId`` answer, its projects' resource types, and
    the requests each way of reading cost."""

    answer: Team | None  # None when the unfiltered answer held its projects
    projects: dict[str, ResourceTypes]
    by_project: int = 0  # requests of projectId calls
    by_type: int = 0  # requests of teamId + resourceType calls


async def _drill(
    billing: Billing, plan: Plan, invoice_id: str, team: Team, single: bool
) -> TeamRead:
    """A team's ``teamId`` answer (when the unfiltered one lacks its projects) and, at depth
    ``resource``, its projects' resource types: by type when that is cheaper and every
    project adds up (the type calls run beside the ``teamId`` call), by project for the
    rest. A single-team token's calls carry no ``teamId``."""
    shape = plan.shapes.get(team.id)
    by_types = plan.view.depth == "resource" and shape is not None and shape.by_types
    scope = None if single else team.id
    async with asyncio.TaskGroup() as group:
        asked = None
        if team.projects is None:  # the unfiltered answer holds them only for a one-team invoice
            asked = group.create_task(billing.invoice(invoice_id, team_id=scope))
        sliced = None
        if by_types and shape is not None:
            sliced = group.create_task(_type_slices(billing, invoice_id, team, scope, shape))
    answer = _team_in(asked.result(), team) if asked is not None else None
    projects = (answer or team).projects or ()
    if plan.view.depth != "resource":
        return TeamRead(answer, {})
    figures: dict[str, ResourceTypes] = {}
    by_type = 0
    if sliced is not None:
        slices, by_type = sliced.result()
        figures = _adding_up(projects, slices)
    rest = [project.id for project in projects if project.id not in figures]
    with counting() as spent:
        async with asyncio.TaskGroup() as group:
            tasks = {
                project_id: group.create_task(
                    _project(billing, invoice_id, team, scope, project_id)
                )
                for project_id in rest
            }
    figures.update((project_id, task.result()) for project_id, task in tasks.items())
    return TeamRead(answer, figures, spent.requests, by_type)


Slices = dict[str, list[tuple[float, ResourceTypes]]]  # project -> (slice total, its types)


async def _type_slices(
    billing: Billing, invoice_id: str, team: Team, scope: str | None, shape: TeamShape
) -> tuple[Slices, int]:
    """Each project's slice of each type the team used (``teamId`` + ``resourceType``),
    and the requests that took."""
    with counting() as spent:
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(billing.invoice(invoice_id, team_id=scope, resource_type=kind))
                for kind, _ in shape.types
            ]
    slices: Slices = {}
    for (kind, _), task in zip(shape.types, tasks, strict=True):
        for project in _team_in(task.result(), team).projects or ():
            types = tuple(t for t in project.resource_types or () if t.resource_type == kind)
            slices.setdefault(project.id, []).append((project.price.total or 0.0, types))
    return slices, spent.requests


HALF_CENT = 0.005


def _adding_up(projects: tuple[model.Project, ...], slices: Slices) -> dict[str, ResourceTypes]:
    """Resource types of the projects whose type slices add up to their total (less than
    half a cent apart); a project that does not add up (a type it had not used before,
    or one we do not know) is left out, for a ``projectId`` call."""
    figures: dict[str, ResourceTypes] = {}
    for project in projects:
        total = project.price.total
        parts = slices.get(project.id, [])
        # Strictly less: a slice off by half a cent or more is never taken.
        if total is not None and abs(total - math.fsum(p for p, _ in parts)) < HALF_CENT:
            figures[project.id] = tuple(kind for _, types in parts for kind in types)
    return figures


async def _project(
    billing: Billing, invoice_id: str, team: Team, scope: str | None, project_id: str
) -> ResourceTypes:
    answer = await billing.invoice(invoice_id, team_id=scope, project_id=project_id)
    project = next((p for p in _team_in(answer, team).projects or () if p.id == project_id), None)
    if project is None:
        raise InvalidResponseError("get_invoice", f"project {project_id} missing from its answer")
    return project.resource_types or ()


def _team_in(answer: model.Invoice, team: Team) -> Team:
    """``team`` as a filtered answer shows it (a single-team token's: its projects)."""
    if answer.teams is None:
        return Team(team.id, team.name, answer.paas or NO_PRICE, answer.projects)
    for found in answer.teams:
        if found.id == team.id:
            return found
    raise InvalidResponseError("get_invoice", f"team {team.id} missing from its own answer")
