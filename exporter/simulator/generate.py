"""A generator of realistic, deterministic organisations: :func:`generate_organisation`."""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from exporter.simulator.model import (
    KNOWN_RESOURCE_TYPES,
    RESOURCE_TYPES,
    Credit,
    Invoice,
    InvoiceTeam,
    LineItem,
    Project,
    Resource,
    Team,
    map_prices,
)
from exporter.simulator.organisation import Organisation

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
    figures; the newest is ``open`` (unpaid), the older ones ``paid``. The credit balance
    has 500.00 of grants available, 200.00 pending and a customer balance of 25.50 (25.505
    with ``fractional_cents``).

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
                status="paid" if age > 0 else "open",
            )
        )
    if fractional_cents:
        for invoice in made:
            _add_fractions(invoice)
    credit = Credit(50_000, 20_000, 2_550.5 if fractional_cents else 2_550)
    return Organisation(teams=team_list, invoices=_shuffled(made, rng), credit=credit)


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
    return map_prices(team, lambda cents: _scale(int(cents), age))


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
