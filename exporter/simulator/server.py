"""The HTTP side of the simulator: :class:`Simulator`, its faults and ``main()``.

A ``ThreadingHTTPServer`` on loopback whose handler checks the bearer token, spends the
per-token rate-limit window (``x-ratelimit-*`` headers, 429), applies the injected
:class:`Faults` (errors, hangs, malformed bodies, latency), records every request
(:class:`RequestRecord`) and otherwise answers from the routes of :mod:`.views` in the
API's envelopes. Its ``clock`` (``time.time`` or a :class:`ManualClock`) says which usage
hours have ended. ``main()`` is ``python -m exporter.simulator``.
"""

from __future__ import annotations

import argparse
import contextlib
import http
import json
import math
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from exporter.simulator.org import Json, Organisation, generate_organisation
from exporter.simulator.views import (
    FULL_PERMISSIONS,
    MAX_PAGE_SIZE,
    NO_BILLING_PERMISSIONS,
    ApiError,
    ApiMode,
    Caller,
    _Api,
    _route,
)

DEFAULT_TOKEN = "sim-token"  # noqa: S105 - a fixed demo token, not a secret
DEFAULT_ENTITY = ("org", "sim-org")  # what GET /v1/auth says the token belongs to

QueryMatch = Callable[[str, dict[str, str]], bool]


# --------------------------------------------------------------------------------------
# Faults and request records
# --------------------------------------------------------------------------------------


@dataclass
class _Rule:
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
        self._rules: list[_Rule] = []
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
            _Rule(
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
        self._add(_Rule("hang", count, match, seconds=seconds))

    def malformed(
        self, count: int = 1, kind: str = "json", match: QueryMatch | None = None
    ) -> None:
        """Answer 200 with a bad body: ``json`` (not JSON), ``truncated`` (the real
        answer cut in half), ``html`` (an HTML page) or ``schema`` (JSON of the wrong
        shape)."""
        if kind not in _MALFORMED_KINDS:
            raise ValueError(f"kind must be one of {_MALFORMED_KINDS}")
        self._add(_Rule("malformed", count, match, malformed=kind))

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

    def _add(self, rule: _Rule) -> None:
        if rule.remaining < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._rules.append(rule)

    def _take(self, path: str, query: dict[str, str]) -> _Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.match is None or rule.match(path, query):
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._rules.remove(rule)
                    return rule
        return None


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


# --------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------


@dataclass
class _Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def _json_response(status: int, document: Json) -> _Response:
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    return _Response(status, body)


def _error_response(status: int, message: str | None = None) -> _Response:
    return _json_response(
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


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() closes live connections itself
    request_queue_size = 512
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        self.simulator = simulator
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client that went away is not news."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "northflank-simulator"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = 120  # an idle keep-alive connection is dropped after this

    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: no line per request."""

    def setup(self) -> None:
        super().setup()
        self.server.simulator._connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.simulator._connection_closed(self.connection)

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = do_GET

    def _serve(self) -> None:
        sim = self.server.simulator
        split = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        self._discard_body()
        record = sim._record(self.command, split.path, query)
        response = sim._respond(self.command, split.path, query, self.headers.get("Authorization"))
        if response is None:  # hung, or the simulator is stopping: no answer at all
            self.close_connection = True
            return
        record.status = response.status
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _discard_body(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if 0 < length <= 1 << 20:
            self.rfile.read(length)
        elif length or self.headers.get("Transfer-Encoding"):
            self.close_connection = True


@dataclass
class _Window:
    started: float
    used: int = 0


class Simulator:
    """The fake API server. ``start()`` it (or use ``with``), read ``url``, ``stop()``.

    ``clock`` (Unix seconds; a public attribute, replaceable at any time) is the time the
    usage endpoints see: the hours that ended by it, and with ``running_hour`` (default)
    the one running, partly filled. It also says when a token with ``token_expires_at``
    has expired (401 from then on). The rate-limit window runs on ``time.monotonic()``
    whatever the clock.

    Tokens: ``token`` has every permission; ``no_billing_tokens`` are valid but lack
    billing read (``GET /v1/auth`` and ``GET /v1/teams`` answer, billing endpoints 403
    naming "Organisation > Admin > Billing > Read"); ``forbidden_tokens`` get 403
    everywhere; any other token 401. ``token_entity`` (``("org" | "team", id)``) and
    ``token_expires_at`` (Unix seconds, None: never) are what ``GET /v1/auth`` says.
    ``legacy_billing`` serves the older billing API (see the package docstring).
    """

    def __init__(
        self,
        org: Organisation | None = None,
        *,
        token: str = DEFAULT_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        page_size: int = 50,
        max_page_size: int = MAX_PAGE_SIZE,
        rate_limit: int = 1000,
        rate_window_seconds: float = 3600,
        retry_after_on_429: bool = True,
        forbidden_tokens: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
        running_hour: bool = True,
        legacy_billing: bool = False,
        no_billing_tokens: Iterable[str] = (),
        token_entity: tuple[str, str] = DEFAULT_ENTITY,
        token_expires_at: float | None = None,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.org = org if org is not None else generate_organisation()
        self.token = token
        self.forbidden_tokens = frozenset(forbidden_tokens)
        self.no_billing_tokens = frozenset(no_billing_tokens)
        self.token_entity = token_entity
        self.token_expires_at = token_expires_at
        self.running_hour = running_hour
        self.legacy_billing = legacy_billing
        self.host = host
        self.port = port
        self.page_size = page_size
        self.max_page_size = max_page_size
        self.rate_limit = rate_limit
        self.rate_window_seconds = rate_window_seconds
        self.retry_after_on_429 = retry_after_on_429
        self.clock = clock
        self.faults = Faults()
        self._lock = threading.Lock()
        self._requests: list[RequestRecord] = []
        self._windows: dict[str, _Window] = {}
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Simulator:
        if self._server is not None:
            raise RuntimeError("simulator already started")
        self._stopping.clear()
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="northflank-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hanging and sleeping requests are cut short. Idempotent."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if thread is not None:
            thread.join(timeout=2)
        self._server = self._thread = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("simulator not started")
        return f"http://{self.host}:{self.port}"

    # -- what tests look at ---------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the requests seen so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def count(
        self,
        *,
        path_prefix: str | None = None,
        query_has: str | Mapping[str, str] | None = None,
    ) -> int:
        """Requests seen whose path starts with ``path_prefix`` and whose query has the
        key ``query_has`` (a string) or all the pairs of ``query_has`` (a mapping)."""
        return sum(1 for r in self.requests if _selected(r, path_prefix, query_has))

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def reset_rate_limit(self) -> None:
        """Forget every rate-limit window (the next request starts a new one)."""
        with self._lock:
            self._windows.clear()

    # -- serving (called by the handler threads) --------------------------------------

    def _record(self, method: str, path: str, query: dict[str, str]) -> RequestRecord:
        record = RequestRecord(method, path, query, time.monotonic())
        with self._lock:
            self._requests.append(record)
        return record

    def _connection_opened(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def _connection_closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _respond(
        self, method: str, path: str, query: dict[str, str], authorization: str | None
    ) -> _Response | None:
        """The answer to one request, or None for no answer (hang, stop)."""
        if self.faults.latency > 0 and self._stopping.wait(self.faults.latency):
            return None
        allowed, limit_headers = self._spend(authorization or "")
        if not allowed:
            response = _error_response(429, "Rate limit exceeded")
            if self.retry_after_on_429:
                response.headers["Retry-After"] = limit_headers["x-ratelimit-reset"]
        else:
            rule = self.faults._take(path, query)
            if rule is None:
                response = self._answer(method, path, query, authorization)
            else:
                faulted = self._fault(rule, method, path, query, authorization)
                if faulted is None:
                    return None
                response = faulted
        response.headers = {**limit_headers, **response.headers}
        return response

    def _spend(self, key: str) -> tuple[bool, dict[str, str]]:
        """Count one request against its token's window; (allowed, rate-limit headers)."""
        now = time.monotonic()
        with self._lock:
            window = self._windows.get(key)
            if window is None or now >= window.started + self.rate_window_seconds:
                window = self._windows[key] = _Window(now)
            allowed = window.used < self.rate_limit
            if allowed:
                window.used += 1
            reset = math.ceil(window.started + self.rate_window_seconds - now)
            remaining = max(0, self.rate_limit - window.used)
        return allowed, {
            "x-ratelimit-limit": str(self.rate_limit),
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-reset": str(max(0, reset)),
        }

    def _answer(
        self, method: str, path: str, query: dict[str, str], authorization: str | None
    ) -> _Response:
        try:
            if method != "GET":
                response = _error_response(405, f"Method {method} not allowed")
                response.headers["Allow"] = "GET"
                return response
            now = self.clock()
            caller = self._authorize(authorization, now)
            handler, params = _route(path)
            mode = ApiMode(
                self.page_size, self.max_page_size, self.running_hour, self.legacy_billing
            )
            api = _Api(self.org, mode, caller, now)
            with self.org.lock:
                data, pagination = handler(api, params, query, path)
        except ApiError as error:
            return _error_response(error.status, error.message)
        document: Json = {"data": data}
        if pagination is not None:
            document["pagination"] = pagination
        return _json_response(200, document)

    def _authorize(self, authorization: str | None, now: float) -> Caller:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if not authorization:
            raise ApiError(401, "Missing API token")
        if scheme.lower() != "bearer":
            raise ApiError(401, "Invalid API token")
        permissions: tuple[str, ...]
        if secrets.compare_digest(token.encode(), self.token.encode()):
            permissions = FULL_PERMISSIONS
        elif token in self.no_billing_tokens:
            permissions = NO_BILLING_PERMISSIONS
        elif token in self.forbidden_tokens:
            raise ApiError(403, "Token lacks the permission Organisation > Admin > Billing > Read")
        else:
            raise ApiError(401, "Invalid API token")
        if self.token_expires_at is not None and now >= self.token_expires_at:
            raise ApiError(401, "API token expired")
        entity_type, entity_id = self.token_entity
        return Caller(entity_type, entity_id, permissions, self.token_expires_at)

    def _fault(
        self,
        rule: _Rule,
        method: str,
        path: str,
        query: dict[str, str],
        authorization: str | None,
    ) -> _Response | None:
        if rule.kind == "hang":
            self._stopping.wait(rule.seconds)
            return None
        if rule.kind == "fail":
            if rule.body is None:
                response = _error_response(rule.status)
            else:
                response = _Response(rule.status, rule.body.encode(), rule.content_type)
            if rule.retry_after is not None:
                response.headers["Retry-After"] = _seconds(rule.retry_after)
            if rule.ratelimit_reset is not None:
                response.headers["x-ratelimit-reset"] = _seconds(rule.ratelimit_reset)
            if rule.status == 429:
                response.headers["x-ratelimit-remaining"] = "0"
            return response
        return self._malformed(rule.malformed, method, path, query, authorization)

    def _malformed(
        self,
        kind: str,
        method: str,
        path: str,
        query: dict[str, str],
        authorization: str | None,
    ) -> _Response:
        if kind == "html":
            return _Response(200, _HTML_PAGE.encode(), "text/html; charset=utf-8")
        if kind == "schema":
            return _json_response(200, {"data": {"id": 5}})
        if kind == "truncated":
            whole = self._answer(method, path, query, authorization).body
            return _Response(200, whole[: max(1, len(whole) // 2)])
        return _Response(200, b'{"data": {"id": "inv-1",, "total": }')


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


# --------------------------------------------------------------------------------------
# Standalone
# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python -m exporter.simulator``: serve a generated organisation until a signal."""
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
        "--token-expires-in-days", type=float, default=None, help="default: never expires"
    )
    parser.add_argument(
        "--fractional-cents", action="store_true", help="half and quarter cents in figures"
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
        token_expires_at=None if expires is None else time.time() + expires * 86400,
    )
    sim.faults.latency = args.latency
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
