"""This month's breakdown caught up in virtual time: the real Poller (and its catch-up),
Client and readers in process, the simulator behind ``httpx.MockTransport`` on a clock
that jumps (tests/virtual.py). Days of polling run in seconds, and every figure is exact.

Used by tests/test_month.py (a mid-month window caught up with the default settings) and
by the benchmark (benchmarks/catchup.py: the requests and time of a 360-hour catch-up).

    run = catch_up(generate_organisation(10, 50), "current", "project", hours=360)
    run.caught_up_after, run.catchup_requests, run.steady_per_hour
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import httpx

from exporter.month import Month, due
from exporter.poller import Outcome, Poller
from exporter.settings import Settings
from exporter.simulator import HOUR, Organisation
from tests.virtual import FakeApi, Sent, VirtualTimeLoop, virtual_client

HOUR_READ = re.compile(r"/v1/(?:teams/[^/]+/)?billing/usage/(\d+)")
FILTERS = ("teamId", "projectId", "resourceType")


@dataclass
class CatchupRun:
    """What a run saw: the API's requests, the polls, the breakdown at the end."""

    api: FakeApi
    hours: int  # settled hours of the window when it caught up
    caught_up_after: float | None = None  # virtual seconds from the start; None: never
    catchup_requests: int = 0  # the breakdown's requests until it caught up
    steady_requests: int = 0  # the breakdown's requests in ``after`` seconds since
    after: float = 0.0
    poll_starts: list[float] = field(default_factory=list)  # virtual seconds
    poll_requests: int = 0  # the polls' requests in all
    failed_polls: int = 0
    lowest_remaining: int | None = None  # x-ratelimit-remaining, the lowest answered
    refused: int = 0  # answers 429
    month: Month | None = None

    @property
    def steady_per_hour(self) -> float:
        return self.steady_requests / (self.after / HOUR) if self.after else 0.0

    def hour_reads(self) -> collections.Counter[tuple[int, tuple[tuple[str, str], ...]]]:
        """How often each hour was asked with each filter."""
        counts: collections.Counter[tuple[int, tuple[tuple[str, str], ...]]] = collections.Counter()
        for sent in self.api.sent:
            found = HOUR_READ.fullmatch(sent.path)
            if found:
                filters = tuple(sorted((k, v) for k, v in sent.query.items() if k in FILTERS))
                counts[(int(found.group(1)), filters)] += 1
        return counts


def catch_up(
    org: Organisation,
    contract: str,
    depth: str,
    *,
    hours: float,
    after: float = 3 * HOUR,
    rate_limit: int = 1000,
    latency: float = 0.05,
    give_up: float = 14 * 24 * HOUR,
    **settings: Any,
) -> CatchupRun:
    """Start ``hours`` after the newest invoice's end, with the default settings but
    ``settings`` and ``NORTHFLANK_UNBILLED_DEPTH=depth``; poll until the breakdown has
    caught up and ``after`` seconds more (or ``give_up``)."""
    loop = VirtualTimeLoop()
    since = org.newest_invoice().period_end
    api = FakeApi(
        org, loop, latency=latency, start=since + hours * HOUR, rate_limit=rate_limit,
        contract=contract, running_hour=False,
    )  # fmt: skip
    run = CatchupRun(api=api, hours=0, after=after)

    def watch(sent: Sent) -> httpx.Response | None:
        if api.rate_limit is not None:
            remaining = max(0, api.rate_limit - api._window_used)
            if api._window_used > api.rate_limit:
                run.refused += 1
            elif run.lowest_remaining is None or remaining < run.lowest_remaining:
                run.lowest_remaining = remaining
        if sent.path == "/v1/billing/invoices" and "cursor" not in sent.query:
            run.poll_starts.append(sent.time)
        return None

    api.fault = watch
    config = Settings(api_token=api.token, unbilled_depth=depth, **settings)

    def publish(outcome: Outcome) -> int:
        return 0

    async def main() -> None:
        client = virtual_client(api, config)
        poller = Poller(client, config, publish, clock=loop.time, wall_clock=api.wall_clock)
        catchup = poller.catchup
        assert catchup is not None
        stop = asyncio.Event()
        original = poller.poll

        async def poll() -> bool:
            ok = await original()
            run.failed_polls += not ok
            return ok

        poller.poll = poll  # type: ignore[method-assign]

        async def watcher() -> None:
            while loop.time() < give_up:
                await asyncio.sleep(60)
                month = catchup.month
                if month is None or due(month, api.wall_clock()):
                    continue
                if run.caught_up_after is None:
                    run.caught_up_after = loop.time()
                    run.catchup_requests = catchup.requests
                    run.hours = month.hours
                if loop.time() >= run.caught_up_after + after:
                    run.steady_requests = catchup.requests - run.catchup_requests
                    break
            run.month = catchup.month
            stop.set()

        task = asyncio.create_task(watcher())
        await poller.run(stop)
        await task
        run.poll_requests = len(api.billing()) - catchup.requests
        await client.aclose()

    quiet = logging.getLogger("exporter")
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        loop.run(main())
    finally:
        quiet.setLevel(level)
    return run
