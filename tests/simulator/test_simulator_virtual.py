"""The simulator in process: ``tests/virtual.py``'s ``FakeApi`` with the simulator's
contract options and its ``Date`` header, and the exact division of amounts."""

from __future__ import annotations

from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest

from exporter.simulator import HOUR, TEAM_READ, generate_organisation, major
from exporter.simulator.contract import answer_contract, check_modes
from tests.simulator.helpers import CURRENT, NOW, as_current, newest
from tests.virtual import FakeApi, VirtualTimeLoop


def get(api: FakeApi, path: str, **query: str) -> httpx.Response:
    async def ask() -> httpx.Response:
        async with httpx.AsyncClient(transport=api.transport(), base_url="http://api.test") as c:
            return await c.get(path, params=query)

    return api.loop.run_until_complete(ask())


def data(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()["data"]


def test_fake_api_serves_both_contracts_with_the_date_of_its_clock() -> None:
    org = generate_organisation(now=NOW)
    invoice_id = newest(org)
    loop = VirtualTimeLoop()
    try:
        start = org.newest_invoice().period_end + 2.5 * HOUR
        api = FakeApi(org, loop, start=start, latency=30)
        legacy = get(api, f"/v1/billing/invoices/{invoice_id}")
        assert parsedate_to_datetime(legacy.headers["Date"]).timestamp() == start + 30
        current = get(api, f"/v1/billing/invoices/{invoice_id}", **CURRENT)
        assert parsedate_to_datetime(current.headers["Date"]).timestamp() == start + 60
        status = org.invoice(invoice_id).status
        assert data(current) == {**as_current(data(legacy)), "status": status}
        missing = get(api, "/v1/billing/invoices/nope")
        assert missing.status_code == 404
        assert "Date" in missing.headers

        team = FakeApi(org, loop, contract="current", single_team="team-2", team_read=False)
        assert data(get(team, "/v1/auth"))["entityId"] == "team-2"
        assert "projects" in data(get(team, f"/v1/billing/invoices/{invoice_id}"))["paas"]
        assert TEAM_READ not in data(get(team, "/v1/auth"))["permissions"]
        assert get(team, "/v1/teams/team-2").status_code == 403
        assert get(team, "/v1/billing/usage", teamId="team-2").status_code == 400

        pinned = FakeApi(org, loop, endpoint_contracts={"get_invoice": "legacy-pinned"})
        assert "paasUsage" in data(get(pinned, f"/v1/billing/invoices/{invoice_id}", **CURRENT))
        assert "status" in data(get(pinned, "/v1/billing/invoices", **CURRENT))["invoices"][0]
        refusing = FakeApi(org, loop, granularity_total=False, contract="current")
        total = get(refusing, "/v1/billing/usage", granularity="total", startTime="0")
        assert total.status_code == 400
    finally:
        loop.close()


# whole, fractional, dyadic (the running hour's 1/1024), and where cents / 100 in
# floats is off (0.07 / 100 is 0.0007000000000000001)
CENTS = (0, 1, 7, 0.07, 0.14, 1234.56, 1234.5, 0.25, 0.75, 3.125, 99999.99, 1 / 1024, -2.5)


@pytest.mark.parametrize("cents", [*CENTS, 12345 + 17 / 1024])
def test_amounts_divide_by_100_exactly(cents: float) -> None:
    converted = major(cents)
    assert type(converted) is float
    assert converted == float(Decimal(repr(cents)) / 100)
    assert Decimal(repr(converted)) == Decimal(repr(cents)) / 100  # its text: the decimal


def test_modes_and_their_checks() -> None:
    assert answer_contract("legacy", {}) == "legacy"
    assert answer_contract("legacy", {"removeLegacyFields": "True"}) == "current"
    assert answer_contract("legacy", {"removeLegacyFields": "0"}) == "legacy"
    assert answer_contract("legacy-pinned", {"removeLegacyFields": "1"}) == "legacy"
    assert answer_contract("current", {"removeLegacyFields": "false"}) == "current"
    check_modes("current", {"get_usage": "legacy-pinned", "credit_balance": "current"})
    with pytest.raises(ValueError, match="legacy, current, legacy-pinned"):
        check_modes("pinned", {})
    with pytest.raises(ValueError, match="list_teams"):
        check_modes("legacy", {"list_teams": "current"})
    with pytest.raises(ValueError, match="get_invoice"):
        check_modes("legacy", {"get_invoice": "old"})
