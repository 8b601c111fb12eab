"""Pydantic models of the API's answers, as the "Get invoice" reference page describes them.

Tolerant by design: fields the API adds are ignored, fields it leaves out are ``None``
(and give no sample later), and a resource type it does not know yet is carried through
as a plain string. What is there must have the right type: an amount that is not a
finite number makes the answer invalid. Amounts are kept as the API sends them (cents,
unless ``NORTHFLANK_AMOUNT_UNIT=major``); conversion happens in ``snapshot``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

Amount = float
T = TypeVar("T")
# The usage dimensions of a price, as the snapshot and the metrics name them.
PAAS_DIMENSIONS = ("cpu", "memory", "storage", "gpu")
BYOC_DIMENSIONS = ("vcpu", "memory", "gpu_memory", "cluster")


def _encodable(value: str) -> str:
    """A string that can go into a label or a URL: no lone surrogates (``"\\ud800"``)."""
    value.encode("utf-8")  # UnicodeEncodeError is a ValueError: the answer is invalid
    return value


Text = Annotated[str, AfterValidator(_encodable)]
Id = Annotated[str, Field(min_length=1), AfterValidator(_encodable)]


def _unique(items: Sequence[T] | None, key: Callable[[T], str], what: str) -> None:
    """Two entries with one ID would be one series twice: refuse the answer."""
    seen: set[str] = set()
    for item in items or ():
        if key(item) in seen:
            raise ValueError(f"{what} {key(item)!r} appears twice")
        seen.add(key(item))


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)


class PaasPrice(_Model):
    total: Amount | None = None
    cpu: Amount | None = None
    memory: Amount | None = None
    storage: Amount | None = None
    gpu: Amount | None = None


class ByocPrice(_Model):
    total: Amount | None = None
    vcpu: Amount | None = None
    memory: Amount | None = None
    gpu_memory: Amount | None = Field(default=None, alias="gpuMemory")
    cluster: Amount | None = None


class Resource(_Model):
    id: Id
    name: Text | None = None
    price: PaasPrice | None = None


class ResourceType(_Model):
    resource_type: Id = Field(alias="resourceType")
    price: PaasPrice | None = None
    resources: list[Resource] | None = None

    @field_validator("resources")
    @classmethod
    def _unique_resources(cls, value: list[Resource] | None) -> list[Resource] | None:
        _unique(value, lambda res: res.id, "resource")
        return value


class Project(_Model):
    id: Id
    name: Text | None = None
    price: PaasPrice | None = None
    resource_types: list[ResourceType] | None = Field(default=None, alias="resourceTypes")

    @field_validator("resource_types")
    @classmethod
    def _unique_types(cls, value: list[ResourceType] | None) -> list[ResourceType] | None:
        _unique(value, lambda kind: kind.resource_type, "resource type")
        return value


class Team(_Model):
    id: Id
    name: Text | None = None
    price: PaasPrice | None = None
    projects: list[Project] | None = None

    @field_validator("projects")
    @classmethod
    def _unique_projects(cls, value: list[Project] | None) -> list[Project] | None:
        _unique(value, lambda project: project.id, "project")
        return value


class Period(_Model):
    start: float | None = None
    end: float | None = None


class PaasUsage(_Model):
    price: PaasPrice | None = None
    teams: list[Team] = Field(default_factory=list)

    @field_validator("teams")
    @classmethod
    def _unique_teams(cls, value: list[Team]) -> list[Team]:
        _unique(value, lambda team: team.id, "team")
        return value


class ByocUsage(_Model):
    price: ByocPrice | None = None


class LineItem(_Model):
    title: Text | None = None
    total: Amount | None = None
    base: Amount | None = None
    proration: Amount | None = None


class Discounts(_Model):
    total: Amount | None = None


class Tax(_Model):
    percent: float | None = None
    amount: Amount | None = None


class Invoice(_Model):
    """``data`` of ``GET /v1/billing/invoices/{invoiceId}``."""

    id: Id
    period: Period | None = None
    currency: Text | None = None
    byoc_usage: ByocUsage | None = Field(default=None, alias="byocUsage")
    paas_usage: PaasUsage | None = Field(default=None, alias="paasUsage")
    line_items: list[LineItem] | None = Field(default=None, alias="lineItems")
    sub_total: Amount | None = Field(default=None, alias="subTotal")
    discounts: Discounts | None = None
    tax: Tax | None = None
    total: Amount | None = None
    paid: bool | None = None

    @property
    def teams(self) -> list[Team]:
        return self.paas_usage.teams if self.paas_usage else []


class InvoiceSummary(_Model):
    """One entry of ``GET /v1/billing/invoices``."""

    id: Id
    period: Period | None = None
    currency: Text | None = None
    paas_usage: PaasUsage | None = Field(default=None, alias="paasUsage")
    byoc_usage: ByocUsage | None = Field(default=None, alias="byocUsage")

    @property
    def rank(self) -> tuple[float, bool, str]:
        """What makes an invoice the newest: the latest ``period.end``; among invoices that
        end together (the list has no type field: usage, subscription and credit invoices
        of one month), one that bills usage; then the largest ID."""
        end = self.period.end if self.period and self.period.end else float("-inf")
        usage = any(
            part is not None and part.price is not None and bool(part.price.total)
            for part in (self.paas_usage, self.byoc_usage)
        )
        return end, usage, self.id


class InvoiceList(_Model):
    invoices: list[InvoiceSummary]


class UsageEntry(_Model):
    """One whole hour of ``GET /v1/billing/usage``; ``timestamp`` is the hour's start."""

    timestamp: float
    paas_usage: PaasUsage | None = Field(default=None, alias="paasUsage")
    byoc_usage: ByocUsage | None = Field(default=None, alias="byocUsage")


class UsageList(_Model):
    usage: list[UsageEntry]


def unix_seconds(value: Any) -> Any:
    """A time as Unix seconds: numbers as they are (milliseconds past the year 5000 are
    taken as milliseconds), ISO 8601 strings (``2027-01-01T00:00:00.000Z``) converted."""
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value  # left for the float validator to refuse
        if when.tzinfo is None:
            raise ValueError("a time without a time zone")
        return when.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 1e11:
        return value / 1000
    return value


class TokenInfo(_Model):
    """``data`` of ``GET /v1/auth``: whose token it is and, if it expires, when."""

    entity_type: Text | None = Field(default=None, alias="entityType")
    entity_id: Text | None = Field(default=None, alias="entityId")
    expires_at: float | None = Field(default=None, alias="expiresAt")

    @field_validator("expires_at", mode="before")
    @classmethod
    def _expiry(cls, value: Any) -> Any:
        return unix_seconds(value)


class Pagination(_Model):
    has_next_page: bool = Field(default=False, alias="hasNextPage")
    cursor: str | None = None
    count: int | None = None
