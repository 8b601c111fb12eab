"""Hourly usage answers: which hours a usage call answers, each hour's figures (the
running hour partly filled), and the usage history before the newest invoice.

Pure functions of the organisation's data and the request's time, for :mod:`.views`
and :mod:`.api`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from exporter.simulator.model import (
    BYOC_DIMENSIONS,
    HOUR,
    Invoice,
    Json,
    Price,
    price_json,
    sum_prices,
)
from exporter.simulator.org import OrganisationData
from exporter.simulator.usage import UsageRates, usage_since


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
    entries = []
    for hour in hours:
        fraction = 1.0 if now is None else running_fraction(hour, now)
        if team_id is not None:
            team = rates.team_hour(team_id, hour)
            if fraction < 1:
                team = _partial(team, fraction)
            entries.append({"timestamp": hour, "paasUsage": {"price": price_json(team)}})
            continue
        if fraction < 1:
            paas = sum_prices(_partial(rates.team_hour(t, hour), fraction) for t in rates.team_ids)
        else:
            paas = rates.paas_hour(hour)
        entry: Json = {"timestamp": hour, "paasUsage": {"price": price_json(paas)}}
        if rates.byoc is not None:
            byoc = rates.byoc if fraction >= 1 else _partial(rates.byoc, fraction)
            entry["byocUsage"] = {"price": price_json(byoc, BYOC_DIMENSIONS)}
        entries.append(entry)
    return entries


def running_fraction(hour: int, now: float) -> float:
    """How much of the hour starting at ``hour`` has elapsed at ``now``: 0 .. 1."""
    return min(1.0, max(0.0, (now - hour) / HOUR))


def _partial(price: Mapping[str, float], fraction: float) -> Price:
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
    without history): runs of hours priced by the same invoice are rendered together."""
    ordered = sorted(org.invoices, key=lambda invoice: invoice.period_end)
    starts = [usage_since(invoice) for invoice in ordered]
    entries: list[Json] = []
    run: list[int] = []
    run_invoice: Invoice | None = None
    for hour in hours:
        index = next((i for i, start in enumerate(starts) if start > hour), len(ordered) - 1)
        invoice = ordered[index]
        if invoice is not run_invoice and run:
            assert run_invoice is not None
            entries += usage_entries(run, org.usage_rates(run_invoice), team_id, now)
            run = []
        run_invoice = invoice
        run.append(hour)
    if run and run_invoice is not None:
        entries += usage_entries(run, org.usage_rates(run_invoice), team_id, now)
    return entries
