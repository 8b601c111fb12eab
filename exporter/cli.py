"""Wires the parts together: settings -> client -> poller -> bodies -> server; stops on a
signal.

Exit status: 0 after a clean stop (or a good ``--once``), 1 when ``--once`` failed or the
exporter could not start, 2 on a bad setting (one stderr line naming it).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from exporter import __version__
from exporter.api.client import Client
from exporter.bodies import Bodies
from exporter.logs import configure
from exporter.poller import Outcome, Poller
from exporter.server import MetricsServer
from exporter.settings import Settings, SettingsError, parse
from exporter.webconfig import WebConfig

if TYPE_CHECKING:
    from exporter.simulator import Simulator

log = logging.getLogger("exporter")
PROG = "northflank-exporter"
DEMO_TOKEN = "demo-token"  # noqa: S105 - the embedded simulator's, not a secret
DEMO_TOKEN_DAYS = 90
DEMO_DEFAULTS = {
    "api_url": "http://127.0.0.1",  # replaced by the simulator's address once it listens
    "api_token": DEMO_TOKEN,
    "poll_interval_seconds": "120",
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["backfill"]:  # past invoices as OpenMetrics for promtool
        from exporter.backfill import main as backfill

        return backfill(args[1:])
    if args[:1] == ["check"]:  # what the exporter depends on, asked of the account once
        from exporter.check import main as check

        return check(args[1:])
    if "--version" in args:
        print(f"{PROG} {__version__}")
        return 0
    try:
        invocation = parse(args, demo_overrides=DEMO_DEFAULTS)
    except SettingsError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    settings = invocation.settings
    configure(settings.log_level, settings.log_format)
    # A poll allocates hundreds of thousands of short-lived objects: with the default
    # thresholds the collector ran 2-3 full passes a poll (0.2-0.3 s at 50,000 series).
    gc.set_threshold(100_000, 50, 1000)
    simulator = None
    if invocation.demo:
        simulator = start_demo(invocation.demo_contract)
        settings = settings.model_copy(update={"api_url": simulator.url})
        log.info(
            "demo: polling the embedded simulated API at %s (%s billing contract)",
            simulator.url,
            invocation.demo_contract,
        )
    try:
        return asyncio.run(
            run_once(settings) if invocation.once else serve(settings, invocation.web)
        )
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        return 0
    finally:
        if simulator is not None:
            simulator.stop()


def start_demo(contract: str) -> Simulator:
    """``--demo``: the embedded simulated API on loopback, started, in ``contract``."""
    from exporter.simulator import Simulator, generate_organisation

    expires = time.time() + DEMO_TOKEN_DAYS * 86400  # the token families have figures
    # The legacy contract as an account pinned to it answers: whatever is asked for.
    mode = "current" if contract == "current" else "legacy-pinned"
    return Simulator(
        generate_organisation(), token=DEMO_TOKEN, token_expires_at=expires, contract=mode
    ).start()


def make_client(settings: Settings) -> Client:
    return Client(
        settings.api_url,
        settings.token(),
        timeout=settings.request_timeout_seconds,
        max_concurrency=settings.max_concurrency,
        reserve=settings.ratelimit_reserve,
        budget=settings.request_budget_per_hour,
    )


async def run_once(settings: Settings) -> int:
    """``--once``: poll, print the text exposition to stdout; 1 when the poll failed."""
    bodies = Bodies(__version__)
    async with make_client(settings) as client:
        poller = Poller(client, settings, lambda outcome: bodies.make(outcome).exposition.samples)
        ok = await poller.poll()
        if ok:
            await poller.check_token()
    if ok:
        sys.stdout.buffer.write(bodies.current.exposition.text.plain)
        sys.stdout.flush()
    return 0 if ok else 1


async def serve(settings: Settings, web: WebConfig | None = None) -> int:
    """Serve /metrics and poll in the background until SIGTERM or SIGINT."""
    bodies = Bodies(__version__)
    try:
        server = MetricsServer(settings.host, settings.port, bodies.current, web)
    except OSError as exc:
        print(
            f"{PROG}: NORTHFLANK_LISTEN_ADDRESS: cannot listen on "
            f"{settings.listen_address}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    server.start()
    log.info(
        "listening",
        extra={
            "fields": {
                "address": f"{settings.host}:{server.port}",
                "version": __version__,
                "api_url": settings.api_url,
                "depth": settings.depth,
                "poll_interval_seconds": settings.poll_interval_seconds,
                "tls": bool(web and web.tls),
                "basic_auth": bool(web and web.users),
            }
        },
    )
    stop = asyncio.Event()
    async with make_client(settings) as client:

        def publish(outcome: Outcome) -> int:
            published = bodies.make(outcome)
            server.publish(published)
            return published.exposition.samples

        task = asyncio.create_task(Poller(client, settings, publish).run(stop))
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            log.info("stopping on %s", signal.Signals(signum).name)
            stop.set()
            task.cancel()  # a poll in flight is abandoned: the process must stop within 2 s

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
        with contextlib.suppress(asyncio.CancelledError):
            await task
    server.stop()
    log.info("stopped")
    return 0
