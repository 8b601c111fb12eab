"""What ``check`` makes of each answer, in process: the pure functions of
``exporter.check_points`` (the requests are tests/test_check.py's)."""

from __future__ import annotations

import pytest

from exporter.api import model
from exporter.api.errors import InvalidResponseError, RequestCapError
from exporter.check_points import (
    DAY,
    cost,
    failed,
    shape,
    token_point,
    usage_point,
)
from exporter.settings import Settings

NOW = 1_800_000_000.0
BILLING = "Organisation > Admin > Billing > Read"


@pytest.mark.parametrize(
    ("expires_in", "permissions", "status", "says"),
    [
        (None, (BILLING,), "ok", "no expiry; billing read listed"),
        (90 * DAY, ("Account > Billing > General > Read",), "ok", "(in 90 days)"),
        (3 * DAY, (BILLING,), "warn", "(in 3 days)"),
        (-1.0, (BILLING,), "fail", "expired "),
        (None, (), "warn", "no permissions listed"),
        (None, ("Organisation > Team > General > Read",), "warn", "billing read not among"),
    ],
)
def test_the_token(
    expires_in: float | None, permissions: tuple[str, ...], status: str, says: str
) -> None:
    expires = None if expires_in is None else NOW + expires_in
    point = token_point(model.Token("team", "team-7", expires, permissions), NOW)
    assert point.status == status
    assert says in point.says
    assert point.says.startswith("a team token (team-7), ")


def test_a_shape_has_keys_types_and_lengths_never_values() -> None:
    body = {
        "data": {"teams": [{"id": "t", "name": "Secret", "price": {"total": 12.5}}] * 3},
        "pagination": None,
        "odd key: {x}": [1, "a"],
    }
    said = shape(body)
    assert said == (
        "{data: {teams: [3 x {id: string, name: string, price: {total: number}}]}, "
        'pagination: null, "odd key: {x}": [2 x number or string]}'
    )
    assert "Secret" not in said
    assert "12.5" not in said


def test_a_failure_shows_the_shape_of_what_it_could_not_read() -> None:
    error = InvalidResponseError("get_invoice", "an answer in neither billing contract")
    point = failed("invoice", error, {"get_invoice": {"data": {"paasTotal": 1}}})
    assert point.status == "fail"
    assert point.says == (
        "GET /v1/billing/invoices/{id}: an answer in neither billing contract; "
        "the answer's shape: {data: {paasTotal: number}}"
    )
    capped = failed("usage", RequestCapError("list_usage", "not sent"), {})
    assert capped.status == "warn"
    assert capped.says.startswith("not checked: ")


@pytest.mark.parametrize(
    ("depth", "first", "later"),
    [("team", 8, 7), ("project", 12, 7), ("resource", 24, 7)],  # README's demo table
)
def test_the_cost_is_the_readmes_cost_model(depth: str, first: int, later: int) -> None:
    settings = Settings(api_token="t", depth=depth)  # type: ignore[arg-type]
    spent = cost(
        settings, teams=4, team_calls=4, projects=12, estimated=False, single=False, credit=True
    )
    assert (spent.first, spent.later) == (first, later)
    assert spent.interval == 900  # well within the budget
    big = cost(
        settings.model_copy(update={"request_budget_per_hour": 10}),
        teams=4, team_calls=4, projects=12, estimated=True, single=False, credit=True,
    )  # fmt: skip
    assert big.interval > 900  # stretched to the budget, as the poller does
    assert big.estimated is (depth == "resource")


def test_usage_says_how_old_the_newest_hour_is() -> None:
    hour = model.UsageEntry(NOW - 4 * 3600, None, None)
    hourly = model.Usage((hour,), model.CURRENT)
    total = model.Usage((hour,), model.CURRENT, total=True)
    late = usage_point(total, False, hourly, NOW, unbilled=True)
    assert late.status == "warn"
    assert "4.0 h ago" in late.says
    refused = usage_point(None, True, model.Usage((), model.CURRENT), NOW, unbilled=True)
    assert refused.status == "warn"
    assert refused.says.startswith("granularity=total refused (400)")
    assert "no hourly entry in the last 6 hours" in refused.says
