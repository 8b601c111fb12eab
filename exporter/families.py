"""The cost families, filled from one :class:`~exporter.snapshot.Snapshot`: pure.

:func:`cost_families` gives every family of :data:`exporter.metrics.COST`, in that order,
each sample's label text written once per entity and reused for its dimensions; the
encoder (:mod:`exporter.encoding`) makes the bytes.

    >>> from exporter.snapshot import InvoiceFigures, Snapshot
    >>> invoice = InvoiceFigures("inv-1", "usd", 0, 1, 12.5, *(None,) * 6, (), None, None)
    >>> for line in [line for f in cost_families(Snapshot(invoice, ())) for line in f.lines]:
    ...     print(line)
    northflank_invoice_info{currency="usd",invoice_id="inv-1"} 1.0
    northflank_invoice_period_start_timestamp_seconds 0.0
    northflank_invoice_period_end_timestamp_seconds 1.0
    northflank_invoice_amount{currency="usd"} 12.5
"""

from __future__ import annotations

from collections.abc import Iterable

from exporter.api.model import Price, Team
from exporter.encoding import Family, Spec, label_value, labels
from exporter.metrics import (
    BYOC_COST,
    BYOC_DIMENSION_COST,
    COST,
    CREDIT_AVAILABLE,
    CREDIT_GRANT_AVAILABLE,
    CREDIT_GRANT_PENDING,
    CREDIT_PENDING,
    CREDIT_SYNCED,
    CUSTOMER_BALANCE,
    INVOICE_AMOUNT,
    INVOICE_DISCOUNT,
    INVOICE_INFO,
    INVOICE_PAID,
    INVOICE_PERIOD_END,
    INVOICE_PERIOD_START,
    INVOICE_STATUS,
    INVOICE_SUBTOTAL,
    INVOICE_TAX,
    INVOICE_TAX_RATIO,
    LINE_ITEM,
    LINE_ITEM_BASE,
    LINE_ITEM_PRORATION,
    PAAS_COST,
    PAAS_DIMENSION_COST,
    PROJECT_COST,
    PROJECT_DIMENSION_COST,
    PROJECT_UNBILLED_COST,
    PROJECT_UNBILLED_DIMENSION_COST,
    RESOURCE_COST,
    RESOURCE_DIMENSION_COST,
    RESOURCE_TYPE_COST,
    RESOURCE_TYPE_DIMENSION_COST,
    RESOURCE_TYPE_UNBILLED_COST,
    RESOURCE_TYPE_UNBILLED_DIMENSION_COST,
    RESOURCE_UNBILLED_COST,
    RESOURCE_UNBILLED_DIMENSION_COST,
    TEAM_BUDGET,
    TEAM_COST,
    TEAM_DIMENSION_COST,
    TEAM_UNBILLED_COST,
    UNBILLED_BREAKDOWN_THROUGH,
    UNBILLED_BYOC_DIMENSION_COST,
    UNBILLED_COST,
    UNBILLED_PAAS_DIMENSION_COST,
    UNBILLED_SINCE,
    UNBILLED_THROUGH,
)
from exporter.snapshot import Snapshot


def cost_families(snapshot: Snapshot) -> list[Family]:
    """Every family read from the API, filled from one snapshot, in :data:`COST` order (a
    snapshot that kept the breakdown of an earlier read has none: ``teams`` None)."""
    families = {spec: Family(spec) for spec in COST}
    inv = snapshot.invoice
    currency = labels(currency=inv.currency)
    families[INVOICE_INFO].add(labels(currency=inv.currency, invoice_id=inv.id), 1)
    families[INVOICE_PERIOD_START].add("", inv.period_start)
    families[INVOICE_PERIOD_END].add("", inv.period_end)
    families[INVOICE_AMOUNT].add(currency, inv.total)
    families[INVOICE_SUBTOTAL].add(currency, inv.subtotal)
    families[INVOICE_DISCOUNT].add(currency, inv.discount)
    families[INVOICE_TAX].add(currency, inv.tax_amount)
    families[INVOICE_TAX_RATIO].add("", inv.tax_ratio)
    families[INVOICE_PAID].add("", None if inv.paid is None else float(inv.paid))
    if inv.status is not None:
        families[INVOICE_STATUS].add(labels(status=inv.status), 1)
    for item in inv.line_items:
        where = labels(currency=inv.currency, item=item.title)
        families[LINE_ITEM].add(where, item.total)
        families[LINE_ITEM_BASE].add(where, item.base)
        families[LINE_ITEM_PRORATION].add(where, item.proration)
    if inv.byoc is not None:
        _cost(families, BYOC_COST, BYOC_DIMENSION_COST, currency, "", inv.byoc)
    if inv.paas is not None:
        _cost(families, PAAS_COST, PAAS_DIMENSION_COST, currency, "", inv.paas)
    _tree(families, snapshot.teams or (), currency, INVOICE_LEVELS)
    _unbilled(families, snapshot, currency)
    _month(families, snapshot)
    _credit(families, snapshot)
    return list(families.values())


def _cost(
    families: dict[Spec, Family], total: Spec, parts: Spec, currency: str, rest: str, cost: Price
) -> None:
    """A cost's total in ``total``, each dimension in ``parts`` with a ``dimension`` label
    (which sorts between ``currency`` and the ``rest`` of the labels)."""
    families[total].add(f"{currency},{rest}" if rest else currency, cost.total)
    families[parts].add_dimensions(currency, rest, cost.dimensions)


Level = tuple[Spec, Spec]  # a level's total family and its by-dimension one
INVOICE_LEVELS: tuple[Level | None, Level, Level, Level] = (
    (TEAM_COST, TEAM_DIMENSION_COST),
    (PROJECT_COST, PROJECT_DIMENSION_COST),
    (RESOURCE_TYPE_COST, RESOURCE_TYPE_DIMENSION_COST),
    (RESOURCE_COST, RESOURCE_DIMENSION_COST),
)
MONTH_LEVELS: tuple[Level | None, Level, Level, Level] = (
    None,  # a team's spend this month: northflank_team_unbilled_cost, from the usage list
    (PROJECT_UNBILLED_COST, PROJECT_UNBILLED_DIMENSION_COST),
    (RESOURCE_TYPE_UNBILLED_COST, RESOURCE_TYPE_UNBILLED_DIMENSION_COST),
    (RESOURCE_UNBILLED_COST, RESOURCE_UNBILLED_DIMENSION_COST),
)


def _tree(
    families: dict[Spec, Family],
    teams: Iterable[Team],
    currency: str,
    levels: tuple[Level | None, Level, Level, Level],
) -> None:
    """Team, project, resource type and resource families (the invoice's, or this
    month's); each entity's label text is built once and reused for its dimensions."""
    esc = label_value
    team_level, project_level, type_level, resource_level = levels
    for team in teams:
        team_id = f'team="{esc(team.id)}"'
        if team_level is not None:
            rest = f'{team_id},team_name="{esc(team.name)}"'
            _cost(families, *team_level, currency, rest, team.price)
        for project in team.projects or ():
            project_id = f'project="{esc(project.id)}"'
            rest = f'{project_id},project_name="{esc(project.name)}",{team_id}'
            _cost(families, *project_level, currency, rest, project.price)
            for kind in project.resource_types or ():
                kind_id = f'resource_type="{esc(kind.resource_type)}",{team_id}'
                _cost(families, *type_level, currency, f"{project_id},{kind_id}", kind.price)
                for res in kind.resources:
                    rest = (
                        f'{project_id},resource="{esc(res.id)}",'
                        f'resource_name="{esc(res.name)}",{kind_id}'
                    )
                    _cost(families, *resource_level, currency, rest, res.price)


def _month(families: dict[Spec, Family], snapshot: Snapshot) -> None:
    """This month, broken down, and how far it goes."""
    month = snapshot.month
    if month is None:
        return
    currency = labels(currency=month.currency or snapshot.invoice.currency)
    _tree(families, month.teams, currency, MONTH_LEVELS)
    families[UNBILLED_BREAKDOWN_THROUGH].add("", month.through)


def _unbilled(families: dict[Spec, Family], snapshot: Snapshot, currency: str) -> None:
    """Usage not yet invoiced, and the teams' budgets."""
    figures = snapshot.unbilled
    if figures is not None:
        families[UNBILLED_COST].add(currency, figures.total)
        families[UNBILLED_PAAS_DIMENSION_COST].add_dimensions(currency, "", figures.paas.dimensions)
        families[UNBILLED_BYOC_DIMENSION_COST].add_dimensions(currency, "", figures.byoc.dimensions)
        for row in figures.teams:
            where = f"{currency},{labels(team=row.team_id, team_name=row.team_name)}"
            families[TEAM_UNBILLED_COST].add(where, row.amount)
        families[UNBILLED_SINCE].add("", figures.since)
        families[UNBILLED_THROUGH].add("", figures.through)
    for row in snapshot.budgets:
        where = f"{currency},{labels(team=row.team_id, team_name=row.team_name)}"
        families[TEAM_BUDGET].add(where, row.amount)


def _credit(families: dict[Spec, Family], snapshot: Snapshot) -> None:
    """The credit balance, in its own currency (the invoice's when it gives none)."""
    credit = snapshot.credit
    if credit is None:
        return
    currency = labels(currency=credit.currency or snapshot.invoice.currency)
    families[CREDIT_AVAILABLE].add(currency, credit.available)
    families[CREDIT_PENDING].add(currency, credit.pending)
    families[CREDIT_GRANT_AVAILABLE].add(currency, credit.grant_available)
    families[CREDIT_GRANT_PENDING].add(currency, credit.grant_pending)
    families[CUSTOMER_BALANCE].add(currency, credit.customer_balance)
    families[CREDIT_SYNCED].add("", credit.synced_at)
