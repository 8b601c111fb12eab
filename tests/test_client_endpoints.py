"""The other billing endpoints on httpx.MockTransport: the older billing API named as
such, token info and its expiry, the usage window in whole seconds, the breakdown filter,
which of several invoices ending together is the newest, the credit balance, the team."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.api.contract import Contracts
from exporter.api.errors import InvalidResponseError
from exporter.api.model import InvoiceEntry, InvoiceList, Price
from exporter.fetch import newest_invoice
from tests.client_helpers import INVOICE, ok, run_client, sequence


def test_the_older_billing_api_is_named_not_a_validation_trace() -> None:
    """The JS client 0.9.5's invoice list: no ``id``, no ``currency``."""
    old = {"invoices": [{"period": {"start": 1, "end": 2}, "total": 500, "paid": True}]}
    handler, seen = sequence(ok(old, pagination={"hasNextPage": True, "cursor": "n"}))
    with pytest.raises(InvalidResponseError) as caught:
        run_client(handler, lambda b: b.invoices())
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
    info, client = run_client(handler, lambda b: b.token())
    assert seen[0].url.path == "/v1/auth"
    assert (info.entity_type, info.entity_id, info.expires_at) == ("org", "acme", expected)
    assert client.stats.requests == {("auth", "200"): 1}


def test_token_expiry_without_a_time_zone_is_invalid() -> None:
    handler, _ = sequence(ok({"entityType": "team", "expiresAt": "2027-01-01T00:00:00"}))
    with pytest.raises(InvalidResponseError, match="expiresAt"):
        run_client(handler, lambda b: b.token())


def test_usage_start_is_sent_in_whole_seconds() -> None:
    handler, seen = sequence(ok({"usage": []}))
    run_client(handler, lambda b: b.usage(1764547199.75, team_id="t/1"))
    assert seen[0].url.raw_path.startswith(b"/v1/teams/t%2F1/billing/usage?")
    assert seen[0].url.params["startTime"] == "1764547199"
    assert "endTime" not in seen[0].url.params
    handler, seen = sequence(ok({"usage": []}))
    run_client(handler, lambda b: b.usage(3600.5, end=7200.25))
    assert (seen[0].url.params["startTime"], seen[0].url.params["endTime"]) == ("3600", "7201")


def test_breakdown_by_resource_type_sends_the_filter() -> None:
    handler, seen = sequence(ok(INVOICE))
    legacy = Contracts(mode="legacy")
    run_client(
        handler,
        lambda b: b.invoice("inv-1", team_id="t", resource_type="harness"),
        contracts=legacy,
    )
    assert dict(seen[0].url.params) == {"teamId": "t", "resourceType": "harness", "per_page": "100"}


def test_the_newest_invoice_bills_usage_when_several_end_together() -> None:
    """The list has no type field: a credit note ending with the month's usage invoice
    (and a larger ID) must not be polled in its place."""

    def summary(invoice_id: str, end: float, usage: float | None) -> InvoiceEntry:
        paas = None if usage is None else Price(usage)
        return InvoiceEntry(invoice_id, "usd", 0, end, None, None, None, None, paas, None)

    def newest(*entries: InvoiceEntry) -> str:
        return newest_invoice(InvoiceList(entries, None)).id

    usage = summary("inv-usage", 200, 1234.5)
    credit = summary("inv-zz-credit", 200, None)
    older = summary("inv-zzz-old", 100, 99)
    assert newest(credit, older, usage) == "inv-usage"
    assert newest(credit, older) == "inv-zz-credit"  # the latest end wins first
    assert newest(summary("a", 200, 0), summary("b", 200, 0)) == "b"


CREDIT = {
    "currency": "usd",
    "total": {"available": 120.5, "pending": 30},
    "grants": {"available": 100, "pending": 30},
    "customerBalance": {"amount": -12.25},
    "lastSyncedAt": "2026-12-01T10:00:00.000Z",
}


def test_credit_balance_is_read_in_major_units() -> None:
    handler, seen = sequence(ok(CREDIT))
    credit, client = run_client(handler, lambda b: b.credit())
    assert seen[0].url.path == "/v1/billing/credit-balance"
    assert dict(seen[0].url.params) == {"removeLegacyFields": "true"}
    assert (credit.available, credit.pending, credit.grant_available) == (120.5, 30.0, 100.0)
    assert (credit.grant_pending, credit.customer_balance) == (30.0, -12.25)
    assert credit.synced_at == 1796119200.0  # 2026-12-01T10:00:00Z
    assert client.stats.requests == {("credit_balance", "200"): 1}


def test_a_single_teams_credit_balance_is_on_the_team_path() -> None:
    handler, seen = sequence(ok(CREDIT))
    run_client(handler, lambda b: b.credit("team-1"))
    assert seen[0].url.path == "/v1/teams/team-1/billing/credit-balance"


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({**CREDIT, "total": {"available": "lots"}}, "total.available"),
        ({**CREDIT, "customerBalance": []}, "customerBalance"),
        ({**CREDIT, "lastSyncedAt": "yesterday"}, "lastSyncedAt"),
    ],
)
def test_a_bad_credit_balance_names_the_field(data: dict[str, Any], where: str) -> None:
    handler, _ = sequence(ok(data))
    with pytest.raises(InvalidResponseError, match=f"credit_balance: unexpected answer at {where}"):
        run_client(handler, lambda b: b.credit())


def test_a_team_is_named_by_get_team() -> None:
    handler, seen = sequence(ok({"id": "team-1", "name": "Platform", "description": ""}))
    team, client = run_client(handler, lambda b: b.team("team-1"))
    assert (team.id, team.name) == ("team-1", "Platform")
    assert seen[0].url.path == "/v1/teams/team-1"
    assert client.stats.requests == {("get_team", "200"): 1}
