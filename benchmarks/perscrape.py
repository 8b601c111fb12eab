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
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter import __version__
from exporter import metrics as m
from exporter.api.billing import Billing
from exporter.api.client import Client
from exporter.api.model import Price
from exporter.bodies import expose
from exporter.encoding import Spec
from exporter.fetch import Plan, fetch
from exporter.own import Health, OwnMetrics
from exporter.settings import Settings
from exporter.snapshot import Snapshot, build


class SnapshotCollector(Collector):
    """Yields the exporter's families from a snapshot, built afresh on every scrape.

    Names, help texts and label names come from ``exporter.metrics``; label values are
    given in the declared (sorted) order.
    """

    def __init__(self, snapshot: Snapshot, health: Health) -> None:
        self.snapshot = snapshot
        self.own = OwnMetrics(health)

    @staticmethod
    def _gauge(spec: Spec) -> GaugeMetricFamily:
        return GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)

    @staticmethod
    def _cost(
        total: GaugeMetricFamily,
        parts: GaugeMetricFamily,
        currency: str,
        rest: list[str],
        cost: Price,
    ) -> None:
        """``rest``: the label values after currency (and dimension), in sorted order."""
        if cost.total is not None:
            total.add_metric([currency, *rest], cost.total)
        for dimension, value in cost.dimensions:
            parts.add_metric([currency, dimension, *rest], value)

    def collect(self) -> Iterator[Metric]:
        yield from self._invoice()
        yield from self._breakdown()
        yield from self._unbilled()
        yield from self._credit()
        yield from self.own.collect()

    def _invoice(self) -> Iterator[Metric]:
        inv = self.snapshot.invoice
        cur = inv.currency
        info = self._gauge(m.INVOICE_INFO)
        info.add_metric([cur, inv.id], 1)
        yield info
        for spec, value in (
            (m.INVOICE_PERIOD_START, inv.period_start),
            (m.INVOICE_PERIOD_END, inv.period_end),
            (m.INVOICE_AMOUNT, inv.total),
            (m.INVOICE_SUBTOTAL, inv.subtotal),
            (m.INVOICE_DISCOUNT, inv.discount),
            (m.INVOICE_TAX, inv.tax_amount),
            (m.INVOICE_TAX_RATIO, inv.tax_ratio),
            (m.INVOICE_PAID, None if inv.paid is None else float(inv.paid)),
        ):
            family = self._gauge(spec)
            if value is not None:
                family.add_metric([cur] if spec.labels else [], value)
            yield family
        status = self._gauge(m.INVOICE_STATUS)
        if inv.status is not None:
            status.add_metric([inv.status], 1)
        yield status
        items = [
            self._gauge(spec) for spec in (m.LINE_ITEM, m.LINE_ITEM_BASE, m.LINE_ITEM_PRORATION)
        ]
        for item in inv.line_items:
            for family, value in zip(items, (item.total, item.base, item.proration), strict=True):
                if value is not None:
                    family.add_metric([cur, item.title], value)
        yield from items
        for total_spec, parts_spec, cost in (
            (m.BYOC_COST, m.BYOC_DIMENSION_COST, inv.byoc),
            (m.PAAS_COST, m.PAAS_DIMENSION_COST, inv.paas),
        ):
            total, parts = self._gauge(total_spec), self._gauge(parts_spec)
            if cost is not None:
                self._cost(total, parts, cur, [], cost)
            yield from (total, parts)

    def _breakdown(self) -> Iterator[Metric]:
        cur = self.snapshot.invoice.currency
        team_f = (self._gauge(m.TEAM_COST), self._gauge(m.TEAM_DIMENSION_COST))
        project_f = (self._gauge(m.PROJECT_COST), self._gauge(m.PROJECT_DIMENSION_COST))
        type_f = (self._gauge(m.RESOURCE_TYPE_COST), self._gauge(m.RESOURCE_TYPE_DIMENSION_COST))
        res_f = (self._gauge(m.RESOURCE_COST), self._gauge(m.RESOURCE_DIMENSION_COST))
        for team in self.snapshot.teams or ():
            self._cost(*team_f, cur, [team.id, team.name], team.price)
            for project in team.projects or ():
                self._cost(*project_f, cur, [project.id, project.name, team.id], project.price)
                for kind in project.resource_types or ():
                    where = [project.id, kind.resource_type, team.id]
                    self._cost(*type_f, cur, where, kind.price)
                    for res in kind.resources:
                        where = [project.id, res.id, res.name, kind.resource_type, team.id]
                        self._cost(*res_f, cur, where, res.price)
        yield from (*team_f, *project_f, *type_f, *res_f)

    def _unbilled(self) -> Iterator[Metric]:
        cur = self.snapshot.invoice.currency
        total = self._gauge(m.UNBILLED_COST)
        paas = self._gauge(m.UNBILLED_PAAS_DIMENSION_COST)
        byoc = self._gauge(m.UNBILLED_BYOC_DIMENSION_COST)
        teams = self._gauge(m.TEAM_UNBILLED_COST)
        since = self._gauge(m.UNBILLED_SINCE)
        through = self._gauge(m.UNBILLED_THROUGH)
        budget = self._gauge(m.TEAM_BUDGET)
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

    def _credit(self) -> Iterator[Metric]:
        credit = self.snapshot.credit
        specs = (
            m.CREDIT_AVAILABLE,
            m.CREDIT_PENDING,
            m.CREDIT_GRANT_AVAILABLE,
            m.CREDIT_GRANT_PENDING,
            m.CUSTOMER_BALANCE,
        )
        cur = (credit.currency if credit else None) or self.snapshot.invoice.currency
        values: tuple[float | None, ...] = (None,) * len(specs)
        if credit is not None:
            values = (credit.available, credit.pending, credit.grant_available)
            values += (credit.grant_pending, credit.customer_balance)
        for spec, value in zip(specs, values, strict=True):
            family = self._gauge(spec)
            if value is not None:
                family.add_metric([cur], value)
            yield family
        synced = self._gauge(m.CREDIT_SYNCED)
        if credit is not None and credit.synced_at is not None:
            synced.add_metric([], credit.synced_at)
        yield synced


async def poll_twice(settings: Settings) -> tuple[Snapshot, Health, dict[str, float]]:
    """Two polls like the exporter's; CPU seconds of the second one's parts."""
    async with Client(
        settings.api_url,
        settings.token(),
        timeout=settings.request_timeout_seconds,
        max_concurrency=settings.max_concurrency,
    ) as client:
        contracts = settings.contracts()
        plan = Plan.of(settings, credit=True)
        await fetch(Billing(client, contracts), plan)  # warm-up: connections, first-use costs
        started, cpu = time.monotonic(), time.process_time()
        answers = await fetch(Billing(client, contracts), plan)
        snapshot = build(answers, settings.view)
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
        contract=answers.contract,
    )
    cpu = time.process_time()
    exposition = expose(snapshot, health)
    render_cpu = time.process_time() - cpu
    return (
        snapshot,
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
