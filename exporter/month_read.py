"""The requests of this month's breakdown: one settled hour read to the depth
(:func:`read_hour`), or a span of hours from the API's own sums by team and project
(:func:`read_span`: the current contract's ``granularity=total`` with ``teamId`` and
``projectId``, at depth ``project``).

An hour is read as a poll reads the invoice, through the same drill
(:func:`exporter.drill.drill` with :func:`~exporter.drill.of_hour`): the hour unfiltered
(``GET /v1/billing/usage/{timestamp}``: every team's total), each wanted team's
``teamId`` answer (its projects), and at depth ``resource`` its projects' resource types
by project or by type, whichever the last hour read shows is cheaper. A team's projects
must add up to its total within half a cent, or the hour is not taken.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from exporter.api import model
from exporter.api.billing import Billing
from exporter.api.errors import InvalidResponseError
from exporter.api.model import NO_PRICE, Price, Project, Team
from exporter.drill import TeamRead, TeamShape, drill, of_hour
from exporter.settings import Depth, View
from exporter.snapshot import ResourceTypes

HALF_CENT = 0.005


@dataclass(frozen=True)
class Scope:
    """Which teams, how deep, and what the last hour read taught."""

    view: View  # the team filter (its depth is the invoice's: not used here)
    depth: Depth  # NORTHFLANK_UNBILLED_DEPTH: project or resource
    single: tuple[str, str] | None = None  # a single team's token: its team (ID, name)
    shapes: Mapping[str, TeamShape] = field(default_factory=dict)


@dataclass(frozen=True)
class HourRead:
    """One hour, broken down: the wanted teams with their projects (and deeper)."""

    hour: float
    currency: str
    teams: tuple[Team, ...]
    projects: Mapping[tuple[str, str], ResourceTypes]  # (team, project): its resource types


async def read_hour(billing: Billing, hour: float, scope: Scope) -> HourRead:
    """The hour starting at ``hour``, broken down to ``scope.depth``."""
    ask = of_hour(billing, hour)
    answer = await billing.hour(hour)
    single = answer.teams is None
    if single:
        if scope.single is None:
            raise InvalidResponseError(
                "get_usage", "the hour starts at projects, but the token is not a team's"
            )
        team_id, name = scope.single
        listed = [Team(team_id, name, answer.paas or NO_PRICE, answer.projects)]
    else:
        listed = [team for team in answer.teams or () if scope.view.includes(team.id)]
    async with asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(
                drill(ask, team, depth=scope.depth, shape=scope.shapes.get(team.id), single=single)
            )
            for team in listed
        ]
    teams: list[Team] = []
    projects: dict[tuple[str, str], ResourceTypes] = {}
    for team, task in zip(listed, tasks, strict=True):
        read: TeamRead = task.result()
        found = (read.answer or team).projects or ()
        _check_adds_up("get_usage", team, found)
        projects.update(((team.id, pid), kinds) for pid, kinds in read.projects.items())
        teams.append(
            Team(
                team.id,
                team.name,
                team.price,
                tuple(
                    Project(p.id, p.name, p.price, read.projects.get(p.id) or None) for p in found
                ),
            )
        )
    return HourRead(hour, answer.currency, tuple(teams), projects)


async def read_span(
    billing: Billing,
    start: float,
    end: float,
    projects: Mapping[str, Sequence[tuple[str, str]]],
    *,
    single: bool,
) -> tuple[Team, ...] | None:
    """The hours from ``start`` to ``end`` by team and project from the API's own sums
    (``granularity=total``): each team's total and each of its ``projects`` ((ID, name),
    as the newest hour read listed them). None when the server does not sum (a legacy
    answer, or hourly entries), or when a team's projects do not add up to its total (a
    project that spent earlier in the span and not in that hour): the hours are read one
    by one instead."""

    async def total(team_id: str | None, project_id: str | None = None) -> Price | None:
        answer = await billing.usage(
            start, end=end, team_id=team_id, project_id=project_id, total=True
        )
        if not answer.total:
            return None
        return answer.entries[0].paas or NO_PRICE if answer.entries else NO_PRICE

    async with asyncio.TaskGroup() as group:
        teams = {
            team_id: group.create_task(total(None if single else team_id)) for team_id in projects
        }
        each = {
            (team_id, project_id): group.create_task(total(None if single else team_id, project_id))
            for team_id, listed in projects.items()
            for project_id, _ in listed
        }
    out = []
    for team_id, listed in projects.items():
        team_price = teams[team_id].result()
        prices = [each[(team_id, project_id)].result() for project_id, _ in listed]
        if team_price is None or any(price is None for price in prices):
            return None
        found = tuple(
            Project(project_id, name, price or NO_PRICE)
            for (project_id, name), price in zip(listed, prices, strict=True)
        )
        team = Team(team_id, "", team_price, found)
        if not _adds_up(team, found):
            return None
        out.append(team)
    return tuple(out)


def _adds_up(team: Team, projects: Sequence[model.Project]) -> bool:
    total = math.fsum(project.price.total or 0.0 for project in projects)
    return abs((team.price.total or 0.0) - total) < HALF_CENT


def _check_adds_up(endpoint: str, team: Team, projects: Sequence[model.Project]) -> None:
    if not _adds_up(team, projects):
        raise InvalidResponseError(
            endpoint,
            f"the projects of team {team.id} do not add up to its total for the hour "
            "(half a cent or more apart)",
        )
