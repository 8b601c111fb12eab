"""The API's endpoints and routes over the organisation.

:class:`Api` answers one request (its path parameters, query and path) with the
``data`` and ``pagination`` of the envelope, for an :class:`ApiMode` (page sizes,
running hour, the older billing API, the contracts, a single-team token) and a
:class:`~.tokens.Caller` (the token). Each billing endpoint answers in the contract its
mode and the request's ``removeLegacyFields`` give (:func:`~.contract.answer_contract`),
with that contract's parameters, paging and document.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

from exporter.simulator.contract import Contract, answer_contract, to_contract
from exporter.simulator.model import HOUR, Json, Team
from exporter.simulator.organisation import Organisation, id_set
from exporter.simulator.paging import (
    MAX_PAGE_SIZE,
    current_window,
    cursor_window,
    page_invoice,
    page_levels,
    page_number_window,
    paginate,
    scope_of,
    timestamp_page,
)
from exporter.simulator.tokens import BILLING_READ, TEAM_READ, Caller, auth_view
from exporter.simulator.usage_views import (
    UsageQuery,
    buckets,
    check_usage_query,
    usage_entries_of,
    usage_hour_view,
    usage_hours_of,
    usage_teams,
    usage_total,
)
from exporter.simulator.views import (
    ONE_TEAM,
    ApiError,
    InvoiceFilter,
    invoice_document,
    invoice_view,
    team_json,
)

Handler = Callable[["Api", dict[str, str], dict[str, str], str], tuple[Json, Json | None]]
Answer = tuple[Json, Json | None]
MONTHS_PER_PAGE = 12  # the current usage list's page size limit for granularity=month


@dataclass(frozen=True)
class ApiMode:
    """How the simulated API answers (see :class:`~.server.Simulator`'s options)."""

    page_size: int = 50
    max_page_size: int = MAX_PAGE_SIZE
    running_hour: bool = True
    legacy_billing: bool = False
    usage_history: bool = False  # usage hours before the newest invoice too
    contract: str = "legacy"  # "legacy", "current" or "legacy-pinned"
    endpoint_contracts: Mapping[str, str] = field(default_factory=dict)
    single_team: str | None = None  # the team of a single-team token
    granularity_total: bool = True  # the usage list takes granularity=total


class Api:
    """The endpoints, as functions of (path parameters, query, path) -> (data, pagination)."""

    def __init__(self, org: Organisation, mode: ApiMode, caller: Caller, now: float) -> None:
        self.org = org
        self.mode = mode
        self.caller = caller
        self.now = now  # the simulator's clock at this request (which usage hours ended)

    def auth(self, params: dict[str, str], query: dict[str, str], path: str) -> Answer:
        return auth_view(self.caller), None

    def list_invoices(self, params: dict[str, str], query: dict[str, str], path: str) -> Answer:
        self._billing()
        self._path_team(params)
        contract = self._contract("list_invoices", query)
        scope = scope_of(f"{path} {contract}", {})  # a list has no filters: a cursor is the list's
        single = self.mode.single_team
        if contract == "current":
            self._no_team_id(query)
            offset, size = current_window(
                query, self.mode.page_size, scope, self.mode.max_page_size
            )
        else:
            offset, size = cursor_window(query, self.mode.page_size, scope, self.mode.max_page_size)
        invoices = self.org.render_invoice_summaries(contract=contract, single_team=single)
        if self.mode.legacy_billing:  # the older API (JS client 0.9.5): no id, no currency
            for summary in invoices:
                del summary["id"], summary["currency"]
        return {"invoices": invoices}, paginate(invoices, offset, size, scope)

    def get_invoice(self, params: dict[str, str], query: dict[str, str], path: str) -> Answer:
        self._billing()
        self._not_legacy(path)
        contract = self._contract("get_invoice", query)
        view = self._filter(params, query, contract)
        window = self._legacy_window(query, contract)
        try:
            invoice = self.org.invoice(params["invoice"])
        except KeyError:
            raise ApiError(404, f"Invoice {params['invoice']} not found") from None
        sums = self.org.aggregates(invoice)
        data = invoice_document(invoice, sums, view, contract, self.mode.single_team)
        return self._paged(data, view, window, contract, scope_of(path, query), query)

    def invoice_details(self, params: dict[str, str], query: dict[str, str], path: str) -> Answer:
        """The older API's preview invoice: the newest invoice's document without ``id``
        (the current API has no such endpoint: "details" is no invoice ID)."""
        if not self.mode.legacy_billing:
            return self.get_invoice({"invoice": "details"}, query, path)
        self._billing()
        if _timestamp(query, "timestamp") is None:
            raise ApiError(400, "Invalid timestamp: required")
        invoice = self.org.newest_invoice()
        data = invoice_view(invoice, self.org.aggregates(invoice), InvoiceFilter())
        del data["id"]
        return to_contract(data, "legacy"), None

    def list_teams(self, params: dict[str, str], query: dict[str, str], path: str) -> Answer:
        self._team_read()
        scope = scope_of(path, query)
        offset, size = cursor_window(query, self.mode.page_size, scope, self.mode.max_page_size)
        teams = [team_json(team) for team in self.org.teams]
        return {"teams": teams}, paginate(teams, offset, size, scope)

    def get_team(self, params: dict[str, str], query: dict[str, str], path: str) -> Answer:
        self._team_read()
        return team_json(self._team(params["team"])), None

    def list_usage(self, params: dict[str, str], query: dict[str, str], path: str) -> Answer:
        self._billing()
        self._not_legacy(path)
        team_id = self._path_team(params)
        contract = self._contract("list_usage", query)
        start, end = _timestamp(query, "startTime"), _timestamp(query, "endTime")
        single = self.mode.single_team
        if contract == "legacy":
            scope = scope_of(path, {})  # the legacy list ignores the current filters
            offset, size = cursor_window(query, self.mode.page_size, scope, self.mode.max_page_size)
            teams = frozenset([single]) if single is not None and team_id is None else None
            usage_query = UsageQuery(start, end, team_id, teams)
            hours = self._hours(usage_query)
            pagination = paginate(hours, offset, size, scope)  # only this page's hours are summed
            usage = usage_entries_of(self.org, [(h, [h]) for h in hours], usage_query, self.now)
            return {"usage": usage}, pagination
        team_filter = usage_teams(id_set(query.get("teamId")), team_id, single)
        if team_id is not None:
            if team_filter not in (None, frozenset([team_id])):
                raise ApiError(400, "teamId does not match the team in the path")
            team_filter = None
        match = (id_set(query.get("projectId")), id_set(query.get("resourceType")))
        granularity = query.get("granularity") or "hour"
        usage_query = UsageQuery(start, end, team_id, team_filter, match, granularity)
        check_usage_query(self.org, usage_query, total=self.mode.granularity_total)
        hours = self._hours(usage_query)
        if granularity == "total":
            entry = usage_total(self.org, hours, usage_query, self.now)
            return {"usage": [to_contract(entry, "current")]}, {
                "hasNextPage": False,
                "cursor": None,
                "count": 1,
            }
        limit = self.mode.max_page_size
        if granularity == "month":
            limit = min(limit, MONTHS_PER_PAGE)
        page, pagination = timestamp_page(
            buckets(hours, granularity), query, self.mode.page_size, limit
        )
        entries = usage_entries_of(self.org, page, usage_query, self.now)
        return {"usage": [to_contract(entry, "current") for entry in entries]}, pagination

    def get_usage(self, params: dict[str, str], query: dict[str, str], path: str) -> Answer:
        """One hour broken down like an invoice: ``GET .../billing/usage/{timestamp}``."""
        self._billing()
        self._not_legacy(path)
        contract = self._contract("get_usage", query)
        view = self._filter(params, query, contract)
        window = self._legacy_window(query, contract)
        data = usage_hour_view(
            self.org,
            _hour(params["timestamp"]),
            view,
            self.now,
            contract=contract,
            single_team=self.mode.single_team,
            team_path="team" in params,
            running_hour=self.mode.running_hour,
            history=self.mode.usage_history,
        )
        return self._paged(data, view, window, contract, scope_of(path, query), query)

    def credit_balance(self, params: dict[str, str], query: dict[str, str], path: str) -> Answer:
        """``GET /v1/billing/credit-balance``: the current contract only (a legacy
        answer is 404, as for an organisation without a balance)."""
        self._billing()
        self._path_team(params)
        if self._contract("credit_balance", query) == "legacy":
            raise ApiError(404, "Not found")
        self._no_team_id(query)
        return self.org.render_credit_balance(now=self.now), None

    # -- what the endpoints share ----------------------------------------------------

    def _contract(self, endpoint: str, query: Mapping[str, str]) -> Contract:
        if self.mode.legacy_billing:
            return "legacy"
        return answer_contract(
            self.mode.endpoint_contracts.get(endpoint, self.mode.contract), query
        )

    def _billing(self) -> None:
        if BILLING_READ not in self.caller.permissions:
            raise ApiError(403, f"Missing permission: {BILLING_READ}")

    def _team_read(self) -> None:
        if TEAM_READ not in self.caller.permissions:
            raise ApiError(403, f"Missing permission: {TEAM_READ}")

    def _not_legacy(self, path: str) -> None:
        if self.mode.legacy_billing:
            raise ApiError(404, f"Not found: {path}")

    def _team(self, team_id: str) -> Team:
        for team in self.org.teams:
            if team.id == team_id:
                return team
        raise ApiError(404, f"Team {team_id} not found")

    def _path_team(self, params: Mapping[str, str]) -> str | None:
        """The team path's team (404 when unknown; 403 for another than a single-team
        token's own)."""
        if "team" not in params:
            return None
        team_id = self._team(params["team"]).id
        single = self.mode.single_team
        if single is not None and team_id != single:
            raise ApiError(403, f"This token can only read team {single}")
        return team_id

    def _no_team_id(self, query: Mapping[str, str]) -> None:
        if self.mode.single_team is not None and query.get("teamId"):
            raise ApiError(400, ONE_TEAM)

    def _filter(
        self, params: Mapping[str, str], query: Mapping[str, str], contract: Contract
    ) -> InvoiceFilter:
        """A breakdown's filters: the query's, the team path's team as ``teamId`` (but
        implied for a single-team token's current answer)."""
        team_id = query.get("teamId") or None
        if contract == "current":
            self._no_team_id(query)
        path_team = self._path_team(params)
        if path_team is not None:
            if team_id not in (None, path_team):
                raise ApiError(400, "teamId does not match the team in the path")
            implied = contract == "current" and self.mode.single_team is not None
            team_id = None if implied else path_team
        return InvoiceFilter(
            team_id, query.get("projectId") or None, query.get("resourceType") or None
        )

    def _legacy_window(self, query: Mapping[str, str], contract: Contract) -> tuple[int, int]:
        if contract == "current":
            return 0, 0
        return page_number_window(query, self.mode.page_size, self.mode.max_page_size)

    def _paged(
        self,
        data: Json,
        view: InvoiceFilter,
        window: tuple[int, int],
        contract: Contract,
        scope: str,
        query: Mapping[str, str],
    ) -> Answer:
        """A breakdown's page in its contract: by level (current) or by ``page``."""
        if contract == "current":
            size, limit = self.mode.page_size, self.mode.max_page_size
            pagination = page_levels(data["paasUsage"], query, size, limit)
        else:
            pagination = page_invoice(data, view, window[0], window[1], scope)
        return to_contract(data, contract), pagination

    def _hours(self, usage_query: UsageQuery) -> list[int]:
        return usage_hours_of(
            self.org,
            usage_query,
            self.now,
            running_hour=self.mode.running_hour,
            history=self.mode.usage_history,
        )


_TEAM = r"/v1/teams/(?P<team>[^/]+)"
ROUTES: list[tuple[re.Pattern[str], Handler]] = [
    (re.compile(r"/v1/auth/?"), Api.auth),
    (re.compile(r"/v1/billing/invoices/?"), Api.list_invoices),
    (re.compile(_TEAM + r"/billing/invoices/?"), Api.list_invoices),
    (re.compile(r"/v1/billing/invoices/details/?"), Api.invoice_details),
    (re.compile(r"/v1/billing/invoices/(?P<invoice>[^/]+)/?"), Api.get_invoice),
    (re.compile(_TEAM + r"/billing/invoices/(?P<invoice>[^/]+)/?"), Api.get_invoice),
    (re.compile(r"/v1/teams/?"), Api.list_teams),
    (re.compile(_TEAM + r"/?"), Api.get_team),
    (re.compile(r"/v1/billing/usage/?"), Api.list_usage),
    (re.compile(_TEAM + r"/billing/usage/?"), Api.list_usage),
    (re.compile(r"/v1/billing/usage/(?P<timestamp>[^/]+)/?"), Api.get_usage),
    (re.compile(_TEAM + r"/billing/usage/(?P<timestamp>[^/]+)/?"), Api.get_usage),
    (re.compile(r"/v1/billing/credit-balance/?"), Api.credit_balance),
    (re.compile(_TEAM + r"/billing/credit-balance/?"), Api.credit_balance),
]


def route(path: str) -> tuple[Handler, dict[str, str]]:
    for pattern, handler in ROUTES:
        matched = pattern.fullmatch(path)
        if matched:
            return handler, {k: unquote(v) for k, v in matched.groupdict().items()}
    raise ApiError(404, f"Not found: {path}")


def _timestamp(query: Mapping[str, str], name: str) -> float | None:
    """A Unix-seconds query parameter; None when absent or empty, 400 when not a number."""
    text = query.get(name)
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ApiError(400, f"Invalid {name}: not a number") from None
    if not math.isfinite(value):
        raise ApiError(400, f"Invalid {name}: not a number")
    return value


def _hour(text: str) -> int:
    """The start of an hour in a path (Unix seconds, a multiple of 3600); else 400."""
    value = _timestamp({"timestamp": text}, "timestamp")
    if value is None or value != int(value) or int(value) % HOUR:
        raise ApiError(400, "Invalid timestamp: must be the start of an hour (a multiple of 3600)")
    return int(value)
