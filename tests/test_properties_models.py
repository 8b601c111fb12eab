"""Property-based: the models and the client on arbitrary JSON.

Hypothesis feeds the models any JSON shape and value, and the client any 200 body (pages
of it, when it says there are more): each answers a model or fails cleanly as
``invalid_response``; it never crashes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from hypothesis import example, given, settings
from hypothesis import strategies as st

from exporter import models
from exporter.client import _parse
from exporter.errors import InvalidResponseError
from tests.property_strategies import FAST, json_values
from tests.property_worlds import DEEP_NESTING, HUGE_INTEGER, UNHASHABLE_ID, bodies, make_client

# --------------------------------------------------------------------------- models, any JSON


@given(
    model=st.sampled_from([models.Invoice, models.InvoiceList, models.UsageList]),
    data=json_values(),
)
@settings(max_examples=200, **FAST)
def test_models_take_any_json_or_refuse_it_cleanly(model: type[Any], data: Any) -> None:
    try:
        parsed = _parse(model, data, "test")
    except InvalidResponseError:
        return
    assert isinstance(parsed, model)


ENDPOINTS = {
    "get_invoice": (lambda c: c.get_invoice("inv-1"), models.Invoice),
    "list_invoices": (lambda c: c.list_invoices(), list),
    "list_usage": (lambda c: c.list_usage(0), list),
}


@given(endpoint=st.sampled_from(sorted(ENDPOINTS)), pages=st.lists(bodies, min_size=1, max_size=3))
@example(endpoint="get_invoice", pages=[HUGE_INTEGER])
@example(endpoint="get_invoice", pages=[DEEP_NESTING])
@example(endpoint="get_invoice", pages=list(UNHASHABLE_ID))
@settings(max_examples=150, **FAST)
def test_client_answers_a_model_or_invalid_response(endpoint: str, pages: list[bytes]) -> None:
    """Any 200 body (pages of it, when it says there are more): a model or invalid_response."""
    call, kind = ENDPOINTS[endpoint]
    served = iter(pages)

    def handler(request: httpx.Request) -> httpx.Response:
        body = next(served, b'{"data": {}}')
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    async def go() -> Any:
        async with make_client(handler) as client:
            return await call(client)

    try:
        result = asyncio.run(go())
    except InvalidResponseError:
        return
    assert isinstance(result, kind)
