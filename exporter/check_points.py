"""What ``northflank-exporter check`` says of each answer: pure functions from what the
API answered (or how it failed) to one :class:`Point`, and the :class:`Report` as text
or JSON. The requests are :mod:`exporter.check`'s.

Nothing secret or personal leaves here: no amount, no team, project or resource name, no
token; invoice, team and entity IDs, counts, dates, contracts and shapes only. A point
is ``ok``, ``warn`` (the exporter works, with a limit worth knowing) or ``fail`` (it
cannot serve figures as set up).

>>> print(shape({"data": {"id": "x", "usage": [{"timestamp": 1, "paid": True}]}}))
{data: {id: string, usage: [1 x {timestamp: number, paid: bool}]}}
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from exporter.api import model
from exporter.api.errors import (
    BILLING_READ,
    PERMISSION_HINT,
    ApiError,
    AuthError,
    HttpStatusError,
    InvalidResponseError,
    NotFoundError,
    RequestCapError,
)
from exporter.poller import average_cost, budget_interval
from exporter.settings import Settings

Status = Literal["ok", "warn", "fail"]
Fact = str | int | float | bool | None | list[str]
DAY = 86400.0
HALF_CENT = 0.005
TOKEN_WARN_DAYS = 14  # a token expiring sooner is a warning
USAGE_LAG_WARN = 3 * 3600.0  # a newest hourly entry older than this is a warning
PATHS = {
    "auth": "GET /v1/auth",
    "list_invoices": "GET /v1/billing/invoices",
    "get_invoice": "GET /v1/billing/invoices/{id}",
    "list_usage": "GET /v1/billing/usage",
    "get_usage": "GET /v1/billing/usage/{timestamp}",
    "credit_balance": "GET /v1/billing/credit-balance",
}


@dataclass(frozen=True)
class Point:
    """One line of the report: its status, what it says, and the same field by field."""

    name: str
    status: Status
    says: str
    facts: Mapping[str, Fact] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    points: tuple[Point, ...]
    requests: int
    version: str

    @property
    def status(self) -> Status:
        statuses = {point.status for point in self.points}
        return "fail" if "fail" in statuses else "warn" if "warn" in statuses else "ok"

    @property
    def exit_code(self) -> int:
        return 1 if self.status == "fail" else 0

    def verdict(self) -> str:
        counts = {s: sum(p.status == s for p in self.points) for s in ("ok", "warn", "fail")}
        tally = f"{counts['ok']} ok, {counts['warn']} warn, {counts['fail']} fail"
        failed = ", ".join(p.name for p in self.points if p.status == "fail")
        if failed:
            return (
                f"fail: {failed} ({tally}; {self.requests} requests): the exporter cannot "
                "serve figures as set up; paste this output into a northflank-exporter issue"
            )
        spent = f"{tally}; {self.requests} requests"
        return f"{self.status}: the exporter can read this account ({spent})"

    def text(self) -> str:
        width = max(len(point.name) for point in self.points)
        lines = [f"{p.status:<4}  {p.name:<{width}}  {p.says}" for p in self.points]
        return "\n".join([*lines, self.verdict()]) + "\n"

    def json(self) -> str:
        document = {
            "version": self.version,
            "status": self.status,
            "requests": self.requests,
            "points": {
                p.name: {"status": p.status, "says": p.says, **p.facts} for p in self.points
            },
            "verdict": self.verdict(),
        }
        return json.dumps(document, indent=2) + "\n"


# --------------------------------------------------------------------------- shapes


def shape(value: Any, depth: int = 0) -> str:
    """An answer's shape: keys, types and array lengths, never a value."""
    if isinstance(value, dict):
        if depth >= 5:
            return "{...}" if value else "{}"
        items = [f"{_key(key)}: {shape(item, depth + 1)}" for key, item in list(value.items())[:24]]
        more = ", ..." if len(value) > 24 else ""
        return "{" + ", ".join(items) + more + "}"
    if isinstance(value, list):
        if not value:
            return "[0]"
        kinds = {_kind(item) for item in value}
        inner = shape(value[0], depth + 1) if len(kinds) == 1 else " or ".join(sorted(kinds))
        return f"[{len(value)} x {inner}]"
    return _kind(value)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "object" if isinstance(value, dict) else "array"


def _key(key: str) -> str:
    text = str(key)
    printable = text.isprintable() and len(text) <= 40 and all(c not in ",:{}[]" for c in text)
    return text if printable else json.dumps(text[:40])


# --------------------------------------------------------------------------- failures


def failed(
    name: str, error: ApiError, bodies: Mapping[str, Any], *, hard: bool = True, hint: bool = True
) -> Point:
    """A point whose request failed: ``fail`` (``hard``) or ``warn``; an answer that could
    not be read shows its shape; a 401 or 403 what to check (``hint``: once a report)."""
    path = PATHS.get(error.endpoint, error.endpoint)
    facts: dict[str, Fact] = {"error": error.reason, "endpoint": path, "http_status": error.status}
    says = f"{path}: {str(error).removeprefix(error.endpoint + ': ')}"
    if isinstance(error, RequestCapError):
        return Point(name, "warn", f"not checked: {says}", facts)
    if isinstance(error, InvalidResponseError) and error.endpoint in bodies:
        facts["shape"] = shape(bodies[error.endpoint])
        says += f"; the answer's shape: {facts['shape']}"
    if isinstance(error, AuthError) and hint:
        says += f"; {PERMISSION_HINT}"
    return Point(name, "fail" if hard else "warn", says, facts)


def not_checked(name: str, why: str) -> Point:
    return Point(name, "warn", f"not checked: {why}", {"checked": False})


# --------------------------------------------------------------------------- the points


def token_point(token: model.Token, now: float) -> Point:
    """``GET /v1/auth``: whose token, until when, and whether billing read is listed."""
    who = f"{_a(token.entity_type or 'unknown')} token ({token.entity_id or 'no ID'})"
    billing = next((name for name in BILLING_READ if name in token.permissions), None)
    facts: dict[str, Fact] = {
        "entity_type": token.entity_type,
        "entity_id": token.entity_id,
        "expires_at": _iso(token.expires_at),
        "billing_read": billing,
        "permissions_listed": len(token.permissions),
    }
    status: Status = "ok"
    if token.expires_at is None:
        expiry = "no expiry"
    else:
        days = (token.expires_at - now) / DAY
        facts["expires_in_days"] = round(days, 1)
        if days <= 0:
            status, expiry = "fail", f"expired {_iso(token.expires_at)}"
        else:
            expiry = f"expires {_iso(token.expires_at)} (in {days:.0f} days)"
            if days < TOKEN_WARN_DAYS:
                status = "warn"
    if billing is not None:
        permission = f"billing read listed: '{billing}'"
    elif not token.permissions:
        status, permission = _worst(status, "warn"), "no permissions listed"
    else:
        status = _worst(status, "warn")
        permission = (
            f"billing read not among the {len(token.permissions)} permissions listed "
            f"(neither '{BILLING_READ[0]}' nor '{BILLING_READ[1]}')"
        )
    return Point("token", status, f"{who}, {expiry}; {permission}", facts)


def token_failed(error: ApiError, bodies: Mapping[str, Any]) -> Point:
    """A 401 is the token itself (``fail``); otherwise the poll does without ``/v1/auth``
    (but for a single-team token's first read)."""
    point = failed("token", error, bodies, hard=error.status == 401, hint=False)
    if point.status == "warn" and not isinstance(error, RequestCapError):
        return Point(
            "token", "warn", point.says + " (the exporter only needs it for a team's token)",
            point.facts,
        )  # fmt: skip
    return point


def list_point(
    listing: model.InvoiceList,
    pagination: Mapping[str, Any] | None,
    newest: model.InvoiceEntry | None,
    pinned: str | None,
) -> Point:
    """The invoice list's first page: contract, paging, count, the newest invoice."""
    entries = listing.entries
    has_next = pagination.get("hasNextPage") if pagination else None
    keys = sorted(str(key) for key in pagination) if pagination else []
    facts: dict[str, Fact] = {
        "contract": listing.contract,
        "count": len(entries),
        "has_next_page": has_next if isinstance(has_next, bool) else None,
        "paging": keys,
        "newest": newest.id if newest else None,
        "period_start": _iso(newest.period_start) if newest else None,
        "period_end": _iso(newest.period_end) if newest else None,
    }
    paging = f"paging: pagination{{{', '.join(keys)}}}" if pagination else "no pagination"
    more = ", more on later pages" if has_next is True else ""
    contract = f"{listing.contract} contract" if listing.contract else "no entry, no contract"
    head = f"{contract}; {len(entries)} on the first page{more} ({paging})"
    if newest is None:
        return Point(
            "invoices",
            "warn",
            f"{head}; no finalized invoice yet: the exporter has nothing to serve until one is",
            facts,
        )
    period = f"{_iso(newest.period_start)} to {_iso(newest.period_end)}"
    says = f"{head}; the newest {newest.id}, {period}"
    status: Status = "ok"
    if pinned is not None:
        facts["pinned"] = pinned
        listed = any(entry.id == pinned for entry in entries)
        says += f"; NORTHFLANK_INVOICE_ID {pinned} {'listed' if listed else 'not on this page'}"
    return Point("invoices", status, says, facts)


def invoice_point(
    invoice: model.Invoice,
    selected: int,
    resource_types: Sequence[str] | None,
    sampled: str | None,
) -> Point:
    """The invoice unfiltered: contract, level, teams, whether they add up, the types."""
    single = invoice.teams is None
    parts = invoice.projects or () if single else invoice.teams or ()
    count = len(parts)
    paas = invoice.paas.total if invoice.paas else None
    totals = [part.price.total for part in parts]
    adds_up = None
    if paas is not None and all(total is not None for total in totals):
        adds_up = abs(math.fsum(t for t in totals if t is not None) - paas) < HALF_CENT
    facts: dict[str, Fact] = {
        "id": invoice.id,
        "contract": invoice.contract,
        "starts_at": "projects" if single else "teams",
        "teams": 1 if single else count,
        "teams_selected": selected,
        "projects": count if single else None,
        "adds_up": adds_up,
        "resource_types": sorted(resource_types) if resource_types is not None else None,
    }
    level = (
        f"starts at projects (a single team's token), {count} projects"
        if single
        else f"starts at teams, {count} teams"
    )
    if not single and selected != count:
        level += f" ({selected} selected by NORTHFLANK_TEAMS)"
    what = "projects'" if single else "teams'"
    status: Status = "ok"
    if adds_up is None:
        sums = f"the {what} totals cannot be added up (a total left out)"
        status = "warn"
    elif adds_up:
        sums = f"the {what} totals add up to the PaaS total (within half a cent)"
    else:
        sums = f"the {what} totals do not add up to the PaaS total (half a cent or more apart)"
        status = "warn"
    if resource_types is None:
        kinds = "resource types not seen (no project to ask)"
    else:
        seen = ", ".join(sorted(resource_types)) or "none"
        kinds = f"resource types in one project of {sampled}: {seen}"
    says = f"{invoice.id} unfiltered: {invoice.contract} contract, {level}; {sums}; {kinds}"
    return Point("invoice", status, says, facts)


def usage_point(
    total: model.Usage | None,
    refused: bool,
    hourly: model.Usage,
    now: float,
    *,
    unbilled: bool,
) -> Point:
    """``granularity=total`` taken or refused, and the newest hourly entry's age."""
    status: Status = "ok"
    if refused:
        taken, status = "granularity=total refused (400): the exporter sums hourly entries", "warn"
    elif total is not None and total.total:
        taken = "granularity=total taken"
    elif model.LEGACY in (hourly.contract, total.contract if total else None):
        taken = "hourly entries (the legacy contract has no granularity)"
    else:
        taken, status = "granularity=total not honoured: hourly entries came back", "warn"
    facts: dict[str, Fact] = {
        "granularity_total": (
            "refused" if refused else "taken" if total and total.total else "hourly"
        ),
        "contract": hourly.contract,
        "newest_hour": None,
        "newest_age_seconds": None,
    }
    if not hourly.entries:
        status, age = "warn", "no hourly entry in the last 6 hours"
    else:
        newest = max(entry.timestamp for entry in hourly.entries)
        seconds = now - newest
        facts["newest_hour"], facts["newest_age_seconds"] = _iso(newest), round(seconds)
        age = f"the newest hourly entry starts at {_iso(newest)}, {seconds / 3600:.1f} h ago"
        if seconds > USAGE_LAG_WARN:
            status = "warn"
    says = f"{taken}; {age}"
    if not unbilled:
        says += " (NORTHFLANK_UNBILLED=false: the exporter does not read it)"
    return Point("usage", status, says, facts)


def credit_point(
    credit: model.Credit | None, error: ApiError | None, contract: str | None
) -> Point:
    """The credit balance: present or not (its absence costs the exporter nothing)."""
    if contract == model.LEGACY:
        return Point(
            "credit", "ok", "not asked: the legacy contract has no credit balance",
            {"present": None, "asked": False},
        )  # fmt: skip
    if isinstance(error, NotFoundError):
        return Point(
            "credit", "ok", "no credit balance (404): the credit families are left out",
            {"present": False, "asked": True},
        )  # fmt: skip
    if error is not None:
        point = failed("credit", error, {}, hard=False)
        return Point(
            "credit", point.status, point.says + " (the exporter goes on without it)",
            {**point.facts, "present": None},
        )  # fmt: skip
    assert credit is not None
    currency = f" ({credit.currency})" if credit.currency else ""
    return Point(
        "credit", "ok", f"a credit balance{currency}",
        {"present": True, "asked": True, "currency": credit.currency},
    )  # fmt: skip


# --------------------------------------------------------------------------- the cost


@dataclass(frozen=True)
class Cost:
    """What a poll at the settings' depth costs here, as the README's cost model counts."""

    first: int  # requests of a first read
    later: int  # of a steady poll (the breakdown kept)
    breakdown: int  # of which a read of the breakdown
    estimated: bool  # the projects were counted in one team and multiplied
    interval: float  # seconds between polls, stretched to the budget
    polls_an_hour: float


def cost(
    settings: Settings,
    *,
    teams: int,
    team_calls: int,
    projects: int,
    estimated: bool,
    single: bool,
    credit: bool,
) -> Cost:
    """``teams`` selected, ``team_calls`` of them needing a ``teamId`` answer, ``projects``
    in them (``estimated``: from one team's); ``credit``: the contract has a balance."""
    depth = settings.depth
    lists = int(settings.invoice_id is None or settings.unbilled)
    usage = (1 + (0 if single else teams)) if settings.unbilled else 0
    balance = int(credit and bool(lists))
    breakdown = 1 + (2 if single else 0)  # a team's token: GET /v1/auth and the team's name
    if depth != "team":
        breakdown += 0 if single else team_calls
    if depth == "resource":
        breakdown += projects
    later = lists + usage + balance
    average = average_cost(
        later, breakdown, settings.poll_interval_seconds, settings.invoice_refresh_seconds
    )
    interval = max(
        settings.poll_interval_seconds, budget_interval(average, settings.request_budget_per_hour)
    )
    estimated = estimated and depth == "resource"  # only that depth counts projects
    return Cost(later + breakdown, later, breakdown, estimated, interval, 3600.0 / interval)


def ratelimit_point(
    settings: Settings,
    limit: float | None,
    remaining: float | None,
    reset_in: float | None,
    spent: Cost | None,
) -> Point:
    """The API's window as its headers said it, and what polling would cost here."""
    facts: dict[str, Fact] = {
        "limit": _number(limit),
        "remaining": _number(remaining),
        "reset_seconds": None if reset_in is None else round(reset_in),
        "reserve": settings.ratelimit_reserve,
        "budget": settings.request_budget_per_hour,
        "depth": settings.depth,
    }
    status: Status = "ok"
    if remaining is None:
        window = "the API sent no x-ratelimit-remaining"
        status = "warn"
    else:
        said = f"limit {limit:.0f}" if limit is not None else "no x-ratelimit-limit"
        resets = f", resets in {reset_in:.0f} s" if reset_in is not None else ""
        window = f"{said}, {remaining:.0f} remaining{resets}"
        if remaining <= settings.ratelimit_reserve:
            status = "warn"
            window += (
                f": at or below the reserve of {settings.ratelimit_reserve} "
                "(NORTHFLANK_RATELIMIT_RESERVE), the exporter waits for the reset"
            )
    if spent is None:
        says = f"{window}; the cost here not known (no invoice read)"
        return Point("ratelimit", status, says, facts)
    facts.update(
        first_read=spent.first,
        later_poll=spent.later,
        estimated=spent.estimated,
        interval_seconds=round(spent.interval, 1),
        polls_an_hour=round(spent.polls_an_hour, 1),
    )
    about = "about " if spent.estimated else ""
    stretched = (
        f"every {spent.interval:.0f} s instead of every {settings.poll_interval_seconds:.0f} s"
        if spent.interval > settings.poll_interval_seconds
        else f"every {spent.interval:.0f} s"
    )
    says = (
        f"{window}; depth {settings.depth} here: a first read {about}{spent.first} requests, "
        f"later polls {spent.later}; {spent.polls_an_hour:.1f} polls an hour within the budget "
        f"of {settings.request_budget_per_hour} (polling {stretched})"
    )
    if spent.estimated:
        says += "; the projects counted in one team"
    return Point("ratelimit", status, says, facts)


# --------------------------------------------------------------------------- helpers


def is_refusal(error: ApiError) -> bool:
    """The server does not take ``granularity=total``."""
    return isinstance(error, HttpStatusError) and error.status == 400


def _worst(a: Status, b: Status) -> Status:
    order = ("ok", "warn", "fail")
    return a if order.index(a) >= order.index(b) else b


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def _number(value: float | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value


def _iso(seconds: float | None) -> str | None:
    """A date, or a UTC time where it is not midnight."""
    if seconds is None:
        return None
    moment = datetime.fromtimestamp(seconds, UTC)
    if (moment.hour, moment.minute, moment.second) == (0, 0, 0):
        return moment.date().isoformat()
    return moment.strftime("%Y-%m-%dT%H:%MZ")
