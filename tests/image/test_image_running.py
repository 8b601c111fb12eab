"""The container image run, without a Docker engine: as its user, ``--version``,
``--demo`` served from inside and scraped from here over 127.0.0.1, ``--once`` against a
simulator in this process, and as the chart runs it (root filesystem read-only, a tmpfs
on /tmp, the image's user).

The image is the one test_image_contents.py uses, built once per session
(tests/image/conftest.py); the markers and when these tests run are described there.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter.simulator import Simulator, generate_organisation
from tests.image.helpers import (
    IMAGE_TESTS,
    SKIP_REASON,
    VERSION,
    assert_figures,
    entrypoint,
    free_port,
    image_user,
    ok,
    read_only,
    run_in,
    serve_and_scrape,
)

pytestmark = [
    pytest.mark.image,
    pytest.mark.e2e,
    pytest.mark.skipif(not IMAGE_TESTS, reason=SKIP_REASON),
]


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    sim = Simulator(generate_organisation(teams=2)).start()
    try:
        yield sim
    finally:
        sim.stop()


# --------------------------------------------------------------------------- running


def test_runs_as_the_image_user(container: str, config: dict[str, Any]) -> None:
    result = subprocess.run(
        run_in(container, ["python", "-c", "import os; print(os.getuid(), os.getgid())"]),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    uid, gid = image_user(config)
    assert ok(result).split() == [str(uid), str(gid)]


def test_version(container: str, config: dict[str, Any]) -> None:
    result = subprocess.run(
        run_in(container, entrypoint(config, "--version")),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ok(result).strip() == f"northflank-exporter {VERSION}"


def test_demo_served_from_the_container_scraped_from_outside(
    container: str, config: dict[str, Any]
) -> None:
    port = free_port()
    body = serve_and_scrape(
        run_in(container, entrypoint(config, "--demo", "--listen-address", f"127.0.0.1:{port}")),
        port,
    )
    assert_figures(body)


def test_once_against_the_simulator(
    container: str, config: dict[str, Any], simulator: Simulator
) -> None:
    env = {"NORTHFLANK_API_URL": simulator.url, "NORTHFLANK_API_TOKEN": simulator.token}
    result = subprocess.run(
        run_in(container, entrypoint(config, "--once"), env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert_figures(ok(result))


def test_read_only_root_with_a_tmpfs_tmp(
    rootfs: Path, config: dict[str, Any], simulator: Simulator
) -> None:
    result = subprocess.run(
        read_only(
            rootfs,
            config,
            entrypoint(config, "--once"),
            NORTHFLANK_API_URL=simulator.url,
            NORTHFLANK_API_TOKEN=simulator.token,
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 97, result.stderr
    assert_figures(ok(result))
    assert "Read-only file system" not in result.stderr

    port = free_port()
    body = serve_and_scrape(
        read_only(
            rootfs, config, entrypoint(config, "--demo", "--listen-address", f"127.0.0.1:{port}")
        ),
        port,
    )
    assert_figures(body)
