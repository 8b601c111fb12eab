"""What one poll learned, as frozen data in major currency units.

:func:`build` is pure, and the one place where the team filter, the depth and the
budgets (a :class:`~exporter.settings.View`) apply. It takes the poll's
:class:`Answers` (the unfiltered invoice, each team's ``teamId`` answer, each project's
resource types, the usage summed so far, the credit balance) and decides which figure
comes from where: a team's total always from the unfiltered answer, never from a
filtered slice; the PaaS and invoice totals likewise; the ``projectId`` answers give only
resource types and resources. The answers are the API's edge's model
(:mod:`exporter.api.model`): amounts already in major units, whichever contract.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction

from exporter.api import model
from exporter.api.errors import ApiError
from exporter.api.model import Price, Project, ResourceType, Team
from exporter.api.read import exact
from exporter.settings import View
from exporter.unbilled import Sum, UsageSums

ResourceTypes = tuple[ResourceType, ...]


@dataclass(frozen=True, slots=True)
class LineItem:
    title: str
    total: float | None
    base: float | None
    proration: float | None


@dataclass(frozen=True, slots=True)
class InvoiceFigures:
    """The invoice's own figures, as the metrics and the page show them."""

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
    status: str | None
    line_items: tuple[LineItem, ...]  # same titles added into one
    byoc: Price | None
    paas: Price | None


@dataclass(frozen=True, slots=True)
class TeamAmount:
    team_id: str
    team_name: str
    amount: float


@dataclass(frozen=True, slots=True)
class UnbilledFigures:
    """Usage since the newest invoice (the running hour included)."""

    since: float
    through: float
    total: float
    paas: Price
    byoc: Price
    teams: tuple[TeamAmount, ...]


@dataclass(frozen=True, slots=True)
class MonthFigures:
    """This month's spend broken down (:mod:`exporter.month`), summed from settled hours:
    teams (no price of their own) with their projects, and at depth ``resource`` their
    resource types and resources."""

    since: float
    through: float  # end of the newest hour summed without a gap
    currency: str
    teams: tuple[Team, ...]
    key: tuple[str, float, int]  # (invoice, since, hours summed): equal keys, equal figures


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the cost families are rendered from; swapped in whole after a poll.

    ``teams`` hold their projects (below depth ``team``) and those their resource types
    (at depth ``resource``), sorted by type name. A poll that did not read the breakdown
    again (a finalized invoice's figures do not change) has ``teams`` None: the breakdown
    is that of the invoice's read ``read``, as first served; only the invoice's payment
    status, the usage, the budgets and the credit are new.
    """

    invoice: InvoiceFigures
    teams: tuple[Team, ...] | None
    unbilled: UnbilledFigures | None = None
    budgets: tuple[TeamAmount, ...] = ()
    credit: model.Credit | None = None
    read: int = 0  # which read of an invoice's breakdown this is (or was, teams None)
    month: MonthFigures | None = None  # this month, broken down (NORTHFLANK_UNBILLED_DEPTH)


@dataclass(frozen=True, slots=True)
class Read:
    """What a poll keeps of the last read of an invoice's breakdown, for the polls that
    do not read it again: a few figures, not the breakdown (the bytes are kept encoded)."""

    number: int  # Snapshot.read
    invoice: InvoiceFigures
    entry: model.InvoiceEntry | None  # its list entry when it was read
    team_names: Mapping[str, str]  # the teams served, by ID
    at: float  # monotonic time of the read
    single: bool = False  # a single-team token's

    @classmethod
    def of(cls, snapshot: Snapshot, answers: Answers, at: float) -> Read:
        names = {team.id: team.name for team in snapshot.teams or ()}
        return cls(snapshot.read, snapshot.invoice, answers.entry, names, at, answers.single)


@dataclass(frozen=True)
class NewestInvoice:
    """The invoice that ends last in the list: the one to poll, and where unbilled starts."""

    id: str
    period_end: float
    entry: model.InvoiceEntry | None = None  # its list entry


@dataclass(frozen=True)
class Answers:
    """What the API answered in one poll (made by :func:`exporter.fetch.fetch`)."""

    newest: NewestInvoice | None  # None when the list was not read
    invoice: model.Invoice | None  # the unfiltered answer; None: the breakdown not read again
    teams: Mapping[str, Team]  # each team's ``teamId`` answer, where one was needed
    projects: Mapping[tuple[str, str], ResourceTypes]  # (team, project): its resource types
    usage: UsageSums | None = None  # usage summed through this poll; None: unbilled off
    spent: Mapping[str, int] = dataclasses.field(default_factory=dict)  # requests by way read
    entry: model.InvoiceEntry | None = None  # the polled invoice's list entry, when listed
    contract: model.Contract | None = None  # the one billing contract of the poll's answers
    credit: model.Credit | None = None  # None: not asked, or it failed
    credit_error: ApiError | None = None  # why it failed, when it did
    token: model.Token | None = None  # GET /v1/auth, when the poll had to ask (single team)
    single: bool = False  # a single-team token's answers (which start at its projects)


def build(answers: Answers, view: View, read: int = 0) -> Snapshot:
    """The snapshot of one poll's answers, as ``view`` says: only its teams in the team
    families, projects and deeper only below depth ``team``, its budgets. ``read``
    numbers the read of the breakdown."""
    assert answers.invoice is not None, "a poll that read no breakdown: see keep()"
    team_costs = []
    for team in answers.invoice.teams or ():
        if not view.includes(team.id):
            continue
        # Projects: from the team's own answer, or the unfiltered one (single-team invoice).
        source = answers.teams.get(team.id, team)
        listed = source.projects or () if view.depth != "team" else ()
        projects = tuple(_project(team.id, project, answers.projects) for project in listed)
        team_costs.append(Team(team.id, team.name, team.price, projects))
    names = {team.id: team.name for team in team_costs}
    usage = answers.usage
    return Snapshot(
        invoice=_paid(figures(answers.invoice), answers.entry),
        teams=tuple(team_costs),
        unbilled=_unbilled(usage, names) if usage else None,
        budgets=_budgets(names, view),
        credit=answers.credit,
        read=read,
    )


def keep(last: Read, answers: Answers, view: View) -> Snapshot:
    """The snapshot of a poll that did not read the breakdown again: the last read's
    breakdown (``teams`` None), this poll's payment status (from the list entry), usage
    and credit balance."""
    usage = answers.usage
    return Snapshot(
        invoice=_paid(last.invoice, answers.entry),
        teams=None,
        unbilled=_unbilled(usage, last.team_names) if usage else None,
        budgets=_budgets(last.team_names, view),
        credit=answers.credit,
        read=last.number,
    )


def _paid(invoice: InvoiceFigures, entry: model.InvoiceEntry | None) -> InvoiceFigures:
    """The invoice's payment as its list entry says it now (it is what may change)."""
    if (
        entry is None
        or entry.id != invoice.id
        or (entry.status, entry.paid)
        == (
            invoice.status,
            invoice.paid,
        )
    ):
        return invoice
    return dataclasses.replace(invoice, status=entry.status, paid=entry.paid)


def _budgets(names: Mapping[str, str], view: View) -> tuple[TeamAmount, ...]:
    return tuple(
        TeamAmount(team_id, name, amount)
        for team_id, name in names.items()
        if (amount := view.budget_for(team_id)) is not None
    )


def _unbilled(usage: UsageSums, names: Mapping[str, str]) -> UnbilledFigures:
    def price(part: Sum) -> Price:
        return Price(float(part.total), tuple((n, float(v)) for n, v in part.dimensions))

    return UnbilledFigures(
        since=usage.since,
        through=usage.through,
        total=float(usage.total),
        paas=price(usage.paas),
        byoc=price(usage.byoc),
        teams=tuple(
            TeamAmount(team_id, name, float(usage.team_hours[team_id].sum.total))
            for team_id, name in names.items()
            if team_id in usage.team_hours
        ),
    )


def _project(
    team_id: str, project: Project, answers: Mapping[tuple[str, str], ResourceTypes]
) -> Project:
    # By name: the same order whether a project was read by project or by resource type.
    types = tuple(sorted(answers.get((team_id, project.id), ()), key=_type_name))
    return Project(project.id, project.name, project.price, types)


def _type_name(kind: ResourceType) -> str:
    return kind.resource_type


def figures(invoice: model.Invoice) -> InvoiceFigures:
    """The invoice's own figures (its breakdown aside)."""
    return InvoiceFigures(
        id=invoice.id,
        currency=invoice.currency,
        period_start=invoice.period_start,
        period_end=invoice.period_end,
        total=invoice.total,
        subtotal=invoice.subtotal,
        discount=invoice.discount,
        tax_amount=invoice.tax_amount,
        tax_ratio=None if invoice.tax_percent is None else invoice.tax_percent / 100,
        paid=invoice.paid,
        status=invoice.status,
        line_items=_line_items(invoice.line_items),
        byoc=invoice.byoc,
        paas=invoice.paas,
    )


def _line_items(items: Iterable[model.LineItem]) -> tuple[LineItem, ...]:
    """Line items with the same title are added into one, exactly: as the decimals the
    API sent would add, rounded to a float once (not after each item)."""
    merged: dict[str, list[Fraction | None]] = {}
    for item in items:
        sums = merged.setdefault(item.title, [None, None, None])
        for i, value in enumerate((item.total, item.base, item.proration)):
            if value is not None:
                sums[i] = (sums[i] or Fraction(0)) + exact(value)
    return tuple(
        LineItem(title, _float(total), _float(base), _float(proration))
        for title, (total, base, proration) in merged.items()
    )


def _float(value: Fraction | None) -> float | None:
    return None if value is None else float(value)
