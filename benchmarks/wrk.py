"""Load with ``wrk`` and what its output says: one run, repeated runs, paired ratios."""

from __future__ import annotations

import math
import re
import statistics
import subprocess
from dataclasses import dataclass, field

from benchmarks.config import BenchmarkError, require
from benchmarks.procs import Cpus, pinned


@dataclass(frozen=True)
class WrkRun:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx answers, socket errors and timeouts


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise BenchmarkError(f"wrk: cannot read the duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> WrkRun:
    """The figures of ``wrk --latency`` output."""
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    count = re.search(r"^\s+(\d+) requests in", output, re.M)
    if not (rate and count):
        raise BenchmarkError(f"wrk: unexpected output:\n{output}")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors += int(non2xx.group(1)) if non2xx else 0
    return WrkRun(
        float(rate.group(1)),
        _ms(p50.group(1)) if p50 else math.nan,
        _ms(p99.group(1)) if p99 else math.nan,
        int(count.group(1)),
        errors,
    )


def wrk(url: str, cpus: Cpus, seconds: float, connections: int, *, gzip: bool) -> WrkRun:
    """``wrk -t1`` on the load's CPU against ``url``, with or without gzip."""
    args = [
        require("wrk"),
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "60s",
    ]
    if gzip:
        args += ["-H", "Accept-Encoding: gzip"]
    result = subprocess.run(  # noqa: S603 - our own arguments
        [*args, url],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=False,
        preexec_fn=pinned(cpus.load),
    )
    if result.returncode != 0:
        raise BenchmarkError(f"wrk failed ({result.returncode}): {result.stderr.strip()}")
    return parse_wrk(result.stdout)


def ratio(a: float, b: float) -> float:
    return a / b if b else math.inf


@dataclass
class Series:
    """Repeated wrk runs of one target and encoding."""

    runs: list[WrkRun] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return statistics.median(run.requests_per_second for run in self.runs)

    @property
    def p99(self) -> float:
        return statistics.median(run.p99_ms for run in self.runs)

    @property
    def p50(self) -> float:
        return statistics.median(run.p50_ms for run in self.runs)

    @property
    def errors(self) -> int:
        return sum(run.errors for run in self.runs)

    def summary(self) -> str:
        rates = ", ".join(f"{run.requests_per_second:,.1f}" for run in self.runs)
        p99s = ", ".join(f"{run.p99_ms:.2f}" for run in self.runs)
        return f"req/s {rates}; p99 ms {p99s}; errors {self.errors}"


def paired_ratio(ours: Series, theirs: Series) -> float:
    """Median of the rounds' ratios: each round runs both back to back, so a noisy
    neighbour slows both sides of a ratio more often than one side of a median."""
    return statistics.median(
        ratio(a.requests_per_second, b.requests_per_second)
        for a, b in zip(ours.runs, theirs.runs, strict=True)
    )
