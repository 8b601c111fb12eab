"""What may go wrong with an answer of the simulator, and the answers it sends.

:class:`Faults` holds the rules (errors, hangs, malformed bodies, latency) that
:class:`~.server.Simulator` consumes per request; :func:`fault_response` is what a rule
makes of a request; :class:`RateWindows` is the rate limit (``x-ratelimit-*``, 429);
:class:`Response` and its builders are the answers on the wire.
"""

from __future__ import annotations

import http
import json
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from exporter.simulator.model import Json

QueryMatch = Callable[[str, dict[str, str]], bool]


@dataclass
class Rule:
    kind: str  # "fail", "hang" or "malformed"
    remaining: int
    match: QueryMatch | None
    status: int = 200
    seconds: float = 0.0
    retry_after: float | None = None
    ratelimit_reset: float | None = None
    body: str | None = None
    content_type: str = "application/json"
    malformed: str = "json"


_MALFORMED_KINDS = ("json", "truncated", "html", "schema")


class Faults:
    """Faults to inject, consumed in the order they were added by matching requests.

    ``match(path, query)`` limits a fault to some requests (default: any request).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self.latency: float = 0.0

    def fail(
        self,
        status: int,
        count: int = 1,
        *,
        retry_after: float | None = None,
        ratelimit_reset: float | None = None,
        body: str | None = None,
        content_type: str = "application/json",
        match: QueryMatch | None = None,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status`` (the error
        envelope, or ``body`` as ``content_type`` when given)."""
        self._add(
            Rule(
                "fail",
                count,
                match,
                status=status,
                retry_after=retry_after,
                ratelimit_reset=ratelimit_reset,
                body=body,
                content_type=content_type,
            )
        )

    def hang(self, count: int = 1, seconds: float = 30, match: QueryMatch | None = None) -> None:
        """Hold the next ``count`` matching requests for ``seconds``, then close the
        connection without an answer (sooner when the simulator stops)."""
        self._add(Rule("hang", count, match, seconds=seconds))

    def malformed(
        self, count: int = 1, kind: str = "json", match: QueryMatch | None = None
    ) -> None:
        """Answer 200 with a bad body: ``json`` (not JSON), ``truncated`` (the real
        answer cut in half), ``html`` (an HTML page) or ``schema`` (JSON of the wrong
        shape)."""
        if kind not in _MALFORMED_KINDS:
            raise ValueError(f"kind must be one of {_MALFORMED_KINDS}")
        self._add(Rule("malformed", count, match, malformed=kind))

    def reset(self) -> None:
        """No faults, no latency."""
        with self._lock:
            self._rules.clear()
            self.latency = 0.0

    @property
    def pending(self) -> int:
        """Requests still to be faulted."""
        with self._lock:
            return sum(rule.remaining for rule in self._rules)

    def _add(self, rule: Rule) -> None:
        if rule.remaining < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._rules.append(rule)

    def take(self, path: str, query: dict[str, str]) -> Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.match is None or rule.match(path, query):
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._rules.remove(rule)
                    return rule
        return None


def fault_response(
    rule: Rule, stopping: threading.Event, answer: Callable[[], Response]
) -> Response | None:
    """The answer ``rule`` makes (``answer()`` being the real one), or None for none:
    a hang lasts ``rule.seconds`` or until ``stopping`` is set."""
    if rule.kind == "hang":
        stopping.wait(rule.seconds)
        return None
    if rule.kind == "fail":
        if rule.body is None:
            response = error_response(rule.status)
        else:
            response = Response(rule.status, rule.body.encode(), rule.content_type)
        if rule.retry_after is not None:
            response.headers["Retry-After"] = _seconds(rule.retry_after)
        if rule.ratelimit_reset is not None:
            response.headers["x-ratelimit-reset"] = _seconds(rule.ratelimit_reset)
        if rule.status == 429:
            response.headers["x-ratelimit-remaining"] = "0"
        return response
    if rule.malformed == "html":
        return Response(200, _HTML_PAGE.encode(), "text/html; charset=utf-8")
    if rule.malformed == "schema":
        return json_response(200, {"data": {"id": 5}})
    if rule.malformed == "truncated":
        whole = answer().body
        return Response(200, whole[: max(1, len(whole) // 2)])
    return Response(200, b'{"data": {"id": "inv-1",, "total": }')


# --------------------------------------------------------------------------------------
# The rate limit
# --------------------------------------------------------------------------------------


@dataclass
class _Window:
    started: float
    used: int = 0


class RateWindows:
    """Per-key (per ``Authorization`` header) rate-limit windows on ``time.monotonic()``:
    a window starts at its key's first request and lasts ``window_seconds``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}

    def spend(self, key: str, limit: int, window_seconds: float) -> tuple[bool, dict[str, str]]:
        """Count one request against its key's window; (allowed, rate-limit headers)."""
        now = time.monotonic()
        with self._lock:
            window = self._windows.get(key)
            if window is None or now >= window.started + window_seconds:
                window = self._windows[key] = _Window(now)
            allowed = window.used < limit
            if allowed:
                window.used += 1
            # (started + window) - now can round above the window: subtract the elapsed time
            reset = math.ceil(window_seconds - (now - window.started))
            remaining = max(0, limit - window.used)
        return allowed, {
            "x-ratelimit-limit": str(limit),
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-reset": str(max(0, reset)),
        }

    def clear(self) -> None:
        """Forget every window (the next request of each key starts a new one)."""
        with self._lock:
            self._windows.clear()


# --------------------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, document: Json) -> Response:
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(status, body)


def error_response(status: int, message: str | None = None) -> Response:
    return json_response(
        status,
        {
            "error": {
                "status": status,
                "message": message or _phrase(status),
                "id": secrets.token_hex(12),
                "details": {},
            }
        },
    )


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _seconds(value: float) -> str:
    return f"{value:g}"


_HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    "<body><h1>Bad Gateway</h1><p>The upstream answered badly.</p></body></html>"
)
