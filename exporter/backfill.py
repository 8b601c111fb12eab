"""``northflank-exporter backfill``: months of past figures as an OpenMetrics file for
``promtool tsdb create-blocks-from openmetrics``.

    northflank-exporter backfill --since 2026-01-01 [--until DATE] [--depth team|project]
        [--step-seconds 3600] [--label job=northflank] [--label instance=...] --output FILE|-

Two phases. Reading: the invoice list, then span by span (oldest first) each invoice
pinned, unfiltered and drilled to the depth as a poll would (:func:`exporter.fetch.fetch`
with unbilled off), and the usage hours of its span, org-wide and per team, in calls of
100 hours (one page, one request each), all inside ``NORTHFLANK_REQUEST_BUDGET_PER_HOUR``
(:class:`Budget` waits, and logs that it does). Writing: :func:`exporter.history.write`,
straight to the output. When the API fails, the spans read whole are written and the
exit status is 1; a bad flag or setting exits 2 before any request, with one line.

The settings (token, URL, teams, amount unit, request budget, concurrency, timeout,
``NORTHFLANK_UNBILLED``, logging) are the exporter's, from the environment or as flags;
``--depth`` is backfill's own (default ``project``). Progress bars (tqdm) go to stderr
when it is a terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import re
import sys
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from exporter import fetch, history
from exporter.client import RetryPolicy
from exporter.errors import ApiError, first_api_error
from exporter.logs import configure
from exporter.metrics import TEAM_COST
from exporter.settings import DEPTHS, Settings, SettingsError, View
from exporter.settings import parse as parse_settings
from exporter.snapshot import build

log = logging.getLogger("exporter.backfill")
PROG = "northflank-exporter backfill"
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
WINDOW = 3600.0  # the budget is per hour, over any hour


# --------------------------------------------------------------------------- the command line


@dataclass(frozen=True)
class Options:
    settings: Settings
    since: float
    until: float
    step: int
    labels: tuple[tuple[str, str], ...]
    output: str  # a path, or "-" for stdout

    @property
    def view(self) -> View:
        """The settings' view without budgets (a setting of today, not past figures)."""
        return dataclasses.replace(self.settings.view, budgets={})


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2
        raise SettingsError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Write past invoices and usage as OpenMetrics for promtool tsdb "
        "create-blocks-from openmetrics. Settings as for the exporter (NORTHFLANK_* "
        "variables, or their flags).",
        add_help=True,
    )
    parser.add_argument("--since", required=True, help="YYYY-MM-DD, ISO 8601 time or Unix seconds")
    parser.add_argument("--until", help="the same; default now")
    parser.add_argument("--depth", default="project", help="team, project or resource")
    parser.add_argument("--step-seconds", default="3600", help="seconds between samples")
    parser.add_argument("--label", action="append", default=[], help="KEY=VALUE on every series")
    parser.add_argument("--output", required=True, help="file to write, or - for stdout")
    return parser


def parse_time(text: str, flag: str) -> float:
    """A date (UTC midnight), an ISO 8601 time (UTC when it has no offset) or Unix seconds."""
    value = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SettingsError(
            f"{flag}: {text!r} is not a date (YYYY-MM-DD), an ISO 8601 time or Unix seconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_labels(given: Sequence[str]) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    for text in given:
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not LABEL_NAME.fullmatch(key) or key.startswith("__"):
            raise SettingsError(f"--label: {text!r} is not KEY=VALUE with a valid label name")
        if key in history.LABEL_NAMES:
            raise SettingsError(f"--label: {key!r} is a label of the exporter's own families")
        if any(key == seen for seen, _ in pairs):
            raise SettingsError(f"--label: {key!r} is given twice")
        if not value:
            raise SettingsError(f"--label: {key!r} has an empty value")
        pairs.append((key, value))
    return tuple(pairs)


def parse(argv: Sequence[str], now: float | None = None) -> Options:
    """The backfill flags and the exporter's settings; SettingsError on anything bad."""
    args, rest = build_parser().parse_known_args(list(argv))
    if args.depth not in DEPTHS:
        raise SettingsError(f"--depth: must be team, project or resource (got {args.depth!r})")
    for flag in ("--once", "--demo", "--version"):
        if flag in rest:
            raise SettingsError(f"{flag}: not a backfill flag")
    invocation = parse_settings([*rest, "--depth", args.depth])
    since = parse_time(args.since, "--since")
    until = (
        parse_time(args.until, "--until") if args.until else (time.time() if now is None else now)
    )
    if until <= since:
        raise SettingsError("--until: must be after --since")
    try:
        step = int(args.step_seconds)
    except ValueError:
        step = 0
    if step < 1:
        raise SettingsError(
            "--step-seconds: must be a whole number of seconds, at least 1 "
            f"(got {args.step_seconds!r})"
        )
    output = args.output
    if output != "-" and (not output or Path(output).is_dir()):
        raise SettingsError(f"--output: {output!r} is not a file path or -")
    return Options(invocation.settings, since, until, step, parse_labels(args.label), output)


# --------------------------------------------------------------------------- the budget


class Budget:
    """At most ``per_hour`` requests in any hour: :meth:`take` waits (and logs) when the
    next ones would go over, :meth:`settle` counts what was sent beyond what was taken
    (extra pages, retries)."""

    def __init__(
        self,
        per_hour: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.per_hour = per_hour
        self.clock = clock
        self.sleep = sleep
        self.sent: deque[float] = deque()  # when each request was (to be) sent
        self.taken = 0
        self.waited = 0.0
        self._lock = asyncio.Lock()

    def _prune(self, now: float) -> None:
        while self.sent and self.sent[0] <= now - WINDOW:
            self.sent.popleft()

    async def take(self, count: int = 1) -> None:
        async with self._lock:
            while True:
                now = self.clock()
                self._prune(now)
                if not self.sent or len(self.sent) + count <= self.per_hour:
                    break
                # wait until enough of the hour's requests have aged out
                index = min(len(self.sent) - 1, max(0, len(self.sent) + count - self.per_hour - 1))
                wait = max(0.0, self.sent[index] + WINDOW - now)
                log.warning(
                    "request budget: %d requests sent in the last hour, "
                    "NORTHFLANK_REQUEST_BUDGET_PER_HOUR is %d; waiting %.0f s",
                    len(self.sent),
                    self.per_hour,
                    wait,
                )
                self.waited += wait
                await self.sleep(wait)
            self.sent.extend([now] * count)
            self.taken += count

    def settle(self, sent_total: int) -> None:
        """The client has sent ``sent_total`` requests in all: count those not taken."""
        extra = sent_total - self.taken
        if extra > 0:
            now = self.clock()
            self.sent.extend([now] * extra)
            self.taken += extra


# --------------------------------------------------------------------------- reading


@dataclass
class Reading:
    spans: list[history.Span]
    windows: list[history.Window]
    error: ApiError | None = None


async def read_span(
    client: history.HistoryClient,
    budget: Budget,
    options: Options,
    window: history.Window,
    expected: int,
) -> history.Span:
    """One span: its invoice as a poll reads it, and its usage hours."""
    view = options.view
    await budget.take(expected)
    answers = await fetch.fetch(
        client, fetch.Plan(view=view, invoice_id=window.invoice_id, unbilled=False)
    )
    budget.settle(client.stats.total)
    snapshot = build(answers, view)
    span = history.Span(window, history.constant_series(snapshot))
    if not options.settings.unbilled:
        return span
    teams = [(team.id, team.name) for team in snapshot.teams]

    async def usage(start: float, end: float, team_id: str | None) -> list[Any]:
        await budget.take(1)
        return await client.list_usage_between(start, end, team_id=team_id)

    calls = window.usage_calls()
    async with asyncio.TaskGroup() as group:
        org = [group.create_task(usage(start, end, None)) for start, end in calls]
        by_team = {
            team_id: [group.create_task(usage(start, end, team_id)) for start, end in calls]
            for team_id, _ in teams
        }
    budget.settle(client.stats.total)
    hours = history.UsageHours(
        [entry for task in org for entry in task.result()],
        {team: [e for task in tasks for e in task.result()] for team, tasks in by_team.items()},
    )
    history.add_unbilled(span, snapshot.invoice, teams, hours, view)
    return span


async def read(
    client: history.HistoryClient,
    budget: Budget,
    options: Options,
    on_span: Callable[[history.Window], object] = lambda window: None,
    on_windows: Callable[[list[history.Window]], object] = lambda windows: None,
) -> Reading:
    """Every span in the range, oldest first; stops at the first API failure."""
    reading = Reading([], [])
    try:
        await budget.take(1)
        summaries = await client.list_invoices()
        budget.settle(client.stats.total)
        reading.windows = history.windows(summaries, options.since, options.until, options.step)
        on_windows(reading.windows)
        expected = 1
        for window in reading.windows:
            span = await read_span(client, budget, options, window, expected)
            teams = len(span.constant.get(TEAM_COST, {}))
            expected = 1 + (teams if options.settings.depth != "team" else 0)
            reading.spans.append(span)
            on_span(window)
    except (ApiError, BaseExceptionGroup) as exc:
        found = first_api_error(exc)
        if found is None:
            raise
        reading.error = found
    return reading


# --------------------------------------------------------------------------- running


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@contextlib.contextmanager
def _output(path: str) -> Iterator[IO[bytes]]:
    """stdout, or a temporary file beside ``path`` that replaces it once written (so
    a reader never sees half a file); raises SettingsError when it cannot be made."""
    if path == "-":
        yield sys.stdout.buffer
        sys.stdout.flush()
        return
    target = Path(path)
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or Path("."))
    except OSError as exc:
        raise SettingsError(
            f"--output: cannot write beside {path}: {exc.strerror or exc}"
        ) from None
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as out:
            yield out
        os.chmod(temp, 0o644)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def main(argv: Sequence[str]) -> int:
    try:
        options = parse(argv)
        output = _output(options.output)
        out = output.__enter__()
    except SettingsError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    settings = options.settings
    configure(settings.log_level, settings.log_format)
    terminal = sys.stderr.isatty()
    try:
        with logging_redirect_tqdm():
            status = asyncio.run(_run(options, out, show=terminal))
    except BaseException:
        output.__exit__(*sys.exc_info())
        raise
    output.__exit__(None, None, None)
    return status


async def _run(options: Options, out: IO[bytes], *, show: bool) -> int:
    settings = options.settings
    started = time.monotonic()
    budget = Budget(settings.request_budget_per_hour)
    bar = tqdm(total=0, unit="invoice", desc="reading", disable=not show, file=sys.stderr)
    client = history.HistoryClient(
        settings.api_url,
        settings.token(),
        timeout=settings.request_timeout_seconds,
        max_concurrency=settings.max_concurrency,
        retry=RetryPolicy(),
    )
    async with client:

        def windows_found(found: list[history.Window]) -> None:
            bar.reset(total=len(found))

        reading = await read(client, budget, options, lambda window: bar.update(1), windows_found)
        requests = client.stats.total
    bar.close()
    spans = reading.spans
    if not reading.windows and reading.error is None:
        log.warning(
            "no invoice ends between %s and %s: nothing to write",
            _when(options.since),
            _when(options.until),
        )
    total = sum(span.samples for span in spans)
    writing = tqdm(
        total=total,
        unit="sample",
        unit_scale=True,
        desc="writing",
        disable=not show,
        file=sys.stderr,
    )
    samples = history.write(out, spans, options.labels, writing.update)
    writing.close()
    seconds = time.monotonic() - started
    fields = {
        "invoices": len(spans),
        "samples": samples,
        "requests": requests,
        "seconds": round(seconds, 1),
        "waited_seconds": round(budget.waited),
    }
    if reading.error is not None:
        through = _when(spans[-1].window.stop) if spans else "none"
        log.error(
            "the API failed (%s): %s; wrote the %d whole invoices read, through %s",
            reading.error.reason,
            reading.error,
            len(spans),
            through,
            extra={"fields": fields},
        )
        return 1
    log.info(
        "backfill written: %d invoices, %d samples, %d requests, %.1f s",
        len(spans),
        samples,
        requests,
        seconds,
        extra={"fields": fields},
    )
    return 0
