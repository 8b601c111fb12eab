"""Pydantic models of the API's answers, as the "Get invoice" reference page describes them.

Tolerant by design: fields the API adds are ignored, fields it leaves out are ``None``
(and give no sample later), and a resource type it does not know yet is carried through
as a plain string. What is there must have the right type: an amount that is not a
finite number makes the answer invalid. Amounts are kept as the API sends them (cents,
unless ``NORTHFLANK_AMOUNT_UNIT=major``); conversion happens in ``snapshot``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

Amount = float


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
    id: str
    name: str | None = None
    price: PaasPrice | None = None


class ResourceType(_Model):
    resource_type: str = Field(alias="resourceType")
    price: PaasPrice | None = None
    resources: list[Resource] | None = None


class Project(_Model):
    id: str
    name: str | None = None
    price: PaasPrice | None = None
    resource_types: list[ResourceType] | None = Field(default=None, alias="resourceTypes")


class Team(_Model):
    id: str
    name: str | None = None
    price: PaasPrice | None = None
    projects: list[Project] | None = None


class Period(_Model):
    start: float | None = None
    end: float | None = None


class PaasUsage(_Model):
    price: PaasPrice | None = None
    teams: list[Team] = Field(default_factory=list)


class ByocUsage(_Model):
    price: ByocPrice | None = None


class LineItem(_Model):
    title: str | None = None
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

    id: str
    period: Period | None = None
    currency: str | None = None
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

    id: str
    period: Period | None = None
    currency: str | None = None


class InvoiceList(_Model):
    invoices: list[InvoiceSummary]


class UsageEntry(_Model):
    """One whole hour of ``GET /v1/billing/usage``; ``timestamp`` is the hour's start."""

    timestamp: float
    paas_usage: PaasUsage | None = Field(default=None, alias="paasUsage")
    byoc_usage: ByocUsage | None = Field(default=None, alias="byocUsage")


class UsageList(_Model):
    usage: list[UsageEntry]


class Pagination(_Model):
    has_next_page: bool = Field(default=False, alias="hasNextPage")
    cursor: str | None = None
    count: int | None = None
