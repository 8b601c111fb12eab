"""What the client's tests share: a fake clock, a client run on httpx.MockTransport, and
canned answers (``ok``, ``error``, ``sequence``)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import httpx

from exporter.client import Client

INVOICE = {"id": "inv-1", "currency": "usd", "paasUsage": {"teams": []}}
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


def run_client(handler: Handler, call: Callable[[Client], Any], **kwargs: Any) -> Any:
    fake = kwargs.pop("fake", FakeTime())

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
            result = await call(client)
            return result, client

    return asyncio.run(go())


def ok(data: dict[str, Any], **extra: Any) -> httpx.Response:
    return httpx.Response(200, json={"data": data, **extra})


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


def get_invoice(client: Client) -> Any:
    return client.get_invoice("inv-1")
