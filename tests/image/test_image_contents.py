"""The container image's configuration and contents, without a Docker engine.

``scripts/build-image`` makes a Debian bookworm base with debootstrap (cached in
buildah's image store) and builds the real Dockerfile on it with ``buildah bud``; the
image tests build it once per session (a tag of their own, removed at the end; shared
with test_image_running.py through the fixtures in tests/image/conftest.py) and then, here:

- read its configuration (``buildah inspect``): numeric non-root user, exec-form
  entrypoint, OCI labels, the exposed port;
- look inside it (``buildah mount``): no pip in the virtualenv that runs the exporter, no
  compiler, no source tree. The base's own system Python carries Debian's pip, as
  python:3.11-slim's carries pip: the exporter's virtualenv cannot import it;
- print the image's size and build times, and check that the chart's securityContext
  runs as the image's user.

Marked ``image``. They run in CI (``CI`` set) or with ``NORTHFLANK_TEST_IMAGE=1``, where
scripts/test installs buildah and debootstrap; elsewhere they are skipped (a cold build
takes about two minutes, as root). Where they run, a missing tool fails them.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from exporter.settings import Settings
from tests.helmchart import one, render
from tests.image.helpers import (
    IMAGE_TESTS,
    MAX_IMAGE_MB,
    SKIP_REASON,
    VERSION,
    image_env,
    image_user,
    run_in,
)

pytestmark = [
    pytest.mark.image,
    pytest.mark.e2e,
    pytest.mark.skipif(not IMAGE_TESTS, reason=SKIP_REASON),
]


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
