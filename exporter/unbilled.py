"""Spend not yet invoiced: usage summed from the newest invoice's end. Pure.

The window starts at the newest invoice's ``period.end``. Where the API sums it itself
(``granularity=total``: one entry for the window), each poll's answer replaces the last
(:meth:`Hours.whole`), and the window runs to the end of the hour running by the API's
clock. Otherwise it is summed hour by hour, to the end of the newest hour the API has
returned, which may be the hour still running, partly filled. The API may still correct
its last hours, so each poll asks again from :data:`LOOKBACK` before the end of the
newest hour summed (:meth:`Hours.ask_from`), and :func:`advance` lets an hour's new
figures replace its old ones. Hours older than that are settled: folded into one sum,
never asked again. A new newest invoice restarts the window at its end. Sums are exact
(:class:`~fractions.Fraction` of the decimals the API sent, so half cents and the order
of polls change nothing); amounts are major units, as the API's edge made them.

>>> w = advance(None, "inv-1", 0.0, [])
>>> (w.since, w.through, w.paas.total)
(0.0, 0.0, Fraction(0, 1))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from exporter.api.model import BYOC_DIMENSIONS, PAAS_DIMENSIONS, Price, UsageEntry
from exporter.api.read import exact

HOUR = 3600.0
LOOKBACK = 3 * HOUR  # hours the API may still correct: asked again at every poll
TOTALS_RETRY = 86400.0  # a server that refused granularity=total is asked again a day later
PAAS_FIELDS = PAAS_DIMENSIONS
BYOC_FIELDS = BYOC_DIMENSIONS


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
        given = dict(price.dimensions)
        return cls(
            exact(price.total or 0.0),
            tuple((name, exact(given.get(name, 0.0))) for name in fields),
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
    whole: bool = False  # ``settled`` is the API's own sum of the window (granularity=total)

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
        """Where the next hourly usage call starts: :data:`LOOKBACK` before the end, not
        before since (since after a whole sum: its hours were never kept apart)."""
        return self.since if self.whole else max(self.since, self.end - LOOKBACK)

    def total(self, figures: Sum, through: float) -> Hours:
        """The API's own sum of the window from ``since`` to ``through``: it replaces all."""
        return Hours(self.since, figures, (), through, whole=True)

    def answered(self, hours: Mapping[float, Sum]) -> Hours:
        """After an answer that started at :meth:`ask_from`: its hours replace the old ones."""
        if self.whole:  # hours after a whole sum: start again from since
            return Hours(self.since, Sum.zero(_fields(self.settled))).answered(hours)
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


def _fields(figures: Sum) -> tuple[str, ...]:
    return tuple(name for name, _ in figures.dimensions)


def _fresh(since: float, fields: tuple[str, ...]) -> Hours:
    return Hours(since, Sum.zero(fields))


@dataclass(frozen=True)
class UsageSums:
    invoice_id: str  # the invoice whose end starts the window
    since: float
    paas_hours: Hours
    byoc_hours: Hours
    team_hours: Mapping[str, Hours] = field(default_factory=dict)
    totals_refused_at: float | None = None  # API time a server refused granularity=total

    @classmethod
    def start(cls, invoice_id: str, since: float, refused: float | None = None) -> UsageSums:
        paas, byoc = _fresh(since, PAAS_FIELDS), _fresh(since, BYOC_FIELDS)
        return cls(invoice_id, since, paas, byoc, totals_refused_at=refused)

    def totals_due(self, now: float) -> bool:
        """Whether to ask for the API's own sums (not within a day of a refusal)."""
        refused = self.totals_refused_at
        return refused is None or now >= refused + TOTALS_RETRY

    def refused(self, now: float) -> UsageSums:
        """After a 400 to granularity=total: hours from now on, totals again in a day."""
        return dataclasses.replace(self, totals_refused_at=now)

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

    def team_series(self, team_id: str) -> Hours:
        """A team's sums so far (none yet for a team not seen before)."""
        return self.team_hours.get(team_id) or _fresh(self.since, PAAS_FIELDS)

    def team_start(self, team_id: str) -> float:
        """Where a team's next usage call starts (``since`` for a team not seen before)."""
        hours = self.team_hours.get(team_id)
        return hours.ask_from() if hours else self.since


def restart_if_needed(usage: UsageSums | None, invoice_id: str, since: float) -> UsageSums:
    """The sums to add to: these, or fresh ones when the newest invoice changed."""
    if usage is None or usage.invoice_id != invoice_id or usage.since != since:
        return UsageSums.start(invoice_id, since, usage.totals_refused_at if usage else None)
    return usage


def _by_hour(
    entries: Iterable[UsageEntry], since: float, part: str, fields: tuple[str, ...]
) -> dict[float, Sum]:
    """Each hour's figures of one part (``paas`` or ``byoc``), from ``since`` on."""
    hours: dict[float, Sum] = {}
    for entry in entries:
        if entry.timestamp >= since and entry.timestamp not in hours:
            hours[entry.timestamp] = Sum.of(getattr(entry, part), fields)
    return hours


@dataclass(frozen=True)
class Answer:
    """One usage answer: hourly entries, or the window's sum to ``through``."""

    entries: tuple[UsageEntry, ...]
    through: float | None = None  # set: ``entries`` is one sum of the window up to it

    def into(self, hours: Hours, part: str, fields: tuple[str, ...]) -> Hours:
        if self.through is not None:
            entry = self.entries[0] if self.entries else None
            return hours.total(
                Sum.of(getattr(entry, part) if entry else None, fields), self.through
            )
        return hours.answered(_by_hour(self.entries, hours.since, part, fields))


def advance(
    usage: UsageSums | None,
    invoice_id: str,
    since: float,
    org: Answer | Iterable[UsageEntry],
    teams: Mapping[str, Answer | Iterable[UsageEntry]] | None = None,
) -> UsageSums:
    """The sums after one poll's answers (org-wide and per team), each asked from
    :meth:`~UsageSums.org_start` or :meth:`~UsageSums.team_start` (hourly entries), or
    for the whole window (an :class:`Answer` with ``through``)."""
    base = restart_if_needed(usage, invoice_id, since)
    answer = _answer(org)
    paas = answer.into(base.paas_hours, "paas", PAAS_FIELDS)
    byoc = answer.into(base.byoc_hours, "byoc", BYOC_FIELDS)
    team_hours = dict(base.team_hours)
    for team_id, found in (teams or {}).items():
        current = team_hours.get(team_id) or _fresh(since, PAAS_FIELDS)
        team_hours[team_id] = _answer(found).into(current, "paas", PAAS_FIELDS)
    return dataclasses.replace(base, paas_hours=paas, byoc_hours=byoc, team_hours=team_hours)


def _answer(found: Answer | Iterable[UsageEntry]) -> Answer:
    return found if isinstance(found, Answer) else Answer(tuple(found))
