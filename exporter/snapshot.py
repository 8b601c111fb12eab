"""What one poll learned, as frozen data in major currency units.

:func:`build` is pure, and the one place where the team filter, the depth and the
budgets (a :class:`~exporter.settings.View`) apply. It takes the poll's
:class:`Answers` (the unfiltered invoice, each team's ``teamId`` answer, each project's
``projectId`` answer, the usage summed so far) and decides which figure comes from where:
a team's total always from the unfiltered answer, never from a filtered slice; the PaaS
and invoice totals likewise; the ``projectId`` answers give only resource types and
resources.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from exporter import models
from exporter.models import BYOC_DIMENSIONS, PAAS_DIMENSIONS
from exporter.settings import View
from exporter.unbilled import Sum, UsageSums


@dataclass(frozen=True, slots=True)
class Cost:
    """A price: its total and the dimensions the API gave (a missing one is left out)."""

    total: float | None
    dimensions: tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class ResourceCost:
    id: str
    name: str
    cost: Cost


@dataclass(frozen=True, slots=True)
class ResourceTypeCost:
    resource_type: str
    cost: Cost
    resources: tuple[ResourceCost, ...]


ResourceTypes = tuple[ResourceTypeCost, ...]


@dataclass(frozen=True, slots=True)
class ProjectCost:
    id: str
    name: str
    cost: Cost
    resource_types: tuple[ResourceTypeCost, ...]


@dataclass(frozen=True, slots=True)
class TeamCost:
    id: str
    name: str
    cost: Cost
    projects: tuple[ProjectCost, ...]


@dataclass(frozen=True, slots=True)
class LineItem:
    title: str
    total: float | None
    base: float | None
    proration: float | None


@dataclass(frozen=True, slots=True)
class InvoiceFigures:
    id: str
    currency: str
    period_start: float | None
    period_end: float | None
    total: float | None
    subtotal: float | None
    discount: float | None
    tax_amount: float | None
    tax_ratio: float | None
    paid: bool | None
    line_items: tuple[LineItem, ...]
    byoc: Cost | None
    paas: Cost | None


@dataclass(frozen=True, slots=True)
class TeamAmount:
    team_id: str
    team_name: str
    amount: float


@dataclass(frozen=True, slots=True)
class UnbilledFigures:
    """Usage since the newest invoice, summed hour by hour (the running hour included)."""

    since: float
    through: float
    total: float
    paas: Cost
    byoc: Cost
    teams: tuple[TeamAmount, ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the cost families are rendered from; swapped in whole after a poll."""

    invoice: InvoiceFigures
    teams: tuple[TeamCost, ...]
    unbilled: UnbilledFigures | None = None
    budgets: tuple[TeamAmount, ...] = ()


class MajorUnits:
    """Turns API amounts into major units: cents / 100, or as they are."""

    def __init__(self, unit: str) -> None:
        self.divisor = 100.0 if unit == "cents" else 1.0

    def __call__(self, amount: float | None) -> float | None:
        return None if amount is None else amount / self.divisor


@dataclass(frozen=True)
class NewestInvoice:
    """The invoice that ends last in the list: the one to poll, and where unbilled starts."""

    id: str
    period_end: float


@dataclass(frozen=True)
class Answers:
    """What the API answered in one poll (made by :func:`exporter.fetch.fetch`)."""

    newest: NewestInvoice | None  # None when the list was not read
    invoice: models.Invoice  # the unfiltered answer
    teams: Mapping[str, models.Team]  # each team's ``teamId`` answer, where one was needed
    projects: Mapping[tuple[str, str], ResourceTypes]  # (team, project): its resource types
    usage: UsageSums | None = None  # usage summed through this poll; None: unbilled off
    spent: Mapping[str, int] = dataclasses.field(default_factory=dict)  # requests by way read


def build(answers: Answers, view: View) -> Snapshot:
    """The snapshot of one poll's answers, as ``view`` says: only its teams in the team
    families, projects and deeper only below depth ``team``, its budgets."""
    units = MajorUnits(view.amount_unit)
    team_costs = []
    for team in answers.invoice.teams:
        if not view.includes(team.id):
            continue
        # Projects: from the team's own answer, or the unfiltered one (single-team invoice).
        source = answers.teams.get(team.id, team)
        listed = source.projects or () if view.depth != "team" else ()
        projects = tuple(_project(team.id, project, answers.projects, units) for project in listed)
        team_costs.append(TeamCost(team.id, team.name or "", _paas(team.price, units), projects))
    names = {team.id: team.name for team in team_costs}
    budget_rows = tuple(
        TeamAmount(team_id, name, amount)
        for team_id, name in names.items()
        if (amount := view.budget_for(team_id)) is not None
    )
    usage = answers.usage
    return Snapshot(
        invoice=_invoice(answers.invoice, units),
        teams=tuple(team_costs),
        unbilled=_unbilled(usage, names, units) if usage else None,
        budgets=budget_rows,
    )


def _unbilled(usage: UsageSums, names: Mapping[str, str], units: MajorUnits) -> UnbilledFigures:
    def cost(part: Sum) -> Cost:
        return _cost(float(part.total), ((n, float(v)) for n, v in part.dimensions), units)

    return UnbilledFigures(
        since=usage.since,
        through=usage.through,
        total=float(usage.total) / units.divisor,
        paas=cost(usage.paas),
        byoc=cost(usage.byoc),
        teams=tuple(
            TeamAmount(team_id, name, float(usage.team_hours[team_id].sum.total) / units.divisor)
            for team_id, name in names.items()
            if team_id in usage.team_hours
        ),
    )


def resource_types(project: models.Project, amount_unit: str = "cents") -> ResourceTypes:
    """A ``projectId`` answer's resource types and resources, as snapshot figures.

    The poller converts each answer as it arrives, so a poll of 500 projects holds
    their figures, not 500 pydantic models, until the snapshot is built.
    """
    units = MajorUnits(amount_unit)
    return tuple(
        ResourceTypeCost(
            kind.resource_type,
            _paas(kind.price, units),
            tuple(
                ResourceCost(res.id, res.name or "", _paas(res.price, units))
                for res in kind.resources or ()
            ),
        )
        for kind in project.resource_types or ()
    )


def _project(
    team_id: str,
    project: models.Project,
    answers: Mapping[tuple[str, str], ResourceTypes],
    units: MajorUnits,
) -> ProjectCost:
    # By name: the same order whether a project was read by project or by resource type.
    types = tuple(sorted(answers.get((team_id, project.id), ()), key=_type_name))
    return ProjectCost(project.id, project.name or "", _paas(project.price, units), types)


def _type_name(kind: ResourceTypeCost) -> str:
    return kind.resource_type


def _paas(price: models.PaasPrice | None, units: MajorUnits) -> Cost:
    if price is None:
        return Cost(None, ())
    return _cost(
        price.total,
        zip(PAAS_DIMENSIONS, (price.cpu, price.memory, price.storage, price.gpu), strict=True),
        units,
    )


def _byoc(price: models.ByocPrice | None, units: MajorUnits) -> Cost | None:
    if price is None:
        return None
    values = (price.vcpu, price.memory, price.gpu_memory, price.cluster)
    return _cost(price.total, zip(BYOC_DIMENSIONS, values, strict=True), units)


def _cost(total: float | None, dims: Iterable[tuple[str, float | None]], units: MajorUnits) -> Cost:
    present = tuple((name, value / units.divisor) for name, value in dims if value is not None)
    return Cost(units(total), present)


def _invoice(invoice: models.Invoice, units: MajorUnits) -> InvoiceFigures:
    period = invoice.period or models.Period()
    tax = invoice.tax or models.Tax()
    paas = invoice.paas_usage
    byoc = invoice.byoc_usage
    return InvoiceFigures(
        id=invoice.id,
        currency=invoice.currency or "",
        period_start=period.start,
        period_end=period.end,
        total=units(invoice.total),
        subtotal=units(invoice.sub_total),
        discount=units(invoice.discounts.total if invoice.discounts else None),
        tax_amount=units(tax.amount),
        tax_ratio=None if tax.percent is None else tax.percent / 100,
        paid=invoice.paid,
        line_items=_line_items(invoice.line_items or (), units),
        byoc=_byoc(byoc.price, units) if byoc else None,
        paas=_paas(paas.price, units) if paas and paas.price else None,
    )


def _line_items(items: Iterable[models.LineItem], units: MajorUnits) -> tuple[LineItem, ...]:
    """Line items with the same title are added into one."""
    merged: dict[str, LineItem] = {}
    for item in items:
        title = item.title or ""
        new = LineItem(title, units(item.total), units(item.base), units(item.proration))
        old = merged.get(title)
        merged[title] = (
            new
            if old is None
            else LineItem(
                title,
                _add(old.total, new.total),
                _add(old.base, new.base),
                _add(old.proration, new.proration),
            )
        )
    return tuple(merged.values())


def _add(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else a + b
