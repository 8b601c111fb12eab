"""This month's breakdown caught up: the requests of a mid-month window, how long it takes
with the default budget and reserve, and the steady requests an hour once caught up.

Each case runs the real Poller (and its background catch-up), Client and readers in
process, against the simulator on a virtual clock (tests/virtual_month.py): the exporter
starts ``hours`` after the newest invoice's end with the default settings (a poll every
900 s, 900 requests an hour, a reserve of 100, depth resource for the invoice) and
``NORTHFLANK_UNBILLED_DEPTH`` of the case, against an API that allows 1000 requests an
hour and answers in 50 ms. The time is the virtual time from the start until every
settled hour is summed; the CPU is the process's (the simulator's included). Cases run
in processes of their own, two at a time::

    python -m benchmarks.catchup            # the full cases (10 x 50, 360 hours)
    python -m benchmarks.catchup --quick
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import sys
import time
from dataclasses import dataclass

from benchmarks.config import FULL, QUICK, Organisation

CASES = tuple(
    itertools.product(("current", "legacy-pinned"), ("project", "resource"))
)  # fmt: skip
HOUR = 3600.0


@dataclass(frozen=True)
class CatchupFigures:
    contract: str
    depth: str
    org: Organisation
    window_hours: float  # hours since the invoice's end at the start
    hours: int  # settled hours summed when it caught up
    requests: int  # the catch-up's, until then
    caught_up_hours: float  # virtual hours from the start
    steady_per_hour: float  # the breakdown's requests an hour once caught up
    polls_per_hour: float  # the polls' requests an hour meanwhile
    on_schedule: bool  # every poll 900 s after the one before
    lowest: int  # the lowest x-ratelimit-remaining answered
    refused: int  # 429 answers
    once: bool  # every hour asked once with each filter
    cpu: float  # process CPU seconds for the case

    def shape(self) -> str:
        return f"{self.org.teams}x{self.org.projects}"


def run_case(contract: str, depth: str, org: Organisation, hours: float) -> CatchupFigures:
    """One case, in this process."""
    from exporter.simulator import generate_organisation
    from tests.virtual_month import catch_up

    started = time.process_time()
    simulated = generate_organisation(org.teams, org.projects, org.resources)
    run = catch_up(simulated, contract, depth, hours=hours, after=2 * HOUR, give_up=30 * 86400)
    gaps = {b - a for a, b in itertools.pairwise(run.poll_starts)}
    elapsed = (run.caught_up_after or 0.0) + run.after
    return CatchupFigures(
        contract=contract,
        depth=depth,
        org=org,
        window_hours=hours,
        hours=run.hours,
        requests=run.catchup_requests,
        caught_up_hours=(run.caught_up_after or float("nan")) / HOUR,
        steady_per_hour=run.steady_per_hour,
        polls_per_hour=run.poll_requests / (elapsed / HOUR),
        on_schedule=gaps == {900.0},
        lowest=run.lowest_remaining if run.lowest_remaining is not None else -1,
        refused=run.refused,
        once=all(n == 1 for n in run.hour_reads().values()),
        cpu=time.process_time() - started,
    )


def measure_catchup(org: Organisation, hours: float) -> list[CatchupFigures]:
    """The four cases (both contracts, depths project and resource), two at a time."""
    with concurrent.futures.ProcessPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(run_case, c, d, org, hours) for c, d in CASES]
        return [future.result() for future in futures]


def describe(figures: list[CatchupFigures]) -> str:
    lines = [
        "| contract | depth | org | hours | requests | caught up after (h) | steady req/h "
        "| polls req/h | on schedule | lowest remaining | 429 | each hour once | CPU (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        lines.append(
            f"| {f.contract} | {f.depth} | {f.shape()} | {f.hours} | {f.requests:,} "
            f"| {f.caught_up_hours:.1f} | {f.steady_per_hour:.0f} | {f.polls_per_hour:.0f} "
            f"| {'yes' if f.on_schedule else 'NO'} | {f.lowest} | {f.refused} "
            f"| {'yes' if f.once else 'NO'} | {f.cpu:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.catchup")
    parser.add_argument("--quick", action="store_true", help="3 x 8, 48 hours")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    print(describe(measure_catchup(cfg.catchup_org, cfg.catchup_hours)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
