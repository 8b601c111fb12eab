"""Pure view builders: from the organisation to the API's documents.

What the answers look like (invoice headers and summaries, the filter semantics of
"Get invoice", team entries, hourly usage entries with the running hour, ``/v1/auth``),
as functions of the data; errors are raised as :class:`ApiError`. Nothing here knows
about paging (:mod:`.paging`), routes (:mod:`.api`), HTTP, sockets, faults or clocks
(:mod:`.server`: the time of a request is passed in).

:class:`Organisation` is :class:`~.org.OrganisationData` with the ``render_*`` methods
tests use to compute what the API answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from exporter.simulator.hours import (
    history_entries,
    usage_first_hour,
    usage_hours,
)
from exporter.simulator.model import (
    BYOC_DIMENSIONS,
    KNOWN_RESOURCE_TYPES,
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
from exporter.simulator.org import Aggregates, OrganisationData


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


def invoice_header(invoice: Invoice, sums: Aggregates) -> Json:
    """The fields every invoice answer carries, whatever the filter."""
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


def invoice_summary(invoice: Invoice, sums: Aggregates) -> Json:
    """One entry of ``GET /v1/billing/invoices``."""
    header = invoice_header(invoice, sums)
    keys = ("id", "period", "currency", "total", "subTotal", "paid", "paasUsage", "byocUsage")
    return {key: header[key] for key in keys if key in header}


def invoice_view(invoice: Invoice, sums: Aggregates, view: InvoiceFilter) -> Json:
    """The whole (unpaged) ``data`` of ``GET .../invoices/{id}`` for a filter.

    A ``resourceType`` must be a known type (:data:`KNOWN_RESOURCE_TYPES`) or one some
    resource of the invoice has (added with :meth:`Organisation.add_resource`): 400
    otherwise.
    """
    if view.resource_type is not None and view.resource_type not in KNOWN_RESOURCE_TYPES:
        used = {key[2] for key in sums.by_type}
        if view.resource_type not in used:
            known = ", ".join(KNOWN_RESOURCE_TYPES)
            raise ApiError(400, f"Invalid resourceType: must be one of {known}")
    teams = invoice.teams
    if view.team_id is not None:
        teams = [t for t in invoice.teams if t.id == view.team_id]
        if not teams:
            raise ApiError(404, f"Team {view.team_id} not found on invoice {invoice.id}")
    show_projects = view.active or len(invoice.teams) == 1
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
    doc = invoice_header(invoice, sums)
    doc["paasUsage"] = {"price": price_json(paas if view.active else sums.paas), "teams": entries}
    return doc


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


def usage_view(
    org: OrganisationData,
    *,
    now: float,
    start: float | None = None,
    end: float | None = None,
    team_id: str | None = None,
    running_hour: bool = True,
    history: bool = False,
) -> list[Json]:
    """The whole (unpaged) ``data.usage`` at time ``now``: see :func:`usage_hours` and
    :func:`usage_entries`; with ``history`` from the oldest invoice's end (see
    :func:`history_entries`)."""
    if team_id is not None and all(team.id != team_id for team in org.teams):
        raise ApiError(404, f"Team {team_id} not found")
    first = usage_first_hour(org, history=history)
    hours = usage_hours(first, now, start, end, running_hour=running_hour)
    return history_entries(org, hours, team_id, now)


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


# --------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------

BILLING_READ = "Organisation > Admin > Billing > Read"  # as the late 2026 pages name it
TEAM_READ = "Organisation > Team > General > Read"
FULL_PERMISSIONS = (BILLING_READ, TEAM_READ, "Organisation > Admin > General > Read")
NO_BILLING_PERMISSIONS = (TEAM_READ, "Organisation > Admin > General > Read")


@dataclass(frozen=True)
class Caller:
    """Who a request's token is: what ``GET /v1/auth`` answers."""

    entity_type: str  # "org" or "team"
    entity_id: str
    permissions: tuple[str, ...] = FULL_PERMISSIONS
    expires_at: float | None = None  # Unix seconds; None: the token does not expire


def auth_view(caller: Caller) -> Json:
    """The ``data`` of ``GET /v1/auth`` (``expiresAt`` only for a token that expires)."""
    doc: Json = {
        "entityType": caller.entity_type,
        "entityId": caller.entity_id,
        "permissions": list(caller.permissions),
    }
    if caller.expires_at is not None:
        moment = datetime.fromtimestamp(caller.expires_at, UTC)
        doc["expiresAt"] = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return doc


# --------------------------------------------------------------------------------------
# The organisation, with what the API answers of it
# --------------------------------------------------------------------------------------


class Organisation(OrganisationData):
    """The simulated customer (see :class:`~.org.OrganisationData`), with the whole
    (unpaged) documents the API answers of it."""

    def render_invoice(
        self,
        invoice_id: str,
        *,
        team_id: str | None = None,
        project_id: str | None = None,
        resource_type: str | None = None,
    ) -> Json:
        """The whole (unpaged) ``data`` the API returns for this invoice and filter."""
        with self.lock:
            invoice = self.invoice(invoice_id)
            view = InvoiceFilter(team_id, project_id, resource_type)
            return invoice_view(invoice, self.aggregates(invoice), view)

    def render_invoice_summaries(self) -> list[Json]:
        """``data.invoices`` of the list endpoint, unpaged, in its order."""
        with self.lock:
            return [invoice_summary(i, self.aggregates(i)) for i in self.invoices]

    def render_usage(
        self,
        *,
        now: float,
        start: float | None = None,
        end: float | None = None,
        team_id: str | None = None,
        running_hour: bool = True,
        history: bool = False,
    ) -> list[Json]:
        """``data.usage`` of ``GET .../billing/usage`` at time ``now``, unpaged, newest
        first: the hours from the newest invoice's (see :func:`~.usage.usage_since`) and
        from ``start`` (inclusive) up to ``end`` (exclusive) that have ended by ``now``,
        and with ``running_hour`` (as ``Simulator(running_hour=True)``, the default) the
        hour still running, partly filled. With ``team_id``, the team variant (its PaaS
        usage only). Raises :class:`ApiError` (404) for a team the organisation does not
        have. With ``history`` (as ``Simulator(usage_history=True)``), the hours from the
        oldest invoice's end instead, each priced from the invoice whose period holds it."""
        with self.lock:
            return usage_view(
                self,
                now=now,
                start=start,
                end=end,
                team_id=team_id,
                running_hour=running_hour,
                history=history,
            )
