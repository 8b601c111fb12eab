"""The Dockerfile: hadolint clean, the shape the image must have, and its install steps.

No Docker engine is available, so the image is not built. Instead the build stage's own
RUN commands, read from the Dockerfile, run here with the image's paths mapped into a
temporary folder: they build the wheel and install it into a fresh virtualenv; then
``northflank-exporter --help`` and ``--once`` against the simulator run as the image's
non-root numeric user.

Needs hadolint (scripts/install-tools) and network access to PyPI (the wheel's build
backend and the dependencies, as in a Docker build).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from exporter.settings import Settings
from tests.helmchart import REPO, run, tool

pytestmark = pytest.mark.tools  # hadolint; a venv installed as the image installs it
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARGs (with defaults) and the stages, with continuation lines joined."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # comments are dropped, even between continuation lines
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    assert not current, "the Dockerfile ends in a continuation line"

    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", args, flags=re.I)
            assert match, line
            stages.append(Stage(match.group(1), match.group(2)))
        elif not stages:
            assert keyword == "ARG", f"only ARG may come before FROM: {line}"
            name, _, default = args.partition("=")
            global_args[name] = default
        else:
            stages[-1].instructions.append((keyword, args))
    return global_args, stages


def env_assignments(args: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", args))


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse_dockerfile(DOCKERFILE.read_text())


def test_hadolint_is_clean() -> None:
    result = run([tool("hadolint"), "--failure-threshold", "style", str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_image_shape(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    global_args, stages = dockerfile
    assert len(stages) == 2, "multi-stage: a build stage and the runtime stage"
    build, runtime = stages
    assert build.name == "build"
    # both on the same slim Python base, pinned to a tag
    assert build.base == runtime.base == "${PYTHON_IMAGE}"
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", global_args["PYTHON_IMAGE"])

    # the runtime stage only copies the virtualenv: no build tools, no package installs
    assert runtime.all("RUN") == []
    assert runtime.all("COPY") == ["--from=build /opt/venv /opt/venv"]
    assert "/opt/venv/bin" in " ".join(runtime.all("ENV"))

    (user,) = runtime.all("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), "a numeric user"
    assert int(uid) != 0, "a non-root user"
    assert gid.isdigit()
    assert int(gid) != 0

    (entrypoint,) = runtime.all("ENTRYPOINT")
    assert json.loads(entrypoint) == ["northflank-exporter"], "exec form"
    default_port = Settings.model_fields["listen_address"].default.rpartition(":")[2]
    assert runtime.all("EXPOSE") == [default_port]

    labels = " ".join(runtime.all("LABEL"))
    for key in ("title", "description", "version", "revision", "created", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels, key
    # a global ARG used in a stage must be declared again in it
    assert "PYTHON_IMAGE" in runtime.all("ARG")


def test_dockerignore_keeps_the_context_small() -> None:
    lines = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "exclude everything, then allow what the build copies"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    _, stages = parse_dockerfile(DOCKERFILE.read_text())
    for args in stages[0].all("COPY"):
        *sources, _ = args.split()
        for source in sources:
            assert source.rstrip("/") in allowed, f"{source} is copied but not in the context"
    for secret in (".git", ".tools", ".venv", "tests", "helm"):
        assert secret not in allowed


# --------------------------------------------------------------------------- install steps


def image_user(stages: list[Stage]) -> tuple[int, int]:
    uid, _, gid = stages[-1].all("USER")[0].partition(":")
    return int(uid), int(gid)


def as_user(uid: int, gid: int) -> list[str]:
    """A command prefix that drops to the image's user (no-op when not root)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("setpriv (util-linux) is needed to run as the image's user", pytrace=False)
    return [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]


def base_python(prefix: list[str]) -> str:
    """A Python 3.11+ with venv that the image's user can run (pyenv's lives under the
    private /root; Debian's /usr/bin/python3 is readable by everyone)."""
    for candidate in (sys.executable, getattr(sys, "_base_executable", ""), "/usr/bin/python3"):
        if not candidate or not Path(candidate).exists():
            continue
        probe = subprocess.run(
            [
                *prefix,
                candidate,
                "-c",
                "import sys, venv, ensurepip, pip; assert sys.version_info >= (3, 11)",
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )
        if probe.returncode == 0:
            return candidate
    pytest.fail(
        "no Python 3.11 with venv and pip that a non-root user may run "
        "(apt-get install python3-venv python3-pip)",
        pytrace=False,
    )


@pytest.fixture(scope="module")
def image_root() -> Iterator[Path]:
    """A world-readable scratch folder standing for the image's filesystem."""
    root = Path(tempfile.mkdtemp(prefix="nfx-image-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def installed_venv(dockerfile: tuple[dict[str, str], list[Stage]], image_root: Path) -> Path:
    """Run the build stage's COPY and RUN steps with /src, /dist and /opt/venv mapped
    into ``image_root``; return the virtualenv's path."""
    _, stages = dockerfile
    build = stages[0]
    uid, gid = image_user(stages)
    python = base_python(as_user(uid, gid))

    paths = {"/opt/venv": image_root / "opt-venv", "/dist": image_root / "dist"}
    workdir = None
    env = {
        "PATH": f"{image_root / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(image_root / "home"),
    }
    (image_root / "bin").mkdir()
    (image_root / "bin" / "python").symlink_to(python)
    for key in (
        "PIP_INDEX_URL",
        "PIP_EXTRA_INDEX_URL",
        "PIP_CERT",
        "SSL_CERT_FILE",
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "NO_PROXY",
    ):
        if key in os.environ:
            env[key] = os.environ[key]

    def mapped(text: str) -> str:
        for image_path, local in paths.items():
            text = re.sub(rf"(?<![\w/]){re.escape(image_path)}(?=[/\s]|$)", str(local), text)
        return text

    for keyword, args in build.instructions:
        if keyword == "WORKDIR":
            workdir = image_root / args.strip("/").replace("/", "-")
            workdir.mkdir()
        elif keyword == "ENV":
            env.update(env_assignments(args))
        elif keyword == "COPY":
            assert workdir is not None
            *sources, dest = args.split()
            target = workdir / dest
            for source in sources:
                src = REPO / source
                if src.is_dir():
                    shutil.copytree(
                        src,
                        workdir / dest.rstrip("/"),
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                    )
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy(src, target / src.name)
        elif keyword == "RUN":
            command = mapped(args)
            result = subprocess.run(
                ["/bin/sh", "-c", command],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert result.returncode == 0, (
                f"RUN {args}\n(as: {command})\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        else:
            pytest.fail(f"the build stage uses {keyword}, which this test does not replay")
    venv = paths["/opt/venv"]
    assert list(paths["/dist"].glob("northflank_exporter-*.whl")), "no wheel was built"
    # a fresh virtualenv holding the exporter and its dependencies, and no pip
    assert (venv / "bin" / "northflank-exporter").exists()
    assert not (venv / "bin" / "pip").exists()
    for path in image_root.rglob("*"):  # the image's user must be able to read it all
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode):
            path.chmod(mode | stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0))
    return venv


def user_env(venv: Path, **extra: str) -> dict[str, str]:
    # what the runtime stage sets: PATH with the virtualenv first
    return {
        "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/nonexistent",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def test_help_runs_as_the_image_user(
    installed_venv: Path, dockerfile: tuple[dict[str, str], list[Stage]]
) -> None:
    prefix = as_user(*image_user(dockerfile[1]))
    result = subprocess.run(
        [*prefix, "northflank-exporter", "--help"],
        env=user_env(installed_venv),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "usage: northflank-exporter" in result.stdout
    assert "--poll-interval-seconds" in result.stdout


def test_once_against_the_simulator_as_the_image_user(
    installed_venv: Path, dockerfile: tuple[dict[str, str], list[Stage]]
) -> None:
    uid, gid = image_user(dockerfile[1])
    prefix = as_user(uid, gid)
    simulator = subprocess.Popen(
        [str(installed_venv / "bin" / "python"), "-m", "exporter.simulator", "--port", "0"],
        env=user_env(installed_venv),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert simulator.stdout is not None
        first_line = simulator.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+)\s+(\S+)", first_line)
        assert match, f"simulator said {first_line!r}"
        url, token = match.groups()
        result = subprocess.run(
            [*prefix, "northflank-exporter", "--once"],
            env=user_env(installed_venv, NORTHFLANK_API_URL=url, NORTHFLANK_API_TOKEN=token),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        simulator.terminate()
        simulator.wait(10)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^northflank_up 1(\.0)?$", result.stdout, flags=re.M), result.stdout[:2000]
    assert re.search(
        r'^northflank_invoice_amount\{currency="\w+"\} [\d.]+', result.stdout, flags=re.M
    )
    assert "northflank_team_cost{" in result.stdout
