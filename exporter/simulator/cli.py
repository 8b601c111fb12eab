"""``python -m exporter.simulator``: serve a generated organisation until a signal."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from types import FrameType

from exporter.simulator.contract import MODES
from exporter.simulator.generate import generate_organisation
from exporter.simulator.server import Simulator
from exporter.simulator.tokens import DEFAULT_TOKEN


def make_simulator(argv: list[str] | None = None) -> Simulator:
    """The simulator ``python -m exporter.simulator`` serves with these arguments (not
    started)."""
    parser = argparse.ArgumentParser(
        prog="python -m exporter.simulator", description="A fake Northflank billing API."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--teams", type=int, default=4)
    parser.add_argument("--projects", type=int, default=3, help="projects per team")
    parser.add_argument("--resources", type=int, default=1, help="resources per type")
    parser.add_argument("--invoices", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-byoc", action="store_true")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--page-size", type=int, default=50)
    parser.add_argument("--rate-limit", type=int, default=1000)
    parser.add_argument("--rate-window-seconds", type=float, default=3600)
    parser.add_argument("--legacy-billing", action="store_true", help="serve the older billing API")
    parser.add_argument(
        "--no-running-hour", action="store_true", help="usage: whole ended hours only"
    )
    parser.add_argument(
        "--usage-history",
        action="store_true",
        help="usage: also the hours before the newest invoice (for backfill)",
    )
    parser.add_argument(
        "--token-expires-in-days", type=float, default=None, help="default: never expires"
    )
    parser.add_argument(
        "--fractional-cents", action="store_true", help="half and quarter cents in figures"
    )
    parser.add_argument(
        "--contract",
        choices=MODES,
        default="current",
        help="billing contract: current (default), legacy (current with "
        "removeLegacyFields=true) or legacy-pinned",
    )
    parser.add_argument(
        "--single-team", metavar="TEAM_ID", default=None, help="the token is this team's"
    )
    parser.add_argument(
        "--no-granularity-total",
        action="store_true",
        help="usage: refuse granularity=total (400)",
    )
    parser.add_argument("--no-credit", action="store_true", help="no credit balance (404)")
    parser.add_argument(
        "--no-team-read", action="store_true", help="the token cannot read teams (403)"
    )
    args = parser.parse_args(argv)
    org = generate_organisation(
        args.teams,
        args.projects,
        args.resources,
        seed=args.seed,
        invoices=args.invoices,
        byoc=not args.no_byoc,
        fractional_cents=args.fractional_cents,
    )
    if args.no_credit:
        org.set_credit(None)
    expires = args.token_expires_in_days
    sim = Simulator(
        org,
        token=args.token,
        host=args.host,
        port=args.port,
        page_size=args.page_size,
        rate_limit=args.rate_limit,
        rate_window_seconds=args.rate_window_seconds,
        running_hour=not args.no_running_hour,
        legacy_billing=args.legacy_billing,
        usage_history=args.usage_history,
        token_expires_at=None if expires is None else time.time() + expires * 86400,
        contract=args.contract,
        single_team=args.single_team,
        team_read=not args.no_team_read,
        granularity_total=not args.no_granularity_total,
    )
    sim.faults.latency = args.latency
    return sim


def main(argv: list[str] | None = None) -> int:
    """``python -m exporter.simulator``: serve a generated organisation until a signal."""
    sim = make_simulator(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with sim:
        print(f"{sim.url} {sim.token}", flush=True)
        while not stop.wait(0.5):
            pass
    sys.stdout.flush()
    return 0
