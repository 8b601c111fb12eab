"""This month, broken down: the spend not yet invoiced by project, resource type and
resource, summed exactly from settled hours. Pure.

A :class:`Month` is one window's sums: from the newest invoice's ``period.end``
(``since``) through the end of the newest hour summed without a gap (``through``), at
``NORTHFLANK_UNBILLED_DEPTH``. An hour is settled once it ended :data:`SETTLE` ago (the
API may still correct the last hours); settled hours are added oldest first, each once
(:func:`add_hour`), or several at once from the API's own sums of a span
(:func:`add_span`). Sums are exact (:class:`~fractions.Fraction` of the decimals the API
sent, as in :mod:`exporter.unbilled`); :func:`teams` gives them as the model's tree of
floats, for the families.

>>> m = start("inv-1", "current", since=0.0, depth="project", teams=frozenset())
>>> due(m, now=5 * HOUR)  # hours 0 and 1 have settled: they ended 3 hours ago or more
[0.0, 3600.0]
>>> project = model.Project("web", "Web", model.Price(1.25, (("cpu", 1.25),)))
>>> team = model.Team("t1", "Team 1", model.Price(1.25), (project,))
>>> m = add_hour(m, 0.0, (team,), "usd")
>>> (m.through, teams(m)[0].projects[0].price)
(3600.0, Price(total=1.25, dimensions=(('cpu', 1.25),)))
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction

from exporter.api import model
from exporter.api.model import NO_PRICE, Price
from exporter.api.read import exact
from exporter.settings import Depth

HOUR = 3600.0
SETTLE = 3 * HOUR  # an hour that ended this long ago no longer changes
Key = tuple[str, ...]  # (team, project), + resource type, + resource


@dataclass(frozen=True, slots=True)
class Entry:
    """One entity's exact sum: its name (the newest seen), total and dimensions."""

    name: str
    total: Fraction
    dimensions: tuple[tuple[str, Fraction], ...]

    def plus(self, name: str, price: Price) -> Entry:
        sums = dict(self.dimensions)
        for dimension, value in price.dimensions:
            sums[dimension] = sums.get(dimension, Fraction(0)) + exact(value)
        return Entry(name, self.total + exact(price.total or 0.0), tuple(sums.items()))


EMPTY = Entry("", Fraction(0), ())


@dataclass(frozen=True)
class Month:
    """One window's breakdown, summed so far."""

    invoice_id: str
    contract: str
    since: float
    through: float  # end of the newest hour summed without a gap; ``since``: none yet
    depth: Depth
    teams: frozenset[str]  # NORTHFLANK_TEAMS (empty: every team)
    currency: str = ""
    sums: Mapping[Key, Entry] = dataclasses.field(default_factory=dict)
    hours: int = 0  # hours summed

    def same_window(self, other: Month) -> bool:
        """The same invoice, contract, start, depth and teams (what a state file must match)."""
        return (self.invoice_id, self.contract, self.since, self.depth, self.teams) == (
            other.invoice_id,
            other.contract,
            other.since,
            other.depth,
            other.teams,
        )


def start(
    invoice_id: str, contract: str, *, since: float, depth: Depth, teams: frozenset[str]
) -> Month:
    """A window with nothing summed yet."""
    return Month(invoice_id, contract, since, since, depth, teams)


def first_hour(month: Month) -> float:
    """The start of the next hour to add: the first whole hour from ``through``."""
    return math.ceil(month.through / HOUR) * HOUR


def settled_end(now: float) -> float:
    """The end of the newest hour settled at ``now`` (the API's clock)."""
    return math.floor((now - SETTLE) / HOUR) * HOUR


def due(month: Month, now: float) -> list[float]:
    """The hours to add, oldest first: settled, not yet summed."""
    hour, end = first_hour(month), settled_end(now)
    return [hour + i * HOUR for i in range(max(0, int((end - hour) // HOUR)))]


def add_hour(month: Month, hour: float, figures: Iterable[model.Team], currency: str) -> Month:
    """``month`` with the hour starting at ``hour`` added: the next one, and only once."""
    if hour != first_hour(month):
        raise ValueError(f"hour {hour} is not the next to add ({first_hour(month)})")
    return _added(month, figures, hour + HOUR, 1, currency)


def add_span(month: Month, end: float, figures: Iterable[model.Team], currency: str) -> Month:
    """``month`` with every hour up to ``end`` added at once, from the API's sums of the
    span (by team and project: ``granularity=total``)."""
    hours = int((end - first_hour(month)) // HOUR)
    if hours < 1 or first_hour(month) + hours * HOUR != end:
        raise ValueError(f"{end} is not the end of a whole hour after {month.through}")
    return _added(month, figures, end, hours, currency)


def _added(
    month: Month, figures: Iterable[model.Team], through: float, hours: int, currency: str
) -> Month:
    sums = dict(month.sums)

    def add(key: Key, name: str, price: Price) -> None:
        sums[key] = sums.get(key, EMPTY).plus(name, price)

    for team in figures:
        for project in team.projects or ():
            at = (team.id, project.id)
            add(at, project.name, project.price)
            if month.depth != "resource":
                continue
            for kind in project.resource_types or ():
                add((*at, kind.resource_type), "", kind.price)
                for resource in kind.resources:
                    add((*at, kind.resource_type, resource.id), resource.name, resource.price)
    return dataclasses.replace(
        month,
        through=through,
        sums=sums,
        hours=month.hours + hours,
        currency=currency or month.currency,
    )


def teams(month: Month) -> tuple[model.Team, ...]:
    """The sums as the model's tree (floats, in the order first summed): teams (no price of
    their own: their totals come from the usage list) with their projects, resource types
    and resources."""
    tree: dict[str, dict[str, tuple[Entry, dict[str, tuple[Entry, dict[str, Entry]]]]]] = {}
    for key, entry in month.sums.items():
        projects = tree.setdefault(key[0], {})
        if len(key) == 2:
            projects[key[1]] = (entry, projects.get(key[1], (EMPTY, {}))[1])
            continue
        _, kinds = projects.setdefault(key[1], (EMPTY, {}))
        if len(key) == 3:
            kinds[key[2]] = (entry, kinds.get(key[2], (EMPTY, {}))[1])
        else:
            kinds.setdefault(key[2], (EMPTY, {}))[1][key[3]] = entry
    return tuple(
        model.Team(
            team_id,
            "",
            NO_PRICE,
            tuple(
                model.Project(
                    project_id,
                    entry.name,
                    _price(entry),
                    tuple(
                        model.ResourceType(
                            kind,
                            _price(kind_entry),
                            tuple(
                                model.Resource(rid, res.name, _price(res))
                                for rid, res in resources.items()
                            ),
                        )
                        for kind, (kind_entry, resources) in kinds.items()
                    ),
                )
                for project_id, (entry, kinds) in projects.items()
            ),
        )
        for team_id, projects in tree.items()
    )


def _price(entry: Entry) -> Price:
    return Price(float(entry.total), tuple((n, float(v)) for n, v in entry.dimensions))
