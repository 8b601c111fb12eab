"""Fixtures every test module may use: the simulator, a manual clock, promtool.

``sim`` is a started :class:`~exporter.simulator.Simulator` (stopped after the test)
serving ``sim_org`` with the token :data:`tests.harness.TOKEN`. A module changes what it
serves by overriding the small fixtures it is made from:

* ``sim_org``: the organisation (default: ``generate_organisation()``, the demo one);
* ``sim_hours``: hours since the newest invoice's end on the ``clock`` fixture
  (a :class:`~exporter.simulator.ManualClock` the test can move), or None (the default)
  for the simulator to run on real time;
* ``sim_options``: further ``Simulator`` options (``token``, ``running_hour``, ``port`` ...).

``make_sim`` starts more simulators the same way, for tests that need another one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

# The plain helper modules assert too: let pytest explain their failures as it does a
# test's own (it must rewrite them before they are first imported).
pytest.register_assert_rewrite(
    "tests.backfill_helpers",
    "tests.client_helpers",
    "tests.e2e.helpers",
    "tests.harness",
    "tests.image.helpers",
    "tests.property_checks",
    "tests.property_strategies",
    "tests.property_worlds",
    "tests.simulator.helpers",
)

from exporter.simulator import (  # noqa: E402
    HOUR,
    ManualClock,
    Organisation,
    Simulator,
    generate_organisation,
)
from tests.harness import TOKEN, MakeSim  # noqa: E402
from tests.promserver import require_binary  # noqa: E402


@pytest.fixture
def clock() -> ManualClock:
    """A clock the test moves by hand; ``sim`` sets it when ``sim_hours`` is not None."""
    return ManualClock(0)


@pytest.fixture
def make_sim() -> Iterator[MakeSim]:
    """``make_sim(org=None, **options)``: a started simulator (token ``TOKEN`` unless
    given, the demo organisation unless given), stopped after the test."""
    started: list[Simulator] = []

    def make(org: Organisation | None = None, **options: Any) -> Simulator:
        options.setdefault("token", TOKEN)
        simulator = Simulator(org if org is not None else generate_organisation(), **options)
        started.append(simulator.start())
        return simulator

    yield make
    for simulator in reversed(started):
        simulator.stop()


@pytest.fixture
def sim_org() -> Organisation:
    """The organisation ``sim`` serves; a module overrides this for another."""
    return generate_organisation()


@pytest.fixture
def sim_hours() -> float | None:
    """Hours past the newest invoice's end on ``clock`` as ``sim`` starts; None: real time."""
    return None


@pytest.fixture
def sim_options() -> dict[str, Any]:
    """Further ``Simulator`` options for ``sim``."""
    return {}


@pytest.fixture
def sim(
    make_sim: MakeSim,
    clock: ManualClock,
    sim_org: Organisation,
    sim_hours: float | None,
    sim_options: dict[str, Any],
) -> Simulator:
    """The simulator of ``sim_org``, ``sim_hours`` and ``sim_options``, started."""
    options = dict(sim_options)
    if sim_hours is not None:
        clock.now = sim_org.newest_invoice().period_end + sim_hours * HOUR
        options.setdefault("clock", clock)
    return make_sim(sim_org, **options)


@pytest.fixture(scope="session")
def promtool() -> str:
    """The path of promtool (Debian's prometheus package, which scripts/test installs)."""
    return require_binary("promtool")


@pytest.fixture
def client(sim: Simulator) -> Iterator[httpx.Client]:
    """An HTTP client on ``sim``, with its token."""
    headers = {"Authorization": f"Bearer {sim.token}"}
    with httpx.Client(base_url=sim.url, headers=headers, timeout=5) as c:
        yield c
