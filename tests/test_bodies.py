"""What a steady poll serves: the last read's encoded bytes, joined to what it encoded
afresh, equal to encoding the whole exposition again, in both formats and gzipped.

The real Poller, Client and Bodies in virtual time against the simulator's endpoints
(tests/virtual.py): a first read, then polls that keep the breakdown while the payment
status and the usage move.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import random

from exporter.api.client import Client
from exporter.bodies import Bodies, Published, expose
from exporter.poller import Outcome, Poller
from exporter.settings import Settings
from exporter.simulator import HOUR, generate_organisation
from exporter.snapshot import Snapshot
from tests.virtual import FakeApi, VirtualTimeLoop


def test_a_steady_poll_serves_the_same_bytes_as_encoding_it_all_again() -> None:
    loop = VirtualTimeLoop()
    org = generate_organisation()
    api = FakeApi(org, loop, contract="current", rate_limit=1000)
    config = Settings(api_token=api.token, poll_interval_seconds=900)
    bodies = Bodies("test")
    served: list[tuple[Outcome, Published]] = []

    def publish(outcome: Outcome) -> int:
        served.append((outcome, bodies.make(outcome)))
        return served[-1][1].exposition.samples

    async def main() -> None:
        client = Client(
            "http://api.test", api.token, transport=api.transport(), clock=loop.time,
            wall_clock=api.wall_clock, rng=random.Random(7),
        )  # fmt: skip
        poller = Poller(client, config, publish, clock=loop.time, wall_clock=api.wall_clock)
        async with client:
            assert await poller.poll()
            await asyncio.sleep(HOUR)  # usage grows meanwhile
            org.set_status(org.newest_invoice().id, "payment_failed")
            assert await poller.poll()
            await asyncio.sleep(HOUR)
            assert await poller.poll()

    loop.run(main())
    polls = [(o, p) for o, p in served if o.snapshot is not None]
    assert len(polls) == 3
    read = polls[0][0].snapshot
    assert read is not None
    assert read.teams is not None
    for outcome, published in polls[1:]:
        kept = outcome.snapshot
        assert kept is not None
        assert kept.teams is None
        assert kept.read == read.read
        whole = dataclasses.replace(kept, teams=read.teams)
        again = expose(whole, outcome.health)
        for got, want in (
            (published.exposition.text, again.text),
            (published.exposition.openmetrics, again.openmetrics),
        ):
            assert got.plain == want.plain
            assert gzip.decompress(b"".join(got.gzipped)) == want.plain
        assert published.exposition.samples == again.samples
    text = [p.exposition.text.plain for _, p in polls]
    assert b'status="payment_failed"' in text[1]
    assert b'status="payment_failed"' not in text[0]
    unbilled = [_unbilled(o.snapshot) for o, _ in polls]
    assert unbilled[0] < unbilled[1] < unbilled[2]  # the live parts were encoded afresh


def _unbilled(snapshot: Snapshot | None) -> float:
    assert snapshot is not None
    assert snapshot.unbilled is not None
    return snapshot.unbilled.total
