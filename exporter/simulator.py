"""A faithful fake of the Northflank billing API, for the demo mode and the tests.

The simulator serves, over real HTTP on loopback, the endpoints the exporter reads:

* ``GET /v1/billing/invoices`` and ``GET /v1/teams/{teamId}/billing/invoices``:
  invoice summaries, in a shuffled (deterministic, never date-sorted) order, paginated;
* ``GET /v1/billing/invoices/{invoiceId}`` and
  ``GET /v1/teams/{teamId}/billing/invoices/{invoiceId}``: one invoice, with the query
  filters ``teamId``, ``projectId`` and ``resourceType`` behaving as the "Get invoice"
  reference page says (a filtered team price is only the filtered slice; BYOC is always
  customer-wide), the breakdown paginated;
* ``GET /v1/teams``: the organisation's teams, paginated.

It checks ``Authorization: Bearer <token>`` (401, or 403 for ``forbidden_tokens``),
answers in the API's envelopes (``{"data": ...}``, ``{"error": {...}}``), sends the
``x-ratelimit-*`` headers on every response and answers 429 once the window's requests
are spent. Faults (errors, hangs, malformed bodies, latency) can be switched on per
request from Python.

The data is an :class:`Organisation` made by :func:`generate_organisation`: teams,
projects (whose IDs repeat across teams), resources of every resource type, and a few
monthly invoices. Only resource-level amounts are stored; every total (resource type,
project, team, PaaS, line items, tax, invoice) is derived from them when a request
comes, so a test can change a figure between two polls and every level stays consistent.

Use from Python (the tests)::

    with Simulator(generate_organisation(teams=2), page_size=10) as sim:
        sim.faults.fail(503, count=2)
        ...  # point the exporter at sim.url with token sim.token
        assert sim.count(path_prefix="/v1/billing/invoices/") == 3

Use standalone (the demo mode, benchmarks)::

    python -m exporter.simulator --port 8000 --teams 10 --projects 5 --resources 2

which prints ``<url> <token>`` on one line and serves until SIGINT or SIGTERM.

It binds 127.0.0.1 by default, uses the standard library only and logs nothing per
request.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import http
import json
import math
import random
import re
import secrets
import signal
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = [
    "BYOC_DIMENSIONS",
    "PAAS_DIMENSIONS",
    "RESOURCE_TYPES",
    "Faults",
    "Invoice",
    "InvoiceTeam",
    "LineItem",
    "Organisation",
    "Project",
    "RequestRecord",
    "Resource",
    "Simulator",
    "Team",
    "generate_organisation",
    "main",
]

RESOURCE_TYPES = (
    "job",
    "service",
    "addon",
    "volume",
    "opentofu-job",
    "llm-model-deployment",
    "external-addon",
)
PAAS_DIMENSIONS = ("cpu", "memory", "storage", "gpu")
BYOC_DIMENSIONS = ("vcpu", "memory", "gpuMemory", "cluster")
DEFAULT_TOKEN = "sim-token"  # noqa: S105 - a fixed demo token, not a secret
MAX_PAGE_SIZE = 100

Json = dict[str, Any]
Price = dict[str, int]
QueryMatch = Callable[[str, dict[str, str]], bool]


# --------------------------------------------------------------------------------------
# The data
# --------------------------------------------------------------------------------------


@dataclass
class Resource:
    """One resource; ``price`` maps PaaS dimensions to cents (0 or absent: no field)."""

    id: str
    name: str
    resource_type: str
    price: Price


@dataclass
class Project:
    id: str
    name: str
    resources: list[Resource] = field(default_factory=list)

    def resource(self, resource_id: str) -> Resource:
        for resource in self.resources:
            if resource.id == resource_id:
                return resource
        raise KeyError(resource_id)


@dataclass
class InvoiceTeam:
    """A team as one invoice bills it."""

    id: str
    name: str
    projects: list[Project] = field(default_factory=list)

    def project(self, project_id: str) -> Project:
        for project in self.projects:
            if project.id == project_id:
                return project
        raise KeyError(project_id)


@dataclass
class LineItem:
    """An invoice line besides the usage lines (which are derived from the usage)."""

    title: str
    base: int
    proration: int = 0

    @property
    def total(self) -> int:
        return self.base + self.proration


@dataclass
class Invoice:
    """A finalized invoice. Only resource-level PaaS amounts and BYOC are stored."""

    id: str
    period_start: int
    period_end: int
    teams: list[InvoiceTeam]
    currency: str = "usd"
    byoc: Price | None = None  # BYOC dimension -> cents; None: no byocUsage at all
    extra_line_items: list[LineItem] = field(default_factory=list)
    discount: int = 0
    tax_percent: float = 20
    paid: bool = False

    def team(self, team_id: str) -> InvoiceTeam:
        for team in self.teams:
            if team.id == team_id:
                return team
        raise KeyError(team_id)


@dataclass
class Team:
    """A team as ``GET /v1/teams`` lists it."""

    id: str
    name: str
    description: str
    created_at: str


@dataclass
class _Aggregates:
    """Sums of one invoice's resource amounts, computed in one pass."""

    by_type: dict[tuple[str, str, str], Price]
    by_project: dict[tuple[str, str], Price]
    by_team: dict[str, Price]
    paas: Price


@dataclass
class Organisation:
    """The simulated customer: its teams and invoices, guarded by ``lock``.

    ``invoices`` is kept in the order the list endpoint serves it. Change figures with
    :meth:`set_resource_price` / :meth:`set_byoc_price`, or edit the dataclasses inside
    ``with org.mutate():`` (that holds the lock and drops the cached sums; an edit made
    outside it may not show until the next one).
    """

    teams: list[Team]
    invoices: list[Invoice]
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    _version: int = field(default=0, repr=False, compare=False)
    _cache: dict[str, tuple[int, _Aggregates]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @contextlib.contextmanager
    def mutate(self) -> Iterator[Organisation]:
        """Hold the lock while editing the data; derived totals follow the edit."""
        with self.lock:
            try:
                yield self
            finally:
                self._version += 1
                self._cache.clear()

    def invoice(self, invoice_id: str) -> Invoice:
        with self.lock:
            for invoice in self.invoices:
                if invoice.id == invoice_id:
                    return invoice
        raise KeyError(invoice_id)

    def newest_invoice(self) -> Invoice:
        with self.lock:
            return max(self.invoices, key=lambda invoice: invoice.period_end)

    def set_resource_price(
        self,
        invoice_id: str,
        team_id: str,
        project_id: str,
        resource_id: str,
        *,
        cpu: int | None = None,
        memory: int | None = None,
        storage: int | None = None,
        gpu: int | None = None,
    ) -> None:
        """Set the given dimensions (cents) of one resource; 0 makes the field vanish."""
        given = {"cpu": cpu, "memory": memory, "storage": storage, "gpu": gpu}
        with self.mutate():
            invoice = self.invoice(invoice_id)
            resource = invoice.team(team_id).project(project_id).resource(resource_id)
            resource.price.update({k: v for k, v in given.items() if v is not None})

    def set_byoc_price(self, invoice_id: str, **cents: int) -> None:
        """Set BYOC dimensions (``vcpu``, ``memory``, ``gpuMemory``, ``cluster``)."""
        unknown = set(cents) - set(BYOC_DIMENSIONS)
        if unknown:
            raise ValueError(f"unknown BYOC dimensions: {sorted(unknown)}")
        with self.mutate():
            invoice = self.invoice(invoice_id)
            invoice.byoc = {**(invoice.byoc or {}), **cents}

    def aggregates(self, invoice: Invoice) -> _Aggregates:
        """The invoice's sums, cached until the next :meth:`mutate`."""
        with self.lock:
            cached = self._cache.get(invoice.id)
            if cached is not None and cached[0] == self._version:
                return cached[1]
            sums = aggregate(invoice)
            self._cache[invoice.id] = (self._version, sums)
            return sums

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
            return invoice_view(invoice, self.aggregates(invoice), view)[0]

    def render_invoice_summaries(self) -> list[Json]:
        """``data.invoices`` of the list endpoint, unpaged, in its order."""
        with self.lock:
            return [invoice_summary(i, self.aggregates(i)) for i in self.invoices]


# --------------------------------------------------------------------------------------
# Generating an organisation
# --------------------------------------------------------------------------------------

_TEAM_NAMES = (
    "Platform Café",  # a non-ASCII name, to test label escaping and decoding
    "Data Science",
    "Growth & Marketing",
    "Mobile Apps",
    "Security",
    "Research",
    "Customer Success",
    "Infrastructure",
)
_PROJECTS = (
    ("web", 'Web "Storefront"'),  # a quote, to test label escaping
    ("api", "Public API"),
    ("workers", "Background Workers"),
    ("data", "Data Pipeline"),
    ("auth", "Auth Service"),
    ("search", "Search"),
    ("ml", "ML Platform"),
    ("billing", "Billing"),
    ("docs", "Docs Site"),
    ("internal", "Internal Tools"),
)
_TYPE_LABELS = {
    "job": "Cron Job",
    "service": "Service",
    "addon": "Postgres Addon",
    "volume": "Data Volume",
    "opentofu-job": "OpenTofu Job",
    "llm-model-deployment": "LLM Deployment",
    "external-addon": "External Redis",
}
# The dimensions each resource type is billed for; all others are 0 (left out).
_TYPE_DIMENSIONS = {
    "job": ("cpu", "memory"),
    "service": ("cpu", "memory", "storage"),
    "addon": ("cpu", "memory", "storage"),
    "volume": ("storage",),
    "opentofu-job": ("cpu",),
    "llm-model-deployment": ("cpu", "memory", "gpu"),  # gpu only in odd-numbered teams
    "external-addon": ("memory",),
}


def generate_organisation(
    teams: int = 4,
    projects_per_team: int = 3,
    resources_per_type: int = 1,
    *,
    seed: int = 1,
    invoices: int = 3,
    byoc: bool = True,
    now: float | None = None,
) -> Organisation:
    """A deterministic organisation for ``seed``.

    Teams ``team-1``..``team-N``; every team has the same project IDs (``web``, ``api``,
    ...), every project ``resources_per_type`` resources of every resource type (IDs
    ``service-1``, ``volume-2``, ...). Even-numbered teams use no GPU, so their prices
    have no ``gpu`` field. ``invoices`` monthly invoices, the newest ending at the start
    of the current UTC month (of ``now``), each older one a month earlier with smaller
    figures; the newest is unpaid.
    """
    if min(teams, projects_per_team, resources_per_type, invoices) < 1:
        raise ValueError("teams, projects, resources and invoices must be at least 1")
    rng = random.Random(seed)  # noqa: S311 - made-up figures, not secrets
    team_list = [_generate_team(i, rng) for i in range(1, teams + 1)]
    base = [
        _generate_invoice_team(team, i, projects_per_team, resources_per_type, rng)
        for i, team in enumerate(team_list, start=1)
    ]
    base_byoc = {
        "vcpu": rng.randint(50_000, 250_000),
        "memory": rng.randint(20_000, 120_000),
        "gpuMemory": rng.randint(5_000, 40_000),
        "cluster": rng.randint(10_000, 30_000),
    }
    bounds = _month_starts(time.time() if now is None else now, invoices + 1)
    made = []
    for age in range(invoices):
        start, end = bounds[age + 1], bounds[age]
        made.append(
            Invoice(
                id=f"inv-{start:%Y-%m}",
                period_start=int(start.timestamp()),
                period_end=int(end.timestamp()),
                teams=[_scaled_team(team, age) for team in base],
                byoc={k: _scale(v, age) for k, v in base_byoc.items()} if byoc else None,
                extra_line_items=[
                    LineItem("Support plan", base=10_000, proration=-2_500),
                    LineItem("Build minutes", base=_scale(1_200, age)),
                    LineItem("Build minutes", base=_scale(800, age)),
                ],
                discount=_scale(1_500, age),
                tax_percent=20,
                paid=age > 0,
            )
        )
    return Organisation(teams=team_list, invoices=_shuffled(made, rng))


def _generate_team(index: int, rng: random.Random) -> Team:
    name = _TEAM_NAMES[index - 1] if index <= len(_TEAM_NAMES) else f"Team {index}"
    created = datetime(2022, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 10**8))
    return Team(
        id=f"team-{index}",
        name=name,
        description=f"The {name} team",
        created_at=created.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    )


def _generate_invoice_team(
    team: Team, index: int, projects: int, per_type: int, rng: random.Random
) -> InvoiceTeam:
    uses_gpu = index % 2 == 1
    made = []
    for p in range(projects):
        project_id, name = _PROJECTS[p % len(_PROJECTS)]
        if p >= len(_PROJECTS):
            round_ = p // len(_PROJECTS) + 1
            project_id, name = f"{project_id}-{round_}", f"{name} {round_}"
        resources = [
            Resource(
                id=f"{rtype}-{n}",
                name=f"{_TYPE_LABELS[rtype]} {n}",
                resource_type=rtype,
                price={
                    dim: rng.randint(50, 20_000)
                    for dim in _TYPE_DIMENSIONS[rtype]
                    if dim != "gpu" or uses_gpu
                },
            )
            for rtype in RESOURCE_TYPES
            for n in range(1, per_type + 1)
        ]
        made.append(Project(project_id, name, resources))
    return InvoiceTeam(team.id, team.name, made)


def _scale(cents: int, age: int) -> int:
    """An older invoice's figure: smaller, so tests can tell invoices apart."""
    return round(cents * 10 / (10 + age))


def _scaled_team(team: InvoiceTeam, age: int) -> InvoiceTeam:
    return InvoiceTeam(
        team.id,
        team.name,
        [
            Project(
                p.id,
                p.name,
                [
                    Resource(
                        r.id,
                        r.name,
                        r.resource_type,
                        {k: _scale(v, age) for k, v in r.price.items()},
                    )
                    for r in p.resources
                ],
            )
            for p in team.projects
        ],
    )


def _month_starts(now: float, count: int) -> list[datetime]:
    """Starts of the current UTC month and the ``count - 1`` before it, newest first."""
    month = datetime.fromtimestamp(now, UTC).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    starts = [month]
    for _ in range(count - 1):
        month = (month - timedelta(days=1)).replace(day=1)
        starts.append(month)
    return starts


def _shuffled(invoices: list[Invoice], rng: random.Random) -> list[Invoice]:
    """A deterministic shuffle in which, from three invoices on, the newest is neither
    first nor last (so the order is never sorted by date either way)."""
    order = list(invoices)
    rng.shuffle(order)
    if len(order) >= 3:
        newest = max(range(len(order)), key=lambda i: order[i].period_end)
        if newest in (0, len(order) - 1):
            order[newest], order[1] = order[1], order[newest]
    return order


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


def aggregate(invoice: Invoice) -> _Aggregates:
    """Resource type, project, team and PaaS sums of an invoice, in one pass."""
    by_type: dict[tuple[str, str, str], Price] = {}
    by_project: dict[tuple[str, str], Price] = {}
    by_team: dict[str, Price] = {}
    paas = _zero()
    for team in invoice.teams:
        team_sum = by_team.setdefault(team.id, _zero())
        for project in team.projects:
            project_sum = by_project.setdefault((team.id, project.id), _zero())
            for resource in project.resources:
                key = (team.id, project.id, resource.resource_type)
                type_sum = by_type.get(key)
                if type_sum is None:
                    type_sum = by_type[key] = _zero()
                _add(type_sum, resource.price)
                _add(project_sum, resource.price)
            _add(team_sum, project_sum)
        _add(paas, team_sum)
    return _Aggregates(by_type, by_project, by_team, paas)


def price_json(price: Mapping[str, int], dimensions: Iterable[str] = PAAS_DIMENSIONS) -> Json:
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


def invoice_view(
    invoice: Invoice, sums: _Aggregates, view: InvoiceFilter
) -> tuple[Json, list[Any]]:
    """The ``data`` of ``GET .../invoices/{id}`` for a filter, and the array to page.

    The paged array is the first level the filter does not pin to one entity: the
    project's ``resourceTypes`` with ``teamId`` and ``projectId``, the team's
    ``projects`` with ``teamId`` alone, otherwise ``paasUsage.teams``.
    """
    if view.resource_type is not None and view.resource_type not in RESOURCE_TYPES:
        raise ApiError(400, f"Invalid resourceType: must be one of {', '.join(RESOURCE_TYPES)}")
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
    paged: list[Any] = entries
    if view.team_id is not None:
        projects: list[Json] = entries[0]["projects"]
        paged = projects[0]["resourceTypes"] if view.project_id is not None else projects
    return doc, paged


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


def team_json(team: Team) -> Json:
    return {
        "id": team.id,
        "name": team.name,
        "description": team.description,
        "createdAt": team.created_at,
    }


def _type_rank(resource_type: str) -> tuple[int, str]:
    known = resource_type in RESOURCE_TYPES
    return (RESOURCE_TYPES.index(resource_type) if known else len(RESOURCE_TYPES), resource_type)


def _zero() -> Price:
    return dict.fromkeys(PAAS_DIMENSIONS, 0)


def _add(into: Price, other: Mapping[str, int]) -> None:
    for dim, cents in other.items():
        into[dim] = into.get(dim, 0) + cents


def _sum(prices: Iterable[Mapping[str, int]]) -> Price:
    total = _zero()
    for price in prices:
        _add(total, price)
    return total


def _byoc_total(byoc: Mapping[str, int]) -> int:
    return sum(byoc.get(dim, 0) for dim in BYOC_DIMENSIONS)


# --------------------------------------------------------------------------------------
# Pagination
# --------------------------------------------------------------------------------------


def page_window(
    query: Mapping[str, str], default_size: int, scope: str, max_size: int = MAX_PAGE_SIZE
) -> tuple[int, int]:
    """(offset, size) of the page a query asks for; 400 on a bad ``per_page`` or cursor.

    ``per_page`` is capped at ``max_size`` (100, as the API; tests lower it to force paging).
    """
    size = min(default_size, max_size)
    if "per_page" in query:
        size = _positive_int(query["per_page"], "per_page")
        size = min(size, max(max_size, min(default_size, max_size)))
    offset = 0
    if query.get("cursor"):
        offset = _decode_cursor(query["cursor"], scope)
    elif query.get("page"):
        offset = (_positive_int(query["page"], "page") - 1) * size
    return offset, size


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
# The API: routes over the organisation
# --------------------------------------------------------------------------------------

Handler = Callable[["_Api", dict[str, str], dict[str, str], str], tuple[Json, Json | None]]


class _Api:
    """The endpoints, as functions of (path parameters, query, path) -> (data, pagination)."""

    def __init__(self, org: Organisation, page_size: int, max_page_size: int) -> None:
        self.org = org
        self.page_size = page_size
        self.max_page_size = max_page_size

    def list_invoices(
        self, params: dict[str, str], query: dict[str, str], path: str
    ) -> tuple[Json, Json | None]:
        if "team" in params:
            self._team(params["team"])
        offset, size = page_window(query, self.page_size, _scope(path, query), self.max_page_size)
        invoices = self.org.render_invoice_summaries()
        pagination = paginate(invoices, offset, size, _scope(path, query))
        return {"invoices": invoices}, pagination

    def get_invoice(
        self, params: dict[str, str], query: dict[str, str], path: str
    ) -> tuple[Json, Json | None]:
        team_id = query.get("teamId") or None
        if "team" in params:
            self._team(params["team"])
            if team_id not in (None, params["team"]):
                raise ApiError(400, "teamId does not match the team in the path")
            team_id = params["team"]
        view = InvoiceFilter(
            team_id, query.get("projectId") or None, query.get("resourceType") or None
        )
        scope = _scope(path, query)
        offset, size = page_window(query, self.page_size, scope, self.max_page_size)
        try:
            invoice = self.org.invoice(params["invoice"])
        except KeyError:
            raise ApiError(404, f"Invoice {params['invoice']} not found") from None
        data, paged = invoice_view(invoice, self.org.aggregates(invoice), view)
        return data, paginate(paged, offset, size, scope)

    def list_teams(
        self, params: dict[str, str], query: dict[str, str], path: str
    ) -> tuple[Json, Json | None]:
        scope = _scope(path, query)
        offset, size = page_window(query, self.page_size, scope, self.max_page_size)
        teams = [team_json(team) for team in self.org.teams]
        return {"teams": teams}, paginate(teams, offset, size, scope)

    def _team(self, team_id: str) -> Team:
        for team in self.org.teams:
            if team.id == team_id:
                return team
        raise ApiError(404, f"Team {team_id} not found")


_ROUTES: list[tuple[re.Pattern[str], Handler]] = [
    (re.compile(r"/v1/billing/invoices/?"), _Api.list_invoices),
    (re.compile(r"/v1/teams/(?P<team>[^/]+)/billing/invoices/?"), _Api.list_invoices),
    (re.compile(r"/v1/billing/invoices/(?P<invoice>[^/]+)/?"), _Api.get_invoice),
    (
        re.compile(r"/v1/teams/(?P<team>[^/]+)/billing/invoices/(?P<invoice>[^/]+)/?"),
        _Api.get_invoice,
    ),
    (re.compile(r"/v1/teams/?"), _Api.list_teams),
    # Reserved: GET /v1/billing/usage and /v1/teams/{teamId}/billing/usage (hourly usage,
    # data.usage[]{timestamp, paasUsage.price, byocUsage.price}, startTime/endTime,
    # paginated) go here, with their view builder beside invoice_view above.
]


def _route(path: str) -> tuple[Handler, dict[str, str]]:
    for pattern, handler in _ROUTES:
        matched = pattern.fullmatch(path)
        if matched:
            return handler, {k: unquote(v) for k, v in matched.groupdict().items()}
    raise ApiError(404, f"Not found: {path}")


# --------------------------------------------------------------------------------------
# Faults and request records
# --------------------------------------------------------------------------------------


@dataclass
class _Rule:
    kind: str  # "fail", "hang" or "malformed"
    remaining: int
    match: QueryMatch | None
    status: int = 200
    seconds: float = 0.0
    retry_after: float | None = None
    ratelimit_reset: float | None = None
    body: str | None = None
    content_type: str = "application/json"
    malformed: str = "json"


_MALFORMED_KINDS = ("json", "truncated", "html", "schema")


class Faults:
    """Faults to inject, consumed in the order they were added by matching requests.

    ``match(path, query)`` limits a fault to some requests (default: any request).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self.latency: float = 0.0

    def fail(
        self,
        status: int,
        count: int = 1,
        *,
        retry_after: float | None = None,
        ratelimit_reset: float | None = None,
        body: str | None = None,
        content_type: str = "application/json",
        match: QueryMatch | None = None,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status`` (the error
        envelope, or ``body`` as ``content_type`` when given)."""
        self._add(
            _Rule(
                "fail",
                count,
                match,
                status=status,
                retry_after=retry_after,
                ratelimit_reset=ratelimit_reset,
                body=body,
                content_type=content_type,
            )
        )

    def hang(self, count: int = 1, seconds: float = 30, match: QueryMatch | None = None) -> None:
        """Hold the next ``count`` matching requests for ``seconds``, then close the
        connection without an answer (sooner when the simulator stops)."""
        self._add(_Rule("hang", count, match, seconds=seconds))

    def malformed(
        self, count: int = 1, kind: str = "json", match: QueryMatch | None = None
    ) -> None:
        """Answer 200 with a bad body: ``json`` (not JSON), ``truncated`` (the real
        answer cut in half), ``html`` (an HTML page) or ``schema`` (JSON of the wrong
        shape)."""
        if kind not in _MALFORMED_KINDS:
            raise ValueError(f"kind must be one of {_MALFORMED_KINDS}")
        self._add(_Rule("malformed", count, match, malformed=kind))

    def reset(self) -> None:
        """No faults, no latency."""
        with self._lock:
            self._rules.clear()
            self.latency = 0.0

    @property
    def pending(self) -> int:
        """Requests still to be faulted."""
        with self._lock:
            return sum(rule.remaining for rule in self._rules)

    def _add(self, rule: _Rule) -> None:
        if rule.remaining < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._rules.append(rule)

    def _take(self, path: str, query: dict[str, str]) -> _Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.match is None or rule.match(path, query):
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._rules.remove(rule)
                    return rule
        return None


@dataclass
class RequestRecord:
    """One request seen; ``status`` is None while it runs or when it got no answer."""

    method: str
    path: str
    query: dict[str, str]
    time: float  # time.monotonic() at arrival
    status: int | None = None


# --------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------


@dataclass
class _Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def _json_response(status: int, document: Json) -> _Response:
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    return _Response(status, body)


def _error_response(status: int, message: str | None = None) -> _Response:
    return _json_response(
        status,
        {
            "error": {
                "status": status,
                "message": message or _phrase(status),
                "id": secrets.token_hex(12),
                "details": {},
            }
        },
    )


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _seconds(value: float) -> str:
    return f"{value:g}"


_HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    "<body><h1>Bad Gateway</h1><p>The upstream answered badly.</p></body></html>"
)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() closes live connections itself
    request_queue_size = 512
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        self.simulator = simulator
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client that went away is not news."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "northflank-simulator"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = 120  # an idle keep-alive connection is dropped after this

    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: no line per request."""

    def setup(self) -> None:
        super().setup()
        self.server.simulator._connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.simulator._connection_closed(self.connection)

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = do_GET

    def _serve(self) -> None:
        sim = self.server.simulator
        split = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        self._discard_body()
        record = sim._record(self.command, split.path, query)
        response = sim._respond(self.command, split.path, query, self.headers.get("Authorization"))
        if response is None:  # hung, or the simulator is stopping: no answer at all
            self.close_connection = True
            return
        record.status = response.status
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _discard_body(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if 0 < length <= 1 << 20:
            self.rfile.read(length)
        elif length or self.headers.get("Transfer-Encoding"):
            self.close_connection = True


@dataclass
class _Window:
    started: float
    used: int = 0


class Simulator:
    """The fake API server. ``start()`` it (or use ``with``), read ``url``, ``stop()``."""

    def __init__(
        self,
        org: Organisation | None = None,
        *,
        token: str = DEFAULT_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        page_size: int = 50,
        max_page_size: int = MAX_PAGE_SIZE,
        rate_limit: int = 1000,
        rate_window_seconds: float = 3600,
        retry_after_on_429: bool = True,
        forbidden_tokens: Iterable[str] = (),
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.org = org if org is not None else generate_organisation()
        self.token = token
        self.forbidden_tokens = frozenset(forbidden_tokens)
        self.host = host
        self.port = port
        self.page_size = page_size
        self.max_page_size = max_page_size
        self.rate_limit = rate_limit
        self.rate_window_seconds = rate_window_seconds
        self.retry_after_on_429 = retry_after_on_429
        self.faults = Faults()
        self._lock = threading.Lock()
        self._requests: list[RequestRecord] = []
        self._windows: dict[str, _Window] = {}
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Simulator:
        if self._server is not None:
            raise RuntimeError("simulator already started")
        self._stopping.clear()
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="northflank-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hanging and sleeping requests are cut short. Idempotent."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if thread is not None:
            thread.join(timeout=2)
        self._server = self._thread = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("simulator not started")
        return f"http://{self.host}:{self.port}"

    # -- what tests look at ---------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the requests seen so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def count(
        self,
        *,
        path_prefix: str | None = None,
        query_has: str | Mapping[str, str] | None = None,
    ) -> int:
        """Requests seen whose path starts with ``path_prefix`` and whose query has the
        key ``query_has`` (a string) or all the pairs of ``query_has`` (a mapping)."""
        return sum(1 for r in self.requests if _selected(r, path_prefix, query_has))

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def reset_rate_limit(self) -> None:
        """Forget every rate-limit window (the next request starts a new one)."""
        with self._lock:
            self._windows.clear()

    # -- serving (called by the handler threads) --------------------------------------

    def _record(self, method: str, path: str, query: dict[str, str]) -> RequestRecord:
        record = RequestRecord(method, path, query, time.monotonic())
        with self._lock:
            self._requests.append(record)
        return record

    def _connection_opened(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def _connection_closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _respond(
        self, method: str, path: str, query: dict[str, str], authorization: str | None
    ) -> _Response | None:
        """The answer to one request, or None for no answer (hang, stop)."""
        if self.faults.latency > 0 and self._stopping.wait(self.faults.latency):
            return None
        allowed, limit_headers = self._spend(authorization or "")
        if not allowed:
            response = _error_response(429, "Rate limit exceeded")
            if self.retry_after_on_429:
                response.headers["Retry-After"] = limit_headers["x-ratelimit-reset"]
        else:
            rule = self.faults._take(path, query)
            if rule is None:
                response = self._answer(method, path, query, authorization)
            else:
                faulted = self._fault(rule, method, path, query, authorization)
                if faulted is None:
                    return None
                response = faulted
        response.headers = {**limit_headers, **response.headers}
        return response

    def _spend(self, key: str) -> tuple[bool, dict[str, str]]:
        """Count one request against its token's window; (allowed, rate-limit headers)."""
        now = time.monotonic()
        with self._lock:
            window = self._windows.get(key)
            if window is None or now >= window.started + self.rate_window_seconds:
                window = self._windows[key] = _Window(now)
            allowed = window.used < self.rate_limit
            if allowed:
                window.used += 1
            reset = math.ceil(window.started + self.rate_window_seconds - now)
            remaining = max(0, self.rate_limit - window.used)
        return allowed, {
            "x-ratelimit-limit": str(self.rate_limit),
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-reset": str(max(0, reset)),
        }

    def _answer(
        self, method: str, path: str, query: dict[str, str], authorization: str | None
    ) -> _Response:
        try:
            if method != "GET":
                response = _error_response(405, f"Method {method} not allowed")
                response.headers["Allow"] = "GET"
                return response
            self._authorize(authorization)
            handler, params = _route(path)
            with self.org.lock:
                data, pagination = handler(
                    _Api(self.org, self.page_size, self.max_page_size), params, query, path
                )
        except ApiError as error:
            return _error_response(error.status, error.message)
        document: Json = {"data": data}
        if pagination is not None:
            document["pagination"] = pagination
        return _json_response(200, document)

    def _authorize(self, authorization: str | None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        if not authorization:
            raise ApiError(401, "Missing API token")
        if scheme.lower() != "bearer" or not secrets.compare_digest(
            token.strip().encode(), self.token.encode()
        ):
            if scheme.lower() == "bearer" and token.strip() in self.forbidden_tokens:
                raise ApiError(403, "Token lacks the permission Account > Billing > General > Read")
            raise ApiError(401, "Invalid API token")

    def _fault(
        self,
        rule: _Rule,
        method: str,
        path: str,
        query: dict[str, str],
        authorization: str | None,
    ) -> _Response | None:
        if rule.kind == "hang":
            self._stopping.wait(rule.seconds)
            return None
        if rule.kind == "fail":
            if rule.body is None:
                response = _error_response(rule.status)
            else:
                response = _Response(rule.status, rule.body.encode(), rule.content_type)
            if rule.retry_after is not None:
                response.headers["Retry-After"] = _seconds(rule.retry_after)
            if rule.ratelimit_reset is not None:
                response.headers["x-ratelimit-reset"] = _seconds(rule.ratelimit_reset)
            if rule.status == 429:
                response.headers["x-ratelimit-remaining"] = "0"
            return response
        return self._malformed(rule.malformed, method, path, query, authorization)

    def _malformed(
        self,
        kind: str,
        method: str,
        path: str,
        query: dict[str, str],
        authorization: str | None,
    ) -> _Response:
        if kind == "html":
            return _Response(200, _HTML_PAGE.encode(), "text/html; charset=utf-8")
        if kind == "schema":
            return _json_response(200, {"data": {"id": 5}})
        if kind == "truncated":
            whole = self._answer(method, path, query, authorization).body
            return _Response(200, whole[: max(1, len(whole) // 2)])
        return _Response(200, b'{"data": {"id": "inv-1",, "total": }')


def _selected(
    record: RequestRecord, path_prefix: str | None, query_has: str | Mapping[str, str] | None
) -> bool:
    if path_prefix is not None and not record.path.startswith(path_prefix):
        return False
    if query_has is None:
        return True
    if isinstance(query_has, str):
        return query_has in record.query
    return all(record.query.get(k) == v for k, v in query_has.items())


# --------------------------------------------------------------------------------------
# Standalone
# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python -m exporter.simulator``: serve a generated organisation until a signal."""
    parser = argparse.ArgumentParser(
        prog="python -m exporter.simulator", description="A fake Northflank billing API."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--teams", type=int, default=4)
    parser.add_argument("--projects", type=int, default=3, help="projects per team")
    parser.add_argument("--resources", type=int, default=1, help="resources per type")
    parser.add_argument("--invoices", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-byoc", action="store_true")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--page-size", type=int, default=50)
    parser.add_argument("--rate-limit", type=int, default=1000)
    parser.add_argument("--rate-window-seconds", type=float, default=3600)
    args = parser.parse_args(argv)
    org = generate_organisation(
        args.teams,
        args.projects,
        args.resources,
        seed=args.seed,
        invoices=args.invoices,
        byoc=not args.no_byoc,
    )
    sim = Simulator(
        org,
        token=args.token,
        host=args.host,
        port=args.port,
        page_size=args.page_size,
        rate_limit=args.rate_limit,
        rate_window_seconds=args.rate_window_seconds,
    )
    sim.faults.latency = args.latency
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with sim:
        print(f"{sim.url} {sim.token}", flush=True)
        while not stop.wait(0.5):
            pass
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
