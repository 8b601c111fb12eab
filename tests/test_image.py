"""The container image, built from the Dockerfile and run, without a Docker engine.

``scripts/build-image`` makes a Debian bookworm base with debootstrap (cached in
buildah's image store) and builds the real Dockerfile on it with ``buildah bud``; these
tests build it once per session (a tag of their own, removed at the end) and then:

- read its configuration (``buildah inspect``): numeric non-root user, exec-form
  entrypoint, OCI labels, the exposed port;
- look inside it (``buildah mount``): no pip in the virtualenv that runs the exporter, no
  compiler, no source tree. The base's own system Python carries Debian's pip, as
  python:3.11-slim's carries pip: the exporter's virtualenv cannot import it;
- run it (``buildah run --isolation chroot``, host network): ``--version``, ``--demo``
  served from inside and scraped from here over 127.0.0.1, ``--once`` against a simulator
  in this process;
- run it as the chart does: the image's root filesystem mounted read-only, a tmpfs on
  /tmp (the chart's emptyDir), the image's user (``chroot --userspec``);
- print the image's size and build times, and check that the chart's securityContext
  runs as the image's user.

Marked ``image``. They run in CI (``CI`` set) or with ``NORTHFLANK_TEST_IMAGE=1``, where
scripts/test installs buildah and debootstrap; elsewhere they are skipped (a cold build
takes about two minutes, as root). Where they run, a missing tool fails them.
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
from pathlib import Path
from typing import Any

import pytest

from exporter.settings import Settings
from exporter.simulator import Simulator, generate_organisation
from tests.helmchart import REPO, one, render

pytestmark = [
    pytest.mark.image,
    pytest.mark.e2e,
    pytest.mark.skipif(
        not (os.environ.get("CI") or os.environ.get("NORTHFLANK_TEST_IMAGE") == "1"),
        reason="image tests run in CI or with NORTHFLANK_TEST_IMAGE=1 (root, buildah)",
    ),
]

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


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def build(pytestconfig: pytest.Config) -> Iterator[dict[str, str]]:
    """Build the image with scripts/build-image; its name, size and timings."""
    if os.geteuid() != 0:
        pytest.fail("building and running the image needs root (buildah, chroot)")
    name = f"localhost/northflank-exporter:test-{os.getpid()}"
    buildah_command()  # fails the tests when buildah is missing
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
    try:
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
        yield facts
    finally:
        buildah("rmi", "--force", name)


@pytest.fixture(scope="module")
def config(build: dict[str, str]) -> dict[str, Any]:
    """The image's OCI configuration."""
    inspected = json.loads(ok(buildah("inspect", "--type", "image", build["name"])))
    return dict(inspected["OCIv1"]["config"])


@pytest.fixture(scope="module")
def container(build: dict[str, str]) -> Iterator[str]:
    """A working container of the image (buildah's), removed at the end."""
    name = ok(buildah("from", "--name", f"nfx-image-test-{os.getpid()}", build["name"])).strip()
    try:
        yield name
    finally:
        buildah("rm", name)


@pytest.fixture(scope="module")
def rootfs(container: str) -> Path:
    """The container's root filesystem, mounted here (unmounted when it is removed)."""
    path = Path(ok(buildah("mount", container)).strip())
    assert (path / "opt" / "venv").is_dir()
    return path


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    sim = Simulator(generate_organisation(teams=2)).start()
    try:
        yield sim
    finally:
        sim.stop()


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


# --------------------------------------------------------------------------- configuration


def test_config_user_entrypoint_labels_port(config: dict[str, Any], build: dict[str, str]) -> None:
    uid, gid = image_user(config)
    assert config["User"] == f"{uid}:{gid}", "a numeric user and group"
    assert uid != 0
    assert gid != 0
    assert config["Entrypoint"] == ["northflank-exporter"], "exec form"
    assert not config.get("Cmd")
    default_port = Settings.model_fields["listen_address"].default.rpartition(":")[2]
    assert set(config["ExposedPorts"]) == {f"{default_port}/tcp"}
    assert image_env(config)["PATH"].startswith("/opt/venv/bin:")

    labels = config["Labels"]
    assert labels["org.opencontainers.image.title"] == "northflank-exporter"
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert re.fullmatch(r"[0-9a-f]{40}", labels["org.opencontainers.image.revision"])
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", labels["org.opencontainers.image.created"]
    )
    assert labels["org.opencontainers.image.description"]
    assert labels["org.opencontainers.image.base.name"].startswith(
        "localhost/northflank-exporter-base:bookworm-"
    )


def test_image_size_is_printed_and_bounded(build: dict[str, str]) -> None:
    number, unit = build["size"].split()
    megabytes = float(number) * {"kB": 1e-3, "MB": 1, "GB": 1e3}[unit]
    assert megabytes < MAX_IMAGE_MB, f"the image grew to {build['size']}"


def test_chart_runs_as_the_image_user(config: dict[str, Any]) -> None:
    deployment = one(render(), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (exporter,) = pod["containers"]
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (
        image_user(config)
    )
    assert exporter["securityContext"]["readOnlyRootFilesystem"] is True
    # which is what test_read_only_root_with_a_tmpfs_tmp gives the image
    (tmp,) = [mount for mount in exporter["volumeMounts"] if mount["mountPath"] == "/tmp"]  # noqa: S108
    (volume,) = [volume for volume in pod["volumes"] if volume["name"] == tmp["name"]]
    assert "emptyDir" in volume


# --------------------------------------------------------------------------- contents


def test_no_pip_no_compiler_no_source_tree(rootfs: Path, container: str) -> None:
    venv = rootfs / "opt" / "venv"
    assert (venv / "bin" / "northflank-exporter").exists()
    assert not list((venv / "bin").glob("pip*"))
    assert not list(venv.glob("lib/python3*/site-packages/pip"))
    result = subprocess.run(
        run_in(container, ["/opt/venv/bin/python", "-c", "import pip"]),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "No module named 'pip'" in result.stderr
    # nor through PATH: `python` is the virtualenv's
    result = subprocess.run(
        run_in(container, ["python", "-m", "pip", "--version"]),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "No module named pip" in result.stderr

    compilers = ("cc", "gcc", "c++", "g++", "clang", "tcc", "ld", "as", "make")
    for folder in ("usr/local/bin", "usr/bin", "bin", "usr/sbin", "sbin", "opt/venv/bin"):
        for name in compilers:
            assert not (rootfs / folder / name).exists(), f"/{folder}/{name}"
        assert not list((rootfs / folder).glob("*-linux-gnu-gcc*")), folder

    for gone in ("src", "dist", "pyproject.toml", "README.md"):
        assert not (rootfs / gone).exists(), f"/{gone} is in the final stage"
    site_packages = next(venv.glob("lib/python3*/site-packages"))
    packages = [
        Path(folder)
        for folder, _, files in os.walk(rootfs)
        if Path(folder).name == "exporter" and "cli.py" in files
    ]
    assert packages == [site_packages / "exporter"], "the exporter only as installed"


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
