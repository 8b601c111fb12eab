"""Pure view builders: from the organisation to the API's documents.

What the answers look like (invoice headers and summaries, the filter semantics of
"Get invoice" and the one team a single-team token reads, team entries, the credit
balance), as functions of the data, in the legacy contract's shape (cents,
``paasUsage``), which :func:`~.contract.to_contract` turns into the contract asked for;
errors are raised as :class:`ApiError`. Nothing here knows about paging
(:mod:`.paging`), routes (:mod:`.api`), HTTP, sockets, faults or clocks (:mod:`.server`:
the time of a request is passed in).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from exporter.simulator.contract import Contract, lift_team, major
from exporter.simulator.model import (
    BYOC_DIMENSIONS,
    KNOWN_RESOURCE_TYPES,
    Credit,
    Invoice,
    InvoiceTeam,
    Json,
    LineItem,
    Price,
    Project,
    Resource,
    Team,
    add_price,
    price_json,
    sum_prices,
    zero_price,
)
from exporter.simulator.org import Aggregates

ONE_TEAM = "teamId is not accepted from a token that can only read one team"


class ApiError(Exception):
    """An error answer of the API: its status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class InvoiceFilter:
    """The query filters of ``GET .../billing/invoices/{invoiceId}``."""

    team_id: str | None = None
    project_id: str | None = None
    resource_type: str | None = None

    @property
    def narrows(self) -> bool:
        """A project or resource type filter: team prices become slices."""
        return self.project_id is not None or self.resource_type is not None

    @property
    def active(self) -> bool:
        return self.team_id is not None or self.narrows


def team_scope(
    team_id: str | None, contract: Contract, single_team: str | None
) -> tuple[str | None, str | None]:
    """(the ``teamId`` filter, the one team the breakdown shows without a filter) of a
    request whose ``teamId`` is ``team_id``, from a token of ``single_team`` (None: an
    organisation's token: (``team_id``, None)).

    In the current contract such a token's answers cover that team without its being
    named (the filter is the team, and :func:`~.contract.lift_team` starts them at the
    project level): ``teamId`` is 400. In the legacy one the answer is a one-team
    invoice, and ``teamId`` must be that team (403 for another).
    """
    if single_team is None:
        return team_id, None
    if contract == "current":
        if team_id is not None:
            raise ApiError(400, ONE_TEAM)
        return single_team, None
    if team_id is not None and team_id != single_team:
        raise ApiError(403, f"This token can only read team {single_team}")
    return team_id, single_team if team_id is None else None


def invoice_header(invoice: Invoice, sums: Aggregates) -> Json:
    """The fields every invoice answer carries, whatever the filter (``paid`` and
    ``status`` both: :func:`~.contract.to_contract` keeps the contract's one)."""
    items = [LineItem("PaaS usage", base=price_json(sums.paas)["total"])]
    if invoice.byoc is not None:
        items.append(LineItem("BYOC usage", base=_byoc_total(invoice.byoc)))
    items.extend(invoice.extra_line_items)
    sub_total = sum(item.total for item in items)
    taxable = sub_total - invoice.discount
    tax = round(taxable * invoice.tax_percent / 100)
    doc: Json = {
        "id": invoice.id,
        "period": {"start": invoice.period_start, "end": invoice.period_end},
        "currency": invoice.currency,
        "status": invoice.status,
    }
    if invoice.byoc is not None:
        doc["byocUsage"] = {"price": price_json(invoice.byoc, BYOC_DIMENSIONS)}
    doc["paasUsage"] = {"price": price_json(sums.paas)}
    doc["lineItems"] = [
        {"title": i.title, "total": i.total, "base": i.base, "proration": i.proration}
        for i in items
    ]
    doc["subTotal"] = sub_total
    doc["discounts"] = {"total": invoice.discount}
    doc["tax"] = {"percent": invoice.tax_percent, "amount": tax}
    doc["total"] = taxable + tax
    doc["paid"] = invoice.paid
    return doc


_SUMMARY_KEYS = (
    "id",
    "period",
    "currency",
    "status",
    "total",
    "subTotal",
    "paid",
    "paasUsage",
    "byocUsage",
)


def invoice_summary(invoice: Invoice, sums: Aggregates, only_team: str | None = None) -> Json:
    """One entry of ``GET /v1/billing/invoices``; with ``only_team`` (a single-team
    token) its PaaS price is that team's, as in its breakdown."""
    header = invoice_header(invoice, sums)
    summary = {key: header[key] for key in _SUMMARY_KEYS if key in header}
    if only_team is not None:
        summary["paasUsage"] = {"price": price_json(sums.by_team.get(only_team, zero_price()))}
    return summary


def invoice_view(
    invoice: Invoice, sums: Aggregates, view: InvoiceFilter, only_team: str | None = None
) -> Json:
    """The whole (unpaged) ``data`` of ``GET .../invoices/{id}`` for a filter (see
    :func:`paas_breakdown`)."""
    doc = invoice_header(invoice, sums)
    doc["paasUsage"] = paas_breakdown(invoice, sums, view, only_team)
    return doc


def invoice_document(
    invoice: Invoice,
    sums: Aggregates,
    view: InvoiceFilter,
    contract: Contract,
    single_team: str | None = None,
) -> Json:
    """:func:`invoice_view` of a request with ``view`` in ``contract`` from a token of
    ``single_team`` (see :func:`team_scope`), still in the legacy shape."""
    team_id, only_team = team_scope(view.team_id, contract, single_team)
    filtered = InvoiceFilter(team_id, view.project_id, view.resource_type)
    doc = invoice_view(invoice, sums, filtered, only_team)
    if contract == "current" and single_team is not None:
        lift_team(doc)
    return doc


def paas_breakdown(
    invoice: Invoice, sums: Aggregates, view: InvoiceFilter, only_team: str | None = None
) -> Json:
    """The ``paasUsage`` of an invoice (or of an hour, as an invoice) for a filter.

    Teams (with their projects when filtered or when the invoice has one team; with
    resource types and resources under a project or resource type filter), each team's
    price only the filtered slice; ``only_team``: that team alone, as on a one-team
    invoice. A ``resourceType`` must be a known type (:data:`KNOWN_RESOURCE_TYPES`) or
    one some resource of the invoice has (added with
    :meth:`~.org.OrganisationData.add_resource`): 400 otherwise.
    """
    check_resource_type(view.resource_type, {key[2] for key in sums.by_type})
    teams = invoice.teams
    if view.team_id is not None:
        teams = [t for t in invoice.teams if t.id == view.team_id]
        if not teams:
            raise ApiError(404, f"Team {view.team_id} not found on invoice {invoice.id}")
    elif only_team is not None:
        teams = [t for t in invoice.teams if t.id == only_team]
    scoped = view.active or only_team is not None
    show_projects = scoped or len(invoice.teams) == 1
    entries: list[Json] = []
    paas = zero_price()
    for team in teams:
        slice_ = _team_slice(team, sums, view)
        if view.narrows and not slice_ and view.team_id is None:
            continue  # nothing of this team in the slice
        if view.project_id is not None and not slice_:
            raise ApiError(404, f"Project {view.project_id} not found")
        team_price = sums.by_team[team.id] if not view.narrows else sum_prices(p for _, p in slice_)
        add_price(paas, team_price)
        entry: Json = {"id": team.id, "name": team.name, "price": price_json(team_price)}
        if show_projects:
            entry["projects"] = [
                _project_entry(team.id, project, price, sums, view) for project, price in slice_
            ]
        entries.append(entry)
    if view.project_id is not None and not entries:
        raise ApiError(404, f"Project {view.project_id} not found")
    return {"price": price_json(paas if scoped else sums.paas), "teams": entries}


def check_resource_type(resource_type: str | None, used: set[str]) -> None:
    """400 unless ``resource_type`` is None, a known type or one of ``used``."""
    if resource_type is None or resource_type in KNOWN_RESOURCE_TYPES or resource_type in used:
        return
    raise ApiError(400, f"Invalid resourceType: must be one of {', '.join(KNOWN_RESOURCE_TYPES)}")


def _team_slice(
    team: InvoiceTeam, sums: Aggregates, view: InvoiceFilter
) -> list[tuple[Project, Price]]:
    """The team's projects in the filter's slice, each with its (sliced) price."""
    sliced = []
    for project in team.projects:
        if view.project_id is not None and project.id != view.project_id:
            continue
        if view.resource_type is None:
            sliced.append((project, sums.by_project[(team.id, project.id)]))
            continue
        price = sums.by_type.get((team.id, project.id, view.resource_type))
        if price is not None:
            sliced.append((project, price))
    return sliced


def _project_entry(
    team_id: str, project: Project, price: Price, sums: Aggregates, view: InvoiceFilter
) -> Json:
    entry: Json = {"id": project.id, "name": project.name, "price": price_json(price)}
    if view.narrows:
        groups: dict[str, list[Resource]] = {}
        for resource in project.resources:
            if view.resource_type in (None, resource.resource_type):
                groups.setdefault(resource.resource_type, []).append(resource)
        entry["resourceTypes"] = [
            {
                "resourceType": rtype,
                "price": price_json(sums.by_type[(team_id, project.id, rtype)]),
                "resources": [
                    {"id": r.id, "name": r.name, "price": price_json(r.price)}
                    for r in groups[rtype]
                ],
            }
            for rtype in sorted(groups, key=_type_rank)
        ]
    return entry


def credit_view(credit: Credit, now: float) -> Json:
    """The ``data`` of ``GET /v1/billing/credit-balance`` (the current contract only:
    major units); ``lastSyncedAt`` the balance's own, else the start of ``now``'s hour (a
    balance synced hourly), to the second."""
    at = credit.synced_at if credit.synced_at is not None else now - now % 3600
    synced = datetime.fromtimestamp(math.floor(at), UTC)
    return {
        "currency": credit.currency,
        "total": {"available": major(credit.available), "pending": major(credit.pending)},
        "grants": {
            "available": major(credit.grants_available),
            "pending": major(credit.grants_pending),
        },
        "customerBalance": {"amount": major(credit.customer_balance)},
        "lastSyncedAt": synced.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def team_json(team: Team) -> Json:
    return {
        "id": team.id,
        "name": team.name,
        "description": team.description,
        "createdAt": team.created_at,
    }


def _type_rank(resource_type: str) -> tuple[int, str]:
    types = KNOWN_RESOURCE_TYPES
    return (types.index(resource_type) if resource_type in types else len(types), resource_type)


def _byoc_total(byoc: Mapping[str, float]) -> float:
    return sum(byoc.get(dim, 0) for dim in BYOC_DIMENSIONS)
