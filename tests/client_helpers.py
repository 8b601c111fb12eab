"""What the client's tests share: a fake clock, a client (and the billing endpoints over
it) run on httpx.MockTransport, and canned answers (``ok``, ``error``, ``sequence``)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import httpx

from exporter.api.billing import Billing
from exporter.api.client import Client
from exporter.api.contract import Contracts

INVOICE = {"id": "inv-1", "currency": "usd", "paasUsage": {"teams": []}}  # legacy
CURRENT_INVOICE = {"id": "inv-1", "currency": "usd", "status": "open", "paas": {"teams": []}}
Handler = Callable[[httpx.Request], httpx.Response]


class FakeTime:
    """A clock that only moves when the client sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def run_client(handler: Handler, call: Callable[[Billing], Any], **kwargs: Any) -> Any:
    """``call(billing)`` on a client of ``handler``; (its result, the client).

    ``contracts``: what the endpoints ask for and accept (default: auto, auto)."""
    fake = kwargs.pop("fake", FakeTime())
    contracts = kwargs.pop("contracts", None) or Contracts()

    async def go() -> Any:
        client = Client(
            "http://api.test",
            "secret-token",
            transport=httpx.MockTransport(handler),
            sleep=fake.sleep,
            clock=fake.clock,
            rng=random.Random(7),
            **kwargs,
        )
        async with client:
            result = await call(Billing(client, contracts))
            return result, client

    return asyncio.run(go())


def ok(data: dict[str, Any], headers: dict[str, str] | None = None, **extra: Any) -> httpx.Response:
    return httpx.Response(200, json={"data": data, **extra}, headers=headers)


def error(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"error": {"status": status, "message": f"status {status}", "id": "x"}}
    return httpx.Response(status, json=body, headers=headers)


def sequence(*responses: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item

    return handler, seen


def get_invoice(billing: Billing) -> Any:
    return billing.invoice("inv-1")
