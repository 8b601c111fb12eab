"""The HTTP server: hands out the bytes the last poll rendered. No work on the scrape path.

``/metrics`` picks one of four pre-rendered bodies by ``Accept`` (OpenMetrics or text)
and ``Accept-Encoding`` (gzip or identity); ``/`` the page the poll made (:mod:`exporter.page`);
``/-/healthy`` answers 200 while the process runs and ``/-/ready`` 200 while figures
are served. The current :class:`~exporter.bodies.Published` is one reference, replaced
whole by :meth:`MetricsServer.publish`, so a scrape never sees half a poll.
"""

from __future__ import annotations

import email.utils
import socket
import ssl
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from exporter.bodies import Published
from exporter.encoding import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE
from exporter.webconfig import WebConfig

OPEN_PATHS = frozenset({"/-/healthy", "/-/ready"})  # probes need no credentials


def wants_openmetrics(accept: str) -> bool:
    return "application/openmetrics-text" in accept


def accepts_gzip(accept_encoding: str) -> bool:
    """True when ``Accept-Encoding`` allows gzip (and does not give it q=0)."""
    for part in accept_encoding.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            q = params.strip().removeprefix("q=")
            try:
                return float(q) > 0 if params.strip().startswith("q=") else True
            except ValueError:
                return True
    return False


_date = (0, "")  # (Unix second, its HTTP date): one formatdate() a second


def http_date() -> str:
    """The ``Date`` header for now, as BaseHTTPRequestHandler.date_time_string() gives it."""
    global _date
    second, text = _date
    now = int(time.time())
    if now != second:
        text = email.utils.formatdate(now, usegmt=True)
        _date = (now, text)
    return text


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 30  # seconds a kept-alive connection may idle
    routes: ClassVar[dict[str, str]] = {
        "/metrics": "_metrics",
        "/": "_index",
        "/-/healthy": "_healthy",
        "/-/ready": "_ready",
    }

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        name = self.routes.get(path)
        web = self.server.web
        if (
            web is not None
            and path not in OPEN_PATHS
            and not web.authorized(self.headers.get("Authorization"))
        ):
            self.send_response(HTTPStatus.UNAUTHORIZED)
            self.send_header("WWW-Authenticate", 'Basic realm="northflank-exporter"')
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", "13")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(b"Unauthorized\n")
            return
        if name is None:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")
            return
        getattr(self, name)()

    def do_HEAD(self) -> None:
        self.do_GET()

    def _metrics(self) -> None:
        published = self.server.current
        openmetrics = wants_openmetrics(self.headers.get("Accept", ""))
        body = published.exposition.openmetrics if openmetrics else published.exposition.text
        ctype = OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE
        if accepts_gzip(self.headers.get("Accept-Encoding", "")):
            self._send(HTTPStatus.OK, body.gzipped, ctype, gzip=True)
        else:
            self._send(HTTPStatus.OK, body.parts, ctype)

    def _healthy(self) -> None:
        self._send(HTTPStatus.OK, b"OK\n", "text/plain; charset=utf-8")

    def _ready(self) -> None:
        if self.server.current.ready:
            self._send(HTTPStatus.OK, b"ready\n", "text/plain; charset=utf-8")
        else:
            self._send(
                HTTPStatus.SERVICE_UNAVAILABLE,
                b"not ready: no figures to serve (no successful poll yet, or too old)\n",
                "text/plain; charset=utf-8",
            )

    def _index(self) -> None:
        self._send(HTTPStatus.OK, self.server.current.page, "text/html; charset=utf-8")

    def _send(
        self,
        status: HTTPStatus,
        body: bytes | tuple[bytes, ...],
        ctype: str,
        *,
        gzip: bool = False,
    ) -> None:
        """send_response(), send_header() and end_headers() in one string, sent with the body."""
        parts = (body,) if isinstance(body, bytes) else body
        length = sum(len(part) for part in parts)
        self.log_request(status, length)
        head = b""
        if self.request_version != "HTTP/0.9":
            lines = [
                f"{self.protocol_version} {status.value} {status.phrase}\r\n"
                f"Server: {self.version_string()}\r\nDate: {http_date()}\r\n"
                f"Content-Type: {ctype}\r\nContent-Length: {length}\r\n"
            ]
            if gzip:
                lines.append("Content-Encoding: gzip\r\n")
            if self.path.startswith("/metrics"):
                lines.append("Vary: Accept, Accept-Encoding\r\n")
            lines.append("\r\n")
            head = "".join(lines).encode("latin-1")
        self._write(head, *(parts if self.command != "HEAD" else ()))

    def _write(self, *parts: bytes) -> None:
        """Headers and body in one system call where the socket allows it."""
        sock = self.connection
        if isinstance(sock, ssl.SSLSocket):  # no sendmsg: one TLS write per part
            for part in parts:
                self.wfile.write(part)
            return
        views = [memoryview(part) for part in parts if part]
        while views:
            sent = sock.sendmsg(views)
            while sent and views:
                if sent >= len(views[0]):
                    sent -= len(views.pop(0))
                else:
                    views[0] = views[0][sent:]
                    sent = 0

    def log_message(self, format: str, *args: object) -> None:
        pass  # one log line per poll, not per scrape


class MetricsServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, host: str, port: int, initial: Published, web: WebConfig | None = None
    ) -> None:
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)
        self.current = initial
        self.web = web
        self._thread: threading.Thread | None = None

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        if self.web is not None and self.web.tls is not None:
            # The handshake happens on the first read, in the handler's own thread, so a
            # slow or broken client cannot hold up the accept loop.
            conn = self.web.tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up or failed the TLS handshake is not the exporter's error

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def publish(self, published: Published) -> None:
        self.current = published  # one reference, swapped whole

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
