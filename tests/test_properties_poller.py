"""Property-based: the Poller never raises, whatever the API answers.

Hypothesis mixes the fake API's answers with arbitrary statuses, bodies and rate-limit
headers, connection errors and timeouts: every poll publishes, ``northflank_up`` says
whether it succeeded, and each failure is counted once, under its own reason.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
from hypothesis import example, given, settings
from hypothesis import strategies as st

from exporter import metrics as m
from exporter.api.errors import REASONS
from exporter.bodies import Bodies, Published
from exporter.poller import Outcome, Poller
from tests.property_checks import parse_exposition
from tests.property_strategies import FAST, World, worlds
from tests.property_worlds import (
    SETTINGS,
    SURROGATE_IN_LABEL,
    FakeApi,
    FakeTime,
    bodies,
    make_client,
)

# --------------------------------------------------------------------------- the Poller


@dataclass(frozen=True)
class Chaos:
    status: int
    body: bytes
    headers: dict[str, str]


chaos = st.one_of(
    st.none(),  # the fake API answers this request
    st.builds(
        Chaos,
        status=st.sampled_from([200, 200, 200, 400, 401, 403, 404, 422, 429, 500, 502, 503]),
        body=bodies,
        headers=st.dictionaries(
            st.sampled_from(["retry-after", "x-ratelimit-remaining", "x-ratelimit-reset"]),
            st.one_of(
                st.sampled_from(
                    ["0", "1", "-1", "nan", "inf", "1e308", "Wed, 21 Oct 2015 07:28:00 GMT"]
                ),
                st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=12),
            ),
            max_size=3,
        ),
    ),
    st.sampled_from([httpx.ConnectError, httpx.ReadTimeout]),
)


def poll_errors(published: Published) -> dict[str, float]:
    exposition = published.exposition
    samples = parse_exposition(
        exposition.text.plain.decode(), exposition.openmetrics.plain.decode()
    )
    return {
        dict(labels)["reason"]: value
        for (name, labels), value in samples.items()
        if name == m.POLL_ERRORS.sample_name
    }


@given(world=worlds(), replies=st.lists(chaos, min_size=1, max_size=4))
@example(world=SURROGATE_IN_LABEL, replies=[None])
@settings(max_examples=100, **FAST)
def test_poller_never_raises_and_counts_each_failure_once(
    world: World, replies: list[Chaos | type[Exception] | None]
) -> None:
    api = FakeApi(world)
    sent = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal sent
        item = replies[sent % len(replies)]
        sent += 1
        if item is None:
            return api(request)
        if isinstance(item, Chaos):
            return httpx.Response(item.status, content=item.body, headers=item.headers)
        raise item("injected")

    published: list[tuple[Outcome, Published]] = []
    bodies = Bodies("x")
    fake = FakeTime()

    def publish(outcome: Outcome) -> int:
        published.append((outcome, bodies.make(outcome)))
        return published[-1][1].exposition.samples

    async def go() -> list[bool]:
        async with make_client(handler, fake) as client:
            poller = Poller(client, SETTINGS["resource"], publish, clock=fake.clock)
            return [await poller.poll(), await poller.poll()]

    outcomes = asyncio.run(go())
    assert len(published) == 2
    before = dict.fromkeys(REASONS, 0.0)
    for ok, (out, served) in zip(outcomes, published, strict=True):
        assert ok == (out.last_result == "ok")
        assert served.exposition.text.plain.count(b"\nnorthflank_up 1.0\n") == int(ok)
        after = poll_errors(served)
        assert after.keys() == before.keys()
        grown = {reason for reason in after if after[reason] != before[reason]}
        if ok:
            assert not grown
            assert out.last_result == "ok"
        else:
            assert grown == {out.last_result}
            assert after[out.last_result] == before[out.last_result] + 1
        before = after
