"""The exporter as a process against ``sim`` (tests/conftest.py): the demo organisation,
5.5 hours past the newest invoice, on the manual clock (5 whole hours, the sixth half run)."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import SIM_HOURS


@pytest.fixture
def sim_hours() -> float:
    return SIM_HOURS
