"""The reference for the scrape benchmark: prometheus_client rendering on every scrape.

This is how an exporter is usually written: a custom collector whose ``collect()``
walks the last poll's snapshot and yields ``GaugeMetricFamily`` / ``CounterMetricFamily``
objects, served by prometheus_client's own ``start_http_server`` (text format, gzip when
``Accept-Encoding`` allows it). The families, label names, help texts and values are the
exporter's own, made from the same kind of snapshot of the same simulated organisation.

Run by :mod:`benchmarks.run` as its own process, configured by the same ``NORTHFLANK_*``
environment as the exporter under test::

    python -m benchmarks.perscrape --port 9800

It polls twice (the first poll warms up), prints one JSON line to stdout (the port, the
sample count, and the CPU seconds of the second poll's parts, measured with
``time.process_time`` in this process: requests + parsing + snapshot, then the
exporter's families + render, then one prometheus_client render), then serves until
SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.client import Client
from exporter.exposition import (
    POLL_ERROR_REASONS,
    Family,
    Health,
    cost_families,
    own_families,
    render,
)
from exporter.poller import read_invoice
from exporter.settings import Settings
from exporter.snapshot import Cost, Snapshot


class SnapshotCollector(Collector):
    """Yields the exporter's families from a snapshot, built afresh on every scrape."""

    def __init__(self, snapshot: Snapshot, health: Health) -> None:
        self.snapshot = snapshot
        self.health = health
        # Help texts and types, taken once from the exporter so that both say the same.
        families: list[Family] = [*cost_families(snapshot), *own_families(health)]
        self.docs = {family.name: family.documentation for family in families}

    def _gauge(self, name: str, labels: list[str]) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, self.docs[name], labels=labels)

    def _cost(
        self,
        total: GaugeMetricFamily,
        parts: GaugeMetricFamily,
        values: list[str],
        cost: Cost,
    ) -> None:
        if cost.total is not None:
            total.add_metric(values, cost.total)
        for dimension, value in cost.dimensions:
            parts.add_metric([*values, dimension], value)

    def collect(self) -> Iterator[Metric]:
        yield from self._invoice()
        yield from self._breakdown()
        yield from self._unbilled()
        yield from self._own()

    def _invoice(self) -> Iterator[Metric]:
        inv = self.snapshot.invoice
        cur = inv.currency
        info = self._gauge("northflank_invoice_info", ["currency", "invoice_id"])
        info.add_metric([cur, inv.id], 1)
        yield info
        for name, value, currency in (
            ("northflank_invoice_period_start_timestamp_seconds", inv.period_start, False),
            ("northflank_invoice_period_end_timestamp_seconds", inv.period_end, False),
            ("northflank_invoice_amount", inv.total, True),
            ("northflank_invoice_subtotal_amount", inv.subtotal, True),
            ("northflank_invoice_discount_amount", inv.discount, True),
            ("northflank_invoice_tax_amount", inv.tax_amount, True),
            ("northflank_invoice_tax_ratio", inv.tax_ratio, False),
            ("northflank_invoice_paid", None if inv.paid is None else float(inv.paid), False),
        ):
            family = self._gauge(name, ["currency"] if currency else [])
            if value is not None:
                family.add_metric([cur] if currency else [], value)
            yield family
        items = [
            self._gauge(f"northflank_invoice_line_item{part}_amount", ["currency", "item"])
            for part in ("", "_base", "_proration")
        ]
        for item in inv.line_items:
            for family, value in zip(items, (item.total, item.base, item.proration), strict=True):
                if value is not None:
                    family.add_metric([cur, item.title], value)
        yield from items
        for scope, cost in (("byoc", inv.byoc), ("paas", inv.paas)):
            total = self._gauge(f"northflank_{scope}_cost", ["currency"])
            parts = self._gauge(f"northflank_{scope}_dimension_cost", ["currency", "dimension"])
            if cost is not None:
                self._cost(total, parts, [cur], cost)
            yield from (total, parts)

    def _breakdown(self) -> Iterator[Metric]:
        cur = self.snapshot.invoice.currency
        keys = {
            "team": ["currency", "team", "team_name"],
            "project": ["currency", "team", "project", "project_name"],
            "resource_type": ["currency", "team", "project", "resource_type"],
            "resource": [
                "currency",
                "team",
                "project",
                "resource_type",
                "resource",
                "resource_name",
            ],
        }
        fams = {
            level: (
                self._gauge(f"northflank_{level}_cost", labels),
                self._gauge(f"northflank_{level}_dimension_cost", [*labels, "dimension"]),
            )
            for level, labels in keys.items()
        }
        for team in self.snapshot.teams:
            self._cost(*fams["team"], [cur, team.id, team.name], team.cost)
            for project in team.projects:
                where = [cur, team.id, project.id, project.name]
                self._cost(*fams["project"], where, project.cost)
                for kind in project.resource_types:
                    in_type = [cur, team.id, project.id, kind.resource_type]
                    self._cost(*fams["resource_type"], in_type, kind.cost)
                    for res in kind.resources:
                        self._cost(*fams["resource"], [*in_type, res.id, res.name], res.cost)
        for pair in fams.values():
            yield from pair

    def _unbilled(self) -> Iterator[Metric]:
        cur = self.snapshot.invoice.currency
        total = self._gauge("northflank_unbilled_cost", ["currency"])
        paas = self._gauge("northflank_unbilled_paas_dimension_cost", ["currency", "dimension"])
        byoc = self._gauge("northflank_unbilled_byoc_dimension_cost", ["currency", "dimension"])
        teams = self._gauge("northflank_team_unbilled_cost", ["currency", "team", "team_name"])
        since = self._gauge("northflank_unbilled_since_timestamp_seconds", [])
        through = self._gauge("northflank_unbilled_through_timestamp_seconds", [])
        budget = self._gauge("northflank_team_budget", ["currency", "team", "team_name"])
        figures = self.snapshot.unbilled
        if figures is not None:
            total.add_metric([cur], figures.total)
            for dimension, value in figures.paas.dimensions:
                paas.add_metric([cur, dimension], value)
            for dimension, value in figures.byoc.dimensions:
                byoc.add_metric([cur, dimension], value)
            for row in figures.teams:
                teams.add_metric([cur, row.team_id, row.team_name], row.amount)
            since.add_metric([], figures.since)
            through.add_metric([], figures.through)
        for row in self.snapshot.budgets:
            budget.add_metric([cur, row.team_id, row.team_name], row.amount)
        yield from (total, paas, byoc, teams, since, through, budget)

    def _own(self) -> Iterator[Metric]:
        health = self.health
        for name, value in (
            ("northflank_up", float(health.up)),
            ("northflank_last_success_timestamp_seconds", health.last_success),
            ("northflank_poll_duration_seconds", health.poll_duration),
        ):
            family = self._gauge(name, [])
            if value is not None:
                family.add_metric([], value)
            yield family
        errors = CounterMetricFamily(
            "northflank_poll_errors", self.docs["northflank_poll_errors"], labels=["reason"]
        )
        for reason in sorted({*POLL_ERROR_REASONS, *health.poll_errors}):
            errors.add_metric([reason], health.poll_errors.get(reason, 0))
        yield errors
        requests = CounterMetricFamily(
            "northflank_api_requests",
            self.docs["northflank_api_requests"],
            labels=["endpoint", "code"],
        )
        for (endpoint, code), count in sorted(health.api_requests.items()):
            requests.add_metric([endpoint, code], count)
        yield requests
        remaining = self._gauge("northflank_api_ratelimit_remaining", [])
        if health.ratelimit_remaining is not None:
            remaining.add_metric([], health.ratelimit_remaining)
        yield remaining
        build = self._gauge("northflank_exporter_build_info", ["version"])
        build.add_metric([health.version], 1)
        yield build


async def poll_twice(settings: Settings) -> tuple[Snapshot, Health, dict[str, float]]:
    """Two polls like the exporter's; CPU seconds of the second one's parts."""
    async with Client(
        settings.api_url,
        settings.token(),
        timeout=settings.request_timeout_seconds,
        max_concurrency=settings.max_concurrency,
    ) as client:
        await read_invoice(client, settings)  # warm-up: connections, first-use costs
        started, cpu = time.monotonic(), time.process_time()
        result = await read_invoice(client, settings)
        read_cpu = time.process_time() - cpu
        duration = time.monotonic() - started
        stats = client.stats
    health = Health(
        version=__version__,
        up=True,
        last_success=time.time(),
        poll_duration=duration,
        api_requests=dict(stats.requests),
        ratelimit_remaining=stats.ratelimit_remaining,
    )
    cpu = time.process_time()
    exposition = render([*cost_families(result.snapshot), *own_families(health)])
    render_cpu = time.process_time() - cpu
    return (
        result.snapshot,
        health,
        {
            "read_cpu_seconds": read_cpu,
            "render_cpu_seconds": render_cpu,
            "samples": float(exposition.samples),
        },
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.perscrape")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    settings = Settings()  # the NORTHFLANK_* environment, as the exporter reads it
    snapshot, health, figures = asyncio.run(poll_twice(settings))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot, health))
    cpu = time.process_time()
    generate_latest(registry)
    figures["prometheus_client_render_cpu_seconds"] = time.process_time() - cpu
    server, thread = start_http_server(args.port, addr="127.0.0.1", registry=registry)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(json.dumps({"port": args.port, **figures}), flush=True)
    while not stop.wait(0.5):
        pass
    server.shutdown()
    thread.join(timeout=2)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
