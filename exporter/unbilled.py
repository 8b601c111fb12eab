"""Spend not yet invoiced: hourly usage summed from the newest invoice's end. Pure.

The window starts at the newest invoice's ``period.end`` and runs to the end of the
newest whole hour the API has returned. A poll asks only for hours after the window's
end (``startTime``), and :func:`advance` adds what came back; hours already summed are
never added twice. A new newest invoice restarts the window at its end. Amounts stay
in API units here; ``snapshot`` scales them.

>>> w = advance(None, "inv-1", 0.0, [])
>>> (w.since, w.through, w.paas.total)
(0.0, 0.0, 0.0)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from exporter import models

HOUR = 3600.0
PAAS_FIELDS = (("cpu", "cpu"), ("memory", "memory"), ("storage", "storage"), ("gpu", "gpu"))
BYOC_FIELDS = (
    ("vcpu", "vcpu"),
    ("memory", "memory"),
    ("gpu_memory", "gpu_memory"),
    ("cluster", "cluster"),
)


@dataclass(frozen=True)
class Sum:
    """A running sum of prices: the total and each dimension (0 until an hour adds to it)."""

    total: float = 0.0
    dimensions: tuple[tuple[str, float], ...] = ()

    def plus(
        self, price: models.PaasPrice | models.ByocPrice | None, fields: tuple[tuple[str, str], ...]
    ) -> Sum:
        if price is None:
            return self
        current = dict(self.dimensions) or {name: 0.0 for name, _ in fields}
        for name, attr in fields:
            current[name] += getattr(price, attr) or 0.0
        return Sum(self.total + (price.total or 0.0), tuple(current.items()))

    @classmethod
    def zero(cls, fields: tuple[tuple[str, str], ...]) -> Sum:
        return cls(0.0, tuple((name, 0.0) for name, _ in fields))


@dataclass(frozen=True)
class TeamSum:
    through: float
    paas: Sum


@dataclass(frozen=True)
class Window:
    invoice_id: str  # the invoice whose end starts the window
    since: float
    through: float  # end of the newest hour summed; ``since`` before any
    paas: Sum = field(default_factory=lambda: Sum.zero(PAAS_FIELDS))
    byoc: Sum = field(default_factory=lambda: Sum.zero(BYOC_FIELDS))
    teams: Mapping[str, TeamSum] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return self.paas.total + self.byoc.total

    def team_start(self, team_id: str) -> float:
        """Where a team's next usage call starts: after its last summed hour."""
        team = self.teams.get(team_id)
        return team.through if team else self.since


def restart_if_needed(window: Window | None, invoice_id: str, since: float) -> Window:
    """The window to add to: this one, or a fresh one when the newest invoice changed."""
    if window is None or window.invoice_id != invoice_id or window.since != since:
        return Window(invoice_id=invoice_id, since=since, through=since)
    return window


def _new_hours(entries: Iterable[models.UsageEntry], after: float) -> list[models.UsageEntry]:
    """Entries not yet summed (hour start at or after ``after``), each hour once."""
    seen: set[float] = set()
    fresh = []
    for entry in entries:
        if entry.timestamp >= after and entry.timestamp not in seen:
            seen.add(entry.timestamp)
            fresh.append(entry)
    return fresh


def advance(
    window: Window | None,
    invoice_id: str,
    since: float,
    entries: Iterable[models.UsageEntry],
    team_entries: Mapping[str, Iterable[models.UsageEntry]] | None = None,
) -> Window:
    """The window after adding one poll's answers (org-wide and per team)."""
    base = restart_if_needed(window, invoice_id, since)
    paas, byoc, through = base.paas, base.byoc, base.through
    for entry in _new_hours(entries, base.through):
        paas = paas.plus(entry.paas_usage.price if entry.paas_usage else None, PAAS_FIELDS)
        byoc = byoc.plus(entry.byoc_usage.price if entry.byoc_usage else None, BYOC_FIELDS)
        through = max(through, entry.timestamp + HOUR)
    teams = dict(base.teams)
    for team_id, answers in (team_entries or {}).items():
        current = teams.get(team_id, TeamSum(base.since, Sum.zero(PAAS_FIELDS)))
        team_paas, team_through = current.paas, current.through
        for entry in _new_hours(answers, current.through):
            price = entry.paas_usage.price if entry.paas_usage else None
            team_paas = team_paas.plus(price, PAAS_FIELDS)
            team_through = max(team_through, entry.timestamp + HOUR)
        teams[team_id] = TeamSum(team_through, team_paas)
    return Window(base.invoice_id, base.since, through, paas, byoc, teams)


def parse_budgets(text: str) -> dict[str, float]:
    """``team-a=500, team-b=1200, *=300`` -> {"team-a": 500.0, ...}; ValueError naming the entry."""
    budgets: dict[str, float] = {}
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        team, sep, amount_text = entry.partition("=")
        team, amount_text = team.strip(), amount_text.strip()
        if not sep or not team:
            raise ValueError(f"entry {entry!r} is not team=amount")
        try:
            amount = float(amount_text)
        except ValueError:
            raise ValueError(f"entry {entry!r}: {amount_text!r} is not a number") from None
        if not amount >= 0 or amount == float("inf"):
            raise ValueError(f"entry {entry!r}: the amount must be a non-negative number")
        if team in budgets:
            raise ValueError(f"team {team!r} is named twice")
        budgets[team] = amount
    return budgets


def budget_for(budgets: Mapping[str, float], team_id: str) -> float | None:
    """A team's own budget, else the ``*`` default, else None."""
    return budgets.get(team_id, budgets.get("*"))
