"""Snapshot -> metric families -> bytes. Pure functions; rendered once per poll.

The scrape path only picks one of the four pre-rendered bodies of an
:class:`Exposition`: text 0.0.4 or OpenMetrics, each plain or gzipped. Rendering uses
prometheus_client's own encoders, so escaping and formats are right.

A sample of what ``/metrics`` says::

    # HELP northflank_team_cost PaaS cost of a team on the invoice (polled from the API)
    # TYPE northflank_team_cost gauge
    northflank_team_cost{currency="usd",team="team-1",team_name="Platform"} 1234.56
    # HELP northflank_up 1 when the last poll succeeded in full, else 0
    # TYPE northflank_up gauge
    northflank_up 1.0
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.exposition import generate_latest as render_text
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.openmetrics.exposition import generate_latest as render_openmetrics

from exporter.snapshot import Cost, Snapshot

POLL_ERROR_REASONS = (
    "auth",
    "not_found",
    "rate_limited",
    "http",
    "timeout",
    "connection",
    "invalid_response",
)
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
POLLED = "(polled from the Northflank API)"


@dataclass(frozen=True)
class Health:
    """The exporter's own state, rendered beside the cost figures."""

    version: str
    up: bool = False
    last_success: float | None = None
    poll_duration: float | None = None
    poll_errors: Mapping[str, int] = field(default_factory=dict)
    api_requests: Mapping[tuple[str, str], int] = field(default_factory=dict)
    ratelimit_remaining: float | None = None


@dataclass(frozen=True)
class Body:
    plain: bytes
    gzipped: bytes

    @classmethod
    def of(cls, data: bytes) -> Body:
        return cls(data, gzip.compress(data, compresslevel=6, mtime=0))


@dataclass(frozen=True)
class Exposition:
    """The bodies ``/metrics`` hands out, and how many samples they hold."""

    text: Body
    openmetrics: Body
    samples: int


class _Families:
    """Just enough of a registry for prometheus_client's encoders."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Sequence[Metric]:
        return self._families


def render(families: Sequence[Metric]) -> Exposition:
    registry = _Families(families)
    return Exposition(
        text=Body.of(render_text(registry)),
        openmetrics=Body.of(render_openmetrics(registry)),  # type: ignore[no-untyped-call]
        samples=sum(len(family.samples) for family in families),
    )


# --------------------------------------------------------------------------- cost families


def _gauge(name: str, documentation: str, labels: Sequence[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=list(labels))


def _add_cost(
    total: GaugeMetricFamily,
    parts: GaugeMetricFamily,
    labels: list[str],
    cost: Cost,
) -> None:
    if cost.total is not None:
        total.add_metric(labels, cost.total)
    for dimension, value in cost.dimensions:
        parts.add_metric([*labels, dimension], value)


def cost_families(snapshot: Snapshot) -> list[Metric]:
    """Every family read from the API, for one snapshot."""
    inv = snapshot.invoice
    cur = [inv.currency]
    out: list[Metric] = []

    def single(name: str, doc: str, value: float | None, *, currency: bool = True) -> None:
        family = _gauge(name, f"{doc} {POLLED}", ["currency"] if currency else [])
        if value is not None:
            family.add_metric(cur if currency else [], value)
        out.append(family)

    info = _gauge("northflank_invoice_info", "The invoice being polled", ["invoice_id", "currency"])
    info.add_metric([inv.id, inv.currency], 1)
    out.append(info)
    single(
        "northflank_invoice_period_start_timestamp_seconds",
        "Start of the invoice's billing period",
        inv.period_start,
        currency=False,
    )
    single(
        "northflank_invoice_period_end_timestamp_seconds",
        "End of the invoice's billing period",
        inv.period_end,
        currency=False,
    )
    single("northflank_invoice_amount", "Invoice total, with tax", inv.total)
    single("northflank_invoice_subtotal_amount", "Invoice subtotal", inv.subtotal)
    single("northflank_invoice_discount_amount", "Discounts on the invoice", inv.discount)
    single("northflank_invoice_tax_amount", "Tax on the invoice", inv.tax_amount)
    single("northflank_invoice_tax_ratio", "Tax rate (0.2 is 20%)", inv.tax_ratio, currency=False)
    single(
        "northflank_invoice_paid",
        "1 when the invoice is paid, else 0",
        None if inv.paid is None else float(inv.paid),
        currency=False,
    )

    item_families = {
        "total": _gauge(
            "northflank_invoice_line_item_amount", f"Line item total {POLLED}", ["currency", "item"]
        ),
        "base": _gauge(
            "northflank_invoice_line_item_base_amount",
            f"Line item base amount before proration {POLLED}",
            ["currency", "item"],
        ),
        "proration": _gauge(
            "northflank_invoice_line_item_proration_amount",
            f"Line item proration adjustment {POLLED}",
            ["currency", "item"],
        ),
    }
    for item in inv.line_items:
        for part, family in item_families.items():
            value = getattr(item, part)
            if value is not None:
                family.add_metric([inv.currency, item.title], value)
    out.extend(item_families.values())

    for scope, title, cost, dims in (
        ("byoc", "BYOC", inv.byoc, "vcpu, memory, gpu_memory, cluster"),
        ("paas", "PaaS", inv.paas, "cpu, memory, storage, gpu"),
    ):
        total = _gauge(
            f"northflank_{scope}_cost", f"{title} cost on the invoice {POLLED}", ["currency"]
        )
        parts = _gauge(
            f"northflank_{scope}_dimension_cost",
            f"{title} cost by usage dimension ({dims}) {POLLED}",
            ["currency", "dimension"],
        )
        if cost is not None:
            _add_cost(total, parts, cur, cost)
        out += [total, parts]

    out.extend(_breakdown(snapshot))
    return out


def _breakdown(snapshot: Snapshot) -> Iterator[Metric]:
    """Team, project, resource type and resource families."""
    c = snapshot.invoice.currency
    levels = {
        "team": ["team", "team_name"],
        "project": ["team", "project", "project_name"],
        "resource_type": ["team", "project", "resource_type"],
        "resource": ["team", "project", "resource_type", "resource", "resource_name"],
    }
    what = {
        "team": "PaaS cost of a team",
        "project": "PaaS cost of a project",
        "resource_type": "PaaS cost of one resource type in a project",
        "resource": "PaaS cost of a resource",
    }
    fams = {
        level: (
            _gauge(f"northflank_{level}_cost", f"{what[level]} {POLLED}", ["currency", *names]),
            _gauge(
                f"northflank_{level}_dimension_cost",
                f"{what[level]}, by usage dimension {POLLED}",
                ["currency", *names, "dimension"],
            ),
        )
        for level, names in levels.items()
    }
    for team in snapshot.teams:
        _add_cost(*fams["team"], [c, team.id, team.name], team.cost)
        for project in team.projects:
            _add_cost(*fams["project"], [c, team.id, project.id, project.name], project.cost)
            for kind in project.resource_types:
                where = [c, team.id, project.id, kind.resource_type]
                _add_cost(*fams["resource_type"], where, kind.cost)
                for res in kind.resources:
                    _add_cost(*fams["resource"], [*where, res.id, res.name], res.cost)
    for pair in fams.values():
        yield from pair


# --------------------------------------------------------------------------- own families


def own_families(health: Health) -> list[Metric]:
    """The exporter's own metrics; they stay when the cost figures go stale."""
    up = GaugeMetricFamily(
        "northflank_up", "1 when the last poll succeeded in full, else 0", value=float(health.up)
    )
    last = GaugeMetricFamily(
        "northflank_last_success_timestamp_seconds", "End of the last successful poll (Unix time)"
    )
    if health.last_success is not None:
        last.add_metric([], health.last_success)
    duration = GaugeMetricFamily("northflank_poll_duration_seconds", "How long the last poll took")
    if health.poll_duration is not None:
        duration.add_metric([], health.poll_duration)
    errors = CounterMetricFamily(
        "northflank_poll_errors", "Failed polls, by cause", labels=["reason"]
    )
    for reason in sorted({*POLL_ERROR_REASONS, *health.poll_errors}):
        errors.add_metric([reason], health.poll_errors.get(reason, 0))
    requests = CounterMetricFamily(
        "northflank_api_requests",
        "Requests made to the Northflank API, by endpoint and "
        "HTTP status ('error' when no answer came)",
        labels=["endpoint", "code"],
    )
    for (endpoint, code), count in sorted(health.api_requests.items()):
        requests.add_metric([endpoint, code], count)
    remaining = GaugeMetricFamily(
        "northflank_api_ratelimit_remaining", "Last x-ratelimit-remaining the API sent"
    )
    if health.ratelimit_remaining is not None:
        remaining.add_metric([], health.ratelimit_remaining)
    build = GaugeMetricFamily(
        "northflank_exporter_build_info", "Version of the exporter, value 1", labels=["version"]
    )
    build.add_metric([health.version], 1)
    return [up, last, duration, errors, requests, remaining, build]
