"""When a request may be sent: the account's reserve and the exporter's own budget.

The API's limit (1000 requests an hour by default) is the account's, shared with its
deploy pipelines and CLI. Two rules keep the exporter from taking it all:

* **the reserve** (``NORTHFLANK_RATELIMIT_RESERVE``): no request is sent while the last
  ``x-ratelimit-remaining``, less the requests still in flight, is at or below it, until
  the window resets (``x-ratelimit-reset``): other automation keeps that much. Counting
  the requests in flight means a burst of 8 concurrent requests cannot cross it;
* **the budget** (``NORTHFLANK_REQUEST_BUDGET_PER_HOUR``): at most that many requests
  in the API's current window (from the first answer of a new window to its reset), or,
  where the API says nothing of its window, in any hour.

A request that may not be sent waits, in :meth:`Limits.admit`, for the reset (or for the
hour's oldest request to age out) and then goes on: a read larger than what is left is
late, not failed, and published whole. Each wait is logged once and counted
(:attr:`Limits.waited`, ``northflank_api_ratelimit_wait_seconds_total``); one longer
than ``max_wait`` (the figures' staleness bound) fails as ``rate_limited`` instead.

>>> import asyncio
>>> limits = Limits(reserve=100, budget=None, clock=lambda: 0.0, sleep=asyncio.sleep)
>>> limits.seen(101, 3600.0)
>>> limits.wait_needed(0.0) is None
True
>>> limits.seen(100, 3600.0)
>>> limits.wait_needed(0.0)[0]
3600.0
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from exporter.api.errors import RateLimitedError, RequestCapError

log = logging.getLogger("exporter.api")
HOUR = 3600.0
SAME_WINDOW = 2.0  # two reset times closer than this are one window's
_never_wait: ContextVar[bool] = ContextVar("northflank_never_wait", default=False)


class WouldWaitError(RateLimitedError):
    """Not sent: the request would have waited for the window, and its task never waits
    (:meth:`Limits.never_waiting`)."""


@contextmanager
def never_waiting() -> Iterator[None]:
    """Inside, a request that would wait for the window fails at once instead
    (:class:`WouldWaitError`), and holds up no other request: what background work
    (this month's breakdown) runs under, so that a poll's requests never queue behind it."""
    token = _never_wait.set(True)
    try:
        yield
    finally:
        _never_wait.reset(token)


class Limits:
    """The reserve and the budget, shared by every request of one client."""

    def __init__(
        self,
        *,
        reserve: int,
        budget: int | None,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.reserve = reserve
        self.budget = budget  # None: no budget of our own
        self.clock = clock
        self.sleep = sleep
        self.waited = 0.0  # seconds spent waiting, in all
        self.max_wait = float("inf")  # a longer wait fails the request as rate_limited
        self.on_wait: Callable[[float], object] = lambda seconds: None  # moves the poll's deadline
        self.cap: int | None = None  # at most this many requests in all (``check``: 10)
        self.admitted = 0  # requests let through, in all
        self.remaining: float | None = None  # the window's, as the answers said it
        self.reset_at: float | None = None  # monotonic time the window resets
        self._in_flight = 0
        self._sent: deque[float] = deque()  # send times in the current window (the budget)
        self._lock = asyncio.Lock()
        self._said = False  # the current wait was logged

    # ----------------------------------------------------------------- what the answers say

    def seen(self, remaining: float, reset_at: float | None) -> None:
        """An answer's ``x-ratelimit-remaining`` (the smallest of its window) and reset."""
        if (
            reset_at is not None
            and self.reset_at is not None
            and reset_at > self.reset_at + SAME_WINDOW
        ):
            self._sent.clear()  # a new window: the budget counts afresh
        self.remaining, self.reset_at = remaining, reset_at

    # ----------------------------------------------------------------- the gate

    def wait_needed(self, now: float) -> tuple[float, str] | None:
        """How long the next request must wait, and why; None: it may go now."""
        if self.reset_at is not None and now >= self.reset_at:
            self.remaining = self.reset_at = None  # the window reset: unknown until an answer
            self._sent.clear()
        left = None if self.remaining is None else self.remaining - self._in_flight
        if left is not None and self.reset_at is not None and left <= self.reserve:
            return self.reset_at - now, (
                f"{self.remaining:.0f} requests left in the API's window"
                f"{f' ({self._in_flight} in flight)' if self._in_flight else ''}, at or below "
                f"the reserve of {self.reserve} (NORTHFLANK_RATELIMIT_RESERVE)"
            )
        if self.budget is not None:
            while self._sent and self._sent[0] <= now - HOUR:
                self._sent.popleft()
            if len(self._sent) >= self.budget:
                ends = self._sent[0] + HOUR
                if self.reset_at is not None:
                    ends = min(ends, self.reset_at)
                return ends - now, (
                    f"{len(self._sent)} requests sent in this window, the budget of "
                    f"{self.budget} (NORTHFLANK_REQUEST_BUDGET_PER_HOUR)"
                )
        return None

    def headroom(self, now: float) -> float:
        """Requests that may be sent now without any waiting (``inf``: no limit known)."""
        if self.wait_needed(now) is not None:
            return 0.0
        room = math.inf
        if self.remaining is not None and self.reset_at is not None:
            room = self.remaining - self._in_flight - self.reserve
        if self.budget is not None:
            room = min(room, self.budget - len(self._sent))
        return max(0.0, room)

    async def admit(self, endpoint: str) -> None:
        """Wait until one more request may be sent, then count it as in flight."""
        if _never_wait.get() and (need := self.wait_needed(self.clock())) is not None:
            raise WouldWaitError(endpoint, f"not sent now: {need[1]}", 429)
        async with self._lock:  # one request waits; the others queue behind it
            if self.cap is not None and self.admitted >= self.cap:
                raise RequestCapError(endpoint, f"not sent: the {self.cap} requests are spent")
            while (need := self.wait_needed(self.clock())) is not None:
                wait, why = need
                if _never_wait.get():
                    raise WouldWaitError(endpoint, f"not sent now: {why}", 429)
                if wait > self.max_wait:
                    raise RateLimitedError(
                        endpoint,
                        f"{why}: the wait, {wait:.0f} s, is longer than the figures may be "
                        "served (NORTHFLANK_MAX_STALENESS_SECONDS); not sending",
                        429,
                    )
                if not self._said:
                    log.warning(
                        "waiting %.0f s for the rate-limit window: %s",
                        wait,
                        why,
                        extra={"fields": {"wait_seconds": round(wait, 1)}},
                    )
                    self._said = True
                self.on_wait(wait)
                started = self.clock()
                await self.sleep(wait)
                self.waited += self.clock() - started
            self._said = False
            self._in_flight += 1
            self.admitted += 1
            if self.budget is not None:
                self._sent.append(self.clock())

    def done(self) -> None:
        """A request admitted has its answer (or none will come)."""
        self._in_flight -= 1
