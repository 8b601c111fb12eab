"""The exporter's own metrics: prometheus_client metrics in a registry of their own.

:class:`OwnMetrics` is filled from a :class:`Health` (what the poller knows of itself) and
rendered by prometheus_client; they stay when the cost figures go stale. Python's
process, platform and GC collectors are not in it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector

from exporter.api.errors import REASONS
from exporter.encoding import Spec
from exporter.metrics import (
    API_CONTRACT,
    API_REQUESTS,
    BUILD_INFO,
    LAST_SUCCESS,
    POLL_DURATION,
    POLL_ERRORS,
    RATELIMIT_REMAINING,
    RATELIMIT_WAIT,
    TOKEN_EXPIRY,
    TOKEN_INFO,
    UP,
)


@dataclass(frozen=True)
class Health:
    """The exporter's own state, what :class:`OwnMetrics` reports."""

    version: str
    up: bool = False
    last_success: float | None = None
    poll_duration: float | None = None
    poll_errors: Mapping[str, int] = field(default_factory=dict)
    api_requests: Mapping[tuple[str, str], int] = field(default_factory=dict)
    ratelimit_remaining: float | None = None
    token_entity: tuple[str, str] | None = None  # (entity type, entity ID) from GET /v1/auth
    token_expiry: float | None = None  # Unix time the token expires; None: never, or unknown
    contract: str | None = None  # the billing contract the last good poll read
    ratelimit_wait: float = 0.0  # seconds waited for the API's rate-limit window


def _gauge(spec: Spec, value: float | None = None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)
    if value is not None:
        family.add_metric((), value)
    return family


class OwnMetrics(Collector):
    """The exporter's own metrics, in a registry of their own: set :attr:`health`, render.

    Python's default process, platform and GC collectors are not in it.
    """

    def __init__(self, health: Health) -> None:
        self.health = health
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def collect(self) -> Iterator[Metric]:
        health = self.health
        yield _gauge(UP, float(health.up))
        yield _gauge(LAST_SUCCESS, health.last_success)
        yield _gauge(POLL_DURATION, health.poll_duration)
        errors = CounterMetricFamily(POLL_ERRORS.name, POLL_ERRORS.help, labels=POLL_ERRORS.labels)
        for reason in sorted({*REASONS, *health.poll_errors}):
            errors.add_metric((reason,), health.poll_errors.get(reason, 0))
        yield errors
        requests = CounterMetricFamily(
            API_REQUESTS.name, API_REQUESTS.help, labels=API_REQUESTS.labels
        )
        for (endpoint, code), count in sorted(health.api_requests.items()):
            requests.add_metric((code, endpoint), count)
        yield requests
        yield _gauge(RATELIMIT_REMAINING, health.ratelimit_remaining)
        waited = CounterMetricFamily(RATELIMIT_WAIT.name, RATELIMIT_WAIT.help)
        waited.add_metric((), health.ratelimit_wait)
        yield waited
        build = _gauge(BUILD_INFO)
        build.add_metric((health.version,), 1)
        yield build
        contract = _gauge(API_CONTRACT)
        if health.contract is not None:
            contract.add_metric((health.contract,), 1)
        yield contract
        token = _gauge(TOKEN_INFO)
        if health.token_entity is not None:
            entity_type, entity_id = health.token_entity
            token.add_metric((entity_id, entity_type), 1)
        yield token
        yield _gauge(TOKEN_EXPIRY, health.token_expiry)

    def bodies(self) -> tuple[bytes, bytes, int]:
        """(text, OpenMetrics ending in ``# EOF``, samples), rendered by prometheus_client."""
        samples = sum(len(family.samples) for family in self.collect())
        openmetrics: bytes = generate_openmetrics(self.registry)  # type: ignore[no-untyped-call]
        return generate_latest(self.registry), openmetrics, samples
