"""What the container image tests share (tests/image/): buildah, the image built by
``scripts/build-image`` (:func:`built_image`, called once per session by the ``build``
fixture in conftest.py; the image is removed when the session ends), its configuration,
a working container of it, and running the exporter in it and scraping it from here.

The tests' markers and when they run are in test_image_contents.py's docstring.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import tomllib
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.helmchart import REPO

IMAGE_TESTS = bool(os.environ.get("CI") or os.environ.get("NORTHFLANK_TEST_IMAGE") == "1")
SKIP_REASON = "image tests run in CI or with NORTHFLANK_TEST_IMAGE=1 (root, buildah)"

BUILD_TIMEOUT = 1200  # a cold build (debootstrap + pip) takes about two minutes
MAX_IMAGE_MB = 250  # 172 MB today: Debian's python3 and pip, and the virtualenv
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def buildah_command(*args: str) -> list[str]:
    found = shutil.which("buildah")
    if found is None:
        pytest.fail(
            "buildah not found: scripts/test installs it (with debootstrap) when CI or "
            "NORTHFLANK_TEST_IMAGE=1 is set",
            pytrace=False,
        )
    driver = os.environ.get("STORAGE_DRIVER")
    return [found, *(["--storage-driver", driver] if driver else []), *args]


def buildah(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        buildah_command(*args), capture_output=True, text=True, timeout=timeout, check=False
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result.stdout


def built_image(pytestconfig: pytest.Config) -> dict[str, str]:
    """Build the image with scripts/build-image (the session fixture ``build`` in
    tests/image/conftest.py calls this once; the image is removed when the session
    ends); its name, size and timings."""
    if os.geteuid() != 0:
        pytest.fail("building and running the image needs root (buildah, chroot)")
    name = f"localhost/northflank-exporter:test-{os.getpid()}"
    buildah_command()  # fails the tests when buildah is missing

    def remove() -> None:
        buildah("rmi", "--force", name)

    pytestconfig.add_cleanup(remove)  # at the session's end
    started = time.monotonic()
    result = subprocess.run(
        [str(REPO / "scripts" / "build-image")],
        env={**os.environ, "IMAGE": name},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    seconds = time.monotonic() - started
    assert result.returncode == 0, (
        f"scripts/build-image failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    match = re.search(
        r"^== image (\S+): size (.+?); base ([\d.]+) s, build ([\d.]+) s", result.stdout, re.M
    )
    assert match, result.stdout
    assert match.group(1) == name
    facts = {
        "name": name,
        "size": match.group(2),
        "base_seconds": match.group(3),
        "build_seconds": match.group(4),
    }
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:  # in the CI log, even with -q
        with capture.global_and_fixture_disabled():
            reporter.ensure_newline()
            for line in result.stdout.splitlines():
                if line.startswith("== "):
                    reporter.write_line(f"[image] {line[3:]}")
            reporter.write_line(f"[image] scripts/build-image took {seconds:.1f} s")
    return facts


def image_config(image: str) -> dict[str, Any]:
    """The image's OCI configuration."""
    inspected = json.loads(ok(buildah("inspect", "--type", "image", image)))
    return dict(inspected["OCIv1"]["config"])


@contextmanager
def working_container(image: str, tag: str) -> Iterator[str]:
    """A working container of the image (buildah's), removed at the end."""
    name = ok(buildah("from", "--name", f"nfx-image-test-{tag}-{os.getpid()}", image)).strip()
    try:
        yield name
    finally:
        buildah("rm", name)


def mounted(container: str) -> Path:
    """The container's root filesystem, mounted here (unmounted when it is removed)."""
    path = Path(ok(buildah("mount", container)).strip())
    assert (path / "opt" / "venv").is_dir()
    return path


def image_user(config: dict[str, Any]) -> tuple[int, int]:
    uid, _, gid = str(config["User"]).partition(":")
    return int(uid), int(gid)


def image_env(config: dict[str, Any]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in config.get("Env", []))


def run_in(container: str, argv: Sequence[str], env: dict[str, str] | None = None) -> list[str]:
    """``buildah run`` in the container, as the image's user, with the host's network."""
    envs = [f"--env={key}={value}" for key, value in (env or {}).items()]
    return buildah_command(
        "run", "--isolation", "chroot", "--network", "host", *envs, container, "--", *argv
    )


def read_only(rootfs: Path, config: dict[str, Any], argv: Sequence[str], **env: str) -> list[str]:
    """Run ``argv`` as the image's user in its root filesystem mounted read-only, with a
    fresh tmpfs on /tmp and /proc mounted: what the chart's readOnlyRootFilesystem and
    its emptyDir /tmp give. A private mount namespace keeps all of it from the host."""
    uid, gid = image_user(config)
    variables = {**image_env(config), "HOME": "/", **env}
    root = str(rootfs)
    script = (
        'set -e; PATH=/usr/sbin:/usr/bin:/sbin:/bin; root="$1"; shift; '
        'mount --bind "$root" "$root"; mount -o remount,ro,bind "$root"; '
        'mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/tmp"; '
        'mount -t proc proc "$root/proc"; '
        'if chroot "$root" /bin/sh -c ": > /.probe" 2>/dev/null; then '
        "  echo 'the root filesystem is writable' >&2; exit 97; fi; "
        f'exec chroot --userspec={uid}:{gid} --groups={gid} "$root" "$@"'
    )
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--fork",
        "/bin/sh",
        "-c",
        script,
        "read-only",
        root,
        "/usr/bin/env",
        "-i",
        *(f"{key}={value}" for key, value in variables.items()),
        *argv,
    ]


def entrypoint(config: dict[str, Any], *args: str) -> list[str]:
    return [*config["Entrypoint"], *args]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(url: str, deadline: float) -> str:
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                body: str = answer.read().decode()
            if re.search(r"^northflank_up 1(\.0)?$", body, re.M):
                return body
        except OSError as error:
            last = error
        time.sleep(0.3)
    pytest.fail(f"no good scrape of {url}: {last}")


def serve_and_scrape(argv: list[str], port: int) -> str:
    """Start the exporter (``argv``) in its own session, scrape /metrics from here over
    127.0.0.1 until it holds figures, then stop it with SIGTERM."""
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        body = scrape(f"http://127.0.0.1:{port}/metrics", time.monotonic() + 60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 15)
        try:
            output, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            output, _ = process.communicate(timeout=20)
    assert "Read-only file system" not in output, output[-2000:]
    with socket.socket() as sock:  # the server is gone with the process
        assert sock.connect_ex(("127.0.0.1", port)) != 0
    return body


def assert_figures(body: str) -> None:
    assert re.search(r"^northflank_up 1(\.0)?$", body, re.M), body[:2000]
    assert re.search(r'^northflank_invoice_amount\{currency="\w+"\} [\d.]+', body, re.M), body[
        :2000
    ]
    assert "northflank_team_cost{" in body
