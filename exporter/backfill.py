"""``northflank-exporter backfill``: months of past figures as an OpenMetrics file for
``promtool tsdb create-blocks-from openmetrics``.

    northflank-exporter backfill --since 2026-01-01 [--until DATE] [--depth team|project]
        [--step-seconds 3600] [--label job=northflank] [--label instance=...] --output FILE|-

Two phases. Reading (:mod:`exporter.history_fetch`): the invoice list, then span by
span (oldest first) each invoice pinned, unfiltered and drilled to the depth as a poll
would, and the usage hours of its span, org-wide and per team, all inside
``NORTHFLANK_REQUEST_BUDGET_PER_HOUR`` and ``NORTHFLANK_RATELIMIT_RESERVE`` (the client waits,
and logs that it does). Writing: :func:`exporter.history.write`, straight to the
output. When the API fails, the spans read whole are written and the
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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from exporter import history
from exporter.api.client import Client, RetryPolicy
from exporter.history_fetch import What, read
from exporter.logs import configure
from exporter.settings import DEPTHS, Settings, SettingsError, View
from exporter.settings import parse as parse_settings

log = logging.getLogger("exporter.backfill")
PROG = "northflank-exporter backfill"
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


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
    with contextlib.ExitStack() as stack:
        try:
            options = parse(argv)
            out = stack.enter_context(_output(options.output))
        except SettingsError as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 2
        settings = options.settings
        configure(settings.log_level, settings.log_format)
        try:
            with logging_redirect_tqdm():
                return asyncio.run(_run(options, out, show=sys.stderr.isatty()))
        except BrokenPipeError:  # the reader of stdout went away (| head)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            log.error("the output was closed before the end")
            return 1
        except OSError as exc:  # the disk filled up, ...
            log.error("cannot write %s: %s", options.output, exc.strerror or exc)
            raise SystemExit(1) from None  # through _output: it removes its temporary file
    return 1  # not reached: every branch above returns


async def _run(options: Options, out: IO[bytes], *, show: bool) -> int:
    settings = options.settings
    started = time.monotonic()
    bar = tqdm(total=0, unit="invoice", desc="reading", disable=not show, file=sys.stderr)
    client = Client(
        settings.api_url,
        settings.token(),
        timeout=settings.request_timeout_seconds,
        max_concurrency=settings.max_concurrency,
        retry=RetryPolicy(),
        reserve=settings.ratelimit_reserve,
        budget=settings.request_budget_per_hour,
    )
    async with client:

        def windows_found(found: list[history.Window]) -> None:
            bar.reset(total=len(found))

        what = What(options.since, options.until, options.step, options.view, settings.unbilled)
        reading = await read(
            client, settings.contracts(), what, lambda window: bar.update(1), windows_found
        )
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
        "waited_seconds": round(client.limits.waited),
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
