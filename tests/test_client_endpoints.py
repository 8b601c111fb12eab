"""The client's other endpoints on httpx.MockTransport: the older billing API named as
such, token info and its expiry, the usage window in whole seconds, the breakdown filter,
and which of several invoices ending together is the newest."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.errors import InvalidResponseError
from tests.client_helpers import INVOICE, ok, run_client, sequence


def test_the_older_billing_api_is_named_not_a_validation_trace() -> None:
    """The JS client 0.9.5's invoice list: no ``id``, no ``currency``."""
    old = {"invoices": [{"period": {"start": 1, "end": 2}, "total": 500, "paid": True}]}
    handler, seen = sequence(ok(old, pagination={"hasNextPage": True, "cursor": "n"}))
    with pytest.raises(InvalidResponseError) as caught:
        run_client(handler, lambda c: c.list_invoices())
    message = str(caught.value)
    assert "older billing API" in message
    assert "validation" not in message.lower()
    assert "Field required" not in message
    assert len(seen) == 1  # found on the first page: no further page is read


@pytest.mark.parametrize(
    ("expires", "expected"),
    [
        ("2027-01-01T00:00:00.000Z", 1798761600.0),
        ("2027-01-01T00:00:00.5+00:00", 1798761600.5),
        (1798761600.25, 1798761600.25),
        (1798761600250, 1798761600.25),  # milliseconds
        (None, None),
    ],
)
def test_token_info(expires: Any, expected: float | None) -> None:
    data: dict[str, Any] = {"entityType": "org", "entityId": "acme", "permissions": []}
    if expires is not None:
        data["expiresAt"] = expires
    handler, seen = sequence(ok(data))
    info, client = run_client(handler, lambda c: c.token_info())
    assert seen[0].url.path == "/v1/auth"
    assert (info.entity_type, info.entity_id, info.expires_at) == ("org", "acme", expected)
    assert client.stats.requests == {("auth", "200"): 1}


def test_token_expiry_without_a_time_zone_is_invalid() -> None:
    handler, _ = sequence(ok({"entityType": "team", "expiresAt": "2027-01-01T00:00:00"}))
    with pytest.raises(InvalidResponseError, match="expiresAt"):
        run_client(handler, lambda c: c.token_info())


def test_usage_start_is_sent_in_whole_seconds() -> None:
    handler, seen = sequence(ok({"usage": []}))
    run_client(handler, lambda c: c.list_usage(1764547199.75, team_id="t/1"))
    assert seen[0].url.raw_path.startswith(b"/v1/teams/t%2F1/billing/usage?")
    assert seen[0].url.params["startTime"] == "1764547199"
    assert "endTime" not in seen[0].url.params
    handler, seen = sequence(ok({"usage": []}))
    run_client(handler, lambda c: c.list_usage(3600.5, end=7200.25))
    assert (seen[0].url.params["startTime"], seen[0].url.params["endTime"]) == ("3600", "7201")


def test_breakdown_by_resource_type_sends_the_filter() -> None:
    handler, seen = sequence(ok(INVOICE))
    run_client(handler, lambda c: c.get_invoice("inv-1", team_id="t", resource_type="harness"))
    assert dict(seen[0].url.params) == {"teamId": "t", "resourceType": "harness", "per_page": "100"}


def test_the_newest_invoice_bills_usage_when_several_end_together() -> None:
    """The list has no type field: a credit note ending with the month's usage invoice
    (and a larger ID) must not be polled in its place."""
    from exporter.fetch import newest_invoice
    from exporter.models import InvoiceSummary

    def summary(invoice_id: str, end: float, usage: float | None) -> InvoiceSummary:
        data: dict[str, Any] = {"id": invoice_id, "period": {"start": 0, "end": end}}
        if usage is not None:
            data["paasUsage"] = {"price": {"total": usage}}
        return InvoiceSummary.model_validate(data)

    usage = summary("inv-usage", 200, 1234.5)
    credit = summary("inv-zz-credit", 200, None)
    older = summary("inv-zzz-old", 100, 99)
    assert newest_invoice([credit, older, usage]).id == "inv-usage"
    assert newest_invoice([credit, older]).id == "inv-zz-credit"  # the latest end wins first
    assert newest_invoice([summary("a", 200, 0), summary("b", 200, 0)]).id == "b"
