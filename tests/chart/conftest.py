"""The chart rendered once for all its tests: with its defaults, and with every option on."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helmchart import FULL_VALUES, render


@pytest.fixture(scope="session")
def default_docs() -> list[dict[str, Any]]:
    return render()


@pytest.fixture(scope="session")
def full_docs() -> list[dict[str, Any]]:
    return render(values_files=[FULL_VALUES])
