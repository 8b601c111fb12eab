"""The Northflank API client: every request goes through :meth:`Client._request`.

That one funnel adds the bearer token, applies the timeout and the concurrency limit,
retries 429, 5xx, timeouts and connection errors with exponential backoff and jitter
(never sooner than ``Retry-After`` or ``x-ratelimit-reset`` say), records what it saw in
:class:`ApiStats`, and turns every failure into one :class:`ApiError` subclass whose
``reason`` is the label of ``northflank_poll_errors_total``. Paged answers are followed
to their last page and merged (:func:`merge_pages`).
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from exporter import __version__
from exporter.models import (
    Invoice,
    InvoiceList,
    InvoiceSummary,
    Pagination,
    UsageEntry,
    UsageList,
)

JSON = dict[str, Any]
M = TypeVar("M", bound=BaseModel)
MAX_PAGES = 1000
PER_PAGE = 100


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    """A request failed for good (after any retries)."""

    reason: ClassVar[str] = "http"

    def __init__(self, endpoint: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{endpoint}: {message}")
        self.endpoint = endpoint
        self.status = status


class AuthError(ApiError):
    reason = "auth"


class NotFoundError(ApiError):
    reason = "not_found"


class RateLimitedError(ApiError):
    reason = "rate_limited"


class HttpStatusError(ApiError):
    reason = "http"


class ApiTimeoutError(ApiError):
    reason = "timeout"


class ApiConnectionError(ApiError):
    reason = "connection"


class InvalidResponseError(ApiError):
    reason = "invalid_response"


def error_for_status(endpoint: str, status: int, message: str) -> ApiError:
    kind: type[ApiError]
    if status in (401, 403):
        kind = AuthError
    elif status == 404:
        kind = NotFoundError
    elif status == 429:
        kind = RateLimitedError
    else:
        kind = HttpStatusError
    return kind(endpoint, f"HTTP {status}: {message}", status)


# --------------------------------------------------------------------------- bookkeeping


@dataclass
class ApiStats:
    """What the client has seen, for the exporter's own metrics."""

    requests: Counter[tuple[str, str]] = field(default_factory=Counter)  # (endpoint, code)
    ratelimit_remaining: float | None = None  # the last x-ratelimit-remaining of any answer
    # The window as the last successful answer described it (a 429's own wait is the hold):
    window_remaining: float | None = None
    window_reset_at: float | None = None  # monotonic time the API's window resets

    @property
    def total(self) -> int:
        return sum(self.requests.values())


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3
    backoff_base: float = 0.5
    backoff_cap: float = 10.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Delay before retry ``attempt`` (0-based): 0.5-0.75 s, 1-1.5 s, 2-3 s ... <= 10 s."""
        step = min(self.backoff_cap, math.ldexp(self.backoff_base, attempt))
        return min(self.backoff_cap, step + rng.uniform(0, step / 2))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, float(when.timestamp()) - (time.time() if now is None else now))


def _float_header(response: httpx.Response, name: str) -> float | None:
    try:
        return float(response.headers[name])
    except (KeyError, ValueError):
        return None


def segment(value: str) -> str:
    """An ID as one URL path segment: percent-encoded, never ``.`` or ``..``."""
    quoted = quote(value, safe="")
    return quoted.replace(".", "%2E") if quoted in (".", "..") else quoted


# --------------------------------------------------------------------------- paging


def _key(item: object) -> str | None:
    """What identifies an array entry across pages: its ``id`` or ``resourceType``."""
    if isinstance(item, dict):
        key = item.get("id", item.get("resourceType"))
        return key if isinstance(key, str) else None
    return None


def merge_pages(first: JSON, later: JSON) -> JSON:
    """Merge one page of an answer into the pages before it.

    Arrays of objects are joined, objects with the same ``id`` (or ``resourceType``)
    merged into one; other values keep the first page's.
    """
    merged = dict(first)
    for name, value in later.items():
        mine = merged.get(name)
        if isinstance(mine, dict) and isinstance(value, dict):
            merged[name] = merge_pages(mine, value)
        elif isinstance(mine, list) and isinstance(value, list):
            merged[name] = _merge_lists(mine, value)
        elif name not in merged:
            merged[name] = value
    return merged


def _merge_lists(mine: list[Any], more: list[Any]) -> list[Any]:
    out = list(mine)
    index = {key: i for i, item in enumerate(out) if (key := _key(item)) is not None}
    for item in more:
        key = _key(item)
        if key is not None and key in index:
            out[index[key]] = merge_pages(out[index[key]], item)
        else:
            if key is not None:
                index[key] = len(out)
            out.append(item)
    return out


# --------------------------------------------------------------------------- the client

Sleep = Callable[[float], Awaitable[None]]


class Client:
    """Async client for the billing endpoints the exporter reads."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        max_concurrency: int = 8,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": f"northflank-exporter/{__version__}",
            },
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(
                max_connections=max_concurrency, max_keepalive_connections=max_concurrency
            ),
            transport=transport,
            follow_redirects=False,
        )
        self._slots = asyncio.Semaphore(max_concurrency)
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._deadline = float("inf")
        self._hold_until = 0.0  # the API said: no request before this (monotonic)
        self._last_reset_at: float | None = None  # the rate-limit window's reset, last seen
        self.stats = ApiStats()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def set_deadline(self, seconds_from_now: float) -> None:
        """No retry wait may end later than this; a poll calls it as it starts."""
        self._deadline = self._clock() + seconds_from_now

    # ----------------------------------------------------------------- endpoints

    async def list_invoices(self) -> list[InvoiceSummary]:
        data = await self._get_all("list_invoices", "/v1/billing/invoices", {})
        return _parse(InvoiceList, data, "list_invoices").invoices

    async def get_invoice(
        self, invoice_id: str, *, team_id: str | None = None, project_id: str | None = None
    ) -> Invoice:
        params = {"teamId": team_id, "projectId": project_id}
        path = f"/v1/billing/invoices/{segment(invoice_id)}"
        data = await self._get_all("get_invoice", path, params)
        return _parse(Invoice, data, "get_invoice")

    async def list_usage(self, start: float, *, team_id: str | None = None) -> list[UsageEntry]:
        """Whole hours of usage from ``start`` (inclusive), org-wide or one team's."""
        path = (
            f"/v1/teams/{segment(team_id)}/billing/usage"
            if team_id is not None
            else "/v1/billing/usage"
        )
        data = await self._get_all("list_usage", path, {"startTime": str(int(start))})
        return _parse(UsageList, data, "list_usage").usage

    # ----------------------------------------------------------------- plumbing

    async def _get_all(self, endpoint: str, path: str, params: dict[str, str | None]) -> JSON:
        """GET a resource, following ``pagination`` to its last page and merging."""
        query = {key: value for key, value in params.items() if value is not None}
        query["per_page"] = str(PER_PAGE)
        data, page = await self._request(endpoint, path, query)
        seen: set[str] = set()
        for number in range(2, MAX_PAGES + 1):
            if not page.has_next_page:
                return data
            if page.cursor is not None:
                if page.cursor in seen:
                    raise InvalidResponseError(endpoint, "pagination cursor repeats itself")
                seen.add(page.cursor)
                query = {**query, "cursor": page.cursor}
            else:
                query = {**query, "page": str(number)}
            more, page = await self._request(endpoint, path, query)
            data = merge_pages(data, more)
        raise InvalidResponseError(endpoint, f"more than {MAX_PAGES} pages")

    async def _request(
        self, endpoint: str, path: str, query: dict[str, str]
    ) -> tuple[JSON, Pagination]:
        """The one funnel: send, retry what is worth retrying, map every failure."""
        attempt = 0
        while True:
            await self._wait_while_held(endpoint)
            try:
                async with self._slots:
                    response = await self._http.get(path, params=query)
            except httpx.TimeoutException:
                self.stats.requests[(endpoint, "error")] += 1
                error: ApiError = ApiTimeoutError(endpoint, "no answer within the request timeout")
            except httpx.TransportError as exc:
                self.stats.requests[(endpoint, "error")] += 1
                error = ApiConnectionError(endpoint, f"{type(exc).__name__}: {exc}")
            else:
                self._record(endpoint, response)
                if response.is_success:
                    return _envelope(endpoint, response)
                error = error_for_status(endpoint, response.status_code, _error_message(response))
                if response.status_code != 429 and response.status_code < 500:
                    raise error
            attempt += 1
            if attempt > self._retry.retries:
                raise _after_attempts(error, attempt)
            delay = max(
                self._retry.backoff(attempt - 1, self._rng), self._hold_until - self._clock()
            )
            if self._clock() + delay > self._deadline:
                raise _after_attempts(error, attempt)
            await self._sleep(delay)

    async def _wait_while_held(self, endpoint: str) -> None:
        wait = self._hold_until - self._clock()
        if wait <= 0:
            return
        if self._clock() + wait > self._deadline:
            raise RateLimitedError(
                endpoint, f"the API asked to wait {wait:.0f} s more; not sending", 429
            )
        await self._sleep(wait)

    def _same_window(self, reset_at: float | None) -> bool:
        """True when ``reset_at`` is the reset of the window seen last (within 2 s)."""
        last = self._last_reset_at
        return reset_at is not None and last is not None and abs(reset_at - last) <= 2.0

    def _record(self, endpoint: str, response: httpx.Response) -> None:
        now = self._clock()
        self.stats.requests[(endpoint, str(response.status_code))] += 1
        remaining = _float_header(response, "x-ratelimit-remaining")
        reset = _float_header(response, "x-ratelimit-reset")
        reset_at = None if reset is None else now + reset
        if remaining is not None:
            # Answers to concurrent requests arrive in any order: within one window the
            # smallest count is the latest truth; a later reset time starts a new window.
            if self._same_window(reset_at) and self.stats.ratelimit_remaining is not None:
                remaining = min(remaining, self.stats.ratelimit_remaining)
            self.stats.ratelimit_remaining = remaining
            self._last_reset_at = reset_at
        if response.is_success:
            self.stats.window_remaining = remaining
            self.stats.window_reset_at = reset_at
        hold = parse_retry_after(response.headers.get("retry-after"))
        if hold is None and response.status_code == 429:
            hold = reset
        if hold is not None and response.status_code in (429, 503):
            self._hold_until = max(self._hold_until, now + hold)


def _after_attempts(error: ApiError, attempts: int) -> ApiError:
    if attempts > 1:
        error.args = (f"{error.args[0]} (after {attempts} attempts)",)
    return error


def _envelope(endpoint: str, response: httpx.Response) -> tuple[JSON, Pagination]:
    try:
        body = response.json()
    except (ValueError, RecursionError):  # not JSON, bad UTF-8, 4300+ digits, deep nesting
        kind = response.headers.get("content-type", "no content type")
        raise InvalidResponseError(
            endpoint, f"HTTP {response.status_code} body is not JSON ({kind})"
        ) from None
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise InvalidResponseError(endpoint, "answer has no 'data' object")
    raw_page = body.get("pagination")
    page = _parse(Pagination, raw_page, endpoint) if isinstance(raw_page, dict) else Pagination()
    return body["data"], page


def _error_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
        message = error.get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message)[:200] if message else response.reason_phrase or "error"


def _parse(model: type[M], data: object, endpoint: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "data"
        raise InvalidResponseError(
            endpoint, f"unexpected answer at {where}: {first['msg']}"
        ) from None
