"""Spend not yet invoiced: hourly usage summed from the newest invoice's end. Pure.

The window starts at the newest invoice's ``period.end`` and runs to the end of the
newest hour the API has returned, which may be the hour still running, partly filled.
The API may still correct its last hours, so each poll asks again from
:data:`LOOKBACK` before the end of the newest hour summed (:meth:`Hours.ask_from`), and
:func:`advance` lets an hour's new figures replace its old ones. Hours older than that
are settled: folded into one sum, never asked again. A new newest invoice restarts the
window at its end. Sums are exact (:class:`~fractions.Fraction` of the API's numbers,
so half cents and the order of polls change nothing); amounts stay in API units here,
and ``snapshot`` scales them.

>>> w = advance(None, "inv-1", 0.0, [])
>>> (w.since, w.through, w.paas.total)
(0.0, 0.0, Fraction(0, 1))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from exporter import models

HOUR = 3600.0
LOOKBACK = 3 * HOUR  # hours the API may still correct: asked again at every poll
PAAS_FIELDS = ("cpu", "memory", "storage", "gpu")
BYOC_FIELDS = ("vcpu", "memory", "gpu_memory", "cluster")
Price = models.PaasPrice | models.ByocPrice


@dataclass(frozen=True)
class Sum:
    """An exact sum of prices: the total and each dimension (0 until an hour adds to it)."""

    total: Fraction
    dimensions: tuple[tuple[str, Fraction], ...]

    @classmethod
    def zero(cls, fields: tuple[str, ...]) -> Sum:
        return cls(Fraction(0), tuple((name, Fraction(0)) for name in fields))

    @classmethod
    def of(cls, price: Price | None, fields: tuple[str, ...]) -> Sum:
        """One hour's price (missing figures count 0)."""
        if price is None:
            return cls.zero(fields)
        return cls(
            Fraction(price.total or 0),
            tuple((name, Fraction(getattr(price, name) or 0)) for name in fields),
        )

    def plus(self, other: Sum) -> Sum:
        mine = dict(self.dimensions)
        return Sum(
            self.total + other.total,
            tuple((name, mine.get(name, 0) + value) for name, value in other.dimensions),
        )


@dataclass(frozen=True)
class Hours:
    """One series of hourly figures: settled hours folded, the last :data:`LOOKBACK` apart."""

    since: float
    settled: Sum
    recent: tuple[tuple[float, Sum], ...] = ()  # (hour start, its figures), oldest first
    through: float | None = None  # end of the newest hour summed; None: ``since``

    @property
    def end(self) -> float:
        return self.since if self.through is None else self.through

    @property
    def sum(self) -> Sum:
        total = self.settled
        for _, figures in self.recent:
            total = total.plus(figures)
        return total

    def ask_from(self) -> float:
        """Where the next usage call starts: :data:`LOOKBACK` before the end, not before since."""
        return max(self.since, self.end - LOOKBACK)

    def answered(self, hours: Mapping[float, Sum]) -> Hours:
        """After an answer that started at :meth:`ask_from`: its hours replace the old ones."""
        start = self.ask_from()
        merged = dict(self.recent)
        merged.update((at, figures) for at, figures in hours.items() if at >= start)
        end = max([self.end, *(at + HOUR for at in merged)])
        horizon = end - LOOKBACK
        settled, recent = self.settled, []
        for at in sorted(merged):
            if at < horizon:
                settled = settled.plus(merged[at])
            else:
                recent.append((at, merged[at]))
        return Hours(self.since, settled, tuple(recent), end)


def _fresh(since: float, fields: tuple[str, ...]) -> Hours:
    return Hours(since, Sum.zero(fields))


@dataclass(frozen=True)
class UsageSums:
    invoice_id: str  # the invoice whose end starts the window
    since: float
    paas_hours: Hours
    byoc_hours: Hours
    team_hours: Mapping[str, Hours] = field(default_factory=dict)

    @classmethod
    def start(cls, invoice_id: str, since: float) -> UsageSums:
        return cls(invoice_id, since, _fresh(since, PAAS_FIELDS), _fresh(since, BYOC_FIELDS))

    @property
    def through(self) -> float:
        """End of the newest hour summed; ``since`` before any."""
        return self.paas_hours.end

    @property
    def paas(self) -> Sum:
        return self.paas_hours.sum

    @property
    def byoc(self) -> Sum:
        return self.byoc_hours.sum

    @property
    def total(self) -> Fraction:
        return self.paas.total + self.byoc.total

    def org_start(self) -> float:
        """Where the next organisation-wide usage call starts."""
        return self.paas_hours.ask_from()

    def team_start(self, team_id: str) -> float:
        """Where a team's next usage call starts (``since`` for a team not seen before)."""
        hours = self.team_hours.get(team_id)
        return hours.ask_from() if hours else self.since


def restart_if_needed(usage: UsageSums | None, invoice_id: str, since: float) -> UsageSums:
    """The sums to add to: these, or fresh ones when the newest invoice changed."""
    if usage is None or usage.invoice_id != invoice_id or usage.since != since:
        return UsageSums.start(invoice_id, since)
    return usage


def _by_hour(
    entries: Iterable[models.UsageEntry], since: float, part: str, fields: tuple[str, ...]
) -> dict[float, Sum]:
    """Each hour's figures of one part (``paas_usage`` or ``byoc_usage``), from ``since`` on."""
    hours: dict[float, Sum] = {}
    for entry in entries:
        if entry.timestamp >= since and entry.timestamp not in hours:
            usage = getattr(entry, part)
            hours[entry.timestamp] = Sum.of(usage.price if usage else None, fields)
    return hours


def advance(
    usage: UsageSums | None,
    invoice_id: str,
    since: float,
    entries: Iterable[models.UsageEntry],
    team_entries: Mapping[str, Iterable[models.UsageEntry]] | None = None,
) -> UsageSums:
    """The sums after one poll's answers (org-wide and per team), each asked from
    :meth:`~UsageSums.org_start` or :meth:`~UsageSums.team_start`."""
    base = restart_if_needed(usage, invoice_id, since)
    entries = list(entries)
    paas = base.paas_hours.answered(_by_hour(entries, since, "paas_usage", PAAS_FIELDS))
    byoc = base.byoc_hours.answered(_by_hour(entries, since, "byoc_usage", BYOC_FIELDS))
    teams = dict(base.team_hours)
    for team_id, answers in (team_entries or {}).items():
        current = teams.get(team_id) or _fresh(since, PAAS_FIELDS)
        teams[team_id] = current.answered(_by_hour(answers, since, "paas_usage", PAAS_FIELDS))
    return UsageSums(base.invoice_id, base.since, paas, byoc, teams)
