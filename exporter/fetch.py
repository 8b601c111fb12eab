"""One poll's requests: what a :class:`Plan` asks for, concurrently, as typed :class:`Answers`.

The order, per the contract's "How a poll reads the invoice":

1. the invoice list (``GET /v1/billing/invoices``), when no invoice is pinned or when
   spend not yet invoiced is on: the newest invoice (:class:`NewestInvoice`);
2. that invoice (or the pinned one), unfiltered: totals and every team's total;
3. at depth ``project`` or deeper, each wanted team's ``teamId`` answer (its projects),
   unless the unfiltered answer already holds them (a one-team invoice);
4. at depth ``resource``, each team's resource types and resources, the cheaper way
   (:class:`TeamShape`, from what the last good poll learnt; ties and first polls go to
   project calls): one ``projectId`` call per project, or one ``teamId`` +
   ``resourceType`` call per type the team used, checked in the same poll (each
   project's total must equal the sum of its type slices within half a cent; a project
   that does not add up gets a ``projectId`` call). Answers become snapshot figures as
   they arrive (500 answers are not held as models);
5. with unbilled on, the usage since the window's start (org-wide and each wanted team),
   summed into the next :class:`~exporter.unbilled.UsageSums`.

The answers are a :class:`~exporter.snapshot.Answers`, what ``snapshot.build`` takes.

Steps 3 to 5 run together; each team's project calls start as soon as its answer
arrives. Every task returns its answer: nothing is shared and written to.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from exporter import models
from exporter.client import Client, counting
from exporter.errors import InvalidResponseError
from exporter.paging import PER_PAGE
from exporter.settings import Settings, View
from exporter.snapshot import Answers, NewestInvoice, ResourceTypes, resource_types
from exporter.unbilled import UsageSums, advance, restart_if_needed


@dataclass(frozen=True)
class Plan:
    """What one poll asks for."""

    view: View  # which teams to drill, how deep, the amount unit
    invoice_id: str | None = None  # pinned (NORTHFLANK_INVOICE_ID); None: the newest
    unbilled: bool = True
    usage: UsageSums | None = None  # what earlier polls summed of the usage
    shapes: Mapping[str, TeamShape] = field(default_factory=dict)  # learnt in the last good poll

    @classmethod
    def of(
        cls,
        settings: Settings,
        usage: UsageSums | None = None,
        shapes: Mapping[str, TeamShape] | None = None,
    ) -> Plan:
        return cls(settings.view, settings.invoice_id, settings.unbilled, usage, shapes or {})

    @property
    def reads_list(self) -> bool:
        return self.invoice_id is None or self.unbilled


def newest_invoice(invoices: list[models.InvoiceSummary]) -> NewestInvoice:
    """The invoice that ends last (the list's order is not guaranteed); see
    :attr:`~exporter.models.InvoiceSummary.rank`."""
    dated = [inv for inv in invoices if inv.period and inv.period.end]
    if not dated:
        raise InvalidResponseError("list_invoices", "no invoice with a period end to pick")
    end, _, invoice_id = max(inv.rank for inv in dated)
    return NewestInvoice(invoice_id, end)


async def fetch(client: Client, plan: Plan) -> Answers:
    """Every request of one poll; raises one :class:`~exporter.errors.ApiError` (maybe in
    an exception group) when any of them failed for good."""
    newest = newest_invoice(await client.list_invoices()) if plan.reads_list else None
    invoice_id = plan.invoice_id or (newest.id if newest else "")
    invoice = await client.get_invoice(invoice_id)
    teams = [team for team in invoice.teams if plan.view.includes(team.id)]
    usage = None
    if plan.unbilled and newest is not None:
        usage = restart_if_needed(plan.usage, newest.id, newest.period_end)
    drilled: list[asyncio.Task[TeamRead]] = []
    async with asyncio.TaskGroup() as group:
        if plan.view.depth != "team":
            drilled = [group.create_task(_drill(client, plan, invoice_id, t)) for t in teams]
        if usage is not None:
            org_usage = group.create_task(client.list_usage(usage.org_start()))
            team_usage = {
                t.id: group.create_task(client.list_usage(usage.team_start(t.id), team_id=t.id))
                for t in teams
            }
    team_answers: dict[str, models.Team] = {}
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
        by_team = {team_id: task.result() for team_id, task in team_usage.items()}
        usage = advance(usage, usage.invoice_id, usage.since, org_usage.result(), by_team)
    return Answers(newest, invoice, team_answers, project_answers, usage, spent)


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

    answer: models.Team | None  # None when the unfiltered answer held its projects
    projects: dict[str, ResourceTypes]
    by_project: int = 0  # requests of projectId calls
    by_type: int = 0  # requests of teamId + resourceType calls


async def _drill(client: Client, plan: Plan, invoice_id: str, team: models.Team) -> TeamRead:
    """A team's ``teamId`` answer (when the unfiltered one lacks its projects) and, at depth
    ``resource``, its projects' resource types: by type when that is cheaper and every
    project adds up (the type calls run beside the ``teamId`` call), by project for the
    rest."""
    shape = plan.shapes.get(team.id)
    by_types = plan.view.depth == "resource" and shape is not None and shape.by_types
    async with asyncio.TaskGroup() as group:
        asked = None
        if team.projects is None:  # the unfiltered answer holds them only for a one-team invoice
            asked = group.create_task(client.get_invoice(invoice_id, team_id=team.id))
        sliced = None
        if by_types and shape is not None:
            sliced = group.create_task(_type_slices(client, plan, invoice_id, team.id, shape))
    answer = _find_team(asked.result(), team.id) if asked is not None else None
    projects = (answer or team).projects or []
    if plan.view.depth != "resource":
        return TeamRead(answer, {})
    figures: dict[str, ResourceTypes] = {}
    by_type = 0
    if sliced is not None:
        slices, by_type = sliced.result()
        figures = _adding_up(projects, slices, plan.view.amount_unit)
    rest = [project.id for project in projects if project.id not in figures]
    with counting() as spent:
        async with asyncio.TaskGroup() as group:
            tasks = {
                project_id: group.create_task(
                    _project(client, plan, invoice_id, team.id, project_id)
                )
                for project_id in rest
            }
    figures.update((project_id, task.result()) for project_id, task in tasks.items())
    return TeamRead(answer, figures, spent.requests, by_type)


Slices = dict[str, list[tuple[float, ResourceTypes]]]  # project -> (slice total, its types)


async def _type_slices(
    client: Client, plan: Plan, invoice_id: str, team_id: str, shape: TeamShape
) -> tuple[Slices, int]:
    """Each project's slice of each type the team used (``teamId`` + ``resourceType``),
    and the requests that took."""
    with counting() as spent:
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(
                    client.get_invoice(invoice_id, team_id=team_id, resource_type=kind)
                )
                for kind, _ in shape.types
            ]
    slices: Slices = {}
    for (kind, _), task in zip(shape.types, tasks, strict=True):
        for project in _find_team(task.result(), team_id).projects or ():
            price = project.price.total if project.price else None
            types = tuple(
                t for t in resource_types(project, plan.view.amount_unit) if t.resource_type == kind
            )
            slices.setdefault(project.id, []).append((price or 0.0, types))
    return slices, spent.requests


def _adding_up(
    projects: list[models.Project], slices: Slices, amount_unit: str
) -> dict[str, ResourceTypes]:
    """Resource types of the projects whose type slices add up to their total (less than
    half a cent apart); a project that does not add up (a type it had not used before,
    or one we do not know) is left out, for a ``projectId`` call."""
    half_cent = 0.5 if amount_unit == "cents" else 0.005
    figures: dict[str, ResourceTypes] = {}
    for project in projects:
        total = project.price.total if project.price else None
        parts = slices.get(project.id, [])
        # Strictly less: a slice off by half a cent or more is never taken.
        if total is not None and abs(total - math.fsum(p for p, _ in parts)) < half_cent:
            figures[project.id] = tuple(kind for _, types in parts for kind in types)
    return figures


async def _project(
    client: Client, plan: Plan, invoice_id: str, team_id: str, project_id: str
) -> ResourceTypes:
    answer = await client.get_invoice(invoice_id, team_id=team_id, project_id=project_id)
    team = _find_team(answer, team_id)
    project = next((p for p in team.projects or () if p.id == project_id), None)
    if project is None:
        raise InvalidResponseError("get_invoice", f"project {project_id} missing from its answer")
    return resource_types(project, plan.view.amount_unit)


def _find_team(answer: models.Invoice, team_id: str) -> models.Team:
    for team in answer.teams:
        if team.id == team_id:
            return team
    raise InvalidResponseError("get_invoice", f"team {team_id} missing from its own answer")
