"""Child processes pinned to CPUs, and waiting for them over loopback HTTP.

Every party of the benchmark is its own process, so their CPU does not mix. On a
machine with two or more CPUs the servers under test run on the first CPU and their
load (the simulator, ``wrk``, this script) on the last (:class:`Cpus`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from benchmarks.config import ROOT, BenchmarkError

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Cpus:
    """Where the servers under test run, and where their load runs."""

    server: frozenset[int]
    load: frozenset[int]

    @classmethod
    def pick(cls) -> Cpus:
        cpus = sorted(os.sched_getaffinity(0))
        return cls(frozenset(cpus[:1]), frozenset(cpus[-1:]))

    def describe(self) -> str:
        if self.server == self.load:
            return f"one CPU ({min(self.server)}): everything shares it"
        return (
            f"servers under test (exporter, nginx with 1 worker, prometheus_client) on CPU "
            f"{min(self.server)}; simulator, wrk (1 thread) and this script on CPU "
            f"{min(self.load)}"
        )


def pinned(cpus: frozenset[int]) -> Callable[[], None]:
    """A ``preexec_fn`` that pins the child to ``cpus``."""

    def pin() -> None:
        os.sched_setaffinity(0, cpus)

    return pin


class Process:
    """A child process pinned to some CPUs, stopped (by its own PID) when done."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        cpus: frozenset[int],
        *,
        env: Mapping[str, str] | None = None,
        stdout: int | IO[bytes] | None = subprocess.DEVNULL,
        stderr: int | IO[bytes] | None = subprocess.DEVNULL,
    ) -> None:
        self.name = name
        self.popen = subprocess.Popen(  # noqa: S603 - our own arguments
            list(args),
            cwd=ROOT,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            preexec_fn=pinned(cpus),
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise BenchmarkError(f"{self.name} exited with status {self.popen.returncode}")

    def cpu_seconds(self) -> float:
        """utime + stime of every thread so far."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise BenchmarkError(f"no VmHWM for {self.name}")

    def stop(self, signum: int = 15, timeout: float = 10.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signum)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


class Processes:
    """Every process started, stopped in reverse order on the way out."""

    def __init__(self) -> None:
        self._started: list[Process] = []

    def add(self, process: Process) -> Process:
        self._started.append(process)
        return process

    def stop(self, process: Process, signum: int = 15) -> None:
        process.stop(signum)
        if process in self._started:
            self._started.remove(process)

    def stop_all(self) -> None:
        while self._started:
            self._started.pop().stop()


def get(url: str, headers: Mapping[str, str] | None = None, timeout: float = 60) -> bytes:
    request = urllib.request.Request(url, headers=dict(headers or {}))  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        body: bytes = response.read()
        return body


def wait_http(url: str, process: Process, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        process.check_alive()
        try:
            get(url, timeout=5)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise BenchmarkError(f"{process.name} did not answer {url}") from None
            time.sleep(0.05)
