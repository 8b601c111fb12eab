"""The simulated customer: its data model and a generator of realistic organisations.

:class:`Organisation` holds the teams and invoices (resource-level amounts only) behind a
lock, caches each invoice's sums (:func:`aggregate`) and hourly usage
(:class:`UsageRates`) until the next :meth:`Organisation.mutate`, and has setters for the
figures tests change between polls (and :meth:`Organisation.close_period` for a new
invoice). :func:`generate_organisation` builds a deterministic one from a seed.

This module depends on nothing else in the simulator, except that the ``render_*``
methods of :class:`Organisation` import :mod:`.views` when called (the one edge that
points back up).
"""

from __future__ import annotations

import contextlib
import math
import random
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
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
# Every type the simulator knows (the reference page's list grows: seven values in June
# 2026, ``job, service, addon, volume`` later, ``harness`` after that). The generator
# uses RESOURCE_TYPES unless told otherwise; add_resource takes any type at all.
KNOWN_RESOURCE_TYPES = (*RESOURCE_TYPES, "harness")
PAAS_DIMENSIONS = ("cpu", "memory", "storage", "gpu")
BYOC_DIMENSIONS = ("vcpu", "memory", "gpuMemory", "cluster")
HOUR = 3600
HOURS_PER_MONTH = 720  # hourly usage is an invoice's monthly figure spread over 720 hours

Json = dict[str, Any]
Price = dict[str, float]  # cents, whole or fractional (0.5, 0.25 ...)


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
    base: float
    proration: float = 0

    @property
    def total(self) -> float:
        return self.base + self.proration


@dataclass
class Invoice:
    """A finalized invoice. Only resource-level PaaS amounts and BYOC are stored."""

    id: str
    period_start: float  # Unix seconds, possibly fractional
    period_end: float
    teams: list[InvoiceTeam]
    currency: str = "usd"
    byoc: Price | None = None  # BYOC dimension -> cents; None: no byocUsage at all
    extra_line_items: list[LineItem] = field(default_factory=list)
    discount: float = 0
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
    _usage_cache: dict[str, tuple[int, UsageRates]] = field(
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
                self._usage_cache.clear()

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
        cpu: float | None = None,
        memory: float | None = None,
        storage: float | None = None,
        gpu: float | None = None,
    ) -> None:
        """Set the given dimensions (cents, fractional ones too: ``cpu=0.5``) of one
        resource; 0 makes the field vanish."""
        given = {"cpu": cpu, "memory": memory, "storage": storage, "gpu": gpu}
        with self.mutate():
            invoice = self.invoice(invoice_id)
            resource = invoice.team(team_id).project(project_id).resource(resource_id)
            resource.price.update({k: v for k, v in given.items() if v is not None})

    def set_byoc_price(self, invoice_id: str, **cents: float) -> None:
        """Set BYOC dimensions (``vcpu``, ``memory``, ``gpuMemory``, ``cluster``)."""
        unknown = set(cents) - set(BYOC_DIMENSIONS)
        if unknown:
            raise ValueError(f"unknown BYOC dimensions: {sorted(unknown)}")
        with self.mutate():
            invoice = self.invoice(invoice_id)
            invoice.byoc = {**(invoice.byoc or {}), **cents}

    def add_resource(
        self,
        invoice_id: str,
        team_id: str,
        project_id: str,
        resource_type: str,
        resource_id: str,
        name: str | None = None,
        **cents: float,
    ) -> Resource:
        """Add a resource to a project of an invoice, of any type (one the project never
        used, or one no list knows, e.g. ``"sandbox"``); ``cents`` are PaaS dimensions
        (``cpu=1200, memory=0.5``). Its figures show in every total from the next
        request on (and in the usage hours when the invoice is the newest)."""
        unknown = set(cents) - set(PAAS_DIMENSIONS)
        if unknown:
            raise ValueError(f"unknown PaaS dimensions: {sorted(unknown)}")
        with self.mutate():
            project = self.invoice(invoice_id).team(team_id).project(project_id)
            if any(r.id == resource_id for r in project.resources):
                raise ValueError(f"resource {resource_id} already in project {project_id}")
            resource = Resource(
                resource_id, name or resource_id, resource_type, {k: v for k, v in cents.items()}
            )
            project.resources.append(resource)
            return resource

    def set_period(self, invoice_id: str, start: float, end: float) -> None:
        """Set an invoice's ``period`` (Unix seconds, fractional ones too). Usage hours
        start at the first whole hour at or after the newest invoice's ``period.end``
        (see :func:`usage_since`)."""
        if end <= start:
            raise ValueError("period end must be after its start")
        with self.mutate():
            invoice = self.invoice(invoice_id)
            invoice.period_start, invoice.period_end = start, end

    def aggregates(self, invoice: Invoice) -> _Aggregates:
        """The invoice's sums, cached until the next :meth:`mutate`."""
        with self.lock:
            cached = self._cache.get(invoice.id)
            if cached is not None and cached[0] == self._version:
                return cached[1]
            sums = aggregate(invoice)
            self._cache[invoice.id] = (self._version, sums)
            return sums

    def usage_rates(self, invoice: Invoice) -> UsageRates:
        """The invoice's hourly usage figures, cached until the next :meth:`mutate`."""
        with self.lock:
            cached = self._usage_cache.get(invoice.id)
            if cached is not None and cached[0] == self._version:
                return cached[1]
            rates = UsageRates(invoice)
            self._usage_cache[invoice.id] = (self._version, rates)
            return rates

    def close_period(self, end: float) -> Invoice:
        """Finalize a new invoice from the newest one's ``period.end`` to ``end``.

        ``end`` must be a whole hour (a multiple of 3600) after that. The invoice has
        the same teams, projects and resources with new (deterministic) figures, is
        unpaid and becomes the newest: usage hours now start at ``end``. Its ID is
        ``inv-YYYY-MM`` of its start (``-2``, ``-3`` ... when that is taken). It is put
        second in the list, so the list stays unsorted by date from two invoices on.
        """
        with self.mutate():
            previous = self.newest_invoice()
            if end != int(end) or int(end) % HOUR or end <= previous.period_end:
                raise ValueError(f"end must be a whole hour after {previous.period_end}, not {end}")
            invoice = _next_invoice(previous, int(end), {i.id for i in self.invoices})
            self.invoices.insert(min(1, len(self.invoices)), invoice)
            return invoice

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
            return invoice_view(invoice, self.aggregates(invoice), view)

    def render_invoice_summaries(self) -> list[Json]:
        """``data.invoices`` of the list endpoint, unpaged, in its order."""
        # Imported late: views imports this module (see the module docstring).
        from exporter.simulator.views import invoice_summary

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
    ) -> list[Json]:
        """``data.usage`` of ``GET .../billing/usage`` at time ``now``, unpaged, newest
        first: the hours from the newest invoice's (see :func:`usage_since`) and from
        ``start`` (inclusive) up to ``end`` (exclusive) that have ended by ``now``, and
        with ``running_hour`` (as ``Simulator(running_hour=True)``, the default) the hour
        still running, partly filled. With ``team_id``, the team variant (its PaaS usage
        only). Raises :class:`ApiError` (404) for a team the organisation does not have."""
        # Imported late: views imports this module (see the module docstring).
        from exporter.simulator.views import usage_view

        with self.lock:
            return usage_view(
                self, now=now, start=start, end=end, team_id=team_id, running_hour=running_hour
            )


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


# --------------------------------------------------------------------------------------
# Hourly usage since an invoice (what Organisation caches too)
# --------------------------------------------------------------------------------------

# An hour's factor is (_FACTOR_BASE + q) / _FACTOR_STEPS, q in 0.._FACTOR_STEPS: 0.5 .. 1.5.
_FACTOR_STEPS = 20
_FACTOR_BASE = _FACTOR_STEPS // 2


class UsageRates:
    """The hourly usage that follows an invoice (the spend not yet invoiced).

    Each resource costs, per PaaS dimension and hour ``h`` (its start, Unix seconds),
    ``round(monthly_cents * factor / 720)`` (half up), where ``monthly_cents`` is its
    figure on the invoice and ``factor`` in 0.5 .. 1.5 (steps of 0.05) comes from a hash
    of (team ID, resource ID, ``h``): resources sharing an ID within a team (the same
    ID in several projects) share the hour's factor. A team's hour is the sum of its
    resources, the organisation's PaaS hour the sum of its teams, and the BYOC hour is
    ``round(invoice BYOC cents / 720)`` per dimension, the same every hour.

    The per-resource amounts are summed once per (team, resource ID, factor), so an hour
    costs one lookup per (team, resource ID); hours are cached once computed.
    """

    def __init__(self, invoice: Invoice) -> None:
        self.invoice_id = invoice.id
        self.since = usage_since(invoice)
        self.team_ids = [team.id for team in invoice.teams]
        self.byoc: Price | None = (
            None
            if invoice.byoc is None
            else {dim: _per_hour(cents, 1, 1) for dim, cents in invoice.byoc.items()}
        )
        # team -> resource ID -> dimension -> the monthly cents of those resources
        monthly: dict[str, dict[str, dict[str, list[float]]]] = {}
        for team in invoice.teams:
            groups = monthly.setdefault(team.id, {})
            for project in team.projects:
                for resource in project.resources:
                    dims = groups.setdefault(resource.id, {})
                    for dim, cents in resource.price.items():
                        if cents:
                            dims.setdefault(dim, []).append(cents)
        # team -> [(resource ID, [hourly price of the group for each factor step])]
        self._groups: dict[str, list[tuple[str, list[Price]]]] = {
            team_id: [
                (
                    resource_id,
                    [
                        {
                            dim: sum(_per_hour(c, _FACTOR_BASE + q, _FACTOR_STEPS) for c in cents)
                            for dim, cents in dims.items()
                        }
                        for q in range(_FACTOR_STEPS + 1)
                    ],
                )
                for resource_id, dims in groups.items()
            ]
            for team_id, groups in monthly.items()
        }
        self._hours: dict[int, tuple[dict[str, Price], Price]] = {}

    def team_hour(self, team_id: str, hour: int) -> Price:
        """PaaS cents of one team in the hour starting at ``hour`` (zeros when the
        invoice does not bill the team)."""
        return self._hour(hour)[0].get(team_id) or _zero()

    def paas_hour(self, hour: int) -> Price:
        """PaaS cents of the whole organisation in the hour starting at ``hour``."""
        return self._hour(hour)[1]

    def _hour(self, hour: int) -> tuple[dict[str, Price], Price]:
        cached = self._hours.get(hour)
        if cached is None:
            teams = {}
            for team_id, groups in self._groups.items():
                team = teams[team_id] = _zero()
                for resource_id, by_step in groups:
                    key = f"{team_id}\0{resource_id}\0{hour}".encode()
                    _add(team, by_step[zlib.crc32(key) % (_FACTOR_STEPS + 1)])
            cached = self._hours[hour] = (teams, _sum(teams.values()))
        return cached


def _per_hour(monthly_cents: float, numerator: int, denominator: int) -> int:
    """``monthly_cents * numerator / denominator / 720``, rounded half up (exactly, also
    for fractional cents)."""
    if isinstance(monthly_cents, int):  # the common case, fast
        scaled = 2 * monthly_cents * numerator
        whole = 2 * denominator * HOURS_PER_MONTH
        return (scaled + whole // 2) // whole
    exact = Fraction(monthly_cents) * numerator / (denominator * HOURS_PER_MONTH)
    return math.floor(exact + Fraction(1, 2))


def usage_since(invoice: Invoice) -> int:
    """The first usage hour after ``invoice``: the first whole hour (a multiple of 3600)
    starting at or after its ``period.end`` (which may be fractional)."""
    return math.ceil(invoice.period_end / HOUR) * HOUR


def _zero() -> Price:
    return dict.fromkeys(PAAS_DIMENSIONS, 0)


def _add(into: Price, other: Mapping[str, float]) -> None:
    for dim, cents in other.items():
        into[dim] = into.get(dim, 0) + cents


def _sum(prices: Iterable[Mapping[str, float]]) -> Price:
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
    "harness": "Harness Pipeline",
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
    "harness": ("cpu", "memory"),
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
    resource_types: Iterable[str] = RESOURCE_TYPES,
    fractional_cents: bool = False,
) -> Organisation:
    """A deterministic organisation for ``seed``.

    Teams ``team-1``..``team-N``; every team has the same project IDs (``web``, ``api``,
    ...), every project ``resources_per_type`` resources of every resource type (IDs
    ``service-1``, ``volume-2``, ...). Even-numbered teams use no GPU, so their prices
    have no ``gpu`` field. ``invoices`` monthly invoices, the newest ending at the start
    of the current UTC month (of ``now``), each older one a month earlier with smaller
    figures; the newest is unpaid.

    ``resource_types`` (default the seven of :data:`RESOURCE_TYPES`; any of
    :data:`KNOWN_RESOURCE_TYPES`, e.g. with ``"harness"``) are the types every project
    has. With ``fractional_cents``, every third resource has 0.5 cent more and every
    third after it 0.25 cent more on its first dimension (on every invoice), so that
    every total has fractional cents.
    """
    types = tuple(resource_types)
    unknown = set(types) - set(KNOWN_RESOURCE_TYPES)
    if unknown:
        raise ValueError(f"unknown resource types: {sorted(unknown)}")
    if min(teams, projects_per_team, resources_per_type, invoices) < 1:
        raise ValueError("teams, projects, resources and invoices must be at least 1")
    rng = random.Random(seed)  # noqa: S311 - made-up figures, not secrets
    team_list = [_generate_team(i, rng) for i in range(1, teams + 1)]
    base = [
        _generate_invoice_team(team, i, projects_per_team, resources_per_type, types, rng)
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
    if fractional_cents:
        for invoice in made:
            _add_fractions(invoice)
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
    team: Team,
    index: int,
    projects: int,
    per_type: int,
    types: tuple[str, ...],
    rng: random.Random,
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
            for rtype in types
            for n in range(1, per_type + 1)
        ]
        made.append(Project(project_id, name, resources))
    return InvoiceTeam(team.id, team.name, made)


def _scale(cents: int, age: int) -> int:
    """An older invoice's figure: smaller, so tests can tell invoices apart."""
    return cents if age == 0 else round(cents * 10 / (10 + age))


def _add_fractions(invoice: Invoice) -> None:
    """0.5 cent more on every third resource's first dimension, 0.25 on the next."""
    index = 0
    for team in invoice.teams:
        for project in team.projects:
            for resource in project.resources:
                fraction = (0.5, 0.25, 0)[index % 3]
                index += 1
                if fraction and resource.price:
                    dim = next(iter(resource.price))
                    resource.price[dim] += fraction


def _scaled_team(team: InvoiceTeam, age: int) -> InvoiceTeam:
    return _map_prices(team, lambda cents: _scale(int(cents), age))


def _map_prices(team: InvoiceTeam, change: Callable[[float], float]) -> InvoiceTeam:
    """A copy of ``team`` with ``change`` applied to every resource figure."""
    return InvoiceTeam(
        team.id,
        team.name,
        [
            Project(
                p.id,
                p.name,
                [
                    Resource(
                        r.id, r.name, r.resource_type, {k: change(v) for k, v in r.price.items()}
                    )
                    for r in p.resources
                ],
            )
            for p in team.projects
        ],
    )


def _next_invoice(previous: Invoice, end: float, taken: set[str]) -> Invoice:
    """The invoice after ``previous``, up to ``end``: its figures, each changed by a
    deterministic -10 % .. +25 % (seeded by the new period)."""
    start = datetime.fromtimestamp(previous.period_end, UTC)
    invoice_id = base_id = f"inv-{start:%Y-%m}"
    suffix = 1
    while invoice_id in taken:
        suffix += 1
        invoice_id = f"{base_id}-{suffix}"
    rng = random.Random(f"{invoice_id} {previous.period_end} {end}")  # noqa: S311

    def vary(cents: float) -> float:
        return max(1, round(cents * rng.uniform(0.9, 1.25))) if cents else 0

    return Invoice(
        id=invoice_id,
        period_start=previous.period_end,
        period_end=end,
        teams=[_map_prices(team, vary) for team in previous.teams],
        currency=previous.currency,
        byoc=None if previous.byoc is None else {k: vary(v) for k, v in previous.byoc.items()},
        extra_line_items=[
            LineItem(item.title, base=vary(item.base), proration=item.proration)
            for item in previous.extra_line_items
        ],
        discount=vary(previous.discount),
        tax_percent=previous.tax_percent,
        paid=False,
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
