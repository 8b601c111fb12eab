"""Virtual time for in-process tests: an event loop whose clock jumps, and the simulated
API answering through ``httpx.MockTransport`` on that clock.

Hours of polling run in a fraction of a second, and every time a test asserts is exact:
nothing sleeps for real and nothing depends on the machine's speed.

    loop = VirtualTimeLoop()
    api = FakeApi(generate_organisation(), loop, latency=0.5)
    client = Client("http://api.test", api.token, transport=api.transport(), clock=loop.time)
    poller = Poller(client, settings, publish, clock=loop.time, wall_clock=api.wall_clock)
"""

from __future__ import annotations

import asyncio
import email.utils
import selectors
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from exporter.simulator import Api, ApiError, ApiMode, Organisation
from exporter.simulator.api import route
from exporter.simulator.contract import check_modes
from exporter.simulator.tokens import caller_of

T = TypeVar("T")
Fault = Callable[["Sent"], "httpx.Response | Awaitable[httpx.Response] | None"]


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps ahead whenever nothing is ready: hours in seconds."""

    def __init__(self) -> None:
        self.now = 0.0
        loop = self

        class Selector(selectors.DefaultSelector):
            def select(self, timeout: float | None = None) -> Any:
                events = super().select(0)
                if not events and timeout:
                    loop.now += timeout
                return events

        super().__init__(Selector())

    def time(self) -> float:
        return self.now

    def run(self, main: Coroutine[Any, Any, T]) -> T:
        """Run ``main`` to the end, then close the loop."""
        try:
            return self.run_until_complete(main)
        finally:
            self.close()


@dataclass(frozen=True)
class Sent:
    """One request the fake API saw: when (loop time), what."""

    time: float
    path: str
    query: dict[str, str]


class FakeApi:
    """The simulator's endpoints (:func:`exporter.simulator.api.route`) over ``org``,
    answered in process on ``loop``'s clock.

    ``latency``: virtual seconds each answer takes. ``start``: the Unix time at loop time
    0 (what the usage endpoints see as now: ``wall_clock()``). ``rate_limit``: requests
    per ``rate_window`` seconds, sent as ``x-ratelimit-remaining`` / ``x-ratelimit-reset``
    on every answer (429 once spent). ``fault``: called with each request first; a
    response it returns (or awaits to) is the answer instead. Every answer has a
    ``Date`` header from ``wall_clock()``.

    As :class:`~exporter.simulator.Simulator`: ``contract`` (``legacy``, ``current``,
    ``legacy-pinned``) and ``endpoint_contracts``, ``single_team`` (the token is that
    team's), ``team_read``, ``granularity_total``, ``running_hour``, ``usage_history``
    and ``page_size``.
    """

    token = "virtual-token"

    def __init__(
        self,
        org: Organisation,
        loop: VirtualTimeLoop,
        *,
        latency: float = 0.0,
        start: float | None = None,
        rate_limit: int | None = None,
        rate_window: float = 3600.0,
        fault: Fault | None = None,
        contract: str = "legacy",
        endpoint_contracts: Mapping[str, str] | None = None,
        single_team: str | None = None,
        team_read: bool = True,
        granularity_total: bool = True,
        running_hour: bool = True,
        usage_history: bool = False,
        page_size: int = 50,
    ) -> None:
        check_modes(contract, endpoint_contracts or {})
        self.mode = ApiMode(
            page_size=page_size,
            running_hour=running_hour,
            usage_history=usage_history,
            contract=contract,
            endpoint_contracts=dict(endpoint_contracts or {}),
            single_team=single_team,
            granularity_total=granularity_total,
        )
        entity = ("org", "virtual-org") if single_team is None else ("team", single_team)
        self.caller = caller_of(entity, team_read=team_read)
        self.org = org
        self.loop = loop
        self.latency = latency
        self.start = org.newest_invoice().period_end + 2.5 * 3600 if start is None else start
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.fault = fault
        self.sent: list[Sent] = []
        self._window_start: float | None = None
        self._window_used = 0

    def wall_clock(self) -> float:
        return self.start + self.loop.time()

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def times(self, path: str) -> list[float]:
        """When requests to ``path`` arrived."""
        return [sent.time for sent in self.sent if sent.path == path]

    def billing(self) -> list[Sent]:
        """The requests but the token checks (``GET /v1/auth``)."""
        return [sent for sent in self.sent if sent.path != "/v1/auth"]

    async def handle(self, request: httpx.Request) -> httpx.Response:
        sent = Sent(self.loop.time(), request.url.path, dict(request.url.params))
        self.sent.append(sent)
        allowed = self._spend()  # counted as it arrives, described as it is answered
        if self.latency:
            await asyncio.sleep(self.latency)
        if not allowed:
            response = httpx.Response(429, json={"error": {"message": "Rate limit exceeded"}})
        else:
            faulted = self.fault(sent) if self.fault is not None else None
            if faulted is None:
                response = self._answer(sent)
            elif isinstance(faulted, httpx.Response):
                response = faulted
            else:
                response = await faulted
        response.headers.update(self._window_headers())
        response.headers["Date"] = email.utils.formatdate(self.wall_clock(), usegmt=True)
        return response

    def _spend(self) -> bool:
        """Count a request in the rate-limit window; False when the window is spent."""
        if self.rate_limit is None:
            return True
        now = self.loop.time()
        if self._window_start is None or now >= self._window_start + self.rate_window:
            self._window_start, self._window_used = now, 0
        self._window_used += 1
        return self._window_used <= self.rate_limit

    def _window_headers(self) -> dict[str, str]:
        if self.rate_limit is None or self._window_start is None:
            return {}
        remaining = max(0, self.rate_limit - self._window_used)
        reset = self._window_start + self.rate_window - self.loop.time()
        return {"x-ratelimit-remaining": str(remaining), "x-ratelimit-reset": f"{reset:.3f}"}

    def _answer(self, sent: Sent) -> httpx.Response:
        try:
            handler, params = route(sent.path)
            api = Api(self.org, self.mode, self.caller, self.wall_clock())
            with self.org.lock:
                data, pagination = handler(api, params, sent.query, sent.path)
        except ApiError as error:
            return httpx.Response(error.status, json={"error": {"message": error.message}})
        document: dict[str, Any] = {"data": data}
        if pagination is not None:
            document["pagination"] = pagination
        return httpx.Response(200, json=document)


def virtual_client(api: FakeApi, settings: Any) -> Any:
    """The real :class:`~exporter.api.client.Client` on ``api`` and its loop's clock, with
    ``settings``' reserve and budget (jitter seeded: runs repeat exactly)."""
    import random

    from exporter.api.client import Client

    return Client(
        "http://api.test", api.token, transport=api.transport(), clock=api.loop.time,
        wall_clock=api.wall_clock, rng=random.Random(7), reserve=settings.ratelimit_reserve,
        budget=settings.request_budget_per_hour,
    )  # fmt: skip
