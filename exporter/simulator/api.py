"""The API's endpoints and routes over the organisation.

:class:`Api` answers one request (its path parameters, query and path) with the
``data`` and ``pagination`` of the envelope, for an :class:`ApiMode` (page sizes,
running hour, the older billing API) and a :class:`~.views.Caller` (the token).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from exporter.simulator.hours import history_entries, usage_first_hour, usage_hours
from exporter.simulator.model import Json, Team
from exporter.simulator.paging import (
    MAX_PAGE_SIZE,
    cursor_window,
    page_invoice,
    page_number_window,
    paginate,
    scope_of,
)
from exporter.simulator.views import (
    BILLING_READ,
    ApiError,
    Caller,
    InvoiceFilter,
    Organisation,
    auth_view,
    invoice_view,
    team_json,
)

# --------------------------------------------------------------------------------------
# The API: routes over the organisation
# --------------------------------------------------------------------------------------

Handler = Callable[["Api", dict[str, str], dict[str, str], str], tuple[Json, Json | None]]


@dataclass(frozen=True)
class ApiMode:
    """How the simulated API answers (see :class:`~.server.Simulator`'s options)."""

    page_size: int = 50
    max_page_size: int = MAX_PAGE_SIZE
    running_hour: bool = True
    legacy_billing: bool = False
    usage_history: bool = False  # usage hours before the newest invoice too


class Api:
    """The endpoints, as functions of (path parameters, query, path) -> (data, pagination)."""

    def __init__(self, org: Organisation, mode: ApiMode, caller: Caller, now: float) -> None:
        self.org = org
        self.mode = mode
        self.caller = caller
        self.now = now  # the simulator's clock at this request (which usage hours ended)

    def auth(
        self, params: dict[str, str], query: dict[str, str], path: str
    ) -> tuple[Json, Json | None]:
        return auth_view(self.caller), None

    def list_invoices(
        self, params: dict[str, str], query: dict[str, str], path: str
    ) -> tuple[Json, Json | None]:
        self._billing()
        if "team" in params:
            self._team(params["team"])
        scope = scope_of(path, query)
        offset, size = cursor_window(query, self.mode.page_size, scope, self.mode.max_page_size)
        invoices = self.org.render_invoice_summaries()
        if self.mode.legacy_billing:  # the older API (JS client 0.9.5): no id, no currency
            for summary in invoices:
                del summary["id"], summary["currency"]
        return {"invoices": invoices}, paginate(invoices, offset, size, scope)

    def get_invoice(
        self, params: dict[str, str], query: dict[str, str], path: str
    ) -> tuple[Json, Json | None]:
        self._billing()
        self._not_legacy(path)
        team_id = query.get("teamId") or None
        if "team" in params:
            self._team(params["team"])
            if team_id not in (None, params["team"]):
                raise ApiError(400, "teamId does not match the team in the path")
            team_id = params["team"]
        view = InvoiceFilter(
            team_id, query.get("projectId") or None, query.get("resourceType") or None
        )
        offset, size = page_number_window(query, self.mode.page_size, self.mode.max_page_size)
        try:
            invoice = self.org.invoice(params["invoice"])
        except KeyError:
            raise ApiError(404, f"Invoice {params['invoice']} not found") from None
        data = invoice_view(invoice, self.org.aggregates(invoice), view)
        return data, page_invoice(data, view, offset, size, scope_of(path, query))

    def invoice_details(
        self, params: dict[str, str], query: dict[str, str], path: str
    ) -> tuple[Json, Json | None]:
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
        return data, None

    def list_teams(
        self, params: dict[str, str], query: dict[str, str], path: str
    ) -> tuple[Json, Json | None]:
        scope = scope_of(path, query)
        offset, size = cursor_window(query, self.mode.page_size, scope, self.mode.max_page_size)
        teams = [team_json(team) for team in self.org.teams]
        return {"teams": teams}, paginate(teams, offset, size, scope)

    def list_usage(
        self, params: dict[str, str], query: dict[str, str], path: str
    ) -> tuple[Json, Json | None]:
        self._billing()
        self._not_legacy(path)
        team_id = self._team(params["team"]).id if "team" in params else None
        start, end = _timestamp(query, "startTime"), _timestamp(query, "endTime")
        scope = scope_of(path, query)
        offset, size = cursor_window(query, self.mode.page_size, scope, self.mode.max_page_size)
        first = usage_first_hour(self.org, history=self.mode.usage_history)
        hours = usage_hours(first, self.now, start, end, running_hour=self.mode.running_hour)
        pagination = paginate(hours, offset, size, scope)  # only this page's hours are summed
        usage = history_entries(self.org, hours, team_id, self.now)
        return {"usage": usage}, pagination

    def _billing(self) -> None:
        if BILLING_READ not in self.caller.permissions:
            raise ApiError(403, f"Missing permission: {BILLING_READ}")

    def _not_legacy(self, path: str) -> None:
        if self.mode.legacy_billing:
            raise ApiError(404, f"Not found: {path}")

    def _team(self, team_id: str) -> Team:
        for team in self.org.teams:
            if team.id == team_id:
                return team
        raise ApiError(404, f"Team {team_id} not found")


ROUTES: list[tuple[re.Pattern[str], Handler]] = [
    (re.compile(r"/v1/auth/?"), Api.auth),
    (re.compile(r"/v1/billing/invoices/?"), Api.list_invoices),
    (re.compile(r"/v1/teams/(?P<team>[^/]+)/billing/invoices/?"), Api.list_invoices),
    (re.compile(r"/v1/billing/invoices/details/?"), Api.invoice_details),
    (re.compile(r"/v1/billing/invoices/(?P<invoice>[^/]+)/?"), Api.get_invoice),
    (
        re.compile(r"/v1/teams/(?P<team>[^/]+)/billing/invoices/(?P<invoice>[^/]+)/?"),
        Api.get_invoice,
    ),
    (re.compile(r"/v1/teams/?"), Api.list_teams),
    (re.compile(r"/v1/billing/usage/?"), Api.list_usage),
    (re.compile(r"/v1/teams/(?P<team>[^/]+)/billing/usage/?"), Api.list_usage),
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
