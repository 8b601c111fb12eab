"""The simulated customer behind its lock: :class:`OrganisationData` and its sums.

:class:`OrganisationData` holds the teams and invoices (resource-level amounts only)
behind a lock, caches each invoice's sums (:func:`aggregate`) and hourly usage
(:class:`~.usage.UsageRates`) until the next :meth:`OrganisationData.mutate`, and has
setters for the figures tests change between polls (and
:meth:`OrganisationData.close_period` for a new invoice). The API's documents of it are
:mod:`.views` (whose :class:`~.views.Organisation` adds the ``render_*`` methods).
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from exporter.simulator.model import (
    BYOC_DIMENSIONS,
    HOUR,
    PAAS_DIMENSIONS,
    Credit,
    Invoice,
    LineItem,
    Price,
    Resource,
    Team,
    add_price,
    map_prices,
    zero_price,
)
from exporter.simulator.usage import UsageRates


@dataclass
class Aggregates:
    """Sums of one invoice's resource amounts, computed in one pass."""

    by_type: dict[tuple[str, str, str], Price]
    by_project: dict[tuple[str, str], Price]
    by_team: dict[str, Price]
    paas: Price


@dataclass
class OrganisationData:
    """The simulated customer: its teams and invoices, guarded by ``lock``.

    ``invoices`` is kept in the order the list endpoint serves it. Change figures with
    :meth:`set_resource_price` / :meth:`set_byoc_price`, or edit the dataclasses inside
    ``with org.mutate():`` (that holds the lock and drops the cached sums; an edit made
    outside it may not show until the next one).
    """

    teams: list[Team]
    invoices: list[Invoice]
    credit: Credit | None = None  # None: the credit balance answers 404
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    _version: int = field(default=0, repr=False, compare=False)
    _cache: dict[str, tuple[int, Aggregates]] = field(
        default_factory=dict, repr=False, compare=False
    )
    _usage_cache: dict[str, tuple[int, UsageRates]] = field(
        default_factory=dict, repr=False, compare=False
    )
    _hour_cache: dict[tuple[str, int], tuple[Invoice, Aggregates]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @contextlib.contextmanager
    def mutate(self) -> Iterator[OrganisationData]:
        """Hold the lock while editing the data; derived totals follow the edit."""
        with self.lock:
            try:
                yield self
            finally:
                self._version += 1
                self._cache.clear()
                self._usage_cache.clear()
                self._hour_cache.clear()

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

    def set_status(self, invoice_id: str, status: str) -> None:
        """Set an invoice's payment ``status`` (any string: ``"paid"``, ``"open"``,
        ``"payment_failed"``, ``"uncollectible"``, ``"void"`` ...); legacy answers say
        ``paid: true`` for ``"paid"`` only."""
        with self.mutate():
            self.invoice(invoice_id).status = status

    def set_credit(self, credit: Credit | None = None, /, **fields: float | str) -> None:
        """Set the credit balance: ``credit`` (None and no ``fields``: no balance at all,
        the endpoint answers 404), or with ``fields`` (``grants_available``,
        ``grants_pending``, ``customer_balance`` in cents, ``currency``) those fields of
        ``credit``, else of the current balance (of a zero one when there is none)."""
        with self.mutate():
            if fields:
                base = credit or self.credit or Credit()
                credit = dataclasses.replace(base, **fields)  # type: ignore[arg-type]
            self.credit = credit

    def aggregates(self, invoice: Invoice) -> Aggregates:
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

    def usage_hour(
        self, invoice: Invoice, hour: int, fraction: float = 1.0
    ) -> tuple[Invoice, Aggregates]:
        """The usage hour starting at ``hour``, priced from ``invoice``, as an invoice of
        its own (its period that hour, each resource its figure of the hour: see
        :meth:`~.usage.UsageRates.hour_teams`; BYOC the hour's) and its sums. With
        ``fraction`` < 1 (the running hour) every figure times it, rounded to 1/1024
        cent. Whole hours are cached until the next :meth:`mutate`."""
        with self.lock:
            key = (invoice.id, hour)
            cached = self._hour_cache.get(key) if fraction >= 1 else None
            if cached is not None:
                return cached
            rates = self.usage_rates(invoice)
            teams = rates.hour_teams(hour)
            byoc = rates.byoc
            if fraction < 1:

                def part(cents: float) -> float:
                    return round(cents * fraction * 1024) / 1024

                teams = [map_prices(team, part) for team in teams]
                byoc = None if byoc is None else {k: part(v) for k, v in byoc.items()}
            as_invoice = Invoice(
                invoice.id, hour, hour + HOUR, teams, currency=invoice.currency, byoc=byoc
            )
            made = (as_invoice, aggregate(as_invoice))
            if fraction >= 1:
                if len(self._hour_cache) >= 64:
                    self._hour_cache.clear()
                self._hour_cache[key] = made
            return made

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


# --------------------------------------------------------------------------------------
# Sums of an invoice (what OrganisationData caches)
# --------------------------------------------------------------------------------------


def aggregate(invoice: Invoice) -> Aggregates:
    """Resource type, project, team and PaaS sums of an invoice, in one pass."""
    by_type: dict[tuple[str, str, str], Price] = {}
    by_project: dict[tuple[str, str], Price] = {}
    by_team: dict[str, Price] = {}
    paas = zero_price()
    for team in invoice.teams:
        team_sum = by_team.setdefault(team.id, zero_price())
        for project in team.projects:
            project_sum = by_project.setdefault((team.id, project.id), zero_price())
            for resource in project.resources:
                key = (team.id, project.id, resource.resource_type)
                type_sum = by_type.get(key)
                if type_sum is None:
                    type_sum = by_type[key] = zero_price()
                add_price(type_sum, resource.price)
                add_price(project_sum, resource.price)
            add_price(team_sum, project_sum)
        add_price(paas, team_sum)
    return Aggregates(by_type, by_project, by_team, paas)


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
        teams=[map_prices(team, vary) for team in previous.teams],
        currency=previous.currency,
        byoc=None if previous.byoc is None else {k: vary(v) for k, v in previous.byoc.items()},
        extra_line_items=[
            LineItem(item.title, base=vary(item.base), proration=item.proration)
            for item in previous.extra_line_items
        ],
        discount=vary(previous.discount),
        tax_percent=previous.tax_percent,
        status="open",
    )
