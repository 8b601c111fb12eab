"""The reserve and the request budget (exporter.api.limits), in virtual time: when a
request may go, how long it waits, that it says so once and counts the seconds, and
that a burst of concurrent requests does not cross the reserve."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from exporter.api.errors import RateLimitedError
from exporter.api.limits import Limits
from tests.client_helpers import FakeTime, ok, run_client


def limits(fake: FakeTime, *, reserve: int = 0, budget: int | None = None) -> Limits:
    return Limits(reserve=reserve, budget=budget, clock=fake.clock, sleep=fake.sleep)


def test_the_budget_waits_when_the_hour_is_spent_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeTime()
    gate = limits(fake, budget=5)

    async def go() -> None:
        for _ in range(3):
            await gate.admit("get_invoice")
            gate.done()
            fake.now += 10
        for _ in range(2):
            await gate.admit("get_invoice")  # 5 in the hour: still no wait
            gate.done()
        assert fake.sleeps == []
        await gate.admit("get_invoice")  # the 6th waits until the first is an hour old
        assert fake.sleeps == [pytest.approx(3600 - 30)]
        await gate.admit("get_invoice")  # the 7th until the second is
        assert fake.sleeps[1] == pytest.approx(10)

    with caplog.at_level(logging.WARNING, "exporter.api"):
        asyncio.run(go())
    assert gate.waited == pytest.approx(3580)
    said = [r.getMessage() for r in caplog.records]
    assert said[0] == (
        "waiting 3570 s for the rate-limit window: 5 requests sent in this window, "
        "the budget of 5 (NORTHFLANK_REQUEST_BUDGET_PER_HOUR)"
    )


def test_the_budget_counts_afresh_in_a_new_window_of_the_api() -> None:
    fake = FakeTime()
    gate = limits(fake, budget=2)

    async def go() -> None:
        gate.seen(900, fake.now + 60)  # the API's window resets in a minute
        for _ in range(2):
            await gate.admit("x")
            gate.done()
        await gate.admit("x")  # the budget is spent: wait for the API's reset, not an hour
        assert fake.sleeps == [pytest.approx(60)]

    asyncio.run(go())


def test_no_request_at_or_below_the_reserve_counting_those_in_flight() -> None:
    fake = FakeTime()
    gate = limits(fake, reserve=100)

    async def go() -> list[float]:
        gate.seen(104, fake.now + 30)
        for _ in range(3):  # 104 - 3 in flight = 101: each may go
            await gate.admit("x")
        assert fake.sleeps == []
        await gate.admit("x")  # 104 - 3 = 101 > 100: a fourth goes, leaving 100
        assert fake.sleeps == []
        await gate.admit("x")  # 104 - 4 = 100: at the reserve, it waits for the reset
        return fake.sleeps

    assert asyncio.run(go()) == [pytest.approx(30)]
    assert gate.waited == pytest.approx(30)


def test_a_wait_longer_than_the_figures_may_be_served_fails() -> None:
    fake = FakeTime()
    gate = limits(fake, reserve=10)
    gate.max_wait = 600
    gate.seen(5, fake.now + 3000)
    with pytest.raises(RateLimitedError, match="the wait, 3000 s, is longer than"):
        asyncio.run(gate.admit("get_invoice"))
    assert fake.sleeps == []


def test_a_burst_of_eight_concurrent_requests_stops_at_the_reserve() -> None:
    """The client at concurrency 8 against an API with 120 left in its window and a
    reserve of 100: exactly 20 requests go, the rest wait for the reset, and the API's
    count never goes below the reserve."""
    fake = FakeTime()
    reset_in = 50.0
    resets = fake.now + reset_in
    state = {"left": 120, "least": 120, "sent_in_window": 0}

    async def handler(request: httpx.Request) -> httpx.Response:
        if fake.now >= resets and state["left"] < 1000:  # the window reset
            state["left"] = 1000
        else:
            state["sent_in_window"] += 1
        state["left"] -= 1  # counted as it arrives
        if fake.now < resets:
            state["least"] = min(state["least"], state["left"])
        for _ in range(5):  # ... and answered a moment later: the others are in flight
            await asyncio.sleep(0)
        reset = resets - fake.now if fake.now < resets else 3600
        headers = {"x-ratelimit-remaining": str(state["left"]), "x-ratelimit-reset": str(reset)}
        return ok({"id": "i", "paid": True}, headers=headers)

    async def burst(billing: object) -> None:
        async def one() -> None:
            await billing.client.get("get_invoice", "/v1/billing/invoices/i", {})  # type: ignore[attr-defined]

        await billing.client.get("get_invoice", "/v1/billing/invoices/i", {})  # type: ignore[attr-defined]
        await asyncio.gather(*(one() for _ in range(30)))

    _, client = run_client(handler, burst, fake=fake, reserve=100, max_concurrency=8)
    assert state["least"] == 100  # never below the reserve
    assert state["sent_in_window"] == 20
    assert fake.sleeps[0] == pytest.approx(reset_in)
    assert client.limits.waited == pytest.approx(reset_in)
