"""One poll's requests: what a :class:`Plan` asks for, concurrently, as typed :class:`Answers`.

The order, per the contract's "How a poll reads the invoice":

1. the invoice list (``GET /v1/billing/invoices``), when no invoice is pinned or when
   spend not yet invoiced is on: the newest invoice (:class:`NewestInvoice`);
2. that invoice (or the pinned one), unfiltered: totals and every team's total;
3. at depth ``project`` or deeper, each wanted team's ``teamId`` answer (its projects),
   unless the unfiltered answer already holds them (a one-team invoice);
4. at depth ``resource``, each project's ``projectId`` answer, converted to snapshot
   figures as it arrives (500 answers are not held as models);
5. with unbilled on, the usage since the window's start (org-wide and each wanted team),
   summed into the next :class:`~exporter.unbilled.UsageSums`.

The answers are a :class:`~exporter.snapshot.Answers`, what ``snapshot.build`` takes.

Steps 3 to 5 run together; each team's project calls start as soon as its answer
arrives. Every task returns its answer: nothing is shared and written to.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from exporter import models
from exporter.client import Client
from exporter.errors import InvalidResponseError
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

    @classmethod
    def of(cls, settings: Settings, usage: UsageSums | None = None) -> Plan:
        return cls(settings.view, settings.invoice_id, settings.unbilled, usage)

    @property
    def reads_list(self) -> bool:
        return self.invoice_id is None or self.unbilled


def newest_invoice(invoices: list[models.InvoiceSummary]) -> NewestInvoice:
    """The invoice that ends last (the list's order is not guaranteed)."""
    dated = [(inv.period.end, inv.id) for inv in invoices if inv.period and inv.period.end]
    if not dated:
        raise InvalidResponseError("list_invoices", "no invoice with a period end to pick")
    end, invoice_id = max(dated)
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
    drilled: list[asyncio.Task[tuple[models.Team | None, dict[str, ResourceTypes]]]] = []
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
    for team, task in zip(teams, drilled, strict=False):
        answer, projects = task.result()
        if answer is not None:
            team_answers[team.id] = answer
        project_answers.update(((team.id, pid), types) for pid, types in projects.items())
    if usage is not None:
        by_team = {team_id: task.result() for team_id, task in team_usage.items()}
        usage = advance(usage, usage.invoice_id, usage.since, org_usage.result(), by_team)
    return Answers(newest, invoice, team_answers, project_answers, usage)


async def _drill(
    client: Client, plan: Plan, invoice_id: str, team: models.Team
) -> tuple[models.Team | None, dict[str, ResourceTypes]]:
    """A team's ``teamId`` answer (None when the unfiltered one held its projects) and,
    at depth ``resource``, each of its projects' resource types."""
    answer = None
    if team.projects is None:  # the unfiltered answer holds them only for a one-team invoice
        answer = _find_team(await client.get_invoice(invoice_id, team_id=team.id), team.id)
    projects = (answer or team).projects or []
    if plan.view.depth != "resource":
        return answer, {}
    async with asyncio.TaskGroup() as group:
        tasks = {
            project.id: group.create_task(_project(client, plan, invoice_id, team.id, project.id))
            for project in projects
        }
    return answer, {project_id: task.result() for project_id, task in tasks.items()}


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
