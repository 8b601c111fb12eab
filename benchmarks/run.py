"""The exporter against the limits of the job, side by side in one run.

    python -m benchmarks.run            # the full benchmark, about fifteen minutes
    python -m benchmarks.run --quick    # a small organisation and short runs (CI)
    benchmarks/run [--quick]            # the same on a fresh machine: installs first

Every party is its own process, so their CPU does not mix: the simulated Northflank API
(``python -m exporter.simulator``), the exporter (``python -m exporter``), nginx, a
per-scrape prometheus_client server (:mod:`benchmarks.perscrape`) and ``wrk``. On a
machine with two or more CPUs the servers under test (exporter, nginx,
prometheus_client) are pinned to the first CPU and their load (the simulator, ``wrk``,
this script) to the last, so each side has a core of its own.

It prints one Markdown table (``BENCHMARKS.md`` holds one), each row a measure, the
exporter's figure, the reference it is held against, their ratio, the target and
``met``, ``MISSED`` or ``info``:

1. Polls (simulator with ``--latency``, the exporter at ``NORTHFLANK_MAX_CONCURRENCY``):
   the wall time of a poll as the exporter logs it (median of several, after one
   warm-up) against the ideal critical path for that latency and concurrency: the
   invoice list, the invoice, then the team and project calls packed ``concurrency``
   at a time; and the requests a poll spends against the reference page's minimum
   ``2 + teams + projects`` (one less with ``NORTHFLANK_INVOICE_ID``). Both once with
   the newest invoice looked up and once pinned.
2. Scrapes of ``/metrics`` at about 50,000 series with ``wrk`` (text format, with and
   without ``Accept-Encoding: gzip``), rounds interleaved, medians reported: the
   exporter against nginx serving the very same bytes as static files
   (``gzip_static``), and against prometheus_client rendering on every scrape.
3. CPU seconds per poll of the exporter process at that size (``/proc/<pid>/stat``
   utime + stime between consecutive polls), the in-process split of one poll, and
   the exporter's peak resident memory (``VmHWM``); ``promtool check metrics`` on the
   exposition.

4. This month's breakdown caught up (:mod:`benchmarks.catchup`, in process and virtual
   time): the requests of a mid-month window at depths project and resource in both
   contracts, how long it takes with the default budget and reserve, and the steady
   requests an hour afterwards (the twelve minutes of the full run are its CPU).

The measures are in :mod:`benchmarks.polls` (1), :mod:`benchmarks.scrape` (2, 3) and
:mod:`benchmarks.catchup` (4), the rows and their rendering in :mod:`benchmarks.report`;
this module only runs them in order.

The exporter runs with ``NORTHFLANK_UNBILLED=false`` (the unbilled-usage calls are not
part of the reference page's minimum) and ``NORTHFLANK_UNBILLED_DEPTH=team`` (4 measures
the breakdown of this month on its own) and a request budget large enough never to
stretch the interval. Exit status 0 when the benchmark ran (whatever the figures), 1
when it could not (a tool missing, a process that failed).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from benchmarks.catchup import measure_catchup
from benchmarks.config import FULL, QUICK, TOOLS, BenchmarkError, require
from benchmarks.polls import measure_costs, measure_first_read, measure_polls
from benchmarks.procs import Cpus, Processes
from benchmarks.report import OtherWork, Results, details, machine, packages, rows, table
from benchmarks.scrape import measure_big


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="nf-bench-") as name:
        yield Path(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small organisation, short runs")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    try:
        for tool in TOOLS:
            require(tool)
    except BenchmarkError as exc:
        print(f"benchmark: {exc}", file=sys.stderr)
        return 1
    cpus = Cpus.pick()
    os.sched_setaffinity(0, cpus.load)
    procs = Processes()
    started = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()[0]
    others = OtherWork()
    command = "python -m benchmarks.run" + (" --quick" if args.quick else "")
    print(f"# northflank-exporter benchmark ({cfg.name})", flush=True)
    try:
        with workspace() as workdir:
            poll, pinned = measure_polls(procs, cpus, cfg)
            procs.stop_all()
            costs = measure_costs(procs, cpus, cfg)
            procs.stop_all()
            first_read = measure_first_read(procs, cpus, cfg)
            procs.stop_all()
            catchup = measure_catchup(cfg.catchup_org, cfg.catchup_hours)
            cpu, scrape = measure_big(procs, cpus, cfg, workdir)
    except (BenchmarkError, OSError, subprocess.SubprocessError) as exc:
        print(f"benchmark: {exc}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
    results = Results(cfg, poll, pinned, cpu, scrape, costs, first_read, catchup)
    table_rows = rows(results)
    print()
    print(f"- command: `{command}`")
    print(f"- date: {started:%Y-%m-%d %H:%M} UTC, {time.time() - started.timestamp():.0f} s")
    print(f"- machine: {machine()}")
    print(f"- software: {packages()}")
    print(
        f"- other work on the machine: load average {load_before:.2f} before the run; "
        f"{others.seconds():.0f} CPU seconds of other processes' user time during it, "
        f"of {time.time() - started.timestamp():.0f} s x {os.cpu_count()} CPUs"
    )
    if args.quick:
        print("- quick run: a small organisation and short runs, to show that it works;")
        print("  the targets are for the full run, and only judged there")
    print()
    print(table(table_rows))
    print()
    print("\n".join(details(results, cpus)))
    if args.json:
        figures = {**asdict(results), "rows": [asdict(row) for row in table_rows]}
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
