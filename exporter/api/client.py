"""The HTTP funnel to the Northflank API: every request goes through :meth:`Client.get`.

That one funnel adds the bearer token, applies the timeout and the concurrency limit,
retries 429, 5xx, timeouts and connection errors with exponential backoff and jitter
(never sooner than ``Retry-After`` or ``x-ratelimit-reset`` say), records what it saw in
:class:`ApiStats` (requests, the rate-limit window, the API's clock from its ``Date``
header), and turns every failure into one :class:`ApiError` subclass whose ``reason`` is
the label of ``northflank_poll_errors_total``. It returns an answer's ``data`` and raw
``pagination``: what the answer means is :mod:`exporter.api.billing`'s.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from exporter import __version__
from exporter.api.errors import (
    ApiConnectionError,
    ApiError,
    ApiTimeoutError,
    InvalidResponseError,
    RateLimitedError,
    error_for_status,
)
from exporter.api.limits import Limits

JSON = dict[str, Any]


# --------------------------------------------------------------------------- bookkeeping


@dataclass
class ApiStats:
    """What the client has seen, for the exporter's own metrics."""

    requests: Counter[tuple[str, str]] = field(default_factory=Counter)  # (endpoint, code)
    ratelimit_remaining: float | None = None  # the last x-ratelimit-remaining of any answer
    # The window as the last successful answer described it (a 429's own wait is the hold):
    ratelimit_window_remaining: float | None = None
    ratelimit_reset_at: float | None = None  # monotonic time the rate-limit window resets
    clock_offset: float = 0.0  # the API's clock (its latest Date header) less the local one
    lowest_remaining: float | None = None  # the least x-ratelimit-remaining since reset
    ratelimit_limit: float | None = None  # the last x-ratelimit-limit (the account's limit)

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
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, float(when.timestamp()) - (time.time() if now is None else now))


def _float_header(response: httpx.Response, name: str) -> float | None:
    """A number header; absent, malformed, ``nan`` or ``inf`` is no figure at all."""
    try:
        value = float(response.headers[name])
    except (KeyError, ValueError):
        return None
    return value if math.isfinite(value) else None


def segment(value: str) -> str:
    """An ID as one URL path segment: percent-encoded, never ``.`` or ``..``."""
    quoted = quote(value, safe="")
    return quoted.replace(".", "%2E") if quoted in (".", "..") else quoted


# --------------------------------------------------------------------------- the client

Sleep = Callable[[float], Awaitable[None]]


@dataclass
class Spent:
    """Requests sent (pages and retries included) within one :func:`counting` block (and
    so within every block it is inside)."""

    requests: int = 0
    outer: Spent | None = None


_spent: ContextVar[Spent | None] = ContextVar("northflank_spent", default=None)


@contextmanager
def counting() -> Iterator[Spent]:
    """Count the requests this task (and the tasks it starts) sends inside the block."""
    spent = Spent(outer=_spent.get())
    token = _spent.set(spent)
    try:
        yield spent
    finally:
        _spent.reset(token)


class Client:
    """The async HTTP client: one per exporter, shared by polls, checks and backfill."""

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
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        reserve: int = 0,
        budget: int | None = None,
    ) -> None:
        """``reserve`` and ``budget``: see :class:`~exporter.api.limits.Limits`."""
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
        self._wall_clock = wall_clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._deadline = float("inf")
        self._hold_until = 0.0  # the API said: no request before this (monotonic)
        self._last_reset_at: float | None = None  # the rate-limit window's reset, last seen
        self.stats = ApiStats()
        self.limits = Limits(reserve=reserve, budget=budget, clock=clock, sleep=sleep)
        # Called with each successful answer's endpoint and parsed body (``check`` shows
        # the shape of one it could not read); None: nobody looks.
        self.on_answer: Callable[[str, Any], object] | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def set_deadline(
        self,
        seconds_from_now: float,
        *,
        max_wait: float = float("inf"),
        on_wait: Callable[[float], object] = lambda seconds: None,
    ) -> None:
        """No retry wait may end later than this; a poll calls it as it starts. Waits for
        the rate-limit window (:class:`~exporter.api.limits.Limits`) move it, and call
        ``on_wait`` with their length; one longer than ``max_wait`` fails instead."""
        self._deadline = self._clock() + seconds_from_now

        def waiting(seconds: float) -> None:
            self._deadline += seconds
            on_wait(seconds)

        self.limits.max_wait = max_wait
        self.limits.on_wait = waiting

    def api_time(self) -> float:
        """Now by the API's clock: the ``Date`` of its latest answer, moved on by the local
        clock since (the local clock alone until an answer has one)."""
        return self._wall_clock() + self.stats.clock_offset

    async def get(
        self, endpoint: str, path: str, query: dict[str, str]
    ) -> tuple[JSON, JSON | None]:
        """The one funnel: send, retry what is worth retrying, map every failure; the
        answer's ``data`` and its ``pagination`` (None when it has none)."""
        attempt = 0
        while True:
            await self._wait_while_held(endpoint)
            try:
                async with self._slots:
                    await self.limits.admit(endpoint)
                    try:
                        response = await self._http.get(path, params=query)
                    finally:
                        self.limits.done()
            except httpx.TimeoutException:
                self._count(endpoint, "error")
                error: ApiError = ApiTimeoutError(endpoint, "no answer within the request timeout")
            except httpx.TransportError as exc:
                self._count(endpoint, "error")
                error = ApiConnectionError(endpoint, f"{type(exc).__name__}: {exc}")
            else:
                self._record(endpoint, response)
                if response.is_success:
                    body = _body(endpoint, response)
                    if self.on_answer is not None:
                        self.on_answer(endpoint, body)
                    return _envelope(endpoint, body)
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

    def _count(self, endpoint: str, code: str) -> None:
        """One request sent: in the stats, and in the calling task's :func:`counting`."""
        self.stats.requests[(endpoint, code)] += 1
        spent = _spent.get()
        while spent is not None:
            spent.requests += 1
            spent = spent.outer

    def _record(self, endpoint: str, response: httpx.Response) -> None:
        now = self._clock()
        self._count(endpoint, str(response.status_code))
        self._read_date(response.headers.get("date"))
        remaining = _float_header(response, "x-ratelimit-remaining")
        reset = _float_header(response, "x-ratelimit-reset")
        limit = _float_header(response, "x-ratelimit-limit")
        if limit is not None:
            self.stats.ratelimit_limit = limit
        reset_at = None if reset is None else now + reset
        if remaining is not None:
            # Answers to concurrent requests arrive in any order: within one window the
            # smallest count is the latest truth; a later reset time starts a new window.
            if self._same_window(reset_at) and self.stats.ratelimit_remaining is not None:
                remaining = min(remaining, self.stats.ratelimit_remaining)
            self.stats.ratelimit_remaining = remaining
            if self.stats.lowest_remaining is None or remaining < self.stats.lowest_remaining:
                self.stats.lowest_remaining = remaining
            self._last_reset_at = reset_at
            self.limits.seen(remaining, reset_at)
        if response.is_success:
            self.stats.ratelimit_window_remaining = remaining
            self.stats.ratelimit_reset_at = reset_at
        hold = parse_retry_after(response.headers.get("retry-after"))
        if hold is None and response.status_code == 429:
            hold = reset
        if hold is not None and response.status_code in (429, 503):
            self._hold_until = max(self._hold_until, now + hold)

    def _read_date(self, value: str | None) -> None:
        """The API's clock, from an answer's ``Date`` (RFC 9110; whole seconds)."""
        if not value:
            return
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return
        if when.tzinfo is None:
            return
        self.stats.clock_offset = when.timestamp() - self._wall_clock()


def _after_attempts(error: ApiError, attempts: int) -> ApiError:
    if attempts > 1:
        error.args = (f"{error.args[0]} (after {attempts} attempts)",)
    return error


def _body(endpoint: str, response: httpx.Response) -> Any:
    try:
        return response.json()
    except (ValueError, RecursionError):  # not JSON, bad UTF-8, 4300+ digits, deep nesting
        kind = response.headers.get("content-type", "no content type")
        raise InvalidResponseError(
            endpoint, f"HTTP {response.status_code} body is not JSON ({kind})"
        ) from None


def _envelope(endpoint: str, body: Any) -> tuple[JSON, JSON | None]:
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise InvalidResponseError(endpoint, "answer has no 'data' object")
    pagination = body.get("pagination")
    if pagination is not None and not isinstance(pagination, dict):
        raise InvalidResponseError(endpoint, "answer's 'pagination' is not an object")
    return body["data"], pagination


def _error_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
        message = error.get("message")
    except (ValueError, AttributeError, RecursionError):
        message = None
    return str(message)[:200] if message else response.reason_phrase or "error"
