"""HTTP/1.x forwarding for one listener.

httptools (llhttp) does all the parsing, on both the client side and the upstream side. What is
written by hand here is only the forwarding glue that no library provides for a reverse proxy that
must pick its upstream per request from a snapshot: aiohttp's client and server would parse and
rebuild every message through their own request/response objects, which costs far more per request,
and they hide the byte tunnel an Upgrade needs. The glue re-frames bodies (Content-Length passes
through, chunked is re-chunked, read-until-close becomes chunked for 1.1 clients), strips hop-by-hop
headers, adds X-Forwarded-For, and keeps client and upstream keep-alive independent.

Each request reads ``state.route(key)`` when its head arrives, so an idle keep-alive client moves to
the new table on its next request while a request already forwarded finishes on its endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

import httptools

from .l4 import pipe
from .state import ProxyState
from .table import Route, Target
from .upstream import READ_LIMIT, UpstreamConn

log = logging.getLogger(__name__)

CHUNK = 2**16
CLIENT_IDLE_TIMEOUT = 75.0

# Headers that describe one hop, never forwarded as they are (RFC 9110 7.6.1).
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding",
     b"upgrade"}
)  # fmt: skip
# Safe to send again on a fresh connection when a pooled one turned out to be closed (RFC 9110 9.2.2).
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})

_HEAD = "head"
_BODY = "body"
_END = "end"


class _RequestSink:
    """httptools callbacks for the client side: each message becomes head/body/end events."""

    def __init__(self) -> None:
        self.events: deque[tuple[str, Any]] = deque()
        self.parser: httptools.HttpRequestParser | None = None
        self._url: list[bytes] = []
        self._headers: list[tuple[bytes, bytes]] = []

    def on_message_begin(self) -> None:
        self._url = []
        self._headers = []

    def on_url(self, url: bytes) -> None:
        self._url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        p = self.parser
        assert p is not None
        self.events.append(
            (
                _HEAD,
                _RequestHead(
                    method=p.get_method(),
                    url=b"".join(self._url),
                    version=p.get_http_version(),
                    headers=self._headers,
                    keep_alive=p.should_keep_alive(),
                    upgrade=p.should_upgrade(),
                ),
            )
        )

    def on_body(self, body: bytes) -> None:
        self.events.append((_BODY, body))

    def on_message_complete(self) -> None:
        self.events.append((_END, None))


class _ResponseSink:
    """httptools callbacks for the upstream side."""

    def __init__(self) -> None:
        self.events: deque[tuple[str, Any]] = deque()
        self.parser: httptools.HttpResponseParser | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._reason: list[bytes] = []

    def on_message_begin(self) -> None:
        self._headers = []
        self._reason = []

    def on_status(self, reason: bytes) -> None:
        self._reason.append(reason)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        p = self.parser
        assert p is not None
        self.events.append(
            (_HEAD, (p.get_status_code(), b"".join(self._reason), self._headers, p.should_keep_alive()))
        )

    def on_body(self, body: bytes) -> None:
        self.events.append((_BODY, body))

    def on_message_complete(self) -> None:
        self.events.append((_END, None))


class _RequestHead:
    __slots__ = ("headers", "keep_alive", "method", "upgrade", "url", "version")

    def __init__(
        self,
        method: bytes,
        url: bytes,
        version: str,
        headers: list[tuple[bytes, bytes]],
        keep_alive: bool,
        upgrade: bool,
    ) -> None:
        self.method = method
        self.url = url
        self.version = version
        self.headers = headers
        self.keep_alive = keep_alive
        self.upgrade = upgrade


class _UpstreamFailed(Exception):
    """The exchange with an endpoint failed; ``retriable`` if nothing reached the client yet and
    the request may be sent again to another connection."""

    def __init__(self, message: str, *, retriable: bool, next_endpoint: bool) -> None:
        super().__init__(message)
        self.retriable = retriable
        self.next_endpoint = next_endpoint


def _connection_tokens(headers: list[tuple[bytes, bytes]]) -> set[bytes]:
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
    return tokens


class HttpListener:
    """Serves HTTP/1.0 and 1.1 clients on one listener key."""

    def __init__(self, state: ProxyState, key: tuple[str, int]) -> None:
        self.state = state
        self.key = key

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Connection callback for asyncio.start_server."""
        self.state.metrics.active_connections += 1
        try:
            await _ClientConnection(self.state, self.key, reader, writer).serve()
        except (ConnectionError, OSError):
            pass
        except Exception:
            log.exception("proxy connection on %s:%s failed", *self.key)
        finally:
            self.state.metrics.active_connections -= 1
            with contextlib.suppress(Exception):
                writer.close()


class _ClientConnection:
    def __init__(
        self,
        state: ProxyState,
        key: tuple[str, int],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.state = state
        self.key = key
        self.reader = reader
        self.writer = writer
        self.sink = _RequestSink()
        self.parser = httptools.HttpRequestParser(self.sink)
        self.sink.parser = self.parser
        self.eof = False
        self.upgrade_tail = b""
        peer = writer.get_extra_info("peername")
        self.client_ip = (peer[0] if isinstance(peer, tuple) else "127.0.0.1").encode()
        self.loop = asyncio.get_running_loop()

    async def _next_event(self, idle: bool = False) -> tuple[str, Any] | None:
        """The next parsed event from the client; None at end of input."""
        events = self.sink.events
        while not events:
            if self.eof:
                return None
            timer = self.loop.call_later(CLIENT_IDLE_TIMEOUT, self.writer.close) if idle else None
            try:
                data = await self.reader.read(CHUNK)
            finally:
                if timer is not None:
                    timer.cancel()
            if not data:
                self.eof = True
                return None
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserUpgrade as exc:
                self.upgrade_tail = data[exc.args[0] :]
                self.eof = True  # the rest of the stream is the tunnel's, not HTTP's
        return events.popleft()

    async def serve(self) -> None:
        while True:
            try:
                ev = await self._next_event(idle=True)
            except httptools.HttpParserError as exc:
                await self._send_error(400, b"HTTP/1.1", f"bad request: {exc}\n", keep_alive=False)
                return
            if ev is None:
                return
            kind, head = ev
            assert kind == _HEAD
            keep_going = await self._handle_request(head)
            if not keep_going:
                return

    async def _handle_request(self, head: _RequestHead) -> bool:
        """Forward one request; returns whether the client connection stays open."""
        started = time.monotonic()
        version = b"HTTP/1.1" if head.version == "1.1" else b"HTTP/1.0"
        route = self.state.route(self.key)
        if route is None:
            await self._finish_unforwarded(head)
            body = f"no service is configured on port {self.key[1]} any more\n"
            return await self._send_error(503, version, body, head.keep_alive and self._request_done)
        if head.method == b"CONNECT":
            await self._finish_unforwarded(head)
            self._observe(route, "", 405, started)
            return await self._send_error(405, version, "CONNECT is not supported\n", False)
        if not route.targets:
            await self._finish_unforwarded(head)
            self._observe(route, "", 503, started)
            body = f"no ready pods for service {route.service_key}\n"
            return await self._send_error(503, version, body, head.keep_alive and self._request_done)
        if head.upgrade:
            await self._tunnel(route, head, version, started)
            return False
        return await self._forward(route, head, version, started)

    _request_done = True

    async def _finish_unforwarded(self, head: _RequestHead) -> None:
        """Consume the rest of a request we answer ourselves, if it is already here; otherwise the
        connection is closed after the answer (``_request_done`` False)."""
        events = self.sink.events
        while events:
            kind, _ = events.popleft()
            if kind == _END:
                self._request_done = True
                return
        self._request_done = False

    def _observe(self, route: Route, revision: str, status: int, started: float) -> None:
        self.state.metrics.observe(
            route.namespace, route.service, revision, status, time.monotonic() - started
        )

    async def _send_error(self, status: int, version: bytes, text: str, keep_alive: bool) -> bool:
        reason = {400: b"Bad Request", 405: b"Method Not Allowed", 502: b"Bad Gateway",
                  503: b"Service Unavailable"}.get(status, b"Error")  # fmt: skip
        body = text.encode()
        conn = b""
        if not keep_alive:
            conn = b"Connection: close\r\n"
        elif version == b"HTTP/1.0":
            conn = b"Connection: keep-alive\r\n"
        self.writer.write(
            b"%s %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n%s"
            b"X-Proxy-Error: pyrollouts\r\n\r\n%s" % (version, status, reason, len(body), conn, body)
        )
        await self.writer.drain()
        return keep_alive

    def _request_head_bytes(self, head: _RequestHead, framing: str) -> bytes:
        tokens = _connection_tokens(head.headers)
        lines = [b"%s %s HTTP/1.1\r\n" % (head.method, head.url)]
        xff = None
        has_proto = False
        for name, value in head.headers:
            low = name.lower()
            if low in HOP_BY_HOP or low in tokens or low == b"expect":
                continue
            if low == b"x-forwarded-for":
                xff = value if xff is None else xff + b", " + value
                continue
            if low == b"x-forwarded-proto":
                has_proto = True
            lines.append(b"%s: %s\r\n" % (name, value))
        lines.append(
            b"X-Forwarded-For: %s\r\n" % (self.client_ip if xff is None else xff + b", " + self.client_ip)
        )
        if not has_proto:
            lines.append(b"X-Forwarded-Proto: http\r\n")
        if framing == "chunked":
            lines.append(b"Transfer-Encoding: chunked\r\n")
        if head.upgrade:
            for name, value in head.headers:
                if name.lower() == b"upgrade":
                    lines.append(b"Upgrade: %s\r\n" % value)
            lines.append(b"Connection: Upgrade\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)

    @staticmethod
    def _request_framing(head: _RequestHead) -> str:
        for name, value in head.headers:
            low = name.lower()
            if low == b"transfer-encoding" and b"chunked" in value.lower():
                return "chunked"
        for name, value in head.headers:
            if name.lower() == b"content-length" and value.strip() != b"0":
                return "length"
        return "none"

    async def _forward(self, route: Route, head: _RequestHead, version: bytes, started: float) -> bool:
        framing = self._request_framing(head)
        if framing != "none" and head.version == "1.1":
            for name, value in head.headers:
                if name.lower() == b"expect" and value.lower() == b"100-continue":
                    # We do not wait for the endpoint's own 100: the body is streamed as it comes.
                    self.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        replayable = framing == "none" and head.method in IDEMPOTENT
        targets = route.targets
        n = len(targets)
        start = self.state.next_index(self.key)
        head_bytes = self._request_head_bytes(head, framing)
        errors: list[str] = []
        attempt = 0
        stale_retries = 0
        target: Target = targets[start % n]
        while attempt < n:
            target = targets[(start + attempt) % n]
            try:
                conn, reused = await self.state.pool.acquire(target.host, target.port)
            except (OSError, TimeoutError) as exc:
                # Nothing reached the endpoint: any request may go to the next one.
                errors.append(f"pod {target.pod or '?'} ({target.host}:{target.port}): {_reason(exc)}")
                attempt += 1
                continue
            try:
                return await self._exchange(
                    conn, reused, route, target, head, version, head_bytes, framing, started
                )
            except _UpstreamFailed as exc:
                errors.append(f"pod {target.pod or '?'} ({target.host}:{target.port}): {exc}")
                if exc.retriable:
                    # A pooled connection was closed by the endpoint: its other idle ones likely too.
                    self.state.pool.discard_idle(target.host, target.port)
                if not (exc.retriable and replayable) or stale_retries >= n + 2:
                    break
                stale_retries += 1
                if exc.next_endpoint:
                    attempt += 1
        self._observe(route, target.revision, 502, started)
        body = f"bad gateway: no answer from service {route.service_key}: " + "; ".join(errors) + "\n"
        return await self._send_error(502, version, body, head.keep_alive and self._request_done)

    async def _exchange(
        self,
        conn: UpstreamConn,
        reused: bool,
        route: Route,
        target: Target,
        head: _RequestHead,
        version: bytes,
        head_bytes: bytes,
        framing: str,
        started: float,
    ) -> bool:
        """Send the request on conn and stream the response back. Raises _UpstreamFailed only
        while nothing was written to the client yet."""
        pool = self.state.pool
        up_w = conn.writer
        client_w = self.writer
        self._request_done = False
        try:
            up_w.write(head_bytes)
            if framing == "none":
                # A bodiless request still produces an END event; consume it.
                await self._finish_unforwarded(head)
            else:
                while True:
                    ev = await self._next_event()
                    if ev is None:
                        raise ConnectionResetError("client closed during the request body")
                    kind, data = ev
                    if kind == _END:
                        if framing == "chunked":
                            up_w.write(b"0\r\n\r\n")
                        self._request_done = True
                        break
                    if framing == "chunked":
                        up_w.write(b"%x\r\n%s\r\n" % (len(data), data))
                    else:
                        up_w.write(data)
                    await up_w.drain()
        except httptools.HttpParserError:
            conn.close()
            raise
        except (ConnectionError, OSError) as exc:
            conn.close()
            if not self._request_done and self.eof:
                raise
            raise _UpstreamFailed(_reason(exc), retriable=reused, next_endpoint=not reused) from exc

        sink = _ResponseSink()
        rparser = httptools.HttpResponseParser(sink)
        sink.parser = rparser
        got_bytes = False
        head_sent = False
        status = 502
        mode = "none"  # how we frame the body towards the client
        upstream_eof_body = False
        client_keep = head.keep_alive and self._request_done
        up_keep = False
        is_head = head.method == b"HEAD"
        skip_end = False  # the END that follows an informational (1xx) head is not the response's
        # What goes to the client is collected and written once per upstream read: a small response
        # then costs one write (one syscall) instead of one for the head and one for the body.
        out: list[bytes] = []
        out_size = 0
        try:
            while True:
                if not sink.events:
                    if out:
                        client_w.write(b"".join(out))
                        out.clear()
                        out_size = 0
                        await client_w.drain()
                    try:
                        data = await conn.reader.read(CHUNK)
                    except (ConnectionError, OSError) as exc:
                        raise _UpstreamFailed(
                            _reason(exc), retriable=reused and not got_bytes, next_endpoint=False
                        ) from exc
                    if not data:
                        if head_sent and upstream_eof_body:
                            sink.events.append((_END, None))
                        elif not got_bytes:
                            raise _UpstreamFailed(
                                "connection closed before a response",
                                retriable=reused,
                                next_endpoint=not reused,
                            )
                        else:
                            raise _UpstreamFailed(
                                "connection closed in the middle of the response",
                                retriable=False,
                                next_endpoint=False,
                            )
                    else:
                        got_bytes = True
                        try:
                            rparser.feed_data(data)
                        except httptools.HttpParserUpgrade:
                            pass  # a 101 to a non-upgrade request; its head is already an event
                        except httptools.HttpParserError as exc:
                            raise _UpstreamFailed(
                                f"invalid response: {exc}", retriable=False, next_endpoint=False
                            ) from exc
                    continue
                kind, data = sink.events.popleft()
                if kind == _HEAD:
                    status, reason, rheaders, r_keep = data
                    if 100 <= status < 200 and status != 101:
                        skip_end = True
                        if head.version == "1.1" and status != 100:
                            out.append(
                                self._response_head(version, status, reason, rheaders, "none", True, head)
                            )
                        continue
                    no_body = is_head or status in (204, 304) or status == 101
                    mode = "none" if no_body else _response_framing(rheaders)
                    upstream_eof_body = mode == "eof"
                    up_keep = r_keep and mode != "eof"
                    if mode == "eof" or (mode == "chunked" and head.version != "1.1"):
                        if head.version == "1.1":
                            mode = "rechunk"
                        else:
                            mode = "raw"
                            client_keep = False
                    elif mode == "chunked":
                        mode = "rechunk"
                    out.append(
                        self._response_head(version, status, reason, rheaders, mode, client_keep, head)
                    )
                    head_sent = True
                    if no_body:
                        break
                elif kind == _BODY:
                    if mode == "rechunk":
                        out.append(b"%x\r\n%s\r\n" % (len(data), data))
                    else:
                        out.append(data)
                    out_size += len(data)
                    if out_size >= CHUNK:
                        client_w.write(b"".join(out))
                        out.clear()
                        out_size = 0
                        await client_w.drain()
                else:  # END
                    if skip_end:
                        skip_end = False
                        continue
                    if mode == "rechunk":
                        out.append(b"0\r\n\r\n")
                    break
        except _UpstreamFailed as exc:
            conn.close()
            if head_sent:
                # The client already has a status line: the only honest signal left is to cut it.
                self._observe(route, target.revision, 502, started)
                log.info("%s: %s", route.service_key, exc)
                client_w.close()
                return False
            raise
        except BaseException:
            conn.close()
            raise
        if out:
            client_w.write(b"".join(out))
        await client_w.drain()
        # After a HEAD the parser may still wait for the announced body; nothing else may be pending.
        if up_keep and self._request_done and (not is_head or not sink.events):
            pool.release(conn)
        else:
            conn.close()
        self._observe(route, target.revision, status, started)
        return client_keep

    def _response_head(
        self,
        version: bytes,
        status: int,
        reason: bytes,
        headers: list[tuple[bytes, bytes]],
        mode: str,
        keep_alive: bool,
        head: _RequestHead,
    ) -> bytes:
        tokens = _connection_tokens(headers)
        lines = [b"%s %d %s\r\n" % (version, status, reason or b"-")]
        for name, value in headers:
            low = name.lower()
            if low in HOP_BY_HOP or low in tokens:
                continue
            if mode in ("rechunk", "raw") and low == b"content-length":
                continue
            lines.append(b"%s: %s\r\n" % (name, value))
        if mode == "rechunk":
            lines.append(b"Transfer-Encoding: chunked\r\n")
        if not keep_alive:
            lines.append(b"Connection: close\r\n")
        elif version == b"HTTP/1.0":
            lines.append(b"Connection: keep-alive\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)

    async def _tunnel(self, route: Route, head: _RequestHead, version: bytes, started: float) -> None:
        """Forward an Upgrade request; after a 101 the connection becomes a byte tunnel."""
        await self._finish_unforwarded(head)
        targets = route.targets
        n = len(targets)
        start = self.state.next_index(self.key)
        errors: list[str] = []
        for attempt in range(n):
            target = targets[(start + attempt) % n]
            try:
                up_r, up_w = await asyncio.wait_for(
                    asyncio.open_connection(target.host, target.port, limit=READ_LIMIT), 5.0
                )
            except (OSError, TimeoutError) as exc:
                errors.append(f"pod {target.pod or '?'} ({target.host}:{target.port}): {_reason(exc)}")
                continue
            up_w.write(self._request_head_bytes(head, "none"))
            sink = _ResponseSink()
            rparser = httptools.HttpResponseParser(sink)
            sink.parser = rparser
            tail = b""
            upgraded = False
            while not sink.events or sink.events[0][0] != _HEAD:
                data = await up_r.read(CHUNK)
                if not data:
                    break
                try:
                    rparser.feed_data(data)
                except httptools.HttpParserUpgrade as exc:
                    tail = data[exc.args[0] :]
                    upgraded = True
                except httptools.HttpParserError:
                    break
            if not sink.events:
                up_w.close()
                errors.append(f"pod {target.pod or '?'}: no valid answer to the upgrade request")
                continue
            status, reason, rheaders, _ = sink.events.popleft()[1]
            if status != 101 or not upgraded:
                # Refused upgrade: pass the answer (head only, then close) and stop.
                self.writer.write(self._response_head(version, status, reason, rheaders, "raw", False, head))
                while sink.events:
                    kind, data = sink.events.popleft()
                    if kind == _BODY:
                        self.writer.write(data)
                with contextlib.suppress(Exception):
                    while data := await asyncio.wait_for(up_r.read(CHUNK), 5.0):
                        self.writer.write(data)
                up_w.close()
                self._observe(route, target.revision, status, started)
                return
            lines = [b"HTTP/1.1 101 %s\r\n" % (reason or b"Switching Protocols")]
            lines += [b"%s: %s\r\n" % (k, v) for k, v in rheaders]
            lines.append(b"\r\n")
            self.writer.write(b"".join(lines) + tail)
            if self.upgrade_tail:
                up_w.write(self.upgrade_tail)
            self._observe(route, target.revision, 101, started)
            await pipe(self.reader, self.writer, up_r, up_w)
            return
        self._observe(route, "", 502, started)
        body = f"bad gateway: no answer from service {route.service_key}: " + "; ".join(errors) + "\n"
        await self._send_error(502, version, body, False)


def _response_framing(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name.lower() == b"transfer-encoding" and b"chunked" in value.lower():
            return "chunked"
    for name, _ in headers:
        if name.lower() == b"content-length":
            return "length"
    return "eof"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "connect timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
