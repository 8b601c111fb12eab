"""``NORTHFLANK_STATE_FILE``: this month's breakdown kept across restarts.

Written whole after each hour (or span) summed: to a temporary file beside it, flushed,
then renamed over it, so a reader finds the old file or the new one, never half of
either. Read once at start; a file that is missing, unreadable, not ours, of another
:data:`VERSION`, or for another window (invoice, contract, start, depth, teams) is
logged once and ignored: the breakdown is read from the window's start again.

The file, sums as exact fractions (``"1234/100"``)::

    {"format": "northflank-exporter month", "version": 1, "invoice": "inv-2026-11",
     "contract": "current", "since": 1793491200.0, "through": 1793512800.0,
     "depth": "project", "teams": [], "currency": "usd", "hours": 6,
     "sums": [[["team-1", "web"], "Web", "3357/100", {"cpu": "1201/100"}], ...]}
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

from exporter.month import Entry, Month
from exporter.settings import DEPTHS

log = logging.getLogger("exporter.state")
FORMAT = "northflank-exporter month"
VERSION = 1


def save(path: Path, month: Month) -> None:
    """Write ``month`` whole, atomically (a temporary file renamed over ``path``)."""
    document = {
        "format": FORMAT,
        "version": VERSION,
        "invoice": month.invoice_id,
        "contract": month.contract,
        "since": month.since,
        "through": month.through,
        "depth": month.depth,
        "teams": sorted(month.teams),
        "currency": month.currency,
        "hours": month.hours,
        "sums": [
            [list(key), entry.name, str(entry.total), {n: str(v) for n, v in entry.dimensions}]
            for key, entry in month.sums.items()
        ],
    }
    text = json.dumps(document, separators=(",", ":"))
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def load(path: Path, window: Month) -> Month | None:
    """The sums kept for ``window`` (its invoice, contract, start, depth and teams), or
    None, with one log line saying why the file was not used."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        log.info("no state file at %s yet: this month's breakdown starts afresh", path)
        return None
    except OSError as exc:
        return _ignored(path, f"cannot read it: {exc.strerror or exc}")
    try:
        document = json.loads(text)
        month = _month(document)
    except (ValueError, TypeError, KeyError, ZeroDivisionError) as exc:
        return _ignored(path, f"not a state file of this exporter ({type(exc).__name__})")
    except _Foreign as exc:
        return _ignored(path, str(exc))
    if not month.same_window(window):
        return _ignored(
            path,
            f"it is for {month.invoice_id} ({month.contract}, depth {month.depth}), "
            f"not {window.invoice_id} ({window.contract}, depth {window.depth})",
        )
    log.info(
        "this month's breakdown resumed from %s: %d hours summed",
        path,
        month.hours,
        extra={"fields": {"through": month.through}},
    )
    return month


class _Foreign(Exception):
    """A state file of another format or version."""


def _month(document: Any) -> Month:
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise _Foreign("not a state file of this exporter")
    if document.get("version") != VERSION:
        raise _Foreign(f"version {document.get('version')!r}, not {VERSION}")
    depth = document["depth"]
    if depth not in DEPTHS:
        raise ValueError(depth)
    sums = {}
    for key, name, total, dimensions in document["sums"]:
        if not isinstance(key, list) or not 2 <= len(key) <= 4 or not isinstance(name, str):
            raise ValueError("a sum's key")
        sums[tuple(str(part) for part in key)] = Entry(
            name, Fraction(total), tuple((str(n), Fraction(v)) for n, v in dimensions.items())
        )
    return Month(
        invoice_id=str(document["invoice"]),
        contract=str(document["contract"]),
        since=float(document["since"]),
        through=float(document["through"]),
        depth=depth,
        teams=frozenset(str(team) for team in document["teams"]),
        currency=str(document["currency"]),
        sums=sums,
        hours=int(document["hours"]),
    )


def _ignored(path: Path, why: str) -> Month | None:
    """None, said once: why the file at ``path`` is not used."""
    log.warning("state file %s ignored: %s; this month's breakdown starts afresh", path, why)
    return None
