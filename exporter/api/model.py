"""The one internal model of the billing API's answers, whichever contract they came in.

Amounts are in major units of the invoice's currency (a legacy answer's cents divided by
100 where it was read), as exact as the JSON gave them: ``12.345`` whether the answer said
``12.345`` or ``1234.5`` cents (:func:`exporter.api.read.from_cents`). A field the API left
out is ``None`` (and gives no sample later); a price keeps only the dimensions it had.
Nothing here knows which contract an answer was in, except the ``contract`` an answer
carries for ``northflank_api_contract_info`` and the one-contract-per-poll rule.

Made by the readers (:mod:`exporter.api.legacy`, :mod:`exporter.api.current`), frozen,
with slots: a poll of 14,000 resources holds these, not the answers' JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Contract = Literal["current", "legacy"]
CURRENT: Contract = "current"
LEGACY: Contract = "legacy"

# The usage dimensions of a price, as the metrics name them (the API's ``gpuMemory`` is
# ``gpu_memory``).
PAAS_DIMENSIONS = ("cpu", "memory", "storage", "gpu")
BYOC_DIMENSIONS = ("vcpu", "memory", "gpu_memory", "cluster")


@dataclass(frozen=True, slots=True)
class Price:
    """A price: its total and the dimensions the API gave (one it left out is not here)."""

    total: float | None
    dimensions: tuple[tuple[str, float], ...] = ()


NO_PRICE = Price(None)


@dataclass(frozen=True, slots=True)
class Resource:
    id: str
    name: str
    price: Price


@dataclass(frozen=True, slots=True)
class ResourceType:
    resource_type: str
    price: Price
    resources: tuple[Resource, ...]


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    name: str
    price: Price
    resource_types: tuple[ResourceType, ...] | None = None  # None: the answer had none


@dataclass(frozen=True, slots=True)
class Team:
    id: str
    name: str
    price: Price
    projects: tuple[Project, ...] | None = None  # None: the answer did not break it down


@dataclass(frozen=True, slots=True)
class LineItem:
    title: str
    total: float | None
    base: float | None
    proration: float | None


@dataclass(frozen=True, slots=True)
class Invoice:
    """``data`` of ``GET /v1/billing/invoices/{invoiceId}``, unfiltered or filtered.

    ``teams`` is None for an answer that starts at the project level (a single-team
    token's: ``projects`` then holds its projects).
    """

    id: str
    currency: str
    period_start: float | None
    period_end: float | None
    status: str | None  # the payment status as the API gives it; None: not given
    paid: bool | None
    total: float | None
    subtotal: float | None
    discount: float | None
    tax_amount: float | None
    tax_percent: float | None
    line_items: tuple[LineItem, ...]
    paas: Price | None
    byoc: Price | None
    teams: tuple[Team, ...] | None
    projects: tuple[Project, ...] | None = None
    contract: Contract = CURRENT


@dataclass(frozen=True, slots=True)
class Hour:
    """``data`` of ``GET /v1/billing/usage/{timestamp}``: one billing hour broken down as an
    invoice is (``teams`` None: a single-team token's answer, ``projects`` its projects)."""

    timestamp: float
    currency: str
    paas: Price | None
    byoc: Price | None
    teams: tuple[Team, ...] | None
    projects: tuple[Project, ...] | None = None
    contract: Contract = CURRENT


@dataclass(frozen=True, slots=True)
class InvoiceEntry:
    """One entry of ``GET /v1/billing/invoices`` (a finalized invoice)."""

    id: str
    currency: str | None
    period_start: float | None
    period_end: float | None
    status: str | None
    paid: bool | None
    total: float | None
    subtotal: float | None
    paas: Price | None
    byoc: Price | None

    @property
    def rank(self) -> tuple[float, bool, str]:
        """What makes an invoice the newest: the latest ``period.end``; among invoices that
        end together (the list has no type field: usage, subscription and credit invoices
        of one month), one that bills usage; then the largest ID."""
        end = self.period_end if self.period_end else float("-inf")
        usage = any(part is not None and bool(part.total) for part in (self.paas, self.byoc))
        return end, usage, self.id

    def same_figures(self, other: InvoiceEntry) -> bool:
        """Equal in everything but the payment status (what may change once finalized)."""
        return (
            self.id,
            self.currency,
            self.period_start,
            self.period_end,
            self.total,
            self.subtotal,
            self.paas,
            self.byoc,
        ) == (
            other.id,
            other.currency,
            other.period_start,
            other.period_end,
            other.total,
            other.subtotal,
            other.paas,
            other.byoc,
        )


@dataclass(frozen=True, slots=True)
class InvoiceList:
    entries: tuple[InvoiceEntry, ...]
    contract: Contract | None  # None: an empty list says nothing of its contract


@dataclass(frozen=True, slots=True)
class UsageEntry:
    """One entry of ``GET /v1/billing/usage``: an hour (``timestamp`` its start), or with
    ``granularity=total`` the whole window asked for."""

    timestamp: float
    paas: Price | None
    byoc: Price | None


@dataclass(frozen=True, slots=True)
class Usage:
    entries: tuple[UsageEntry, ...]
    contract: Contract | None  # None: no entry
    total: bool = False  # one entry for the whole window (``granularity=total`` honoured)


@dataclass(frozen=True, slots=True)
class Credit:
    """``data`` of ``GET /v1/billing/credit-balance`` (current contract only)."""

    currency: str | None
    available: float | None
    pending: float | None
    grant_available: float | None
    grant_pending: float | None
    customer_balance: float | None
    synced_at: float | None


@dataclass(frozen=True, slots=True)
class Token:
    """``data`` of ``GET /v1/auth``: whose token it is and, if it expires, when."""

    entity_type: str | None
    entity_id: str | None
    expires_at: float | None
    permissions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TeamInfo:
    """``data`` of ``GET /v1/teams/{teamId}``."""

    id: str
    name: str
