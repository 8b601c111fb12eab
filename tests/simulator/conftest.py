"""The simulator's own tests: every ``sim`` here (tests/conftest.py) serves the
organisation of a fixed "now" with the simulator's default token, what ``AUTH`` sends."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.simulator import Organisation
from tests.simulator.helpers import SIM_OPTIONS, simulator_org


@pytest.fixture
def sim_org() -> Organisation:
    return simulator_org()


@pytest.fixture
def sim_options() -> dict[str, Any]:
    return dict(SIM_OPTIONS)
