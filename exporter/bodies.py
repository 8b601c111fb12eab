"""What the server hands out, made when the poller publishes, never on a request.

:class:`Bodies` turns each :class:`~exporter.poller.Outcome` into a :class:`Published`:
the cost families encoded once per new snapshot (and kept as bytes, not as a
snapshot, until the next), the exporter's own metrics rendered by prometheus_client,
and the page at ``/``. The server swaps its one reference to the newest
:class:`Published` whole, so a scrape never sees half a poll.

The cost families come in runs (:data:`~exporter.metrics.SEGMENTS`): what a finalized
invoice's read says, which does not change, is encoded once per read and kept; this
month's breakdown once per hour added; what may change at any poll (the payment status,
the spend not yet invoiced, the budgets, the credit) at each poll;
:func:`~exporter.encoding.join` lays them end to end. A poll that kept the breakdown and
added no hour re-encodes a few dozen lines, not 50,000.
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.encoding import Encoded, Exposition, encode, exposition, join
from exporter.families import cost_families
from exporter.metrics import SEGMENTS
from exporter.own import Health, OwnMetrics
from exporter.page import PageView, Summary, render_page, summarise
from exporter.poller import Outcome
from exporter.snapshot import Snapshot


@dataclass(frozen=True)
class Published:
    """What the server hands out until the next one replaces it."""

    exposition: Exposition
    ready: bool  # figures are served
    page: bytes  # the HTML page at /


class Bodies:
    """Makes each :class:`Published`; :attr:`current` is the newest."""

    def __init__(self, version: str) -> None:
        self._version = version
        self._cost: Encoded = encode(())
        self._read: tuple[int, tuple[Encoded, ...]] = (-1, ())  # a read's segments, encoded
        self._month: tuple[object, tuple[Encoded, ...]] = (None, ())  # the month's, by its key
        self._summary: Summary | None = None  # what the page shows; None: no figures
        self._read_summary: Summary | None = None  # the page's summary of the last read
        self._own = OwnMetrics(Health(version))
        self.current = self._make(Health(version), None)

    def make(self, outcome: Outcome) -> Published:
        """What to serve after ``outcome``."""
        if outcome.snapshot is not None:
            self._cost = self._encode(outcome.snapshot)
            self._summary = summarise(outcome.snapshot, self._read_summary)
            if outcome.snapshot.teams is not None:
                self._read_summary = self._summary
        elif not outcome.serving:  # before the first good poll, or stale: no figures
            self._cost, self._summary = encode(()), None
        self.current = self._make(outcome.health, outcome)
        return self.current

    def _encode(self, snapshot: Snapshot) -> Encoded:
        """The cost families' bytes: a new read's encoded (and kept), a kept read's reused;
        this month's encoded when an hour was added; what may change encoded afresh."""
        families = {family.spec: family for family in cost_families(snapshot)}
        read, kept = self._read
        if snapshot.teams is None and read != snapshot.read:
            raise RuntimeError(f"read {snapshot.read} kept, but the bytes are of read {read}")
        month = snapshot.month.key if snapshot.month is not None else None
        month_kept, month_parts = self._month
        parts: list[Encoded] = []
        made: list[Encoded] = []
        months: list[Encoded] = []
        for kind, specs in SEGMENTS:
            if kind == "read" and snapshot.teams is None:
                part = kept[len(made)]
            elif kind == "month" and month is not None and month == month_kept:
                part = month_parts[len(months)]
            else:
                part = encode(families[spec] for spec in specs)
            if kind == "read":
                made.append(part)
            elif kind == "month":
                months.append(part)
            parts.append(part)
        if snapshot.teams is not None:
            self._read = (snapshot.read, tuple(made))
        self._month = (month, tuple(months))
        return join(parts)

    def _make(self, health: Health, outcome: Outcome | None) -> Published:
        self._own.health = health
        text, openmetrics, samples = self._own.bodies()
        view = PageView(version=self._version, ratelimit_remaining=health.ratelimit_remaining)
        if outcome is not None:
            view = PageView(
                version=self._version,
                summary=self._summary if outcome.serving else None,
                result=outcome.last_result,
                last_poll=outcome.last_poll,
                last_success=health.last_success,
                requests=outcome.requests,
                ratelimit_remaining=health.ratelimit_remaining,
                staleness_seconds=outcome.staleness_seconds,
            )
        return Published(
            exposition=exposition(self._cost, text, openmetrics, samples),
            ready=outcome is not None and outcome.serving,
            page=render_page(view),
        )


def expose(snapshot: Snapshot | None, health: Health) -> Exposition:
    """The exposition of one snapshot and the exporter's health, in one go (for
    ``--once``-like uses, tests and benchmarks; :class:`Bodies` keeps the cost part)."""
    cost = encode(cost_families(snapshot) if snapshot is not None else ())
    return exposition(cost, *OwnMetrics(health).bodies())
