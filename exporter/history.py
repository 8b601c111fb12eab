"""Past figures for ``northflank-exporter backfill``: read (:func:`read_span`), then
written as OpenMetrics (:func:`write`). Used by :mod:`exporter.backfill`.

A :class:`Span` is the time one invoice was the newest: from its ``period.end`` to the
next invoice's (or the end of the range). Over it the exporter would have served that
invoice's figures, unchanged, and the usage since its end, growing hour by hour. A span
holds the invoice and cost families as ``series -> value`` (a few thousand series at
depth ``project``, whatever the span's length) and the unbilled families as one value
per usage hour summed (``array('d')``, 8 bytes a value), never samples: the samples are
made while writing, series by series, and go straight to the output.

OpenMetrics wants each family's samples together and each series' samples together and
in time order, so the file is written family by family (in :data:`metrics.COST` order),
each series over every span in time order. The file needs every span before its first
series can be written: :func:`write` runs once every span is read (or once reading
failed: the spans read whole are written, so the file stays valid up to the last whole
invoice).
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import IO

from exporter import metrics
from exporter.api.model import InvoiceEntry, Price, UsageEntry
from exporter.encoding import Family, Spec, heads, label_value, number
from exporter.families import cost_families
from exporter.snapshot import InvoiceFigures, Snapshot, TeamAmount, UnbilledFigures
from exporter.unbilled import BYOC_FIELDS, HOUR, PAAS_FIELDS, Sum

HOURS_PER_CALL = 100  # one page of the usage endpoint (per_page=100): one request a call
UNBILLED_SPECS = (
    metrics.UNBILLED_COST,
    metrics.UNBILLED_PAAS_DIMENSION_COST,
    metrics.UNBILLED_BYOC_DIMENSION_COST,
    metrics.TEAM_UNBILLED_COST,
    metrics.UNBILLED_SINCE,
    metrics.UNBILLED_THROUGH,
)
# Every family read from the API but the budgets (a setting, not history: today's budget
# written into past months would claim budgets that were not set then), the credit
# balance (today's, which the API keeps no history of), and this month broken down
# (its hour-by-hour reads, 1 + teams requests an hour at depth project, would spend the
# account's rate limit on a year of history for days).
NOT_HISTORY = metrics.MONTH_FAMILIES | frozenset(
    {
        metrics.TEAM_BUDGET,
        metrics.CREDIT_AVAILABLE,
        metrics.CREDIT_PENDING,
        metrics.CREDIT_GRANT_AVAILABLE,
        metrics.CREDIT_GRANT_PENDING,
        metrics.CUSTOMER_BALANCE,
        metrics.CREDIT_SYNCED,
    }
)
FAMILIES = tuple(spec for spec in metrics.COST if spec not in NOT_HISTORY)
LABEL_NAMES = frozenset(name for spec in metrics.COST for name in spec.labels)


# --------------------------------------------------------------------------- the spans


@dataclass(frozen=True)
class Window:
    """One span's times: the invoice that was the newest from ``start`` (its
    ``period.end``) to ``stop`` (exclusive), sampled every ``step`` seconds."""

    invoice_id: str
    start: float
    stop: float
    step: int

    def steps(self) -> range:
        """Indices of the sample times: ``start + i * step`` for i in the range."""
        return range(max(0, math.ceil((self.stop - self.start) / self.step)))

    def time(self, index: int) -> float:
        return self.start + index * self.step

    def usage_calls(self) -> list[tuple[float, float]]:
        """[start, end) of the usage calls that cover the span's hours, one page each."""
        first = math.ceil(self.start / HOUR) * HOUR
        return [
            (at, min(at + HOURS_PER_CALL * HOUR, self.stop))
            for at in _frange(first, self.stop, HOURS_PER_CALL * HOUR)
        ]


def _frange(start: float, stop: float, step: float) -> Iterable[float]:
    at = start
    while at < stop:
        yield at
        at += step


def windows(
    invoices: Iterable[InvoiceEntry], since: float, until: float, step: int
) -> list[Window]:
    """The spans of the invoices that end in [since, until), oldest first.

    Invoices that end at the same time (a usage and a credit invoice of one month) are
    one span, of the one the exporter would have polled (the usage invoice, else the
    largest ID), as :func:`exporter.fetch.newest_invoice` picks.
    """
    best: dict[float, tuple[float, bool, str]] = {}
    for invoice in invoices:
        end = invoice.period_end
        if end is not None and since <= end < until:
            best[end] = max(best.get(end, invoice.rank), invoice.rank)
    ordered = sorted((end, rank[2]) for end, rank in best.items())
    stops = [end for end, _ in ordered[1:]] + [until]
    return [
        Window(invoice_id, end, stop, step)
        for (end, invoice_id), stop in zip(ordered, stops, strict=True)
    ]


@dataclass
class Span:
    """What one span writes: constant series (``family -> series -> value``) and the
    unbilled ones (``family -> series -> value after each usage hour summed``)."""

    window: Window
    constant: dict[Spec, dict[str, str]]
    unbilled: dict[Spec, dict[str, array[float]]] = field(default_factory=dict)
    hour_ends: list[float] = field(default_factory=list)  # end of each hour summed, in order

    def state(self, index: int) -> int:
        """How many usage hours had ended by sample ``index``'s time."""
        return bisect.bisect_right(self.hour_ends, self.window.time(index))

    @property
    def samples(self) -> int:
        steps = len(self.window.steps())
        series = sum(map(len, self.constant.values())) + sum(map(len, self.unbilled.values()))
        return steps * series


def constant_series(snapshot: Snapshot) -> dict[Spec, dict[str, str]]:
    """The invoice and cost families of a snapshot: ``family -> series -> value``."""
    return {family.spec: _split(family) for family in cost_families(snapshot)}


def _split(family: Family) -> dict[str, str]:
    """``name{labels} value`` lines -> {``name{labels}``: ``value``}."""
    return dict(line.rsplit(" ", 1) for line in family.lines)


@dataclass(frozen=True)
class UsageHours:
    """The usage answers of one span: org-wide entries and each team's."""

    org: Sequence[UsageEntry]
    teams: Mapping[str, Sequence[UsageEntry]]


def add_unbilled(
    span: Span,
    invoice: InvoiceFigures,
    teams: Sequence[tuple[str, str]],
    usage: UsageHours,
) -> None:
    """The unbilled families of ``span``, hour by hour: after each usage hour that ended
    within the span, the figures the exporter would have served (the same families,
    labels and rounding, made by :func:`cost_families`)."""
    window = span.window

    def hours(
        entries: Iterable[UsageEntry], part: str, fields: tuple[str, ...]
    ) -> dict[float, Sum]:
        found: dict[float, Sum] = {}
        for entry in entries:
            at = entry.timestamp
            if at >= window.start and at + HOUR <= window.stop and at not in found:
                found[at] = Sum.of(getattr(entry, part), fields)
        return found

    paas = hours(usage.org, "paas", PAAS_FIELDS)
    byoc = hours(usage.org, "byoc", BYOC_FIELDS)
    by_team = {team: hours(usage.teams.get(team, ()), "paas", PAAS_FIELDS) for team, _ in teams}
    starts = sorted({*paas, *byoc, *(at for found in by_team.values() for at in found)})
    span.hour_ends = [at + HOUR for at in starts]
    through = window.start  # the end of the newest org-wide hour summed, as the exporter's
    sums = {"paas": Sum.zero(PAAS_FIELDS), "byoc": Sum.zero(BYOC_FIELDS)}
    team_sums = {team: Fraction(0) for team, _ in teams}
    values: dict[Spec, dict[str, array[float]]] = {spec: {} for spec in UNBILLED_SPECS}
    for state in range(len(starts) + 1):
        if state:
            at = starts[state - 1]
            sums["paas"] = sums["paas"].plus(paas.get(at, Sum.zero(PAAS_FIELDS)))
            sums["byoc"] = sums["byoc"].plus(byoc.get(at, Sum.zero(BYOC_FIELDS)))
            if at in paas or at in byoc:
                through = at + HOUR
            for team, _ in teams:
                hour = by_team[team].get(at)
                if hour is not None:
                    team_sums[team] += hour.total
        figures = UnbilledFigures(
            since=window.start,
            through=through,
            total=float(sums["paas"].total + sums["byoc"].total),
            paas=_price(sums["paas"]),
            byoc=_price(sums["byoc"]),
            teams=tuple(TeamAmount(team, name, float(team_sums[team])) for team, name in teams),
        )
        for family in cost_families(Snapshot(invoice, (), figures)):
            if family.spec in values:
                series = values[family.spec]
                for key, value in _split(family).items():
                    series.setdefault(key, array("d")).append(float(value))
    span.unbilled = {spec: series for spec, series in values.items() if series}


def _price(part: Sum) -> Price:
    """As :func:`exporter.snapshot.build` turns a usage sum into a price."""
    return Price(float(part.total), tuple((name, float(value)) for name, value in part.dimensions))


# --------------------------------------------------------------------------- writing


def label_text(pairs: Sequence[tuple[str, str]]) -> str:
    """``--label`` pairs as label text, values escaped (empty: no pairs)."""
    return ",".join(f'{name}="{label_value(value)}"' for name, value in pairs)


def _with_labels(series: str, extra: str) -> str:
    """``name{a="1"}`` or ``name`` with ``extra`` label text added."""
    if not extra:
        return series
    if series.endswith("}"):
        return f"{series[:-1]},{extra}}}"
    return f"{series}{{{extra}}}"


def _timestamp(at: float) -> str:
    return str(int(at)) if at == int(at) else repr(at)


def write(
    out: IO[bytes],
    spans: Sequence[Span],
    extra_labels: Sequence[tuple[str, str]] = (),
    progress: Callable[[int], object] = lambda samples: None,
) -> int:
    """Every span's families to ``out`` as OpenMetrics, ending with ``# EOF``; returns
    the number of samples. ``progress(n)`` is called after every n samples written."""
    extra = label_text(extra_labels)
    stamps = [[_timestamp(span.window.time(i)) for i in span.window.steps()] for span in spans]
    states = [[span.state(i) for i in span.window.steps()] for span in spans]
    written = 0
    for spec in FAMILIES:
        unbilled = spec in UNBILLED_SPECS
        order: dict[str, None] = {}  # the family's series, in order of first appearance
        for span in spans:
            order.update(
                dict.fromkeys(
                    span.unbilled.get(spec, {}) if unbilled else span.constant.get(spec, {})
                )
            )
        if not order:
            continue
        out.write(heads(spec)[1])
        for series in order:
            name = _with_labels(series, extra)
            for span, times, state in zip(spans, stamps, states, strict=True):
                if unbilled:
                    values = span.unbilled.get(spec, {}).get(series)
                    if values is None or not times:
                        continue
                    text = "".join(
                        f"{name} {number(values[s])} {t}\n"
                        for s, t in zip(state, times, strict=True)
                    )
                else:
                    value = span.constant.get(spec, {}).get(series)
                    if value is None or not times:
                        continue
                    head = f"{name} {value} "
                    text = head + ("\n" + head).join(times) + "\n"
                out.write(text.encode())
                written += len(times)
                progress(len(times))
    out.write(b"# EOF\n")
    return written
