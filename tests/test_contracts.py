"""The two billing contracts at the API's edge: the classifier, both readers and the
amount unit, through the billing endpoints on httpx.MockTransport.

An answer is read in the contract its keys say, into one model in major units: a
current amount is never divided by 100, a legacy one always is (exactly: 1234.5 cents is
12.345), and an answer in neither or both contracts fails naming its keys, never a value.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from exporter.api.contract import Contracts, classify, classify_entries
from exporter.api.errors import InvalidResponseError
from exporter.api.model import CURRENT, LEGACY, Price
from tests.client_helpers import ok, run_client
from tests.contracts import to_current
from tests.property_strategies import FAST

SECRET = "Acme Secret Project 7"  # a value that must never reach an error message

LEGACY_INVOICE = {
    "id": "inv-1",
    "period": {"start": 1759276800, "end": 1761955200},
    "currency": "usd",
    "byocUsage": {"price": {"total": 5000, "vcpu": 3000, "gpuMemory": 2000}},
    "paasUsage": {
        "price": {"total": 1234.5, "cpu": 1000, "memory": 234.5},
        "teams": [
            {
                "id": "t1",
                "name": "One",
                "price": {"total": 1234.5, "cpu": 1000, "memory": 234.5},
                "projects": [
                    {
                        "id": "p1",
                        "name": "Web",
                        "price": {"total": 1234.5},
                        "resourceTypes": [
                            {
                                "resourceType": "service",
                                "price": {"total": 1234.5},
                                "resources": [{"id": "r1", "price": {"total": 0.25}}],
                            }
                        ],
                    }
                ],
            }
        ],
    },
    "lineItems": [{"title": "PaaS usage", "total": 1234.5, "base": 1234.5, "proration": 0}],
    "subTotal": 6234.5,
    "discounts": {"total": 34.5},
    "tax": {"percent": 20, "amount": 1240},
    "total": 7440,
    "paid": True,
}


# --------------------------------------------------------------------------- the classifier


@pytest.mark.parametrize(
    ("data", "contract"),
    [
        ({"paas": {}}, CURRENT),
        ({"byoc": {}}, CURRENT),
        ({"status": "open"}, CURRENT),
        ({"status": "paid", "paid": True}, CURRENT),  # status rules over paid
        ({"paasUsage": {}}, LEGACY),
        ({"byocUsage": {}}, LEGACY),
        ({"paid": False}, LEGACY),
    ],
)
def test_an_answer_is_classified_by_its_keys(data: dict[str, Any], contract: str) -> None:
    assert classify("get_invoice", {"id": "i", **data}) == contract


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"id": "i", "name": SECRET, "currency": "usd"},
            "get_invoice: an answer in neither billing contract (keys of data: currency, id, name)",
        ),
        (
            {"id": "i", "name": SECRET, "paas": {}, "paasUsage": {}},
            "get_invoice: an answer in both billing contracts (keys of data: id, name, paas, "
            "paasUsage)",
        ),
    ],
    ids=["neither", "both"],
)
def test_neither_or_both_fails_naming_the_keys_not_the_values(
    data: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidResponseError) as caught:
        classify("get_invoice", data)
    assert str(caught.value) == message
    assert SECRET not in str(caught.value)


def test_a_list_in_two_contracts_fails() -> None:
    entries: list[object] = [{"id": "a", "paid": True}, {"id": "b", "status": "paid"}]
    with pytest.raises(InvalidResponseError, match=r"data.invoices\[1\] is current"):
        classify_entries("list_invoices", entries, "invoices")
    assert classify_entries("list_invoices", [], "invoices") is None


def test_an_answer_in_neither_contract_fails_through_the_endpoint() -> None:
    body = {"id": "inv-1", "name": SECRET, "teams": [{"id": "t", "name": SECRET}]}
    with pytest.raises(InvalidResponseError) as caught:
        run_client(lambda request: ok(body), lambda b: b.invoice("inv-1"))
    assert "get_invoice: an answer in neither billing contract (keys of data: id, name, teams)" in (
        str(caught.value)
    )
    assert SECRET not in str(caught.value)


# --------------------------------------------------------------------------- the readers


def read_invoice(doc: dict[str, Any], contracts: Contracts | None = None) -> Any:
    invoice, _ = run_client(
        lambda request: ok(doc), lambda b: b.invoice("inv-1"), contracts=contracts
    )
    return invoice


def test_both_readers_give_one_model() -> None:
    legacy = read_invoice(LEGACY_INVOICE)
    current = read_invoice(to_current(LEGACY_INVOICE))
    assert (legacy.contract, current.contract) == (LEGACY, CURRENT)
    assert (legacy.status, current.status) == (None, "paid")
    assert legacy.paid is current.paid is True
    same = ("status", "contract")
    for name in type(legacy).__slots__:
        if name not in same:
            assert getattr(legacy, name) == getattr(current, name), name
    assert legacy.paas == Price(12.345, (("cpu", 10.0), ("memory", 2.345)))
    assert legacy.byoc == Price(50.0, (("vcpu", 30.0), ("gpu_memory", 20.0)))
    resource = legacy.teams[0].projects[0].resource_types[0].resources[0]
    assert resource.price.total == 0.0025  # a quarter of a cent
    assert (legacy.total, legacy.tax_percent, legacy.discount) == (74.4, 20, 0.345)


def test_a_current_amount_is_never_divided_by_100() -> None:
    doc = {"id": "inv-1", "status": "open", "total": 69.22, "paas": {"price": {"total": 69.22}}}
    invoice = read_invoice(doc)
    assert (invoice.total, invoice.paas.total, invoice.paid) == (69.22, 69.22, False)


@pytest.mark.parametrize(
    ("unit", "doc", "total"),
    [
        ("cents", {"id": "i", "status": "open", "total": 6922}, 69.22),
        ("major", {"id": "i", "paid": True, "total": 69.22}, 69.22),
        ("auto", {"id": "i", "paid": True, "total": 6922}, 69.22),
        ("auto", {"id": "i", "status": "open", "total": 69.22}, 69.22),
    ],
)
def test_the_amount_unit_setting_forces_one_unit(
    unit: Any, doc: dict[str, Any], total: float
) -> None:
    assert read_invoice(doc, Contracts(unit=unit)).total == total


def test_a_single_teams_answer_starts_at_its_projects() -> None:
    doc = {"id": "i", "status": "open", "paas": {"price": {"total": 5}, "projects": [{"id": "p"}]}}
    invoice = read_invoice(doc)
    assert invoice.teams is None
    assert [p.id for p in invoice.projects] == ["p"]


def test_a_reader_names_where_an_answer_is_wrong() -> None:
    doc = to_current(LEGACY_INVOICE)
    doc["paas"]["teams"][0]["projects"][0]["resourceTypes"][0]["resources"][0]["price"] = {
        "total": "lots"
    }
    with pytest.raises(InvalidResponseError) as caught:
        read_invoice(doc)
    assert str(caught.value) == (
        "get_invoice: unexpected answer at paas.teams[0].projects[0].resourceTypes[0]"
        ".resources[0].price.total: expected a number, got str"
    )


@given(
    amount=st.decimals(
        min_value=Decimal("-1e9"), max_value=Decimal("1e9"), places=6, allow_nan=False
    ).filter(lambda d: len(d.normalize().as_tuple().digits) <= 15)
)
@example(amount=Decimal("12.345"))
@example(amount=Decimal("0.07"))
@example(amount=Decimal("0.000001"))
@example(amount=Decimal("-0.005"))
@settings(max_examples=200, **FAST)
def test_a_current_amount_and_the_same_legacy_amount_in_cents_give_one_figure(
    amount: Decimal,
) -> None:
    """Written as JSON text, as the API would: ``12.345`` major, ``1234.5`` cents."""
    current_text = f'{{"data": {{"id": "i", "status": "open", "total": {amount}}}}}'
    legacy_text = f'{{"data": {{"id": "i", "paid": false, "total": {amount * 100}}}}}'

    def read(text: str) -> float:
        def handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, text=text, headers={"content-type": "application/json"})

        invoice, _ = run_client(handler, lambda b: b.invoice("i"))
        return float(invoice.total)

    assert read(current_text) == read(legacy_text) == float(amount)


# --------------------------------------------------------------------------- usage totals


def read_usage(entries: list[dict[str, Any]]) -> Any:
    usage, _ = run_client(
        lambda request: ok({"usage": entries}), lambda b: b.usage(0, end=7200, total=True)
    )
    return usage


def test_a_total_answer_is_one_entry_for_the_window() -> None:
    usage = read_usage([{"timestamp": 0, "paas": {"price": {"total": 12.5}}, "byoc": None}])
    assert usage.total
    assert usage.entries[0].paas == Price(12.5)


def test_hours_answered_to_a_total_request_are_hours() -> None:
    """A legacy server ignores granularity: its hours are read as hours, in cents."""
    hours = [{"timestamp": 3600 * i, "paasUsage": {"price": {"total": 250}}} for i in (1, 0)]
    usage = read_usage(hours)
    assert not usage.total
    assert [e.paas.total for e in usage.entries] == [2.5, 2.5]


def test_a_total_of_several_entries_is_invalid() -> None:
    hours = [{"timestamp": 3600 * i, "paas": {"price": {"total": 1}}} for i in (1, 0)]
    with pytest.raises(InvalidResponseError, match="granularity=total answered with 2 entries"):
        read_usage(hours)
