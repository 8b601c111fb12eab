"""Usage documents: the hourly list (legacy), its current form (by hour, day, month or
over a span, filtered by team, project and resource type) and one hour broken down
like an invoice (``GET /v1/billing/usage/{timestamp}``).

Like :mod:`.views`, pure functions of the data and the request's time, in the legacy
contract's shape (cents, ``paasUsage``), raising :class:`~.views.ApiError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from exporter.simulator.contract import Contract, lift_team
from exporter.simulator.hours import (
    Figures,
    bucket_of,
    entry_json,
    history_figures,
    pricing_invoice,
    running_fraction,
    sum_figures,
    usage_first_hour,
    usage_hours,
)
from exporter.simulator.model import (
    BYOC_DIMENSIONS,
    HOUR,
    KNOWN_RESOURCE_TYPES,
    Json,
    price_json,
)
from exporter.simulator.org import OrganisationData
from exporter.simulator.usage import Match
from exporter.simulator.views import (
    ONE_TEAM,
    ApiError,
    InvoiceFilter,
    check_resource_type,
    paas_breakdown,
    team_scope,
)

GRANULARITIES = ("hour", "day", "month", "total")


@dataclass(frozen=True)
class UsageQuery:
    """What a usage list answers: the hours (``start`` inclusive, ``end`` exclusive, by
    their start), the team path's team (``team_id``: PaaS only), and in the current
    contract the filters (``teams`` on the organisation's path; ``match``: project IDs
    and resource types, None for any) and the ``granularity``."""

    start: float | None = None
    end: float | None = None
    team_id: str | None = None
    teams: frozenset[str] | None = None
    match: Match | None = None
    granularity: str = "hour"


def usage_teams(
    teams: frozenset[str] | None, team_id: str | None, single_team: str | None
) -> frozenset[str] | None:
    """The current list's team filter on the organisation's path (``team_id``: the team
    path's team): ``teams``, or for a single-team token that team (a ``teamId`` is 400
    from it: see :func:`~.views.team_scope`)."""
    if single_team is None:
        return teams
    if teams is not None:
        raise ApiError(400, ONE_TEAM)
    return frozenset([single_team]) if team_id is None else None


def check_team(org: OrganisationData, team_id: str) -> None:
    """404 for a team the organisation does not have."""
    if all(team.id != team_id for team in org.teams):
        raise ApiError(404, f"Team {team_id} not found")


def check_usage_query(org: OrganisationData, query: UsageQuery, *, total: bool = True) -> None:
    """400 for a granularity the server does not take (``total`` only with ``total``),
    a total without ``start`` or an unknown resource type; 404 for an unknown team."""
    allowed = GRANULARITIES if total else GRANULARITIES[:-1]
    if query.granularity not in allowed:
        raise ApiError(400, f"Invalid granularity: must be one of {', '.join(allowed)}")
    if query.granularity == "total" and query.start is None:
        raise ApiError(400, "Invalid startTime: required with granularity=total")
    for team_id in sorted({*(query.teams or ()), *([query.team_id] if query.team_id else [])}):
        check_team(org, team_id)
    types = (query.match[1] if query.match else None) or frozenset()
    if types - set(KNOWN_RESOURCE_TYPES):
        used = {
            resource.resource_type
            for invoice in org.invoices
            for team in invoice.teams
            for project in team.projects
            for resource in project.resources
        }
        for resource_type in sorted(types):
            check_resource_type(resource_type, used)


def usage_hours_of(
    org: OrganisationData,
    query: UsageQuery,
    now: float,
    *,
    running_hour: bool = True,
    history: bool = False,
) -> list[int]:
    """The starts of the hours the query answers, newest first."""
    first = usage_first_hour(org, history=history)
    return usage_hours(first, now, query.start, query.end, running_hour=running_hour)


def buckets(hours: list[int], granularity: str) -> list[tuple[int, list[int]]]:
    """``hours`` (newest first) grouped by UTC day or month (or one a bucket), each with
    its start, newest first (``total``: not bucketed here, see :func:`usage_entries_of`)."""
    grouped: list[tuple[int, list[int]]] = []
    for hour in hours:
        start = bucket_of(hour, granularity)
        if grouped and grouped[-1][0] == start:
            grouped[-1][1].append(hour)
        else:
            grouped.append((start, [hour]))
    return grouped


def usage_entries_of(
    org: OrganisationData,
    selected: Iterable[tuple[int, list[int]]],
    query: UsageQuery,
    now: float,
) -> list[Json]:
    """The entries (legacy shape, cents) of the buckets ``selected``: each the sum of
    its hours (an hour's entry: that hour's figures), of the query's teams and matching
    resources."""
    chosen = list(selected)
    hours = [hour for _, bucket in chosen for hour in bucket]
    figures = history_figures(org, hours, query.team_id, now, query.match, query.teams)
    if query.granularity == "hour":
        return [entry_json(*hour_figures) for hour_figures in figures]
    entries = []
    at = 0
    for start, bucket in chosen:
        entries.append(entry_json(*sum_figures(figures[at : at + len(bucket)], start)))
        at += len(bucket)
    return entries


def usage_total(org: OrganisationData, hours: list[int], query: UsageQuery, now: float) -> Json:
    """The one entry of ``granularity=total``: the sum of ``hours``, with ``startTime``
    and ``endTime`` (as given; without it, the end of the newest hour summed)."""
    assert query.start is not None
    figures: list[Figures] = history_figures(
        org, hours, query.team_id, now, query.match, query.teams
    )
    _, paas, byoc = sum_figures(figures, 0)
    if byoc is None and query.team_id is None and org.newest_invoice().byoc is not None:
        byoc = {}  # no hour yet: the organisation's BYOC is still there, at 0
    start = _number(query.start)
    end = _number(query.end) if query.end is not None else (hours[0] + HOUR if hours else start)
    entry: Json = {"timestamp": start, "startTime": start, "endTime": end}
    entry["paasUsage"] = {"price": price_json(paas)}
    if byoc is not None:
        entry["byocUsage"] = {"price": price_json(byoc, BYOC_DIMENSIONS)}
    return entry


def usage_list(
    org: OrganisationData,
    query: UsageQuery,
    now: float,
    *,
    running_hour: bool = True,
    history: bool = False,
    granularity_total: bool = True,
) -> list[Json]:
    """The whole (unpaged) ``data.usage`` of the current contract's list (legacy shape):
    hourly, daily or monthly entries newest first, or the one ``total`` entry."""
    check_usage_query(org, query, total=granularity_total)
    hours = usage_hours_of(org, query, now, running_hour=running_hour, history=history)
    if query.granularity == "total":
        return [usage_total(org, hours, query, now)]
    return usage_entries_of(org, buckets(hours, query.granularity), query, now)


def usage_view(
    org: OrganisationData,
    *,
    now: float,
    start: float | None = None,
    end: float | None = None,
    team_id: str | None = None,
    running_hour: bool = True,
    history: bool = False,
    single_team: str | None = None,
) -> list[Json]:
    """The whole (unpaged) legacy ``data.usage`` at time ``now``: see
    :func:`~.hours.usage_hours` and :func:`~.hours.usage_entries`; with ``history`` from
    the oldest invoice's end (see :func:`~.hours.history_entries`). A single-team
    token's organisation path has that team's PaaS usage (and the BYOC)."""
    if team_id is not None:
        check_team(org, team_id)
    teams = frozenset([single_team]) if single_team is not None and team_id is None else None
    query = UsageQuery(start, end, team_id, teams)
    hours = usage_hours_of(org, query, now, running_hour=running_hour, history=history)
    return usage_entries_of(org, ((hour, [hour]) for hour in hours), query, now)


def usage_hour_view(
    org: OrganisationData,
    hour: int,
    view: InvoiceFilter,
    now: float,
    *,
    contract: Contract = "legacy",
    single_team: str | None = None,
    team_path: bool = False,
    running_hour: bool = True,
    history: bool = False,
) -> Json:
    """The whole (unpaged) ``data`` of ``GET /v1/billing/usage/{timestamp}`` (legacy
    shape; lifted to the project level for a single-team token's current answer).

    The hour (its start, a multiple of 3600) must have started by ``now`` and not be
    before the first usage hour (404; the running one only with ``running_hour``). It
    is broken down as an invoice (:meth:`~.org.OrganisationData.usage_hour`), priced
    from the invoice whose period holds it, with the invoice's filter semantics; BYOC
    is the hour's, left out on the team path (``team_path``: team usage is PaaS only).
    """
    if hour % HOUR:
        raise ApiError(400, "Invalid timestamp: must be the start of an hour")
    first = usage_first_hour(org, history=history)
    if hour < first or hour >= now or (not running_hour and hour + HOUR > now):
        raise ApiError(404, f"No usage for the hour starting at {hour}")
    team_id, only_team = team_scope(view.team_id, contract, single_team)
    fraction = running_fraction(hour, now)
    as_invoice, sums = org.usage_hour(pricing_invoice(org, hour), hour, fraction)
    filtered = InvoiceFilter(team_id, view.project_id, view.resource_type)
    doc: Json = {"timestamp": hour, "currency": as_invoice.currency}
    doc["paasUsage"] = paas_breakdown(as_invoice, sums, filtered, only_team)
    if as_invoice.byoc is not None and not team_path:
        doc["byocUsage"] = {"price": price_json(as_invoice.byoc, BYOC_DIMENSIONS)}
    if contract == "current" and single_team is not None:
        lift_team(doc)
    return doc


def _number(value: float) -> float:
    """A timestamp as given: an int when it is whole."""
    return int(value) if value == int(value) else value
