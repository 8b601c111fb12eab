"""The image under test: built once for the session (``helpers.built_image``), its
configuration, and per module a working container and its mounted root filesystem."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.image.helpers import built_image, image_config, mounted, working_container


@pytest.fixture(scope="session")
def build(pytestconfig: pytest.Config) -> dict[str, str]:
    """The image, built once per session; its name, size, timings."""
    return built_image(pytestconfig)


@pytest.fixture(scope="session")
def config(build: dict[str, str]) -> dict[str, Any]:
    """The image's OCI configuration."""
    return image_config(build["name"])


@pytest.fixture(scope="module")
def container(build: dict[str, str], request: pytest.FixtureRequest) -> Iterator[str]:
    """A working container of the image (buildah's) for this module, removed at its end."""
    suffix = request.module.__name__.rsplit("_", 1)[-1]
    with working_container(build["name"], suffix) as name:
        yield name


@pytest.fixture(scope="module")
def rootfs(container: str) -> Path:
    """The container's root filesystem, mounted here (unmounted when it is removed)."""
    return mounted(container)
