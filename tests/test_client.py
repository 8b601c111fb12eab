"""The API client against httpx.MockTransport: one test per failure path, retries, paging."""

from __future__ import annotations

import json
import random

import httpx
import pytest

from exporter.api.billing import Billing
from exporter.api.client import RetryPolicy, parse_retry_after
from exporter.api.errors import (
    ApiConnectionError,
    ApiTimeoutError,
    AuthError,
    HttpStatusError,
    InvalidResponseError,
    NotFoundError,
    RateLimitedError,
)
from tests.client_helpers import INVOICE, FakeTime, error, get_invoice, ok, run_client, sequence


def test_sends_bearer_token_and_filters() -> None:
    handler, seen = sequence(ok(INVOICE))
    run_client(handler, lambda b: b.invoice("inv-1", team_id="t1", project_id="p1"))
    request = seen[0]
    assert request.headers["Authorization"] == "Bearer secret-token"
    assert request.url.path == "/v1/billing/invoices/inv-1"
    assert dict(request.url.params) == {
        "teamId": "t1",
        "projectId": "p1",
        "removeLegacyFields": "true",
        "teamsPerPage": "100",
        "projectsPerPage": "100",
        "resourcesPerPage": "100",
    }


@pytest.mark.parametrize(
    ("status", "kind", "reason"),
    [
        (401, AuthError, "auth"),
        (403, AuthError, "auth"),
        (404, NotFoundError, "not_found"),
        (400, HttpStatusError, "http"),
        (422, HttpStatusError, "http"),
    ],
)
def test_client_errors_are_mapped_and_not_retried(
    status: int, kind: type[Exception], reason: str
) -> None:
    handler, seen = sequence(error(status))
    with pytest.raises(kind) as caught:
        run_client(handler, get_invoice)
    assert caught.value.reason == reason  # type: ignore[attr-defined]
    assert f"HTTP {status}: status {status}" in str(caught.value)
    assert len(seen) == 1


def test_server_errors_are_retried_three_times_then_fail() -> None:
    fake = FakeTime()
    handler, seen = sequence(error(503))
    with pytest.raises(HttpStatusError, match="after 4 attempts"):
        run_client(handler, get_invoice, fake=fake)
    assert len(seen) == 4
    assert len(fake.sleeps) == 3


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy()
    rng = random.Random(1)
    for attempt, (low, high) in enumerate([(0.5, 0.75), (1, 1.5), (2, 3), (4, 6), (8, 10)]):
        delays = [policy.backoff(attempt, rng) for _ in range(200)]
        assert low <= min(delays)
        assert max(delays) <= high
        assert max(delays) > min(delays)  # jitter
    assert policy.backoff(30, rng) == 10.0


def test_recovers_after_a_burst() -> None:
    handler, seen = sequence(error(502), error(500), ok(INVOICE))
    invoice, client = run_client(handler, get_invoice)
    assert invoice.id == "inv-1"
    assert len(seen) == 3
    assert client.stats.requests == {
        ("get_invoice", "502"): 1,
        ("get_invoice", "500"): 1,
        ("get_invoice", "200"): 1,
    }


def test_retry_after_is_honoured() -> None:
    fake = FakeTime()
    handler, _ = sequence(error(429, {"Retry-After": "7"}), ok(INVOICE))
    run_client(handler, get_invoice, fake=fake)
    assert fake.sleeps == [7.0]


def test_ratelimit_reset_is_honoured_without_retry_after() -> None:
    fake = FakeTime()
    handler, _ = sequence(error(429, {"x-ratelimit-reset": "12"}), ok(INVOICE))
    run_client(handler, get_invoice, fake=fake)
    assert fake.sleeps == [12.0]


def test_wait_beyond_the_poll_deadline_fails_without_sending() -> None:
    fake = FakeTime()
    handler, seen = sequence(error(429, {"Retry-After": "600"}), ok(INVOICE))

    async def two_polls(billing: Billing) -> None:
        billing.client.set_deadline(120)
        with pytest.raises(RateLimitedError):
            await billing.invoice("inv-1")
        assert len(seen) == 1  # did not wait 600 s inside a 120 s poll
        billing.client.set_deadline(120)  # the next poll, still inside the wait
        with pytest.raises(RateLimitedError, match="not sending"):
            await billing.invoice("inv-1")
        assert len(seen) == 1
        fake.now += 600  # the wait is over: the next poll sends again
        billing.client.set_deadline(120)
        await billing.invoice("inv-1")
        assert len(seen) == 2

    run_client(handler, two_polls, fake=fake)
    assert fake.sleeps == []


def test_timeout_is_retried_then_mapped() -> None:
    handler, seen = sequence(httpx.ReadTimeout("slow"))
    with pytest.raises(ApiTimeoutError):
        _, _client = run_client(handler, get_invoice)
    assert len(seen) == 4


def test_connection_error_is_mapped() -> None:
    handler, seen = sequence(httpx.ConnectError("refused"))
    with pytest.raises(ApiConnectionError, match="ConnectError"):
        run_client(handler, get_invoice)
    assert len(seen) == 4


def test_no_answer_is_counted_as_error_code() -> None:
    handler, _ = sequence(httpx.ConnectError("refused"), ok(INVOICE))
    _, client = run_client(handler, get_invoice)
    assert client.stats.requests[("get_invoice", "error")] == 1


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="{not json"),
        httpx.Response(
            200, text='{"data": {"id": "inv', headers={"content-type": "application/json"}
        ),
        httpx.Response(200, text="<html>maintenance</html>", headers={"content-type": "text/html"}),
        httpx.Response(200, json={"nodata": 1}),
        httpx.Response(200, json=[1, 2]),
        httpx.Response(200, json={"data": {"id": 5}}),
        httpx.Response(200, json={"data": {"id": "i", "paid": False, "total": "lots"}}),
        httpx.Response(200, json={"data": {"id": "i", "paasUsage": {"teams": "x"}}}),
    ],
    ids=["json", "truncated", "html", "no-data", "array", "id-type", "amount-type", "teams-type"],
)
def test_invalid_responses(response: httpx.Response) -> None:
    handler, seen = sequence(response)
    with pytest.raises(InvalidResponseError):
        run_client(handler, get_invoice)
    assert len(seen) == 1  # not retried


def test_non_finite_amounts_are_invalid() -> None:
    handler, _ = sequence(
        httpx.Response(200, text='{"data": {"id": "i", "status": "open", "total": NaN}}')
    )
    with pytest.raises(InvalidResponseError):
        run_client(handler, get_invoice)


def test_unknown_fields_and_resource_types_pass_through() -> None:
    data = {
        "id": "inv-1",
        "brandNew": {"x": 1},
        "paasUsage": {
            "teams": [
                {
                    "id": "t",
                    "projects": [
                        {
                            "id": "p",
                            "resourceTypes": [
                                {"resourceType": "quantum-computer", "price": {"total": 5}}
                            ],
                        }
                    ],
                }
            ]
        },
    }
    handler, _ = sequence(ok(data))
    invoice, _ = run_client(handler, get_invoice)
    kind = invoice.teams[0].projects[0].resource_types[0]
    assert kind.resource_type == "quantum-computer"
    assert kind.price.total == 0.05  # 5 cents
    assert kind.price.dimensions == ()


def test_ratelimit_headers_are_recorded() -> None:
    response = httpx.Response(
        200,
        json={"data": INVOICE},
        headers={"x-ratelimit-remaining": "41", "x-ratelimit-reset": "100"},
    )
    handler, _ = sequence(response)
    _, client = run_client(handler, get_invoice)
    assert client.stats.ratelimit_remaining == 41
    assert client.stats.ratelimit_window_remaining == 41
    assert client.stats.ratelimit_reset_at == pytest.approx(1100)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "soon"])
def test_a_rate_limit_header_that_is_no_number_is_no_figure(value: str) -> None:
    response = httpx.Response(
        200,
        json={"data": INVOICE},
        headers={"x-ratelimit-remaining": value, "x-ratelimit-reset": value},
    )
    handler, _ = sequence(response)
    _, client = run_client(handler, get_invoice)
    assert client.stats.ratelimit_remaining is None
    assert client.stats.lowest_remaining is None
    assert client.stats.ratelimit_reset_at is None


def test_a_429_does_not_describe_the_window() -> None:
    """On a 429, Retry-After rules; its x-ratelimit-reset must not stall later polls."""
    limited = error(
        429, {"Retry-After": "1", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "3600"}
    )
    handler, _ = sequence(limited)

    async def call(billing: Billing) -> None:
        with pytest.raises(RateLimitedError):
            await billing.invoice("inv-1")

    _, client = run_client(handler, call)
    assert client.stats.ratelimit_remaining == 0  # exported as it was seen
    assert client.stats.ratelimit_window_remaining is None  # no hold on the next poll


def test_retry_after_http_date() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None
    assert parse_retry_after("inf") is None
    assert parse_retry_after(None) is None


def test_token_is_not_in_error_messages() -> None:
    handler, _ = sequence(error(401))
    with pytest.raises(AuthError) as caught:
        run_client(handler, get_invoice)
    assert "secret-token" not in str(caught.value)
    assert "secret-token" not in json.dumps(caught.value.args)


def test_ratelimit_remaining_is_the_smallest_within_a_window() -> None:
    def answer(remaining: int, reset: int) -> httpx.Response:
        headers = {"x-ratelimit-remaining": str(remaining), "x-ratelimit-reset": str(reset)}
        return httpx.Response(200, json={"data": INVOICE}, headers=headers)

    # answers of one window arriving out of order, then a new window
    handler, _ = sequence(answer(5, 100), answer(7, 100), answer(999, 3600))

    async def calls(billing: Billing) -> list[float | None]:
        seen = []
        for _ in range(3):
            await billing.invoice("inv-1")
            seen.append(billing.client.stats.ratelimit_remaining)
        return seen

    seen, _ = run_client(handler, calls)
    assert seen == [5, 5, 999]
