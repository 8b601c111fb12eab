"""The HTTP side of the simulator: :class:`Simulator`.

A ``ThreadingHTTPServer`` on loopback whose handler checks the bearer token
(:func:`~.tokens.authorize`), spends the per-token rate-limit window, applies the
injected :class:`~.faults.Faults`, records every request (:class:`RequestRecord`) and
otherwise answers from the routes of :mod:`.api` in the API's envelopes. Its ``clock``
(``time.time`` or a :class:`ManualClock`) says which usage hours have ended (and how
much of the running one), when a token expires, and what every answer's ``Date``
header says.
"""

from __future__ import annotations

import contextlib
import email.utils
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from exporter.simulator.api import Api, ApiMode, route
from exporter.simulator.contract import check_modes
from exporter.simulator.faults import (
    Faults,
    RateWindows,
    Response,
    error_response,
    fault_response,
    json_response,
)
from exporter.simulator.generate import generate_organisation
from exporter.simulator.model import Json
from exporter.simulator.organisation import Organisation
from exporter.simulator.paging import MAX_PAGE_SIZE
from exporter.simulator.records import RequestLog, RequestRecord
from exporter.simulator.tokens import DEFAULT_ENTITY, DEFAULT_TOKEN, Caller, authorize
from exporter.simulator.views import ApiError


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

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header (IMF-fixdate): the simulator's clock, not the machine's."""
        now = self.server.simulator.clock() if timestamp is None else timestamp
        return email.utils.formatdate(now, usegmt=True)

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
    ``usage_history`` serves usage hours before the newest invoice too (from the oldest
    invoice's end, each hour priced from the invoice whose period holds it; see
    :func:`~.usage_views.usage_view`), what ``northflank-exporter backfill`` reads.

    Contracts: ``contract`` is ``"legacy"`` (the legacy contract, the current one to a
    request with ``removeLegacyFields=true``), ``"current"`` (always the current one) or
    ``"legacy-pinned"`` (always the legacy one); ``endpoint_contracts`` gives some of
    ``list_invoices``, ``get_invoice``, ``list_usage``, ``get_usage``,
    ``credit_balance`` a mode of their own. ``single_team`` makes the token a team's
    (``GET /v1/auth`` says so; its answers cover that team only, see the package
    docstring); without ``team_read`` it lacks "Organisation > Team > General > Read"
    (403 from ``GET /v1/teams`` and ``GET /v1/teams/{teamId}``); without
    ``granularity_total`` the usage list refuses ``granularity=total`` (400).
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
        usage_history: bool = False,
        contract: str = "legacy",
        endpoint_contracts: Mapping[str, str] | None = None,
        single_team: str | None = None,
        team_read: bool = True,
        granularity_total: bool = True,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        check_modes(contract, endpoint_contracts or {})
        self.org = org if org is not None else generate_organisation()
        if single_team is not None and all(t.id != single_team for t in self.org.teams):
            raise ValueError(f"single_team: the organisation has no team {single_team!r}")
        self.contract = contract
        self.endpoint_contracts = dict(endpoint_contracts or {})
        self.single_team = single_team
        self.team_read = team_read
        self.granularity_total = granularity_total
        self.token = token
        self.forbidden_tokens = frozenset(forbidden_tokens)
        self.no_billing_tokens = frozenset(no_billing_tokens)
        self.token_entity = token_entity
        self.token_expires_at = token_expires_at
        self.running_hour = running_hour
        self.legacy_billing = legacy_billing
        self.usage_history = usage_history
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
        self._log = RequestLog()
        self._windows = RateWindows()
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
        return self._log.records()

    def count(
        self,
        *,
        path_prefix: str | None = None,
        query_has: str | Mapping[str, str] | None = None,
    ) -> int:
        """Requests seen whose path starts with ``path_prefix`` and whose query has the
        key ``query_has`` (a string) or all the pairs of ``query_has`` (a mapping)."""
        return self._log.count(path_prefix=path_prefix, query_has=query_has)

    def clear_requests(self) -> None:
        self._log.clear()

    def reset_rate_limit(self) -> None:
        """Forget every rate-limit window (the next request starts a new one)."""
        self._windows.clear()

    # -- serving (called by the handler threads) --------------------------------------

    def _record(self, method: str, path: str, query: dict[str, str]) -> RequestRecord:
        return self._log.add(method, path, query)

    def _connection_opened(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def _connection_closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _respond(
        self, method: str, path: str, query: dict[str, str], authorization: str | None
    ) -> Response | None:
        """The answer to one request, or None for no answer (hang, stop)."""
        if self.faults.latency > 0 and self._stopping.wait(self.faults.latency):
            return None
        allowed, limit_headers = self._windows.spend(
            authorization or "", self.rate_limit, self.rate_window_seconds
        )
        if not allowed:
            response = error_response(429, "Rate limit exceeded")
            if self.retry_after_on_429:
                response.headers["Retry-After"] = limit_headers["x-ratelimit-reset"]
        else:
            rule = self.faults.take(path, query)
            if rule is None:
                response = self._answer(method, path, query, authorization)
            else:
                faulted = fault_response(
                    rule,
                    self._stopping,
                    lambda: self._answer(method, path, query, authorization),
                )
                if faulted is None:
                    return None
                response = faulted
        response.headers = {**limit_headers, **response.headers}
        return response

    def _answer(
        self, method: str, path: str, query: dict[str, str], authorization: str | None
    ) -> Response:
        try:
            if method != "GET":
                response = error_response(405, f"Method {method} not allowed")
                response.headers["Allow"] = "GET"
                return response
            now = self.clock()
            caller = self._authorize(authorization, now)
            handler, params = route(path)
            mode = ApiMode(
                self.page_size,
                self.max_page_size,
                self.running_hour,
                self.legacy_billing,
                self.usage_history,
                self.contract,
                self.endpoint_contracts,
                self.single_team,
                self.granularity_total,
            )
            api = Api(self.org, mode, caller, now)
            with self.org.lock:
                data, pagination = handler(api, params, query, path)
        except ApiError as error:
            return error_response(error.status, error.message)
        document: Json = {"data": data}
        if pagination is not None:
            document["pagination"] = pagination
        return json_response(200, document)

    def _authorize(self, authorization: str | None, now: float) -> Caller:
        entity = self.token_entity if self.single_team is None else ("team", self.single_team)
        return authorize(
            authorization,
            now,
            token=self.token,
            no_billing_tokens=self.no_billing_tokens,
            forbidden_tokens=self.forbidden_tokens,
            entity=entity,
            expires_at=self.token_expires_at,
            team_read=self.team_read,
        )
