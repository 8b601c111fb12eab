"""A real Prometheus server on loopback, for tests that need PromQL over scraped data.

Uses Debian's ``prometheus`` binary (``apt-get install prometheus``; scripts/install-tools
installs it when run as root). A test that needs it fails, never skips, when it is missing.

    with PrometheusServer([static_job("exporter", ["127.0.0.1:9721"])], workdir=tmp) as prom:
        prom.wait_for_series('northflank_up{job="exporter"}')
        vector = prom.query("sum(northflank_team_cost)")

Only loopback addresses are bound and scraped by the tests that use it.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

INSTALL_HINT = (
    "install Debian's prometheus package (apt-get install prometheus), "
    "or run scripts/install-tools as root"
)


def require_binary(name: str, hint: str = INSTALL_HINT) -> str:
    """The path of ``name`` on PATH; fail the test (not skip) when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH: {hint}", pytrace=False)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def static_job(
    name: str,
    targets: Iterable[str],
    *,
    scrape_interval: str = "1s",
    scrape_timeout: str | None = None,
    metrics_path: str = "/metrics",
    scheme: str = "http",
    labels: Mapping[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One scrape_configs entry with static targets (host:port)."""
    static: dict[str, Any] = {"targets": list(targets)}
    if labels:
        static["labels"] = dict(labels)
    job: dict[str, Any] = {
        "job_name": name,
        "scrape_interval": scrape_interval,
        "scrape_timeout": scrape_timeout or scrape_interval,
        "metrics_path": metrics_path,
        "scheme": scheme,
        "static_configs": [static],
    }
    job.update(extra)
    return job


class PrometheusError(AssertionError):
    """Prometheus did not start, or answered a query with an error."""


class PrometheusServer:
    """``prometheus`` as a subprocess with its own config and TSDB under ``workdir``.

    ``scrape_configs`` is a list of scrape_configs entries (see :func:`static_job`);
    ``rule_files`` are copied into the config as they are (paths to rule files).
    The TSDB is ``workdir / "data"`` (:attr:`data_dir`: put backfilled blocks there
    before :meth:`start`); ``retention`` is ``--storage.tsdb.retention.time`` (raise it
    for blocks of past months: they are deleted at start when older than it).
    """

    def __init__(
        self,
        scrape_configs: Sequence[Mapping[str, Any]],
        *,
        workdir: Path,
        rule_files: Sequence[Path] = (),
        evaluation_interval: str = "1s",
        extra_args: Sequence[str] = (),
        start_timeout: float = 30.0,
        retention: str = "1d",
    ) -> None:
        self.binary = require_binary("prometheus")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.start_timeout = start_timeout
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": evaluation_interval},
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": [dict(job) for job in scrape_configs],
        }
        # JSON is YAML: no YAML library needed to write the config.
        self.data_dir = self.workdir / "data"
        self.config_file = self.workdir / "prometheus.yml"
        self.config_file.write_text(json.dumps(config, indent=2))
        self.args = [
            self.binary,
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--storage.tsdb.retention.time={retention}",
            "--log.level=warn",
            *extra_args,
        ]
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.http = httpx.Client(base_url=self.url, timeout=10)

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> PrometheusServer:
        self._log = (self.workdir / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            self.args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        self._wait(self._ready, self.start_timeout, "Prometheus to become ready")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.http.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> PrometheusServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def logs(self) -> str:
        path = self.workdir / "prometheus.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _alive(self) -> None:
        if self.process is None:
            raise PrometheusError("Prometheus was not started")
        if self.process.poll() is not None:
            raise PrometheusError(
                f"prometheus exited with {self.process.returncode}:\n{self.logs()[-4000:]}"
            )

    def _ready(self) -> bool:
        self._alive()
        try:
            return self.http.get("/-/ready").status_code == 200
        except httpx.HTTPError:
            return False

    def _wait(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise PrometheusError(
                    f"timed out after {timeout} s waiting for {what}\n"
                    f"--- prometheus log ---\n{self.logs()[-4000:]}"
                )
            time.sleep(0.2)

    # ----------------------------------------------------------------- HTTP API

    def api(self, path: str, **params: Any) -> Any:
        """GET /api/v1/<path>; the ``data`` of a successful answer."""
        self._alive()
        response = self.http.get(f"/api/v1/{path}", params=params)
        try:
            body = response.json()
        except ValueError as exc:
            raise PrometheusError(f"{path}: HTTP {response.status_code}: {response.text}") from exc
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query; the result list (vector samples, or one scalar/string)."""
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = at
        data = self.api("query", **params)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        data = self.api("query_range", query=expr, start=start, end=end, step=step)
        return list(data["result"])

    def targets(self) -> list[dict[str, Any]]:
        return list(self.api("targets")["activeTargets"])

    def wait_for_series(self, expr: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until ``expr`` returns at least one sample; return the result."""
        return self._wait(lambda: self.query(expr), timeout, f"data for {expr!r}")

    def wait_for_targets_up(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        def all_up() -> list[dict[str, Any]] | None:
            targets = self.targets()
            return targets if targets and all(t["health"] == "up" for t in targets) else None

        return self._wait(all_up, timeout, "every target to be up")
