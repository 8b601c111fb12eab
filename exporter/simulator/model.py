"""The simulated customer's data: plain dataclasses, amounts in cents.

Only resource-level PaaS amounts (and an invoice's BYOC figures, line items, discount
and tax rate) are stored; every total is derived from them (:mod:`.org`). Amounts may be
fractional cents (0.5, 0.25: sums of a few halves and quarters are exact floats) and
periods fractional Unix seconds. This module imports nothing else of the simulator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
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
    # What Stripe reports ("paid", "open", "payment_failed", "uncollectible", "void" ...):
    # current answers carry it, legacy ones the ``paid`` it implies.
    status: str = "open"

    @property
    def paid(self) -> bool:
        """What a legacy answer says: ``status == "paid"``."""
        return self.status == "paid"

    @paid.setter
    def paid(self, paid: bool) -> None:
        self.status = "paid" if paid else "open"

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
class Credit:
    """The credit balance (``GET /v1/billing/credit-balance``), in cents.

    ``total.available`` is derived: the grants available plus a customer balance in the
    customer's favour (a balance owed "surfaces as an unpaid invoice instead");
    ``total.pending`` is the grants pending.
    """

    grants_available: float = 0
    grants_pending: float = 0
    customer_balance: float = 0  # positive: in the customer's favour; negative: owed
    currency: str = "usd"
    synced_at: float | None = None  # Unix seconds; None: the start of the request's hour

    @property
    def available(self) -> float:
        return self.grants_available + max(0, self.customer_balance)

    @property
    def pending(self) -> float:
        return self.grants_pending


# --------------------------------------------------------------------------------------
# Prices: dimension -> cents
# --------------------------------------------------------------------------------------


def zero_price() -> Price:
    """Every PaaS dimension at 0."""
    return dict.fromkeys(PAAS_DIMENSIONS, 0)


def add_price(into: Price, other: Mapping[str, float]) -> None:
    """Add ``other`` into ``into``, dimension by dimension."""
    for dim, cents in other.items():
        into[dim] = into.get(dim, 0) + cents


def sum_prices(prices: Iterable[Mapping[str, float]]) -> Price:
    """The sum of ``prices``, dimension by dimension, in their order."""
    total = zero_price()
    for price in prices:
        add_price(total, price)
    return total


def map_prices(team: InvoiceTeam, change: Callable[[float], float]) -> InvoiceTeam:
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


def price_json(price: Mapping[str, float], dimensions: Iterable[str] = PAAS_DIMENSIONS) -> Json:
    """A price object: ``total`` and every non-zero dimension (zero ones are left out)."""
    doc: Json = {"total": sum(price.get(dim, 0) for dim in dimensions)}
    doc.update({dim: price[dim] for dim in dimensions if price.get(dim, 0)})
    return doc
