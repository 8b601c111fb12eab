"""The poller's schedule, budget stretch, staleness bound, rate-limit wait and token check,
in virtual time: the real Poller and Client in process, the simulator's endpoints behind
``httpx.MockTransport``, an event loop whose clock jumps (tests/virtual.py). Every time
asserted is exact; hours of polling take well under a second.

Each answer takes ``LATENCY`` virtual seconds, so a poll of the demo organisation at depth
resource (list, invoice, 4 team calls beside the credit balance, 12 project calls eight at
a time: 19 requests) takes 2.5 s.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from exporter.api.client import Client
from exporter.poller import TOKEN_CHECK_SECONDS, TOKEN_RETRY_SECONDS, Outcome, Poller
from exporter.settings import Settings
from exporter.simulator import Organisation, generate_organisation
from tests.virtual import FakeApi, Fault, Sent, VirtualTimeLoop

LATENCY = 0.5
POLL_SECONDS = 5 * LATENCY  # list, invoice, team calls, project calls in two rounds
PER_POLL = 19  # 18 for the invoice, and the credit balance
LIST = "/v1/billing/invoices"
CREDIT = "/v1/billing/credit-balance"


@dataclass
class Run:
    api: FakeApi
    published: list[tuple[float, Outcome]]  # (loop time, outcome)

    def poll_starts(self) -> list[float]:
        """Each poll's first request: the invoice list."""
        return self.api.times(LIST)

    def polls(self) -> list[tuple[float, Outcome]]:
        """The outcomes published at the end of a poll (not expiries or token checks)."""
        return [(t, o) for t, o in self.published if o.last_poll == self.api.start + t]


def run_poller(
    seconds: float,
    org: Organisation | None = None,
    *,
    fault: Fault | None = None,
    rate_limit: int | None = None,
    rate_window: float = 3600.0,
    at: dict[float, Callable[[FakeApi], object]] | None = None,
    **settings: Any,
) -> Run:
    """Run ``Poller.run`` for ``seconds`` of virtual time against the fake API; ``at``:
    changes made to the fake API at those loop times."""
    loop = VirtualTimeLoop()
    api = FakeApi(
        org or generate_organisation(),
        loop,
        latency=LATENCY,
        fault=fault,
        rate_limit=rate_limit,
        rate_window=rate_window,
    )
    defaults = {
        "request_budget_per_hour": 1_000_000,
        "unbilled": False,
        "ratelimit_reserve": 0,
        "invoice_refresh_seconds": 0,  # every poll reads the breakdown: a poll is 19 requests
    }
    config = Settings(api_token=api.token, **{**defaults, **settings})
    published: list[tuple[float, Outcome]] = []

    def publish(outcome: Outcome) -> int:
        published.append((loop.time(), outcome))
        return 0

    async def main() -> None:
        client = Client(
            "http://api.test",
            api.token,
            transport=api.transport(),
            clock=loop.time,
            rng=random.Random(1),
        )
        poller = Poller(client, config, publish, clock=loop.time, wall_clock=api.wall_clock)
        stop = asyncio.Event()
        loop.call_later(seconds, stop.set)
        for when, change in (at or {}).items():
            loop.call_later(when, change, api)
        await poller.run(stop)
        await client.aclose()

    loop.run(main())
    return Run(api, published)


def after(start: float, status: int, delay: float = 0.0) -> Fault:
    """A fault: from loop time ``start`` on, every billing request answers ``status``
    (after ``delay`` more virtual seconds)."""

    def fault(sent: Sent) -> httpx.Response | Awaitable[httpx.Response] | None:
        if sent.time < start or sent.path == "/v1/auth":
            return None
        if not delay:
            return httpx.Response(status, json={"error": {"message": "injected"}})

        async def slow() -> httpx.Response:
            await asyncio.sleep(delay)
            return httpx.Response(status, json={"error": {"message": "injected"}})

        return slow()

    return fault


def stretch_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("polling every")]


# --------------------------------------------------------------------------- the schedule


def test_polls_start_every_interval_start_to_start(caplog: pytest.LogCaptureFixture) -> None:
    run = run_poller(590, poll_interval_seconds=60)
    assert run.poll_starts() == [60.0 * n for n in range(10)]
    # each poll took 2 s: the next starts 60 s after the last one started, not ended
    ends = [t for t, outcome in run.polls()]
    assert ends == [60.0 * n + POLL_SECONDS for n in range(10)]
    assert all(outcome.last_result == "ok" for _, outcome in run.polls())
    assert len(run.api.billing()) == 10 * PER_POLL
    assert stretch_lines(caplog) == []


def test_the_interval_is_stretched_to_the_budget_and_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "exporter.poller")
    # 19 requests a poll, 360 an hour: one poll every 3600 * 19 / 360 = 190 s, not 60 s
    run = run_poller(800, poll_interval_seconds=60, request_budget_per_hour=360)
    assert run.poll_starts() == [0.0, 190.0, 380.0, 570.0, 760.0]
    assert stretch_lines(caplog) == [
        "polling every 190 s instead of every 60 s: a poll costs 19 requests "
        "and the budget is 360 an hour"
    ]


def test_the_request_budget_holds_over_three_simulated_hours() -> None:
    budget = 100
    run = run_poller(3 * 3600, poll_interval_seconds=60, request_budget_per_hour=budget)
    sent = [s.time for s in run.api.sent]
    assert len(run.api.billing()) % PER_POLL == 0
    # In every hour-long window, at most the budget plus the first poll's overshoot.
    worst = max(sum(1 for t in sent if start <= t < start + 3600) for start in sent)
    assert worst <= budget + PER_POLL
    assert len(run.api.times("/v1/auth")) == 1  # after the first poll; the next a day later
    # ... and the interval was stretched from 60 s (3 hours: 180 polls), to 684 s
    assert run.poll_starts() == [684.0 * n for n in range(16)]


# --------------------------------------------------------------------------- failures and staleness


def test_a_failed_poll_keeps_serving_the_old_figures() -> None:
    run = run_poller(250, poll_interval_seconds=100, fault=after(100, 400))
    (_, good), (_, failed), (_, again) = run.polls()
    assert good.serving
    assert good.snapshot is not None
    assert good.health.up
    assert failed.serving  # the figures of the good poll stay
    assert failed.snapshot is None  # ... as they were: no new snapshot
    assert not failed.health.up
    assert failed.last_result == "http"
    assert failed.health.poll_errors == {"http": 1}
    assert failed.health.last_success == good.last_poll
    assert again.health.poll_errors == {"http": 2}


def test_stale_figures_are_dropped_exactly_at_the_bound(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "exporter.poller")
    # The good poll ends at 2.5 s; from 100 s every request hangs 100 s, then fails:
    # the polls at 120 and 240 s end at 220.5 and 340.5 s. The bound, 300 s, falls
    # inside the second: the figures must go at 302.5 s, not when a poll ends.
    run = run_poller(
        350, poll_interval_seconds=120, max_staleness_seconds=300, fault=after(100, 400, 100)
    )
    polls = run.polls()
    assert [t for t, _ in polls] == [POLL_SECONDS, 220.5, 340.5]
    good_end = polls[0][0]
    dropped = [(t, o) for t, o in run.published if not o.serving and t > 0]
    assert dropped, "the figures were never dropped"
    first_drop, outcome = dropped[0]
    assert first_drop == good_end + 300
    assert outcome.snapshot is None
    assert outcome.last_result == "http"  # what the last poll said; the drop is the age
    assert all(o.serving for t, o in run.published if good_end <= t < first_drop)
    assert all(not o.serving for _, o in dropped)
    assert [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()] == [
        "figures dropped: no successful poll for 300 s"
    ]


def test_a_good_poll_before_the_bound_keeps_the_figures() -> None:
    # the polls at 100 and 200 s fail, the one at 300 s succeeds: within the 350 s bound
    def fault(sent: Sent) -> httpx.Response | None:
        if 100 <= sent.time < 300 and sent.path == LIST:
            return httpx.Response(400, json={"error": {"message": "injected"}})
        return None

    run = run_poller(700, poll_interval_seconds=100, max_staleness_seconds=350, fault=fault)
    assert all(outcome.serving for _, outcome in run.published[1:])


# --------------------------------------------------------------------------- the API's window


def test_a_poll_waits_for_the_apis_window_and_is_published_whole(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """25 requests a 600 s window: the first poll (19) and the token check (1) leave 5;
    the second, at 60 s, sends those 5, waits for the window to reset at 600 s, then sends
    the rest: late, never refused, and published whole (the first poll's figures served
    meanwhile)."""
    caplog.set_level(logging.WARNING, "exporter.api")
    run = run_poller(700, poll_interval_seconds=60, rate_limit=25, rate_window=600)
    (first_end, _), (second_end, second) = run.polls()[:2]
    assert second.last_result == "ok"
    assert second_end > 600  # late but whole: one publish, after the window reset
    assert [t for t, o in run.published if first_end < t < second_end and o.snapshot] == []
    assert all(o.serving for t, o in run.published if first_end <= t <= second_end)
    assert {code for _, code in second.health.api_requests} == {"200"}  # no 429, ever
    sent = [s.time for s in run.api.sent]
    assert len([t for t in sent if t < 600]) == 25  # the window, to the last request
    # from the moment the 25th was sent (its answer would say 0 left) to the reset
    assert second.health.ratelimit_wait == pytest.approx(600 - sent[24])
    waits = [r.getMessage() for r in caplog.records if "rate-limit window" in r.getMessage()]
    # one line a wait: the second poll's, and the third's (at 602 s, in the next window)
    assert len(waits) == 2
    assert waits[0] == (
        "waiting 539 s for the rate-limit window: 2 requests left in the API's window "
        "(2 in flight), at or below the reserve of 0 (NORTHFLANK_RATELIMIT_RESERVE)"
    )


def test_no_wait_while_the_window_has_room_for_a_poll() -> None:
    run = run_poller(300, poll_interval_seconds=60, rate_limit=1000, rate_window=600)
    assert run.poll_starts() == [0.0, 60.0, 120.0, 180.0, 240.0]


# --------------------------------------------------------------------------- the token check


def test_the_token_is_checked_after_the_first_poll_then_daily() -> None:
    # depth team: 2 requests a poll, one poll an hour, for 26 hours
    run = run_poller(26 * 3600 - 1, poll_interval_seconds=3600, depth="team")
    first_end = 2 * LATENCY
    checks = run.api.times("/v1/auth")
    assert checks[0] == first_end  # right after the first poll's last answer
    # due a day after it was answered: the first poll that ends after that asks
    assert checks == [first_end, 25 * 3600 + first_end]
    assert checks[1] - checks[0] >= TOKEN_CHECK_SECONDS
    entity = [o.health.token_entity for t, o in run.published if t > first_end]
    assert set(entity) == {("org", "virtual-org")}


def test_a_failed_token_check_is_asked_again_an_hour_later_and_costs_no_poll() -> None:
    first = [True]

    def fault(sent: Sent) -> httpx.Response | None:
        if sent.path == "/v1/auth" and first[0]:
            first[0] = False
            return httpx.Response(401, json={"error": {"message": "injected"}})
        return None

    run = run_poller(2 * 3600, poll_interval_seconds=600, depth="team", fault=fault)
    first_end = 2 * LATENCY
    checks = run.api.times("/v1/auth")
    # failed at 1 s: due at 1.5 + 3600 s; the poll at 3600 s ends before that, 4200 s asks
    assert checks == [first_end, 4200 + first_end]
    assert checks[1] - checks[0] >= TOKEN_RETRY_SECONDS
    assert all(o.last_result == "ok" and o.health.up for _, o in run.polls())
    before = [o.health.token_entity for t, o in run.published if first_end < t < checks[1]]
    assert set(before) == {None}  # the token families are left out until it succeeds
    assert run.published[-1][1].health.token_entity == ("org", "virtual-org")


# --------------------------------------------------------------------------- contract and credit


def test_a_change_of_contract_is_served_and_said_once(caplog: pytest.LogCaptureFixture) -> None:
    """The account moves to the legacy contract between polls: the next poll reads it (the
    figures stay the same), ``northflank_api_contract_info`` follows, one INFO line each."""
    caplog.set_level(logging.INFO, "exporter.poller")

    def pin_to_legacy(run_api: FakeApi) -> None:
        run_api.mode = dataclasses.replace(run_api.mode, contract="legacy-pinned")

    run = run_poller(250, poll_interval_seconds=60, depth="team", at={100: pin_to_legacy})
    contracts = [o.health.contract for _, o in run.polls()]
    assert contracts == ["current", "current", "legacy", "legacy", "legacy"]
    said = [r.getMessage() for r in caplog.records if "billing contract" in r.getMessage()]
    assert said == [
        "reading the current billing contract",
        "reading the legacy billing contract (was current)",
    ]
    figures = [o.snapshot.teams for _, o in run.polls() if o.snapshot is not None]
    assert all(teams == figures[0] for teams in figures)


@pytest.mark.parametrize(
    ("status", "retry", "level"),
    [(400, 3600, logging.WARNING), (404, 86400, logging.INFO)],
    ids=["failed: an hour later", "absent (404): a day later"],
)
def test_a_credit_balance_that_fails_costs_no_poll_and_is_asked_again_later(
    caplog: pytest.LogCaptureFixture, status: int, retry: float, level: int
) -> None:
    caplog.set_level(logging.INFO, "exporter.poller")
    first = [True]

    def fault(sent: Sent) -> httpx.Response | None:
        if sent.path == CREDIT and first[0]:
            first[0] = False
            return httpx.Response(status, json={"error": {"message": "injected"}})
        return None

    run = run_poller(
        retry + 1300,
        poll_interval_seconds=600,
        depth="team",
        fault=fault,
        max_staleness_seconds=10**6,
    )
    asked = run.api.times(CREDIT)
    # at the first poll (failed: no credit families); due again the wait after that poll
    # ended (1 s), so at the first poll that starts after it
    assert asked[:2] == [0.0, math.ceil((retry + 2 * LATENCY) / 600) * 600.0]
    assert all(o.last_result == "ok" and o.health.up for _, o in run.polls())
    without = [o.snapshot.credit for t, o in run.polls() if o.snapshot and t < asked[1]]
    assert without
    assert all(credit is None for credit in without)
    assert run.polls()[-1][1].snapshot.credit is not None  # type: ignore[union-attr]
    lines = [r for r in caplog.records if "credit balance" in r.getMessage()]
    assert [r.levelno for r in lines] == [level]
