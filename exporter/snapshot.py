"""What one poll learned, as frozen data in major currency units.

:func:`build` is pure: it takes the API's answers (the unfiltered invoice, each team's
``teamId`` answer, each project's ``projectId`` answer) and decides which figure comes
from where. A team's total always comes from the unfiltered answer, never from a
filtered slice; the PaaS and invoice totals likewise; the ``projectId`` answers give
only resource types and resources.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from exporter import models
from exporter.unbilled import Sum, Window, budget_for

PAAS_DIMENSIONS = ("cpu", "memory", "storage", "gpu")
BYOC_DIMENSIONS = ("vcpu", "memory", "gpu_memory", "cluster")


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


class Scale:
    """Turns API amounts into major units: cents / 100, or as they are."""

    def __init__(self, unit: str) -> None:
        self.divisor = 100.0 if unit == "cents" else 1.0

    def __call__(self, amount: float | None) -> float | None:
        return None if amount is None else amount / self.divisor


def build(
    invoice: models.Invoice,
    *,
    team_answers: Mapping[str, models.Team],
    project_answers: Mapping[tuple[str, str], ResourceTypes],
    teams: Iterable[str] | None = None,
    amount_unit: str = "cents",
    window: Window | None = None,
    budgets: Mapping[str, float] | None = None,
    depth: str = "resource",
) -> Snapshot:
    """Assemble a snapshot from the answers of one poll.

    ``team_answers`` maps a team ID to that team as the ``teamId`` answer shows it;
    ``project_answers`` maps (team ID, project ID) to the resource types of that
    project's ``projectId`` answer (:func:`resource_types`). ``teams`` restricts the
    team families to these IDs. ``window`` is the unbilled usage summed so far;
    ``budgets`` the teams' budgets (``*``: the rest).
    At ``depth`` ``team`` no projects are kept, even those a one-team answer holds.
    """
    scale = Scale(amount_unit)
    wanted = set(teams) if teams else None
    team_costs = []
    for team in invoice.teams:
        if wanted is not None and team.id not in wanted:
            continue
        # Projects: from the team's own answer, or the unfiltered one (single-team invoice).
        source = team_answers.get(team.id, team)
        listed = source.projects or () if depth != "team" else ()
        projects = tuple(_project(team.id, project, project_answers, scale) for project in listed)
        team_costs.append(TeamCost(team.id, team.name or "", _paas(team.price, scale), projects))
    names = {team.id: team.name for team in team_costs}
    budget_rows = tuple(
        TeamAmount(team_id, name, amount)
        for team_id, name in names.items()
        if (amount := budget_for(budgets or {}, team_id)) is not None
    )
    return Snapshot(
        invoice=_invoice(invoice, scale),
        teams=tuple(team_costs),
        unbilled=_unbilled(window, names, scale) if window else None,
        budgets=budget_rows,
    )


def _unbilled(window: Window, names: Mapping[str, str], scale: Scale) -> UnbilledFigures:
    def cost(part: Sum) -> Cost:
        return _cost(float(part.total), ((n, float(v)) for n, v in part.dimensions), scale)

    return UnbilledFigures(
        since=window.since,
        through=window.through,
        total=float(window.total) / scale.divisor,
        paas=cost(window.paas),
        byoc=cost(window.byoc),
        teams=tuple(
            TeamAmount(team_id, name, float(window.team_hours[team_id].sum.total) / scale.divisor)
            for team_id, name in names.items()
            if team_id in window.team_hours
        ),
    )


def resource_types(project: models.Project, amount_unit: str = "cents") -> ResourceTypes:
    """A ``projectId`` answer's resource types and resources, as snapshot figures.

    The poller converts each answer as it arrives, so a poll of 500 projects holds
    their figures, not 500 pydantic models, until the snapshot is built.
    """
    scale = Scale(amount_unit)
    return tuple(
        ResourceTypeCost(
            kind.resource_type,
            _paas(kind.price, scale),
            tuple(
                ResourceCost(res.id, res.name or "", _paas(res.price, scale))
                for res in kind.resources or ()
            ),
        )
        for kind in project.resource_types or ()
    )


def _project(
    team_id: str,
    project: models.Project,
    answers: Mapping[tuple[str, str], ResourceTypes],
    scale: Scale,
) -> ProjectCost:
    types = answers.get((team_id, project.id), ())
    return ProjectCost(project.id, project.name or "", _paas(project.price, scale), types)


def _paas(price: models.PaasPrice | None, scale: Scale) -> Cost:
    if price is None:
        return Cost(None, ())
    return _cost(
        price.total,
        zip(PAAS_DIMENSIONS, (price.cpu, price.memory, price.storage, price.gpu), strict=True),
        scale,
    )


def _byoc(price: models.ByocPrice | None, scale: Scale) -> Cost | None:
    if price is None:
        return None
    values = (price.vcpu, price.memory, price.gpu_memory, price.cluster)
    return _cost(price.total, zip(BYOC_DIMENSIONS, values, strict=True), scale)


def _cost(total: float | None, dims: Iterable[tuple[str, float | None]], scale: Scale) -> Cost:
    present = tuple((name, value / scale.divisor) for name, value in dims if value is not None)
    return Cost(scale(total), present)


def _invoice(invoice: models.Invoice, scale: Scale) -> InvoiceFigures:
    period = invoice.period or models.Period()
    tax = invoice.tax or models.Tax()
    paas = invoice.paas_usage
    byoc = invoice.byoc_usage
    return InvoiceFigures(
        id=invoice.id,
        currency=invoice.currency or "",
        period_start=period.start,
        period_end=period.end,
        total=scale(invoice.total),
        subtotal=scale(invoice.sub_total),
        discount=scale(invoice.discounts.total if invoice.discounts else None),
        tax_amount=scale(tax.amount),
        tax_ratio=None if tax.percent is None else tax.percent / 100,
        paid=invoice.paid,
        line_items=_line_items(invoice.line_items or (), scale),
        byoc=_byoc(byoc.price, scale) if byoc else None,
        paas=_paas(paas.price, scale) if paas and paas.price else None,
    )


def _line_items(items: Iterable[models.LineItem], scale: Scale) -> tuple[LineItem, ...]:
    """Line items with the same title are added into one."""
    merged: dict[str, LineItem] = {}
    for item in items:
        title = item.title or ""
        new = LineItem(title, scale(item.total), scale(item.base), scale(item.proration))
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
