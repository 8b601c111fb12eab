"""How a poll reads a team at depth ``project`` and ``resource``: :func:`drill`.

Per the contract's "How a poll reads the invoice" (steps 3 to 5): a team's ``teamId``
answer (its projects), unless the unfiltered answer already holds them (a one-team
invoice); at depth ``resource``, its projects' resource types and resources, the cheaper
way (:class:`TeamShape`, learnt from the last read; ties and first reads go to project
calls): one ``projectId`` call per project, or one ``teamId`` + ``resourceType`` call per
type the team used, checked in the same poll (each project's total must equal the sum of
its type slices within half a cent; a project that does not add up gets a ``projectId``
call). Answers become snapshot figures as they arrive (500 answers are not held). A
single-team token's calls carry no ``teamId``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Protocol

from exporter.api import model
from exporter.api.billing import Billing
from exporter.api.client import counting
from exporter.api.contract import PER_PAGE
from exporter.api.errors import InvalidResponseError
from exporter.api.model import NO_PRICE, Team
from exporter.settings import Depth
from exporter.snapshot import ResourceTypes


class Breakdown(Protocol):
    """An answer broken down by team (``teams``), or from projects on (a single team's)."""

    @property
    def teams(self) -> tuple[Team, ...] | None: ...
    @property
    def projects(self) -> tuple[model.Project, ...] | None: ...
    @property
    def paas(self) -> model.Price | None: ...


class Ask(Protocol):
    """One breakdown request, unfiltered or filtered."""

    def __call__(
        self,
        *,
        team_id: str | None = None,
        project_id: str | None = None,
        resource_type: str | None = None,
    ) -> Awaitable[Breakdown]: ...


def of_invoice(billing: Billing, invoice_id: str) -> Ask:
    """Asks of an invoice: ``GET /v1/billing/invoices/{id}``."""

    async def ask(
        *,
        team_id: str | None = None,
        project_id: str | None = None,
        resource_type: str | None = None,
    ) -> Breakdown:
        return await billing.invoice(
            invoice_id, team_id=team_id, project_id=project_id, resource_type=resource_type
        )

    return ask


def of_hour(billing: Billing, timestamp: float) -> Ask:
    """Asks of one hour's usage: ``GET /v1/billing/usage/{timestamp}``."""

    async def ask(
        *,
        team_id: str | None = None,
        project_id: str | None = None,
        resource_type: str | None = None,
    ) -> Breakdown:
        return await billing.hour(
            timestamp, team_id=team_id, project_id=project_id, resource_type=resource_type
        )

    return ask


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


def learn(read: Mapping[tuple[str, str], ResourceTypes]) -> dict[str, TeamShape]:
    """Each team's shape, from one read's resource figures (each (team, project)'s resource
    types; depth ``resource`` only)."""
    types: dict[str, dict[str, int]] = {}
    projects: dict[str, list[int]] = {}
    for (team_id, _), kinds in read.items():
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


async def drill(
    ask: Ask,
    team: Team,
    *,
    depth: Depth,
    shape: TeamShape | None,
    single: bool,
) -> TeamRead:
    """A team's ``teamId`` answer (when the unfiltered one lacks its projects) and, at depth
    ``resource``, its projects' resource types: by type when that is cheaper and every
    project adds up (the type calls run beside the ``teamId`` call), by project for the
    rest. A single-team token's calls carry no ``teamId``."""
    by_types = depth == "resource" and shape is not None and shape.by_types
    scope = None if single else team.id
    async with asyncio.TaskGroup() as group:
        asked = None
        if team.projects is None:  # the unfiltered answer holds them only for a one-team invoice
            asked = group.create_task(_asked(ask(team_id=scope)))
        sliced = None
        if by_types and shape is not None:
            sliced = group.create_task(_type_slices(ask, team, scope, shape))
    answer = _team_in(asked.result(), team) if asked is not None else None
    projects = (answer or team).projects or ()
    if depth != "resource":
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
                project_id: group.create_task(project_types(ask, team, scope, project_id))
                for project_id in rest
            }
    figures.update((project_id, task.result()) for project_id, task in tasks.items())
    return TeamRead(answer, figures, spent.requests, by_type)


Slices = dict[str, list[tuple[float, ResourceTypes]]]  # project -> (slice total, its types)


async def _type_slices(
    ask: Ask, team: Team, scope: str | None, shape: TeamShape
) -> tuple[Slices, int]:
    """Each project's slice of each type the team used (``teamId`` + ``resourceType``),
    and the requests that took."""
    with counting() as spent:
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(_asked(ask(team_id=scope, resource_type=kind)))
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


async def project_types(ask: Ask, team: Team, scope: str | None, project_id: str) -> ResourceTypes:
    """A project's resource types and resources (its ``projectId`` answer)."""
    answer = await ask(team_id=scope, project_id=project_id)
    project = next((p for p in _team_in(answer, team).projects or () if p.id == project_id), None)
    if project is None:
        raise InvalidResponseError("get_invoice", f"project {project_id} missing from its answer")
    return project.resource_types or ()


async def _asked(answer: Awaitable[Breakdown]) -> Breakdown:
    return await answer


def _team_in(answer: Breakdown, team: Team) -> Team:
    """``team`` as a filtered answer shows it (a single-team token's: its projects)."""
    if answer.teams is None:
        return Team(team.id, team.name, answer.paas or NO_PRICE, answer.projects)
    for found in answer.teams:
        if found.id == team.id:
            return found
    raise InvalidResponseError("get_invoice", f"team {team.id} missing from its own answer")
