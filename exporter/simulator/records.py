"""What the simulator keeps of its requests, and a clock tests move by hand.

:class:`RequestLog` records every request (:class:`RequestRecord`) for tests to count;
:class:`ManualClock` is a ``clock`` for :class:`~.server.Simulator` (and
``tests/virtual.py``) that only moves when told. This module imports nothing else of
the simulator.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass
class RequestRecord:
    """One request seen; ``status`` is None while it runs or when it got no answer."""

    method: str
    path: str
    query: dict[str, str]
    time: float  # time.monotonic() at arrival
    status: int | None = None


class ManualClock:
    """A clock tests move by hand: ``Simulator(org, clock=ManualClock(t))``, then
    ``clock.advance(3600)``. Calling it returns ``now`` (Unix seconds)."""

    def __init__(self, start: float) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move ``now`` on by ``seconds``; return the new ``now``."""
        self.now += seconds
        return self.now

    def __repr__(self) -> str:
        return f"ManualClock({self.now!r})"


class RequestLog:
    """The requests seen, oldest first, behind a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []

    def add(self, method: str, path: str, query: dict[str, str]) -> RequestRecord:
        record = RequestRecord(method, path, query, time.monotonic())
        with self._lock:
            self._records.append(record)
        return record

    def records(self) -> list[RequestRecord]:
        """A copy of the requests seen so far, oldest first."""
        with self._lock:
            return list(self._records)

    def count(
        self,
        *,
        path_prefix: str | None = None,
        query_has: str | Mapping[str, str] | None = None,
    ) -> int:
        """Requests seen whose path starts with ``path_prefix`` and whose query has the
        key ``query_has`` (a string) or all the pairs of ``query_has`` (a mapping)."""
        return sum(1 for r in self.records() if _selected(r, path_prefix, query_has))

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


def _selected(
    record: RequestRecord, path_prefix: str | None, query_has: str | Mapping[str, str] | None
) -> bool:
    if path_prefix is not None and not record.path.startswith(path_prefix):
        return False
    if query_has is None:
        return True
    if isinstance(query_has, str):
        return query_has in record.query
    return all(record.query.get(k) == v for k, v in query_has.items())
