"""Hourly usage since an invoice (the spend not yet invoiced): :class:`UsageRates`."""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable
from fractions import Fraction

from exporter.simulator.model import (
    HOUR,
    HOURS_PER_MONTH,
    Invoice,
    InvoiceTeam,
    Price,
    Project,
    Resource,
    add_price,
    sum_prices,
    zero_price,
)

# An hour's factor is (_FACTOR_BASE + q) / _FACTOR_STEPS, q in 0.._FACTOR_STEPS: 0.5 .. 1.5.
_FACTOR_STEPS = 20
_FACTOR_BASE = _FACTOR_STEPS // 2

# Which resources a usage figure sums: (project IDs, resource types), None for any.
Match = tuple[frozenset[str] | None, frozenset[str] | None]


class UsageRates:
    """The hourly usage that follows an invoice (the spend not yet invoiced).

    Each resource costs, per PaaS dimension and hour ``h`` (its start, Unix seconds),
    ``round(monthly_cents * factor / 720)`` (half up), where ``monthly_cents`` is its
    figure on the invoice and ``factor`` in 0.5 .. 1.5 (steps of 0.05) comes from a hash
    of (team ID, resource ID, ``h``): resources sharing an ID within a team (the same
    ID in several projects) share the hour's factor. A team's hour is the sum of its
    resources, the organisation's PaaS hour the sum of its teams, and the BYOC hour is
    ``round(invoice BYOC cents / 720)`` per dimension, the same every hour.

    The per-resource amounts are summed once per (team, resource ID, factor), so an hour
    costs one lookup per (team, resource ID); hours are cached once computed. The same
    holds for the sums of some projects' or resource types' resources only (a
    :data:`Match`), and :meth:`hour_teams` has every resource's own figure of an hour.
    """

    def __init__(self, invoice: Invoice) -> None:
        self.invoice_id = invoice.id
        self.since = usage_since(invoice)
        self.team_ids = [team.id for team in invoice.teams]
        self.byoc: Price | None = (
            None
            if invoice.byoc is None
            else {dim: _per_hour(cents, 1, 1) for dim, cents in invoice.byoc.items()}
        )
        self._teams = invoice.teams
        # team -> [(resource ID, [hourly price of the group for each factor step])]
        self._groups = _step_groups(invoice.teams, None)
        self._filtered: dict[Match, dict[str, list[tuple[str, list[Price]]]]] = {}
        self._filtered_hours: dict[tuple[Match, int], dict[str, Price]] = {}
        self._hours: dict[int, tuple[dict[str, Price], Price]] = {}

    def team_hour(self, team_id: str, hour: int, match: Match | None = None) -> Price:
        """PaaS cents of one team in the hour starting at ``hour`` (zeros when the
        invoice does not bill the team); with ``match`` (project IDs, resource types:
        None for any) of its matching resources only."""
        if match is None or match == (None, None):
            return self._hour(hour)[0].get(team_id) or zero_price()
        cached = self._filtered_hours.get((match, hour))
        if cached is None:
            groups = self._filtered.get(match)
            if groups is None:
                groups = self._filtered[match] = _step_groups(self._teams, match)
            cached = self._filtered_hours[(match, hour)] = _team_sums(groups, hour)
        return cached.get(team_id) or zero_price()

    def hour_teams(self, hour: int) -> list[InvoiceTeam]:
        """The invoice's teams, projects and resources with each resource's figures of
        the hour starting at ``hour`` (``round(monthly cents * factor / 720)`` per
        dimension, the same figures :meth:`team_hour` sums): the hour broken down."""
        return [
            InvoiceTeam(
                team.id,
                team.name,
                [
                    Project(
                        project.id,
                        project.name,
                        [
                            Resource(
                                r.id,
                                r.name,
                                r.resource_type,
                                _resource_hour(r.price, _step(team.id, r.id, hour)),
                            )
                            for r in project.resources
                        ],
                    )
                    for project in team.projects
                ],
            )
            for team in self._teams
        ]

    def paas_hour(self, hour: int) -> Price:
        """PaaS cents of the whole organisation in the hour starting at ``hour``."""
        return self._hour(hour)[1]

    def _hour(self, hour: int) -> tuple[dict[str, Price], Price]:
        cached = self._hours.get(hour)
        if cached is None:
            teams = _team_sums(self._groups, hour)
            cached = self._hours[hour] = (teams, sum_prices(teams.values()))
        return cached


def _step(team_id: str, resource_id: str, hour: int) -> int:
    """The factor step (0 .. _FACTOR_STEPS) of a resource ID of a team in an hour."""
    key = f"{team_id}\0{resource_id}\0{hour}".encode()
    return zlib.crc32(key) % (_FACTOR_STEPS + 1)


def _resource_hour(price: Price, step: int) -> Price:
    return {dim: _per_hour(c, _FACTOR_BASE + step, _FACTOR_STEPS) for dim, c in price.items() if c}


def _step_groups(
    teams: Iterable[InvoiceTeam], match: Match | None
) -> dict[str, list[tuple[str, list[Price]]]]:
    """team -> [(resource ID, [hourly cents of its resources for each factor step])],
    of the resources ``match`` keeps (all with None). Resources sharing an ID within a
    team share an hour's factor, so they are summed together once."""
    projects, types = match if match is not None else (None, None)
    monthly: dict[str, dict[str, dict[str, list[float]]]] = {}
    for team in teams:
        groups = monthly.setdefault(team.id, {})
        for project in team.projects:
            if projects is not None and project.id not in projects:
                continue
            for resource in project.resources:
                if types is not None and resource.resource_type not in types:
                    continue
                dims = groups.setdefault(resource.id, {})
                for dim, cents in resource.price.items():
                    if cents:
                        dims.setdefault(dim, []).append(cents)
    return {
        team_id: [
            (
                resource_id,
                [
                    {
                        dim: sum(_per_hour(c, _FACTOR_BASE + q, _FACTOR_STEPS) for c in cents)
                        for dim, cents in dims.items()
                    }
                    for q in range(_FACTOR_STEPS + 1)
                ],
            )
            for resource_id, dims in groups.items()
        ]
        for team_id, groups in monthly.items()
    }


def _team_sums(groups: dict[str, list[tuple[str, list[Price]]]], hour: int) -> dict[str, Price]:
    teams = {}
    for team_id, team_groups in groups.items():
        team = teams[team_id] = zero_price()
        for resource_id, by_step in team_groups:
            add_price(team, by_step[_step(team_id, resource_id, hour)])
    return teams


def _per_hour(monthly_cents: float, numerator: int, denominator: int) -> int:
    """``monthly_cents * numerator / denominator / 720``, rounded half up (exactly, also
    for fractional cents)."""
    if isinstance(monthly_cents, int):  # the common case, fast
        scaled = 2 * monthly_cents * numerator
        whole = 2 * denominator * HOURS_PER_MONTH
        return (scaled + whole // 2) // whole
    exact = Fraction(monthly_cents) * numerator / (denominator * HOURS_PER_MONTH)
    return math.floor(exact + Fraction(1, 2))


def usage_since(invoice: Invoice) -> int:
    """The first usage hour after ``invoice``: the first whole hour (a multiple of 3600)
    starting at or after its ``period.end`` (which may be fractional)."""
    return math.ceil(invoice.period_end / HOUR) * HOUR
