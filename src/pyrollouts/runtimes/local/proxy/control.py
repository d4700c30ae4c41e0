"""The control channel: an HTTP server on the unix socket <state-dir>/proxy.sock.

- ``PUT /table``: the whole table (format in ``table.py``); answers
  ``{"version", "listening": [{"bind", "port", "tcp"}], "failed": [{"namespace", "name", "bind",
  "port", "error"}]}``, or 400 ``{"error": "..."}`` naming the bad field (nothing changed then).
- ``GET /table``: the table being served. ``GET /healthz``: pid, start time, version, failed ports.
- ``GET /metrics``: Prometheus text. ``GET /stats``: the same counters as JSON, plus current routes.
- ``GET /counters``: the raw running totals per revision, with pid and uptime (the server reads
  them every second: keep it cheap).

Six routes, one local client (``ProxyManager``), a few requests a second at most: this is a small
HTTP/1.1 server on asyncio and httptools (which the data path loads anyway) rather than aiohttp's,
whose import alone took about half of the proxy process's start-up CPU. It answers every request
with a Content-Length body, keeps connections alive as HTTP/1.1 asks, and handles one request at a
time per connection in arrival order.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import httptools

from .server import ProxyServer
from .table import TableError

log = logging.getLogger(__name__)

#: The largest request body accepted (a table with thousands of services is far smaller).
MAX_BODY = 64 * 2**20
#: What prometheus_client calls CONTENT_TYPE_LATEST for the text format 0.0.4.
METRICS_CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
JSON_CONTENT_TYPE = b"application/json; charset=utf-8"
_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed",
            413: b"Payload Too Large", 500: b"Internal Server Error"}  # fmt: skip

_UPGRADE_REFUSED = "Upgrade and CONNECT are not supported on the control socket"

# (status, content type, body)
Reply = tuple[int, bytes, bytes]


def _json(status: int, payload: Any, **dumps: Any) -> Reply:
    return status, JSON_CONTENT_TYPE, json.dumps(payload, **dumps).encode()


class ControlHandler:
    """The routes, independent of the transport (called with method, path and body)."""

    def __init__(self, proxy: ProxyServer) -> None:
        self.proxy = proxy
        self.routes: dict[bytes, dict[bytes, Callable[[bytes], Awaitable[Reply]]]] = {
            b"/table": {b"PUT": self.put_table, b"GET": self.get_table},
            b"/healthz": {b"GET": self.healthz},
            b"/metrics": {b"GET": self.metrics},
            b"/stats": {b"GET": self.stats},
            b"/counters": {b"GET": self.counters},
        }

    async def handle(self, method: bytes, path: bytes, body: bytes) -> Reply:
        """The answer to one request; HEAD is answered like GET (the body is dropped when sent)."""
        methods = self.routes.get(path)
        if methods is None:
            return _json(
                404, {"error": f"no such path {path.decode(errors='replace')}; see proxy/control.py"}
            )
        handler = methods.get(b"GET" if method == b"HEAD" else method)
        if handler is None:
            allowed = ", ".join(m.decode() for m in methods)
            return _json(
                405, {"error": f"{method.decode(errors='replace')} is not allowed here; use {allowed}"}
            )
        try:
            return await handler(body)
        except Exception as exc:  # a bug: answer it instead of dropping the connection
            log.exception(
                "control %s %s failed", method.decode(errors="replace"), path.decode(errors="replace")
            )
            return _json(500, {"error": f"internal error: {exc}"})

    async def put_table(self, body: bytes) -> Reply:
        """Validate and switch to a new table."""
        try:
            table: Any = json.loads(body)
        except ValueError as exc:
            return _json(400, {"error": f"table: not JSON: {exc}"})
        try:
            result = await self.proxy.apply(table)
        except TableError as exc:
            return _json(400, {"error": str(exc)})
        return _json(200, result)

    async def get_table(self, body: bytes) -> Reply:
        """The table being served."""
        return _json(200, self.proxy.table)

    async def healthz(self, body: bytes) -> Reply:
        """Liveness and identity (pid, start time) of this proxy process."""
        return _json(200, self.proxy.health())

    async def metrics(self, body: bytes) -> Reply:
        """Prometheus text."""
        return 200, METRICS_CONTENT_TYPE, self.proxy.state.metrics.prometheus_text()

    async def stats(self, body: bytes) -> Reply:
        """Counters and routes as JSON."""
        return _json(200, self.proxy.stats(), allow_nan=False, default=str)

    async def counters(self, body: bytes) -> Reply:
        """Raw per-revision totals, pid and uptime."""
        return _json(200, self.proxy.counters(), allow_nan=False, separators=(",", ":"))


class _Request:
    __slots__ = ("body", "error", "keep_alive", "method", "path")

    def __init__(
        self, method: bytes, path: bytes, body: bytes, keep_alive: bool, error: Reply | None = None
    ) -> None:
        self.method = method
        self.path = path
        self.body = body
        self.keep_alive = keep_alive
        #: Answered as it is, without a handler (a bad or too large request).
        self.error = error


class ControlProtocol(asyncio.Protocol):
    """One connection on the control socket."""

    def __init__(self, handler: ControlHandler, connections: set[ControlProtocol]) -> None:
        self.handler = handler
        self.connections = connections
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.pending: deque[_Request] = deque()
        self.task: asyncio.Task[None] | None = None
        self._url = b""
        self._body: list[bytes] = []
        self._size = 0
        #: The parser failed: the 400 is queued and later bytes are ignored.
        self.failed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if self.failed:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # Not a subclass of HttpParserError. on_message_complete answered the request already
            # when llhttp got that far; otherwise (CONNECT's head, ...) answer here.
            if not self.failed:
                self._fail(_UPGRADE_REFUSED)
        except httptools.HttpParserError as exc:
            self._fail(f"bad request: {exc}")

    def _fail(self, message: str) -> None:
        # Answered after the requests before it (in order), then the connection closes.
        self.failed = True
        self._enqueue(_Request(b"", b"", b"", False, _json(400, {"error": message})))

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url = b""
        self._body = []
        self._size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size <= MAX_BODY:
            self._body.append(body)

    def on_message_complete(self) -> None:
        p = self.parser
        path = self._url.split(b"?", 1)[0]
        if p.should_upgrade():
            # An Upgrade or CONNECT request: what follows it is not HTTP, so it ends the connection.
            self._fail(_UPGRADE_REFUSED)
            return
        too_large = (
            _json(413, {"error": f"request body larger than {MAX_BODY} bytes"})
            if self._size > MAX_BODY
            else None
        )
        self._enqueue(_Request(p.get_method(), path, b"".join(self._body), p.should_keep_alive(), too_large))
        self._body = []

    def _enqueue(self, request: _Request) -> None:
        self.pending.append(request)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._serve())

    async def _serve(self) -> None:
        # One request at a time, in order: a table push finishes before the next request is read.
        while self.pending and self.transport is not None:
            req = self.pending.popleft()
            if req.error is not None:
                status, ctype, body = req.error
            else:
                status, ctype, body = await self.handler.handle(req.method, req.path, req.body)
            self._send(status, ctype, body, req.keep_alive, req.method == b"HEAD")
            if not req.keep_alive:
                return

    def _send(self, status: int, ctype: bytes, body: bytes, keep_alive: bool, head_only: bool) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        t.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n"
            % (
                status,
                _REASONS.get(status, b"-"),
                ctype,
                len(body),
                b"" if keep_alive else b"Connection: close\r\n",
            )
        )
        if not head_only:
            t.write(body)
        if not keep_alive:
            t.close()


class ControlServer:
    """The control socket's listener and its open connections."""

    def __init__(self, server: asyncio.AbstractServer, connections: set[ControlProtocol]) -> None:
        self.server = server
        self.connections = connections

    def close(self) -> None:
        """Stop listening and close every open control connection."""
        self.server.close()
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.close()


async def serve_control(proxy: ProxyServer, path: str) -> ControlServer:
    """Listen on the unix socket ``path`` and answer control requests for ``proxy``."""
    handler = ControlHandler(proxy)
    connections: set[ControlProtocol] = set()
    server = await asyncio.get_running_loop().create_unix_server(
        lambda: ControlProtocol(handler, connections), path
    )
    return ControlServer(server, connections)
