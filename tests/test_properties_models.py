"""Property-based: the readers and the billing endpoints on arbitrary JSON.

Hypothesis feeds each contract's reader any JSON shape and value, and the endpoints any
200 body (pages of it, when it says there are more): each answers a model or fails
cleanly (a reader's ``Bad``, an endpoint's ``invalid_response``); it never crashes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from hypothesis import example, given, settings
from hypothesis import strategies as st

from exporter.api import current, legacy, model
from exporter.api.billing import Billing
from exporter.api.contract import Contracts
from exporter.api.errors import InvalidResponseError
from exporter.api.read import Bad
from tests.property_strategies import FAST, json_values
from tests.property_worlds import DEEP_NESTING, HUGE_INTEGER, UNHASHABLE_ID, bodies, make_client

# --------------------------------------------------------------------------- readers, any JSON

READERS: dict[str, Callable[[Any], Any]] = {
    f"{dialect.contract}-{kind}": reader
    for dialect in (legacy.DIALECT, current.DIALECT)
    for kind, reader in (
        ("invoice", lambda data, d=dialect: d.invoice(data, d.scale)),
        ("entry", lambda data, d=dialect: d.entry(data, d.scale)),
        ("usage", lambda data, d=dialect: d.usage_entry(data, d.scale)),
    )
} | {"credit": current.credit}


@given(reader=st.sampled_from(sorted(READERS)), data=json_values())
@settings(max_examples=300, **FAST)
def test_readers_take_any_json_object_or_refuse_it_cleanly(reader: str, data: Any) -> None:
    if not isinstance(data, dict):
        data = {"value": data}
    try:
        read = READERS[reader](data)
    except Bad:
        return  # refused, saying where (tests/test_contracts.py checks the words)
    assert type(read).__module__ == model.__name__


ENDPOINTS = {
    "get_invoice": (lambda b: b.invoice("inv-1"), model.Invoice),
    "list_invoices": (lambda b: b.invoices(), model.InvoiceList),
    "list_usage": (lambda b: b.usage(0), model.Usage),
    "list_usage_total": (lambda b: b.usage(0, end=7200, total=True), model.Usage),
    "credit_balance": (lambda b: b.credit(), model.Credit),
}


@given(
    endpoint=st.sampled_from(sorted(ENDPOINTS)),
    pages=st.lists(bodies, min_size=1, max_size=3),
    mode=st.sampled_from(["auto", "current", "legacy"]),
)
@example(endpoint="get_invoice", pages=[HUGE_INTEGER], mode="auto")
@example(endpoint="get_invoice", pages=[DEEP_NESTING], mode="auto")
@example(endpoint="get_invoice", pages=list(UNHASHABLE_ID), mode="auto")
@settings(max_examples=200, **FAST)
def test_endpoints_answer_a_model_or_invalid_response(
    endpoint: str, pages: list[bytes], mode: Any
) -> None:
    """Any 200 body (pages of it, when it says there are more): a model or invalid_response."""
    call, kind = ENDPOINTS[endpoint]
    served = iter(pages)

    def handler(request: httpx.Request) -> httpx.Response:
        body = next(served, b'{"data": {}}')
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    async def go() -> Any:
        async with make_client(handler) as client:
            return await call(Billing(client, Contracts(mode=mode)))

    try:
        result = asyncio.run(go())
    except InvalidResponseError:
        return
    assert isinstance(result, kind)
