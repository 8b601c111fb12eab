"""The simulated customer: its data model and a generator of realistic organisations.

:class:`Organisation` holds the teams and invoices (resource-level amounts only) behind a
lock, caches each invoice's sums (:func:`aggregate`) until the next
:meth:`Organisation.mutate`, and has setters for the figures tests change between polls.
:func:`generate_organisation` builds a deterministic one from a seed.

This module depends on nothing else in the simulator, except that
:meth:`Organisation.render_invoice` and :meth:`Organisation.render_invoice_summaries`
import :mod:`.views` when called (the one edge that points back up).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

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

Json = dict[str, Any]
Price = dict[str, int]


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
        # Imported late: views imports this module (see the module docstring).
        from exporter.simulator.views import InvoiceFilter, invoice_view

        with self.lock:
            invoice = self.invoice(invoice_id)
            view = InvoiceFilter(team_id, project_id, resource_type)
            return invoice_view(invoice, self.aggregates(invoice), view)[0]

    def render_invoice_summaries(self) -> list[Json]:
        """``data.invoices`` of the list endpoint, unpaged, in its order."""
        # Imported late: views imports this module (see the module docstring).
        from exporter.simulator.views import invoice_summary

        with self.lock:
            return [invoice_summary(i, self.aggregates(i)) for i in self.invoices]


# --------------------------------------------------------------------------------------
# Sums of an invoice (what Organisation caches)
# --------------------------------------------------------------------------------------


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
