"""Hourly usage answers: which hours a usage call answers, each hour's figures (the
running hour partly filled; some teams', projects' or resource types' only), their sums
by day, month or span, and the usage history before the newest invoice.

Pure functions of the organisation's data and the request's time, for :mod:`.views`
and :mod:`.api`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from exporter.simulator.model import (
    BYOC_DIMENSIONS,
    HOUR,
    Invoice,
    Json,
    Price,
    add_price,
    price_json,
    sum_prices,
    zero_price,
)
from exporter.simulator.org import OrganisationData
from exporter.simulator.usage import Match, UsageRates, usage_since

DAY = 24 * HOUR


def usage_hours(
    since: int,
    now: float,
    start: float | None = None,
    end: float | None = None,
    *,
    running_hour: bool = False,
) -> list[int]:
    """Starts of the usage hours to answer, newest first: ``since + k * 3600`` (``since``
    is :func:`usage_since` of the newest invoice) for every hour that has ended by
    ``now`` (start + 3600 <= now), with ``running_hour`` also the one running (start <
    now < start + 3600), and that starts in [``start``, ``end``)."""
    first = 0 if start is None else max(0, math.ceil((start - since) / HOUR))
    elapsed = (now - since) / HOUR
    stop = max(0, math.ceil(elapsed) if running_hour else math.floor(elapsed))
    if end is not None:
        stop = min(stop, math.ceil((end - since) / HOUR))
    return list(range(since + (stop - 1) * HOUR, since + first * HOUR - 1, -HOUR))


# (hour start, PaaS cents, BYOC cents or None: no ``byocUsage``) of one usage entry
Figures = tuple[int, Price, Price | None]


def usage_entries(
    hours: Iterable[int], rates: UsageRates, team_id: str | None, now: float | None = None
) -> list[Json]:
    """The ``data.usage`` entries of these hours: the organisation's PaaS and BYOC
    usage, or with ``team_id`` the team's PaaS usage only (BYOC has no team share).

    An hour still running at ``now`` is partly filled (see :func:`running_fraction`):
    each team's figure per dimension is the full hour's times the fraction elapsed,
    rounded to 1/1024 cent (so that sums stay exact in binary floating point); the
    organisation's PaaS figure is the sum of its teams', its BYOC figure the full one's
    times the fraction, rounded the same way.
    """
    return [entry_json(*figures) for figures in hour_figures(hours, rates, team_id, now)]


def hour_figures(
    hours: Iterable[int],
    rates: UsageRates,
    team_id: str | None,
    now: float | None = None,
    match: Match | None = None,
    teams: frozenset[str] | None = None,
) -> list[Figures]:
    """:func:`usage_entries`' figures, in cents; with ``match`` (project IDs, resource
    types) of the matching resources only, and on the organisation's path with
    ``teams`` of those teams only (BYOC stays customer-wide)."""
    filtered = teams is not None or (match is not None and match != (None, None))
    made: list[Figures] = []
    for hour in hours:
        fraction = 1.0 if now is None else running_fraction(hour, now)
        if team_id is not None:
            team = rates.team_hour(team_id, hour, match)
            made.append((hour, partial(team, fraction) if fraction < 1 else team, None))
            continue
        if fraction < 1 or filtered:
            paas = sum_prices(
                partial(rates.team_hour(t, hour, match), fraction)
                if fraction < 1
                else rates.team_hour(t, hour, match)
                for t in rates.team_ids
                if teams is None or t in teams
            )
        else:
            paas = rates.paas_hour(hour)
        byoc = rates.byoc
        if byoc is not None and fraction < 1:
            byoc = partial(byoc, fraction)
        made.append((hour, paas, byoc))
    return made


def entry_json(timestamp: float, paas: Price, byoc: Price | None) -> Json:
    """A usage entry (legacy keys, cents): ``byocUsage`` only when ``byoc`` is given."""
    entry: Json = {"timestamp": timestamp, "paasUsage": {"price": price_json(paas)}}
    if byoc is not None:
        entry["byocUsage"] = {"price": price_json(byoc, BYOC_DIMENSIONS)}
    return entry


def bucket_of(hour: int, granularity: str) -> int:
    """The start of the UTC day (``day``) or month (``month``) holding ``hour``; the
    hour itself for ``hour``."""
    if granularity == "day":
        return hour - hour % DAY
    if granularity == "month":
        moment = datetime.fromtimestamp(hour, UTC)
        return int(datetime(moment.year, moment.month, 1, tzinfo=UTC).timestamp())
    return hour


def sum_figures(figures: Iterable[Figures], timestamp: int) -> Figures:
    """One entry's figures summing ``figures`` (BYOC present when any has it)."""
    paas = zero_price()
    byoc: Price | None = None
    for _, hour_paas, hour_byoc in figures:
        add_price(paas, hour_paas)
        if hour_byoc is not None:
            if byoc is None:
                byoc = {}
            add_price(byoc, hour_byoc)
    return timestamp, paas, byoc


def running_fraction(hour: int, now: float) -> float:
    """How much of the hour starting at ``hour`` has elapsed at ``now``: 0 .. 1."""
    return min(1.0, max(0.0, (now - hour) / HOUR))


def partial(price: Mapping[str, float], fraction: float) -> Price:
    """``price`` times ``fraction`` (of the running hour), rounded to 1/1024 cent."""
    return {dim: round(cents * fraction * 1024) / 1024 for dim, cents in price.items()}


def usage_first_hour(org: OrganisationData, *, history: bool = False) -> int:
    """The first usage hour served: :func:`usage_since` of the newest invoice, or with
    ``history`` of the oldest one (hours before the newest invoice are history)."""
    invoices = org.invoices
    pick = min if history else max
    return usage_since(pick(invoices, key=lambda invoice: invoice.period_end))


def pricing_invoice(org: OrganisationData, hour: int) -> Invoice:
    """The invoice whose figures price the usage hour starting at ``hour``: the oldest
    invoice whose usage hours (:func:`usage_since`) start after ``hour``, i.e. the one
    whose period holds the hour; the newest for the hours after every invoice."""
    ordered = sorted(org.invoices, key=lambda invoice: invoice.period_end)
    for invoice in ordered:
        if usage_since(invoice) > hour:
            return invoice
    return ordered[-1]


def history_entries(
    org: OrganisationData, hours: Iterable[int], team_id: str | None, now: float | None = None
) -> list[Json]:
    """:func:`usage_entries` of ``hours`` (newest first), each hour priced from
    :func:`pricing_invoice` (every hour after the newest invoice from the newest one, as
    without history)."""
    return [entry_json(*figures) for figures in history_figures(org, hours, team_id, now)]


def history_figures(
    org: OrganisationData,
    hours: Iterable[int],
    team_id: str | None,
    now: float | None = None,
    match: Match | None = None,
    teams: frozenset[str] | None = None,
) -> list[Figures]:
    """:func:`hour_figures` of ``hours``, each hour priced from :func:`pricing_invoice`:
    runs of hours priced by the same invoice are computed together."""
    ordered = sorted(org.invoices, key=lambda invoice: invoice.period_end)
    starts = [usage_since(invoice) for invoice in ordered]
    made: list[Figures] = []
    run: list[int] = []
    run_invoice: Invoice | None = None
    for hour in hours:
        index = next((i for i, start in enumerate(starts) if start > hour), len(ordered) - 1)
        invoice = ordered[index]
        if invoice is not run_invoice and run:
            assert run_invoice is not None
            rates = org.usage_rates(run_invoice)
            made += hour_figures(run, rates, team_id, now, match, teams)
            run = []
        run_invoice = invoice
        run.append(hour)
    if run and run_invoice is not None:
        made += hour_figures(run, org.usage_rates(run_invoice), team_id, now, match, teams)
    return made
