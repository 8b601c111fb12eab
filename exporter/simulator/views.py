"""Pure view builders: from an :class:`~.org.Organisation` to the API's documents.

What the answers look like (invoice headers and summaries, the filter semantics of
"Get invoice", team entries, hourly usage entries), how they are paged
(``per_page``/``page``/``cursor``), and the endpoints with their routing table, as
functions of (path parameters, query, path) -> (data, pagination). Errors are raised as
:class:`ApiError`; nothing here knows about HTTP, sockets, tokens, faults or clocks (that
is :mod:`.server`: the time of a request is passed in).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from exporter.simulator.org import (
    BYOC_DIMENSIONS,
    HOUR,
    KNOWN_RESOURCE_TYPES,
    PAAS_DIMENSIONS,
    Invoice,
    InvoiceTeam,
    Json,
    LineItem,
    Organisation,
    Price,
    Project,
    Resource,
    Team,
    UsageRates,
    _add,
    _Aggregates,
    _sum,
    _zero,
    usage_since,
)

MAX_PAGE_SIZE = 100


# --------------------------------------------------------------------------------------
# Views: pure functions from the data to the API's documents
# --------------------------------------------------------------------------------------


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


def price_json(price: Mapping[str, float], dimensions: Iterable[str] = PAAS_DIMENSIONS) -> Json:
    """A price object: ``total`` and every non-zero dimension (zero ones are left out)."""
    doc: Json = {"total": sum(price.get(dim, 0) for dim in dimensions)}
    doc.update({dim: price[dim] for dim in dimensions if price.get(dim, 0)})
    return doc


def invoice_header(invoice: Invoice, sums: _Aggregates) -> Json:
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


def invoice_summary(invoice: Invoice, sums: _Aggregates) -> Json:
    """One entry of ``GET /v1/billing/invoices``."""
    header = invoice_header(invoice, sums)
    keys = ("id", "period", "currency", "total", "subTotal", "paid", "paasUsage", "byocUsage")
    return {key: header[key] for key in keys if key in header}


def invoice_view(invoice: Invoice, sums: _Aggregates, view: InvoiceFilter) -> Json:
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
    paas = _zero()
    for team in teams:
        slice_ = _team_slice(team, sums, view)
        if view.narrows and not slice_ and view.team_id is None:
            continue  # nothing of this team in the slice
        if view.project_id is not None and not slice_:
            raise ApiError(404, f"Project {view.project_id} not found")
        team_price = sums.by_team[team.id] if not view.narrows else _sum(p for _, p in slice_)
        _add(paas, team_price)
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


def page_invoice(doc: Json, view: InvoiceFilter, offset: int, size: int, scope: str) -> Json:
    """Cut an invoice document (in place) down to one page; return ``pagination``.

    ``per_page`` counts what the filters make the breakdown of: teams (no ``teamId``),
    the team's projects (``teamId`` alone), or resources (``teamId`` with ``projectId``
    and/or ``resourceType``: every project's resources of the types, in order). The
    totals, line items, BYOC, and the team, project and resource type entries (with
    their whole prices) that hold a page's resources repeat on every page. The
    ``cursor`` is a decoy (the breakdown pages by ``page``; a cursor sent back is
    ignored).
    """
    teams: list[Json] = doc["paasUsage"]["teams"]
    if view.team_id is None:
        return paginate(teams, offset, size, scope)
    projects: list[Json] = teams[0]["projects"]
    if not view.narrows:
        return paginate(projects, offset, size, scope)
    flat = [
        (p, t, r)
        for p, project in enumerate(projects)
        for t, group in enumerate(project["resourceTypes"])
        for r in range(len(group["resources"]))
    ]
    window = flat[offset : offset + size]
    if flat:
        kept: dict[int, dict[int, list[int]]] = {}
        for p, t, r in window:
            kept.setdefault(p, {}).setdefault(t, []).append(r)
        teams[0]["projects"] = [
            {
                **projects[p],
                "resourceTypes": [
                    {
                        **projects[p]["resourceTypes"][t],
                        "resources": [projects[p]["resourceTypes"][t]["resources"][r] for r in rs],
                    }
                    for t, rs in types.items()
                ],
            }
            for p, types in kept.items()
        ]
    has_next = offset + size < len(flat)
    return {
        "hasNextPage": has_next,
        "cursor": _encode_cursor(offset + size, scope) if has_next else None,
        "count": len(window),
    }


def _team_slice(
    team: InvoiceTeam, sums: _Aggregates, view: InvoiceFilter
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
    team_id: str, project: Project, price: Price, sums: _Aggregates, view: InvoiceFilter
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


def usage_hours(
    since: int,
    now: float,
    start: float | None = None,
    end: float | None = None,
    *,
    running_hour: bool = False,
) -> list[int]:
    """Starts of the usage hours to answer, newest first: ``since + k * 3600`` (``since``
    is :func:`usage_since` of the newest invoice) for every hour that has ended by
    ``now`` (start + 3600 <= now), with ``running_hour`` also the one running (start <
    now < start + 3600), and that starts in [``start``, ``end``)."""
    first = 0 if start is None else max(0, math.ceil((start - since) / HOUR))
    elapsed = (now - since) / HOUR
    stop = max(0, math.ceil(elapsed) if running_hour else math.floor(elapsed))
    if end is not None:
        stop = min(stop, math.ceil((end - since) / HOUR))
    return list(range(since + (stop - 1) * HOUR, since + first * HOUR - 1, -HOUR))


def usage_entries(
    hours: Iterable[int], rates: UsageRates, team_id: str | None, now: float | None = None
) -> list[Json]:
    """The ``data.usage`` entries of these hours: the organisation's PaaS and BYOC
    usage, or with ``team_id`` the team's PaaS usage only (BYOC has no team share).

    An hour still running at ``now`` is partly filled (see :func:`running_fraction`):
    each team's figure per dimension is the full hour's times the fraction elapsed,
    rounded to 1/1024 cent (so that sums stay exact in binary floating point); the
    organisation's PaaS figure is the sum of its teams', its BYOC figure the full one's
    times the fraction, rounded the same way.
    """
    entries = []
    for hour in hours:
        fraction = 1.0 if now is None else running_fraction(hour, now)
        if team_id is not None:
            team = rates.team_hour(team_id, hour)
            if fraction < 1:
                team = _partial(team, fraction)
            entries.append({"timestamp": hour, "paasUsage": {"price": price_json(team)}})
            continue
        if fraction < 1:
            paas = _sum(_partial(rates.team_hour(t, hour), fraction) for t in rates.team_ids)
        else:
            paas = rates.paas_hour(hour)
        entry: Json = {"timestamp": hour, "paasUsage": {"price": price_json(paas)}}
        if rates.byoc is not None:
            byoc = rates.byoc if fraction >= 1 else _partial(rates.byoc, fraction)
            entry["byocUsage"] = {"price": price_json(byoc, BYOC_DIMENSIONS)}
        entries.append(entry)
    return entries


def running_fraction(hour: int, now: float) -> float:
    """How much of the hour starting at ``hour`` has elapsed at ``now``: 0 .. 1."""
    return min(1.0, max(0.0, (now - hour) / HOUR))


def _partial(price: Mapping[str, float], fraction: float) -> Price:
    return {dim: round(cents * fraction * 1024) / 1024 for dim, cents in price.items()}


def usage_view(
    org: Organisation,
    *,
    now: float,
    start: float | None = None,
    end: float | None = None,
    team_id: str | None = None,
    running_hour: bool = True,
) -> list[Json]:
    """The whole (unpaged) ``data.usage`` at time ``now``: see :func:`usage_hours` and
    :func:`usage_entries`."""
    if team_id is not None and all(team.id != team_id for team in org.teams):
        raise ApiError(404, f"Team {team_id} not found")
    invoice = org.newest_invoice()
    hours = usage_hours(usage_since(invoice), now, start, end, running_hour=running_hour)
    return usage_entries(hours, org.usage_rates(invoice), team_id, now)


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
# Pagination
# --------------------------------------------------------------------------------------


def cursor_window(
    query: Mapping[str, str], default_size: int, scope: str, max_size: int = MAX_PAGE_SIZE
) -> tuple[int, int]:
    """(offset, size) of the page a list endpoint's query asks for: ``per_page`` and
    ``cursor`` (a ``page`` parameter is ignored: removed from the list pages in June
    2026); 400 on a bad ``per_page`` or cursor."""
    size = _page_size(query, default_size, max_size)
    offset = _decode_cursor(query["cursor"], scope) if query.get("cursor") else 0
    return offset, size


def page_number_window(
    query: Mapping[str, str], default_size: int, max_size: int = MAX_PAGE_SIZE
) -> tuple[int, int]:
    """(offset, size) of the page the invoice breakdown's query asks for: ``per_page``
    and ``page`` (1, 2, ...; a ``cursor`` parameter is ignored: it has none); 400 on a
    bad ``per_page`` or ``page``."""
    size = _page_size(query, default_size, max_size)
    page = _positive_int(query["page"], "page") if query.get("page") else 1
    return (page - 1) * size, size


def _page_size(query: Mapping[str, str], default_size: int, max_size: int) -> int:
    """``per_page`` (default ``default_size``), capped at ``max_size`` (100, as the API;
    tests lower it to force paging)."""
    if "per_page" not in query:
        return min(default_size, max_size)
    return min(_positive_int(query["per_page"], "per_page"), max_size)


def paginate(items: list[Any], offset: int, size: int, scope: str) -> Json:
    """Cut ``items`` down (in place) to one page; return the ``pagination`` object."""
    page = items[offset : offset + size]
    has_next = offset + size < len(items)
    items[:] = page
    return {
        "hasNextPage": has_next,
        "cursor": _encode_cursor(offset + size, scope) if has_next else None,
        "count": len(page),
    }


def _positive_int(text: str, name: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, f"Invalid {name}: not an integer") from None
    if value < 1:
        raise ApiError(400, f"Invalid {name}: must be at least 1")
    return value


def _timestamp(query: Mapping[str, str], name: str) -> float | None:
    """A Unix-seconds query parameter; None when absent or empty, 400 when not a number."""
    text = query.get(name)
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ApiError(400, f"Invalid {name}: not a number") from None
    if not math.isfinite(value):
        raise ApiError(400, f"Invalid {name}: not a number")
    return value


def _encode_cursor(offset: int, scope: str) -> str:
    raw = json.dumps({"o": offset, "s": scope}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, scope: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError):
        raise ApiError(400, "Invalid cursor") from None
    if (
        not isinstance(decoded, dict)
        or decoded.get("s") != scope
        or not isinstance(decoded.get("o"), int)
        or decoded["o"] < 0
    ):
        raise ApiError(400, "Invalid cursor")
    offset: int = decoded["o"]
    return offset


def _scope(path: str, query: Mapping[str, str]) -> str:
    """What a cursor belongs to: the path and the filters (not the page size)."""
    filters = sorted(
        (k, v) for k, v in query.items() if k in ("teamId", "projectId", "resourceType")
    )
    return f"{zlib.crc32(repr((path, filters)).encode()):08x}"


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
# The API: routes over the organisation
# --------------------------------------------------------------------------------------

Handler = Callable[["_Api", dict[str, str], dict[str, str], str], tuple[Json, Json | None]]


@dataclass(frozen=True)
class ApiMode:
    """How the simulated API answers (see :class:`~.server.Simulator`'s options)."""

    page_size: int = 50
    max_page_size: int = MAX_PAGE_SIZE
    running_hour: bool = True
    legacy_billing: bool = False


class _Api:
    """The endpoints, as functions of (path parameters, query, path) -> (data, pagination)."""

    def __init__(self, org: Organisation, mode: ApiMode, caller: Caller, now: float) -> None:
        self.org = org
        self.mode = mode
        self.caller = caller
        self.now = now  # the simulator's clock at this request (which usage hours ended)

    def auth(
        self, params: dict[str, str], query: dict[str, str], path: str
    ) -> tuple[Json, Json | None]:
        return auth_view(self.caller), None

    def list_invoices(
        self, params: dict[str, str], query: dict[str, str], path: str
    ) -> tuple[Json, Json | None]:
        self._billing()
        if "team" in params:
            self._team(params["team"])
        scope = _scope(path, query)
        offset, size = cursor_window(query, self.mode.page_size, scope, self.mode.max_page_size)
        invoices = self.org.render_invoice_summaries()
        if self.mode.legacy_billing:  # the older API (JS client 0.9.5): no id, no currency
            for summary in invoices:
                del summary["id"], summary["currency"]
        return {"invoices": invoices}, paginate(invoices, offset, size, scope)

    def get_invoice(
        self, params: dict[str, str], query: dict[str, str], path: str
    ) -> tuple[Json, Json | None]:
        self._billing()
        self._not_legacy(path)
        team_id = query.get("teamId") or None
        if "team" in params:
            self._team(params["team"])
            if team_id not in (None, params["team"]):
                raise ApiError(400, "teamId does not match the team in the path")
            team_id = params["team"]
        view = InvoiceFilter(
            team_id, query.get("projectId") or None, query.get("resourceType") or None
        )
        offset, size = page_number_window(query, self.mode.page_size, self.mode.max_page_size)
        try:
            invoice = self.org.invoice(params["invoice"])
        except KeyError:
            raise ApiError(404, f"Invoice {params['invoice']} not found") from None
        data = invoice_view(invoice, self.org.aggregates(invoice), view)
        return data, page_invoice(data, view, offset, size, _scope(path, query))

    def invoice_details(
        self, params: dict[str, str], query: dict[str, str], path: str
    ) -> tuple[Json, Json | None]:
        """The older API's preview invoice: the newest invoice's document without ``id``
        (the current API has no such endpoint: "details" is no invoice ID)."""
        if not self.mode.legacy_billing:
            return self.get_invoice({"invoice": "details"}, query, path)
        self._billing()
        if _timestamp(query, "timestamp") is None:
            raise ApiError(400, "Invalid timestamp: required")
        invoice = self.org.newest_invoice()
        data = invoice_view(invoice, self.org.aggregates(invoice), InvoiceFilter())
        del data["id"]
        return data, None

    def list_teams(
        self, params: dict[str, str], query: dict[str, str], path: str
    ) -> tuple[Json, Json | None]:
        scope = _scope(path, query)
        offset, size = cursor_window(query, self.mode.page_size, scope, self.mode.max_page_size)
        teams = [team_json(team) for team in self.org.teams]
        return {"teams": teams}, paginate(teams, offset, size, scope)

    def list_usage(
        self, params: dict[str, str], query: dict[str, str], path: str
    ) -> tuple[Json, Json | None]:
        self._billing()
        self._not_legacy(path)
        team_id = self._team(params["team"]).id if "team" in params else None
        start, end = _timestamp(query, "startTime"), _timestamp(query, "endTime")
        scope = _scope(path, query)
        offset, size = cursor_window(query, self.mode.page_size, scope, self.mode.max_page_size)
        invoice = self.org.newest_invoice()
        hours = usage_hours(
            usage_since(invoice), self.now, start, end, running_hour=self.mode.running_hour
        )
        pagination = paginate(hours, offset, size, scope)  # only this page's hours are summed
        usage = usage_entries(hours, self.org.usage_rates(invoice), team_id, self.now)
        return {"usage": usage}, pagination

    def _billing(self) -> None:
        if BILLING_READ not in self.caller.permissions:
            raise ApiError(403, f"Missing permission: {BILLING_READ}")

    def _not_legacy(self, path: str) -> None:
        if self.mode.legacy_billing:
            raise ApiError(404, f"Not found: {path}")

    def _team(self, team_id: str) -> Team:
        for team in self.org.teams:
            if team.id == team_id:
                return team
        raise ApiError(404, f"Team {team_id} not found")


_ROUTES: list[tuple[re.Pattern[str], Handler]] = [
    (re.compile(r"/v1/auth/?"), _Api.auth),
    (re.compile(r"/v1/billing/invoices/?"), _Api.list_invoices),
    (re.compile(r"/v1/teams/(?P<team>[^/]+)/billing/invoices/?"), _Api.list_invoices),
    (re.compile(r"/v1/billing/invoices/details/?"), _Api.invoice_details),
    (re.compile(r"/v1/billing/invoices/(?P<invoice>[^/]+)/?"), _Api.get_invoice),
    (
        re.compile(r"/v1/teams/(?P<team>[^/]+)/billing/invoices/(?P<invoice>[^/]+)/?"),
        _Api.get_invoice,
    ),
    (re.compile(r"/v1/teams/?"), _Api.list_teams),
    (re.compile(r"/v1/billing/usage/?"), _Api.list_usage),
    (re.compile(r"/v1/teams/(?P<team>[^/]+)/billing/usage/?"), _Api.list_usage),
]


def _route(path: str) -> tuple[Handler, dict[str, str]]:
    for pattern, handler in _ROUTES:
        matched = pattern.fullmatch(path)
        if matched:
            return handler, {k: unquote(v) for k, v in matched.groupdict().items()}
    raise ApiError(404, f"Not found: {path}")
