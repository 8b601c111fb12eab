""":class:`Organisation`: the simulated customer with the whole (unpaged) documents the
API answers of it, in either contract, for tests to compare against."""

from __future__ import annotations

from collections.abc import Iterable

from exporter.simulator.contract import Contract, to_contract
from exporter.simulator.model import Json
from exporter.simulator.org import OrganisationData
from exporter.simulator.usage_views import (
    UsageQuery,
    usage_hour_view,
    usage_list,
    usage_teams,
    usage_view,
)
from exporter.simulator.views import (
    ApiError,
    InvoiceFilter,
    credit_view,
    invoice_document,
    invoice_summary,
)


def newest_first(summaries: list[Json]) -> list[Json]:
    """The current contract's order of the invoice list: by ``period.end``, newest
    first; ties by ID, descending."""
    return sorted(summaries, key=lambda s: (s["period"]["end"], s["id"]), reverse=True)


def id_set(ids: str | Iterable[str] | None) -> frozenset[str] | None:
    """A filter's IDs: a comma-separated list (as the query gives it) or an iterable;
    None (or nothing in it) for no filter."""
    if ids is None:
        return None
    items = ids.split(",") if isinstance(ids, str) else ids
    found = frozenset(item.strip() for item in items if item.strip())
    return found or None


class Organisation(OrganisationData):
    """The simulated customer (see :class:`~.org.OrganisationData`), with the whole
    (unpaged) documents the API answers of it. Every ``render_*`` method answers in the
    legacy contract unless given ``contract="current"``; ``single_team`` is the team of a
    single-team token (``Simulator(single_team=...)``)."""

    def render_invoice(
        self,
        invoice_id: str,
        *,
        team_id: str | None = None,
        project_id: str | None = None,
        resource_type: str | None = None,
        contract: Contract = "legacy",
        single_team: str | None = None,
    ) -> Json:
        """The whole (unpaged) ``data`` the API returns for this invoice and filter."""
        with self.lock:
            invoice = self.invoice(invoice_id)
            view = InvoiceFilter(team_id, project_id, resource_type)
            doc = invoice_document(invoice, self.aggregates(invoice), view, contract, single_team)
            return to_contract(doc, contract)

    def render_invoice_summaries(
        self, *, contract: Contract = "legacy", single_team: str | None = None
    ) -> list[Json]:
        """``data.invoices`` of the list endpoint, unpaged, in its order (the legacy
        list's, which is none; the current one newest first)."""
        with self.lock:
            summaries = [
                to_contract(invoice_summary(i, self.aggregates(i), single_team), contract)
                for i in self.invoices
            ]
        return newest_first(summaries) if contract == "current" else summaries

    def render_usage(
        self,
        *,
        now: float,
        start: float | None = None,
        end: float | None = None,
        team_id: str | None = None,
        running_hour: bool = True,
        history: bool = False,
        contract: Contract = "legacy",
        granularity: str = "hour",
        teams: str | Iterable[str] | None = None,
        projects: str | Iterable[str] | None = None,
        resource_types: str | Iterable[str] | None = None,
        single_team: str | None = None,
    ) -> list[Json]:
        """``data.usage`` of ``GET .../billing/usage`` at time ``now``, unpaged, newest
        first: the hours from the newest invoice's (see :func:`~.usage.usage_since`) and
        from ``start`` (inclusive) up to ``end`` (exclusive) that have ended by ``now``,
        and with ``running_hour`` (as ``Simulator(running_hour=True)``, the default) the
        hour still running, partly filled. With ``team_id``, the team variant (its PaaS
        usage only). Raises :class:`ApiError` (404) for a team the organisation does not
        have. With ``history`` (as ``Simulator(usage_history=True)``), the hours from the
        oldest invoice's end instead, each priced from the invoice whose period holds it.

        In the current contract also ``granularity`` (``hour``, ``day``, ``month``,
        ``total``) and the filters ``teams``, ``projects``, ``resource_types`` (the
        query's ``teamId``, ``projectId``, ``resourceType``: comma-separated, or
        iterables); the legacy contract ignores them."""
        with self.lock:
            if contract == "legacy":
                return usage_view(
                    self,
                    now=now,
                    start=start,
                    end=end,
                    team_id=team_id,
                    running_hour=running_hour,
                    history=history,
                    single_team=single_team,
                )
            team_filter = usage_teams(id_set(teams), team_id, single_team)
            match = (id_set(projects), id_set(resource_types))
            query = UsageQuery(start, end, team_id, team_filter, match, granularity)
            entries = usage_list(self, query, now, running_hour=running_hour, history=history)
            return [to_contract(entry, "current") for entry in entries]

    def render_usage_hour(
        self,
        timestamp: int,
        *,
        now: float,
        team_id: str | None = None,
        project_id: str | None = None,
        resource_type: str | None = None,
        contract: Contract = "legacy",
        single_team: str | None = None,
        running_hour: bool = True,
        history: bool = False,
    ) -> Json:
        """The whole (unpaged) ``data`` of ``GET /v1/billing/usage/{timestamp}`` at time
        ``now`` with the filters ``teamId`` (``team_id``), ``projectId``,
        ``resourceType``; the team path's answer is the same without ``byoc``."""
        with self.lock:
            view = InvoiceFilter(team_id, project_id, resource_type)
            doc = usage_hour_view(
                self,
                timestamp,
                view,
                now,
                contract=contract,
                single_team=single_team,
                running_hour=running_hour,
                history=history,
            )
            return to_contract(doc, contract)

    def render_credit_balance(self, *, now: float) -> Json:
        """The ``data`` of ``GET /v1/billing/credit-balance`` at time ``now`` (current
        contract only); :class:`ApiError` 404 when the organisation has no balance."""
        with self.lock:
            if self.credit is None:
                raise ApiError(404, "Not found")
            return credit_view(self.credit, now)
