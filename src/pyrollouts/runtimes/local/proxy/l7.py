"""HTTP/1.x forwarding for one listener, as asyncio protocols.

httptools (llhttp) does all the parsing, on both the client side and the upstream side. What is
written by hand here is only the forwarding glue that no library provides for a reverse proxy that
must pick its upstream per request from a snapshot: aiohttp's client and server parse and rebuild
every message through their own request/response objects, which costs several times more per
request, and they hide the byte tunnel an Upgrade needs. The glue re-frames bodies (Content-Length
passes through, chunked is re-chunked, read-until-close becomes chunked for 1.1 clients), strips
hop-by-hop headers, sets X-Forwarded-For/-Proto/-Host (a client's own are dropped), keeps client and
upstream keep-alive independent, and holds each client to the limits of ``limits.py`` (head size and
header count, head deadline, idle and upstream timeouts, connection cap).

It is callback-driven (no coroutine or future per request on the common path): with asyncio
streams every read costs a future, a buffer copy and a task wake-up, and an L4 pipe built on them
carried about a third of the requests per second of the same pipe built on protocols here.
One ``HttpProxyProtocol`` per client connection turns parser callbacks into requests; one
``_Exchange`` at a time forwards a request and its response. When nothing is waiting, a request
starts straight from the parser callback and its body goes straight to the endpoint; otherwise
(pipelining, a body while the endpoint connection is being opened) head/body/end events wait in
a queue. Each request reads the routing snapshot when it starts, so an idle keep-alive client
moves to the new table on its next request while a request already forwarded finishes on its
endpoint (draining).

This file is the proxy's hot path, and the Python work per request is what its CPU cost is made
of (``make bench``, docs/benchmarks.md): so one pass over the headers builds the forwarded head,
the endpoint's parser calls the exchange directly, and the common path makes few calls. The plain
(slower, obviously right) head rewriting functions are kept for rare cases and as the reference
the tests compare the fast path with.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from time import monotonic
from typing import Any

import httptools

from .l4 import ClientPipe, connect_pipe, reason
from .mirror import Mirror, start_mirror
from .split import Split, choose, header_dict, mirror_of
from .state import ProxyState
from .table import Route, Target
from .upstream import CONNECT_TIMEOUT

log = logging.getLogger(__name__)

# Client bytes queued behind a request in flight (pipelining, or a body while connecting) before
# we stop reading from the client.
MAX_QUEUED = 2**18

# Headers that describe one hop, never forwarded as they are (RFC 9110 7.6.1).
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding",
     b"upgrade"}
)  # fmt: skip
# Never taken as Connection options (RFC 9110 7.6.1 lets a sender name any header there): dropping
# the message's own framing would make the next hop read its body as the next message (request
# smuggling), and Host is what routes it. Ignored as tokens, as nginx and Go's proxy do.
NOT_CONNECTION_OPTIONS = frozenset({b"content-length", b"transfer-encoding", b"host"})
# Safe to send again on a fresh connection when a pooled one turned out to be closed (RFC 9110 9.2.2).
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
REASONS = {400: b"Bad Request", 405: b"Method Not Allowed", 408: b"Request Timeout",
           431: b"Request Header Fields Too Large", 502: b"Bad Gateway", 503: b"Service Unavailable",
           504: b"Gateway Timeout"}  # fmt: skip
# Seconds a connection ended by an error answer (a 503 at the connection cap, a 400 or 431 for a bad
# head) stays half-closed after it, reading and dropping what the client still sends: closing with
# unread bytes would reset the connection, and the client might lose the answer. Closed sooner
# when the client closes its side, or once it has sent LINGER_MAX_BYTES more (a client that keeps
# sending is cut off: the answer may be lost to it, but it is not listening).
REFUSE_LINGER = 1.0
LINGER_MAX_BYTES = 256 * 1024
# What the endpoint is told about the client, by the proxy only: a client's own values are dropped
# (a client must not choose the address, scheme or host an application sees). Forwarded
# (RFC 7239) carries the same claims, so it is dropped too.
FORWARDED = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"forwarded"})

# Queued client events. _FAIL ends the connection once the requests before it are answered: its
# data is (status, body) of the answer (400: the client sent bytes that do not parse; 431: a head
# over the limits; 408: a head too slow) or None (the client went away in the middle of a request:
# nobody to answer).
_HEAD, _BODY, _END, _FAIL = 0, 1, 2, 3

# What the one-pass head rewriting looks at, by lower-cased header name; every other header is
# forwarded as it came. _DROP: hop-by-hop, never forwarded.
_DROP, _CONNECTION, _TRANSFER_ENCODING, _CONTENT_LENGTH, _EXPECT, _HOST = range(6)
_REQUEST_HEADERS: dict[bytes, int] = {
    **dict.fromkeys(HOP_BY_HOP, _DROP),
    **dict.fromkeys(FORWARDED, _DROP),
    b"host": _HOST,
    b"connection": _CONNECTION,
    b"transfer-encoding": _TRANSFER_ENCODING,
    b"content-length": _CONTENT_LENGTH,
    b"expect": _EXPECT,
}
_RESPONSE_HEADERS: dict[bytes, int] = {
    **dict.fromkeys(HOP_BY_HOP, _DROP),
    b"connection": _CONNECTION,
    b"transfer-encoding": _TRANSFER_ENCODING,
    b"content-length": _CONTENT_LENGTH,
}


class _Scan:
    """What one pass over a head's headers found (``scan_headers``)."""

    __slots__ = ("chunked", "expect", "host", "length", "nonzero_length", "tokens")

    def __init__(self) -> None:
        self.chunked = self.length = self.nonzero_length = self.expect = False
        self.host: bytes | None = None
        self.tokens: set[bytes] | None = None  # Connection tokens, lowercased


def scan_headers(headers: list[tuple[bytes, bytes]], kinds: dict[bytes, int], lines: list[bytes]) -> _Scan:
    """One pass over a request's or a response's headers (``kinds``: _REQUEST_HEADERS or
    _RESPONSE_HEADERS): append each forwarded header to ``lines`` and note what decides the framing
    and the forwarding (chunked, Content-Length, Connection tokens, Host, Expect: 100-continue).
    Transfer-Encoding, Connection, hop-by-hop and a client's X-Forwarded-* are not forwarded."""
    found = _Scan()
    for name, value in headers:
        kind = kinds.get(name.lower())
        if kind is None:
            lines += (name, b": ", value, b"\r\n")
        elif kind == _HOST:
            if found.host is None:
                found.host = value
            lines += (name, b": ", value, b"\r\n")
        elif kind == _CONTENT_LENGTH:
            found.length = True
            if value.strip() != b"0":
                found.nonzero_length = True
            lines += (name, b": ", value, b"\r\n")
        elif kind == _TRANSFER_ENCODING:
            if b"chunked" in value.lower():
                found.chunked = True
        elif kind == _CONNECTION:
            if found.tokens is None:
                found.tokens = set()
            found.tokens.update(t.strip().lower() for t in value.split(b","))
        elif kind == _EXPECT and value.lower() == b"100-continue":
            found.expect = True
        # else _DROP (hop-by-hop, or a client's X-Forwarded-*), or an Expect other than
        # 100-continue: not forwarded.
    return found


class _HeadRejected(Exception):
    """Raised from a parser callback to stop parsing a head over the limits (its answer is in
    ``HttpProxyProtocol.rejected``)."""


class _RequestHead:
    __slots__ = ("headers", "keep_alive", "method", "upgrade", "url", "version")

    def __init__(
        self, method: bytes, url: bytes, version: str, headers: list[tuple[bytes, bytes]], keep_alive: bool,
        upgrade: bool,
    ) -> None:  # fmt: skip
        self.method = method
        self.url = url
        self.version = version
        self.headers = headers
        self.keep_alive = keep_alive
        self.upgrade = upgrade


def _connection_tokens(headers: list[tuple[bytes, bytes]]) -> set[bytes]:
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
    return tokens - NOT_CONNECTION_OPTIONS


def _tokens_name_a_header(tokens: set[bytes] | None, headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a Connection header names a header that is not hop-by-hop anyway (then that header
    must be dropped too, and the plain rewriting below does it)."""
    if not tokens:
        return False
    extra = tokens - HOP_BY_HOP - NOT_CONNECTION_OPTIONS
    return bool(extra) and any(name.lower() in extra for name, _ in headers)


def _request_framing(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name.lower() == b"transfer-encoding" and b"chunked" in value.lower():
            return "chunked"
    for name, value in headers:
        if name.lower() == b"content-length" and value.strip() != b"0":
            return "length"
    return "none"


def _response_framing(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name.lower() == b"transfer-encoding" and b"chunked" in value.lower():
            return "chunked"
    for name, _ in headers:
        if name.lower() == b"content-length":
            return "length"
    return "eof"


def _error_response(version: bytes, status: int, text: str, keep_alive: bool) -> bytes:
    body = text.encode()
    conn = b"" if keep_alive and version == b"HTTP/1.1" else (
        b"Connection: keep-alive\r\n" if keep_alive else b"Connection: close\r\n"
    )  # fmt: skip
    return (
        b"%s %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n%s"
        b"X-Proxy-Error: pyrollouts\r\n\r\n%s"
        % (version, status, REASONS.get(status, b"Error"), len(body), conn, body)
    )


def forward_request_head(head: _RequestHead, client_ip: bytes) -> tuple[str, bytes, bool]:
    """The request as sent to an endpoint, in one pass over its headers: (framing of its body:
    "chunked", "length" or "none"; the head bytes; whether the client sent Expect: 100-continue).

    Gives the same bytes as ``_request_head_bytes(head, _request_framing(...), client_ip)``."""
    if head.upgrade:
        framing = _request_framing(head.headers)
        return framing, _request_head_bytes(head, framing, client_ip), _expects_continue(head.headers)
    lines: list[bytes] = [head.method + b" " + head.url + b" HTTP/1.1\r\n"]
    found = scan_headers(head.headers, _REQUEST_HEADERS, lines)
    chunked, expect = found.chunked, found.expect
    framing = "chunked" if chunked else "length" if found.nonzero_length else "none"
    if found.tokens is not None and _tokens_name_a_header(found.tokens, head.headers):
        return framing, _request_head_bytes(head, framing, client_ip), expect
    lines += (b"X-Forwarded-For: ", client_ip, b"\r\nX-Forwarded-Proto: http\r\n")
    if found.host is not None:
        lines += (b"X-Forwarded-Host: ", found.host, b"\r\n")
    if chunked:
        lines.append(b"Transfer-Encoding: chunked\r\n")
    lines.append(b"\r\n")
    return framing, b"".join(lines), expect


def _expects_continue(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(n.lower() == b"expect" and v.lower() == b"100-continue" for n, v in headers)


class HttpProxyProtocol(asyncio.Protocol):
    """One client connection on an HTTP listener."""

    __slots__ = (
        "_head_left", "_headers", "_in_head", "_in_message", "_pumping", "_url", "client_eof",
        "client_ip", "closed", "dropped", "events", "exchange", "failed", "head_mark", "idle_since",
        "key", "loop", "parser", "paused_for", "queued", "rejected", "state", "transport", "tunnel",
        "upgrade_tail",
    )  # fmt: skip

    def __init__(self, state: ProxyState, key: tuple[str, int]) -> None:
        self.state = state
        self.key = key
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        # Events waiting for the exchange in flight (or for its endpoint connection); empty on the
        # common path, where parser callbacks drive the exchange directly.
        self.events: deque[tuple[int, Any]] = deque()
        self.queued = 0
        self.exchange: _Exchange | None = None
        self.closed = False
        self.client_eof = False
        self.paused_for: set[str] = set()
        # loop.time() when the connection became idle between requests; None while busy. The
        # proxy's sweeper closes connections idle too long (cheaper than a timer per request).
        self.idle_since: float | None = None
        self.client_ip = b"127.0.0.1"
        # After an Upgrade request, the rest of the client's bytes belong to the tunnel.
        self.upgrade_tail: bytes | None = None
        self.tunnel: ClientPipe | None = None
        # The request being parsed: reset when a message begins (the previous message's chunked
        # trailers come through on_header too, after its head is complete) and when its head is
        # complete (so trailers never reach a head that is queued, not yet forwarded).
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        # Between on_message_begin and on_message_complete: an EOF then cuts a request short.
        self._in_message = False
        # The parser failed: the rest of the client's bytes mean nothing.
        self.failed = False
        # Bytes read and dropped since then (see LINGER_MAX_BYTES).
        self.dropped = 0
        self._pumping = False
        # Between the end of a message (or the connection's start) and the end of the next head:
        # the bytes read then count against the head limit; _head_left is what is left of it.
        # The count is per read, so bytes of a pipelined head that came in the same read as the
        # end of the previous message are not counted (at most one read's worth).
        self._in_head = True
        self._head_left = state.limits.max_head_bytes
        # When the sweeper first saw this head unfinished (None: no head in progress).
        self.head_mark: float | None = None
        # (status, body) for a head refused from a parser callback.
        self.rejected: tuple[int, str] | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.client_ip = peer[0].encode()
        metrics = self.state.metrics
        metrics.active_connections += 1
        self.state.clients.add(self)
        if metrics.active_connections > self.state.limits.max_connections:
            self._refuse_over_cap()
            return
        self._arm_idle()

    def _refuse_over_cap(self) -> None:
        """Over the connection cap: a 503 and a half-close, the client's bytes read and dropped for
        REFUSE_LINGER seconds, then closed."""
        assert self.transport is not None
        self.state.metrics.refused_connections += 1
        self.failed = True
        cap = self.state.limits.max_connections
        body = (
            f"the proxy has {cap} client connections open, its limit (PYROLLOUTS_PROXY_MAX_CONNECTIONS): "
            "retry later\n"
        )
        self.transport.write(_error_response(b"HTTP/1.1", 503, body, False))
        self._linger_close()

    def _linger_close(self) -> None:
        """After a last answer: half-close, read and drop the client's bytes (``failed`` is set)
        for up to REFUSE_LINGER seconds, then close; an EOF from the client closes at once."""
        t = self.transport
        if t is None or t.is_closing():
            return
        if not t.can_write_eof():
            t.close()
            return
        t.write_eof()
        self.paused_for.clear()
        t.resume_reading()
        self.loop.call_later(REFUSE_LINGER, self._close)

    def data_received(self, data: bytes) -> None:
        self.idle_since = None
        if self.upgrade_tail is not None:
            if self.tunnel is not None:
                self.tunnel.send(data)
            else:
                self.upgrade_tail += data
            return
        if self.failed:
            self.dropped += len(data)
            if self.dropped > LINGER_MAX_BYTES:
                self._close()
            return
        if self._in_head:
            if len(data) > self._head_left:
                self._feed_at_head_limit(data)
                return
            self._head_left -= len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self.upgrade_tail = data[exc.args[0] :]
        except httptools.HttpParserError as exc:
            self._parse_error(exc)
            return
        if self.events or self.paused_for or self.exchange is None:
            self._pump()

    def _parse_error(self, exc: Exception) -> None:
        # Answered in order: after the responses to the requests before the bad bytes (a 400
        # written now would reach the client as the answer to a request in flight).
        if self.rejected is not None:
            status, text = self.rejected
            self._fail(text, status)
        else:
            self._fail(f"bad request: {exc}\n")

    def _feed_at_head_limit(self, data: bytes) -> None:
        """A read that reaches past what is left of the head limit: feed up to the limit; if the
        head is still not complete there, answer 431; otherwise go on with the rest."""
        allowed = self._head_left
        self._head_left = 0
        try:
            self.parser.feed_data(data[:allowed])
        except httptools.HttpParserUpgrade as exc:
            self.upgrade_tail = data[exc.args[0] :]
            return
        except httptools.HttpParserError as exc:
            self._parse_error(exc)
            return
        if self._in_head and self._head_left == 0:
            limit = self.state.limits.max_head_bytes
            self._fail(
                f"request head larger than {limit} bytes (request line and headers); "
                "the proxy's limit is PYROLLOUTS_PROXY_MAX_HEAD_BYTES\n",
                431,
            )
            return
        self.data_received(data[allowed:])

    def eof_received(self) -> bool:
        self.client_eof = True
        if self.tunnel is not None:
            self.tunnel.eof()
        elif self.exchange is None and not self.events:
            self._close()
        elif self._in_message and not self.failed:
            # The client stopped sending in the middle of a request, which can never complete:
            # answer the requests before it, then drop it (and its endpoint connection) and close.
            self._fail(None)
        # Keep the transport: a response in flight may still be written (half-close).
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.state.metrics.active_connections -= 1
        self.state.clients.discard(self)
        if self.exchange is not None:
            self.exchange.abort()
            self.exchange = None
        if self.tunnel is not None:
            self.tunnel.close()

    def pause_writing(self) -> None:
        # The client reads slower than the endpoint answers: stop reading from the endpoint.
        if self.tunnel is not None:
            self.tunnel.pause()
        elif self.exchange is not None:
            self.exchange.pause_upstream(True)

    def resume_writing(self) -> None:
        if self.tunnel is not None:
            self.tunnel.resume()
        elif self.exchange is not None:
            self.exchange.pause_upstream(False)

    # -- httptools callbacks (client side) ----------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_message = True
        self._url = b""
        self._headers = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_left = self.state.limits.max_head_bytes
        self.head_mark = None
        if len(self._headers) > self.state.limits.max_headers:
            limit = self.state.limits.max_headers
            self.rejected = (
                431,
                f"request head with {len(self._headers)} header fields, more than {limit}; "
                "the proxy's limit is PYROLLOUTS_PROXY_MAX_HEADERS\n",
            )
            raise _HeadRejected()
        p = self.parser
        head = _RequestHead(p.get_method(), self._url, p.get_http_version(), self._headers,
                            p.should_keep_alive(), p.should_upgrade())  # fmt: skip
        self._url = b""
        self._headers = []
        if self.events or self.exchange is not None or self.closed or head.upgrade:
            # Pipelined behind the request in flight, or an Upgrade (whose tail llhttp hands over
            # only after this callback): it waits for _pump.
            self.events.append((_HEAD, head))
        else:
            self._start(head)

    def on_body(self, body: bytes) -> None:
        ex = self.exchange
        if self.events or (ex is not None and not ex.ready):
            self.events.append((_BODY, body))
            self.queued += len(body)
        elif ex is not None:
            ex.send_body(body)
        # else: the body of a request we answered ourselves (503, ...): read and dropped.

    def on_message_complete(self) -> None:
        self._in_message = False
        self._in_head = True
        ex = self.exchange
        if self.events or (ex is not None and not ex.ready):
            self.events.append((_END, None))
        elif ex is not None:
            ex.send_end()

    # -- flow ---------------------------------------------------------------------------------------

    def set_paused(self, reason_: str, paused: bool) -> None:
        """Pause reading from the client while any reason holds."""
        if self.transport is None or self.closed or paused == (reason_ in self.paused_for):
            return
        before = bool(self.paused_for)
        if paused:
            self.paused_for.add(reason_)
        else:
            self.paused_for.discard(reason_)
        if bool(self.paused_for) != before:
            if self.paused_for:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    def _write(self, data: bytes) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            t.write(data)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _arm_idle(self) -> None:
        if self.idle_since is None and not self.closed:
            self.idle_since = self.loop.time()

    def sweep(self, now: float) -> None:
        """Called every limits.sweep_interval() seconds: close a connection idle too long, answer
        408 to a head not complete in time, 504 to a request whose endpoint does not answer."""
        if self.closed or self.upgrade_tail is not None:
            return
        limits = self.state.limits
        if self.failed:
            pass  # its end is queued behind the request in flight: only the upstream timeout applies
        elif self._in_head and self._head_left < limits.max_head_bytes:
            # A head has begun and is not complete (idle_since may be set: _pump marks a
            # connection with no request in flight idle, and every read restarts that clock).
            if self.head_mark is None:
                self.head_mark = now
            elif now - self.head_mark > limits.header_timeout:
                self._fail(
                    f"request head not complete within {limits.header_timeout:g} s; the proxy's limit "
                    "is PYROLLOUTS_PROXY_HEADER_TIMEOUT\n",
                    408,
                )
                return
        elif self.idle_since is not None:
            if now - self.idle_since > limits.idle_timeout:
                self._close()
            return
        ex = self.exchange
        if ex is not None and ex.request_done and ex.ready and not ex.head_sent and not ex.finished:
            if ex.wait_mark is None:
                ex.wait_mark = now
            elif now - ex.wait_mark > limits.upstream_timeout:
                ex.timed_out(limits.upstream_timeout)

    def _pump(self) -> None:
        """Move queued events along (start the next request, or feed the current one its body),
        then pause or resume reading, and close or mark idle a connection with nothing to do."""
        if self._pumping:
            return  # called back from inside the loop below, which looks at the queue again anyway
        if self.events:
            self._pumping = True
            try:
                self._pump_events()
            finally:
                self._pumping = False
        if self.paused_for or self.queued > MAX_QUEUED:
            self.set_paused("queue", self.queued > MAX_QUEUED)
        if self.exchange is None and not self.events and not self.closed:
            if self.client_eof:
                self._close()
            elif self.upgrade_tail is None and self.idle_since is None:
                self.idle_since = self.loop.time()

    def _fail(self, text: str | None, status: int = 400) -> None:
        """End the connection after the requests before this point are answered: with a ``status``
        (400 by default) whose body is ``text``, or silently (None)."""
        self.failed = True
        self.set_paused("failed", True)
        events = self.events
        if self._in_message:
            # The request cut short may still wait in the queue: drop it rather than send the
            # endpoint a request that can never be whole.
            while events and events[-1][0] == _BODY:
                self.queued -= len(events.pop()[1])
            if events and events[-1][0] == _HEAD:
                events.pop()
        events.append((_FAIL, None if text is None else (status, text)))
        self._pump()

    def _pump_events(self) -> None:
        events = self.events
        while events and not self.closed:
            kind, data = events[0]
            ex = self.exchange
            if kind == _FAIL:
                if ex is not None:
                    if ex.request_done:
                        break  # a whole request in flight: its response comes first
                    # The request in flight is the one cut short: the endpoint cannot answer it.
                    self.exchange = None
                    ex.abort()
                    if ex.head_sent:
                        data = None  # part of its response is out: only closing can signal
                events.clear()
                self.queued = 0
                if data is not None:
                    self._write(_error_response(b"HTTP/1.1", data[0], data[1], False))
                    self._linger_close()
                else:
                    self._close()
                return
            if kind == _HEAD:
                if ex is not None:
                    break  # pipelined: waits for the response in flight
                events.popleft()
                self._start(data)
            elif ex is None:
                # The body of a request we answered ourselves (503, ...): read and dropped.
                events.popleft()
                if kind == _BODY:
                    self.queued -= len(data)
            elif not ex.ready:
                break  # still connecting
            else:
                events.popleft()
                if kind == _BODY:
                    self.queued -= len(data)
                    ex.send_body(data)
                else:
                    ex.send_end()

    def _start(self, head: _RequestHead) -> None:
        started = monotonic()
        version = b"HTTP/1.1" if head.version == "1.1" else b"HTTP/1.0"
        route = self.state.routing.routes.get(self.key)
        if route is None:
            self._answer(version, 503, f"no service is configured on port {self.key[1]} any more\n",
                         head.keep_alive)  # fmt: skip
            return
        if head.method == b"CONNECT":
            self._observe(route, "", 405, started)
            self._answer(version, 405, "CONNECT is not supported\n", False)
            return
        split = route.split
        if split is not None:
            self._start_split(route, split, head, version, started)
            return
        if not route.targets:
            self._observe(route, "", 503, started)
            self._answer(version, 503, f"no ready pods for service {route.service_key}\n", head.keep_alive)
            return
        if head.upgrade:
            self._start_tunnel(route, head, version, started)
            return
        self.exchange = ex = _Exchange(self, route, head, version, started)
        ex.connect_next()

    def _start_split(
        self, stable: Route, split: Split, head: _RequestHead, version: bytes, started: float
    ) -> None:
        """``_start`` for a listener with a canary split: pick the side, maybe mirror, forward."""
        credits = self.state.credits
        names = split.header_names
        headers = header_dict(head.headers, names) if names else None
        route = choose(split, stable, headers, credits)
        if not route.targets:
            self._observe(route, "", 503, started)
            self._answer(version, 503, f"no ready pods for service {route.service_key}\n", head.keep_alive)
            return
        if head.upgrade:
            self._start_tunnel(route, head, version, started)
            return
        self.exchange = ex = _Exchange(self, route, head, version, started)
        if split.mirrors and mirror_of(split, stable, head.method, head.url, headers, credits):
            ex.mirror = start_mirror(self.state, split.canary, ex.head_bytes)
        ex.connect_next()

    def _answer(self, version: bytes, status: int, text: str, keep_alive: bool) -> None:
        self._write(_error_response(version, status, text, keep_alive))
        if not keep_alive:
            self._close()

    def _observe(self, route: Route, revision: str, status: int, started: float) -> None:
        self.state.metrics.observe(route.namespace, route.service, revision, status, monotonic() - started)

    def exchange_done(self, keep_alive: bool) -> None:
        """Called by the exchange once its response is complete (or failed and was answered)."""
        self.exchange = None
        if self.paused_for:
            self.set_paused("upstream", False)
        if not keep_alive:
            self._close()
            return
        if self.events or self.paused_for or self.client_eof or self._pumping:
            self._pump()
        elif not self.closed and self.upgrade_tail is None and self.idle_since is None:
            self.idle_since = self.loop.time()  # the common case of _pump, inline

    # -- Upgrade (WebSocket) -----------------------------------------------------------------------

    def _start_tunnel(self, route: Route, head: _RequestHead, version: bytes, started: float) -> None:
        # The request and everything after it go to the endpoint as bytes; its answer (101 or not)
        # and everything after come back as bytes. Only the request head is rewritten.
        assert self.transport is not None
        if self.upgrade_tail is None:
            self.upgrade_tail = b""  # an upgrade llhttp did not pause on; treat it the same
        self.events.clear()
        self.queued = 0
        self.tunnel = ClientPipe(self.transport)
        self.set_paused("tunnel", True)
        self.loop.create_task(self._tunnel(route, head, version, started))

    async def _tunnel(self, route: Route, head: _RequestHead, version: bytes, started: float) -> None:
        assert self.transport is not None and self.tunnel is not None
        chosen: list[Target] = []

        def first_data(data: bytes) -> None:
            # The endpoint's answer to the upgrade (101, or a refusal) is what gets counted.
            try:
                status = int(data.split(b" ", 2)[1])
            except (IndexError, ValueError):
                status = 502
            self._observe(route, chosen[0].revision if chosen else "", status, started)

        end, target, errors = await connect_pipe(
            self.loop, route.targets, self.state.next_index(route.balance), self.transport, first_data
        )
        if self.closed:
            if end is not None and end.transport is not None:
                end.transport.close()
            return
        if end is None or target is None:
            self._observe(route, "", 502, started)
            self.tunnel = None
            body = f"bad gateway: no answer from service {route.service_key}: " + "; ".join(errors) + "\n"
            self._answer(version, 502, body, False)
            return
        assert end.transport is not None
        chosen.append(target)
        end.transport.write(_request_head_bytes(head, "none", self.client_ip))
        tail, self.upgrade_tail = self.upgrade_tail or b"", b""
        if tail:
            end.transport.write(tail)
        self.tunnel.attach(end)
        self.set_paused("tunnel", False)


def _request_head_bytes(head: _RequestHead, framing: str, client_ip: bytes) -> bytes:
    """The request head for the endpoint, rewritten the plain way (the tunnel's, and the reference
    for ``forward_request_head``)."""
    tokens = _connection_tokens(head.headers)
    lines = [b"%s %s HTTP/1.1\r\n" % (head.method, head.url)]
    host = None
    for name, value in head.headers:
        low = name.lower()
        if low in HOP_BY_HOP or low in tokens or low == b"expect" or low in FORWARDED:
            continue
        if low == b"host" and host is None:
            host = value
        lines.append(b"%s: %s\r\n" % (name, value))
    lines.append(b"X-Forwarded-For: %s\r\nX-Forwarded-Proto: http\r\n" % client_ip)
    if host is not None:
        lines.append(b"X-Forwarded-Host: %s\r\n" % host)
    if framing == "chunked":
        lines.append(b"Transfer-Encoding: chunked\r\n")
    if head.upgrade:
        for name, value in head.headers:
            if name.lower() == b"upgrade":
                lines.append(b"Upgrade: %s\r\n" % value)
        lines.append(b"Connection: Upgrade\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


def _response_head_bytes(
    version: bytes,
    status: int,
    reason_: bytes,
    headers: list[tuple[bytes, bytes]],
    mode: str,
    keep_alive: bool,
) -> bytes:
    """The response head for the client, rewritten the plain way (1xx heads, rare header sets, and
    the reference for ``_Exchange.on_response_head``)."""
    tokens = _connection_tokens(headers)
    lines = [b"%s %d %s\r\n" % (version, status, reason_ or b"-")]
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


class _Upstream(asyncio.Protocol):
    """A connection to an endpoint; pooled between exchanges. Its response parser calls the
    exchange it serves directly (the exchange is the parser's protocol)."""

    __slots__ = ("closed", "eof", "exchange", "host", "idle_since", "parser", "paused", "port", "transport")

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.idle_since = 0.0
        self.transport: asyncio.Transport | None = None
        self.exchange: _Exchange | None = None
        self.closed = False
        self.eof = False
        self.paused = False
        self.parser: httptools.HttpResponseParser | None = None

    def usable(self) -> bool:
        """False once the endpoint closed it (or it broke) while idle."""
        return not (self.closed or self.eof or self.transport is None or self.transport.is_closing())

    def close(self) -> None:
        """Close without waiting."""
        if self.transport is not None:
            self.transport.close()

    def begin(self, exchange: _Exchange) -> None:
        """Start an exchange on this connection: a fresh parser, since a HEAD response may have left
        the previous one waiting for a body that never comes, and the parser calls the exchange."""
        self.exchange = exchange
        self.parser = httptools.HttpResponseParser(exchange)
        if self.paused and self.transport is not None:
            # Paused for a slow client of the previous exchange.
            self.transport.resume_reading()
            self.paused = False

    def detach(self) -> None:
        """The exchange is over: drop the references between it and this connection (they would
        otherwise form a cycle through the parser)."""
        self.exchange = None
        self.parser = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        ex = self.exchange
        parser = self.parser
        if ex is None or parser is None:
            self.close()  # bytes nobody asked for: this connection is not reusable
            return
        ex.got_bytes = True
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # a 101 to a plain request; its head is already handled
        except httptools.HttpParserError as exc:
            ex.upstream_failed(f"invalid response: {exc}", retriable=False)
            return
        # One write to the client per read from the endpoint, then finish if complete.
        out = ex.out
        if out:
            ex.client._write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()
        if ex.response_done and not ex.finished:
            ex.finish()

    def eof_received(self) -> bool:
        self.eof = True
        if self.exchange is not None:
            self.exchange.upstream_eof()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.exchange is not None:
            self.exchange.upstream_eof()

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.client.set_paused("upstream", True)

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.client.set_paused("upstream", False)


class _Exchange:
    """One request forwarded to one endpoint and its response streamed back. It is also the
    protocol of the endpoint connection's response parser (the on_* methods)."""

    # No __slots__: most of the state starts at these class-level defaults, so a new exchange
    # sets only what differs (this object is made once per request).
    attempt = 0
    stale_retries = 0
    upstream: _Upstream | None = None
    ready = False
    reused = False
    got_bytes = False
    request_done = False
    head_sent = False
    response_done = False
    finished = False
    status = 502
    mode = "none"
    eof_body = False
    skip_end = False
    up_keep = False
    task: asyncio.Task[None] | None = None
    #: A copy of this request going to the canary (``mirror.py``), or None.
    mirror: Mirror | None = None
    #: When the sweeper first saw this request sent whole and its response not begun.
    wait_mark: float | None = None
    #: Why endpoints failed, for the 502 body; a list once there is one.
    errors: tuple[str, ...] | list[str] = ()
    _reason = b""

    def __init__(
        self, client: HttpProxyProtocol, route: Route, head: _RequestHead, version: bytes, started: float
    ) -> None:
        self.client = client
        self.route = route
        self.head = head
        self.version = version
        self.started = started
        framing, self.head_bytes, expect_continue = forward_request_head(head, client.client_ip)
        self.framing = framing
        self.replayable = framing == "none" and head.method in IDEMPOTENT
        self.is_head = head.method == b"HEAD"
        self.start = client.state.next_index(route.balance)
        self.target: Target = route.targets[self.start % len(route.targets)]
        self.client_keep = head.keep_alive
        self.out: list[bytes] = []
        if expect_continue and framing != "none" and head.version == "1.1":
            # We do not wait for the endpoint's own 100: the body is streamed as it comes.
            client._write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _error(self, message: str) -> None:
        if not isinstance(self.errors, list):
            self.errors = []
        self.errors.append(message)

    # -- connecting ---------------------------------------------------------------------------------

    def connect_next(self) -> None:
        """Use a pooled connection to the current endpoint, or open one (asynchronously)."""
        targets = self.route.targets
        if self.attempt >= len(targets):
            self._bad_gateway()
            return
        self.target = target = targets[(self.start + self.attempt) % len(targets)]
        conn = self.client.state.pool.take(target.host, target.port)
        if conn is not None:
            self._attach(conn, reused=True)
        else:
            self.task = self.client.loop.create_task(self._open(target))

    async def _open(self, target: Target) -> None:
        loop = self.client.loop
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Upstream(target.host, target.port), target.host, target.port),
                CONNECT_TIMEOUT,
            )
        except (OSError, TimeoutError) as exc:
            if self.finished:
                return
            # Nothing reached the endpoint: any request may go to the next one.
            self._error(f"pod {target.pod or '?'} ({target.host}:{target.port}): {reason(exc)}")
            self.attempt += 1
            self.connect_next()
            return
        if self.finished:
            conn.close()
            return
        self._attach(conn, reused=False)

    def _attach(self, conn: _Upstream, reused: bool) -> None:
        self.upstream = conn
        self.reused = reused
        self.got_bytes = False
        self._reason = b""
        self._rheaders: list[tuple[bytes, bytes]] = []
        conn.begin(self)
        assert conn.transport is not None
        conn.transport.write(self.head_bytes)
        self.ready = True
        if self.request_done:
            # A replay: the (bodiless) request was already complete.
            if self.framing == "chunked":
                conn.transport.write(b"0\r\n\r\n")
            return
        if self.client.events:
            self.client._pump()  # a body (or its end) that arrived while connecting

    # -- request body -------------------------------------------------------------------------------

    def send_body(self, data: bytes) -> None:
        """A piece of the request body, framed for the endpoint."""
        if self.framing == "chunked":
            data = b"%x\r\n%s\r\n" % (len(data), data)
        if self.mirror is not None:
            self.mirror.send(data)
        up = self.upstream
        if up is None or up.transport is None or up.transport.is_closing():
            return
        up.transport.write(data)

    def send_end(self) -> None:
        """The request is complete."""
        self.request_done = True
        if self.framing == "chunked":
            if self.mirror is not None:
                self.mirror.send(b"0\r\n\r\n")
            up = self.upstream
            if up is not None and up.transport is not None:
                up.transport.write(b"0\r\n\r\n")

    def pause_upstream(self, paused: bool) -> None:
        """Flow control from the client side."""
        up = self.upstream
        if up is not None and up.transport is not None and not up.transport.is_closing():
            up.paused = paused
            if paused:
                up.transport.pause_reading()
            else:
                up.transport.resume_reading()

    # -- response (httptools callbacks of the endpoint connection's parser) ------------------------

    def on_message_begin(self) -> None:
        # A chunked message's trailers come through on_header after its head is complete: each
        # message (a 1xx, then the final response) starts from no headers.
        self._rheaders = []
        self._reason = b""

    def on_status(self, status: bytes) -> None:
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self._rheaders.append((name, value))

    def on_headers_complete(self) -> None:
        """The endpoint's status line and headers are complete."""
        up = self.upstream
        if up is None or up.parser is None or self.response_done:
            return
        p = up.parser
        status = p.get_status_code()
        headers = self._rheaders
        reason_ = self._reason
        self._rheaders = []
        self._reason = b""
        if 100 <= status < 200 and status != 101:
            self.skip_end = True
            if self.head.version == "1.1" and status != 100:
                self.out.append(_response_head_bytes(self.version, status, reason_, headers, "none", True))
            return
        self.status = status
        # One pass: the forwarded lines, and what decides the framing (as _response_framing).
        lines: list[bytes] = [b"%s %d %s\r\n" % (self.version, status, reason_ or b"-")]
        found = scan_headers(headers, _RESPONSE_HEADERS, lines)
        chunked, has_length, tokens = found.chunked, found.length, found.tokens
        no_body = self.is_head or status in (204, 304) or status == 101
        mode = "none" if no_body else "chunked" if chunked else "length" if has_length else "eof"
        if mode == "length":
            self.up_keep = p.should_keep_alive()  # the common case, in short
            self.mode = mode
        else:
            self.eof_body = mode == "eof"
            self.up_keep = p.should_keep_alive() and mode != "eof"
            if mode == "eof" or (mode == "chunked" and self.head.version != "1.1"):
                if self.head.version == "1.1":
                    mode = "rechunk"
                else:
                    mode = "raw"
                    self.client_keep = False
            elif mode == "chunked":
                mode = "rechunk"
            self.mode = mode
        if not self.request_done:
            # Answered before the request was complete: the client connection cannot be reused.
            self.client_keep = False
        if (has_length and mode in ("rechunk", "raw")) or (
            tokens is not None and _tokens_name_a_header(tokens, headers)
        ):
            # Rare: headers to drop that the pass above kept.
            keep_client = self.client_keep
            self.out.append(_response_head_bytes(self.version, status, reason_, headers, mode, keep_client))
        else:
            if mode == "rechunk":
                lines.append(b"Transfer-Encoding: chunked\r\n")
            if not self.client_keep:
                lines.append(b"Connection: close\r\n")
            elif self.version == b"HTTP/1.0":
                lines.append(b"Connection: keep-alive\r\n")
            lines.append(b"\r\n")
            self.out.append(b"".join(lines))
        self.head_sent = True
        if no_body:
            self.response_done = True

    def on_body(self, body: bytes) -> None:
        if self.response_done:
            return
        if self.mode == "rechunk":
            self.out.append(b"%x\r\n%s\r\n" % (len(body), body))
        else:
            self.out.append(body)

    def on_response_end(self) -> None:
        """The endpoint's response is complete."""
        if self.response_done:
            return
        if self.skip_end:
            self.skip_end = False
            return
        if self.mode == "rechunk":
            self.out.append(b"0\r\n\r\n")
        self.response_done = True

    on_message_complete = on_response_end

    def after_feed(self) -> None:
        """After a read from the endpoint: one write to the client, then finish if complete."""
        if self.out:
            self.client._write(b"".join(self.out))
            self.out.clear()
        if self.response_done and not self.finished:
            self.finish()

    def upstream_eof(self) -> None:
        """The endpoint closed its side."""
        if self.finished:
            return
        if self.response_done:
            self.up_keep = False
            self.finish()
            return
        if self.head_sent and self.eof_body:
            self.up_keep = False
            self.on_response_end()
            self.after_feed()
            return
        if not self.got_bytes:
            self.upstream_failed("connection closed before a response", retriable=True)
        else:
            self.upstream_failed("connection closed in the middle of the response", retriable=False)

    def _drop_upstream(self) -> None:
        """Close the endpoint connection mid-exchange (it is not reusable) and forget it."""
        up, self.upstream = self.upstream, None
        if up is not None:
            up.detach()
            up.close()

    def upstream_failed(self, message: str, *, retriable: bool) -> None:
        """The exchange with the endpoint failed."""
        if self.finished:
            return
        self._drop_upstream()
        self.ready = False
        if self.head_sent:
            # The client already has (part of) a response: the only honest signal left is to cut it.
            if self.out:
                self.client._write(b"".join(self.out))
            self.finished = True
            self.client._observe(self.route, self.target.revision, 502, self.started)
            log.info("%s: %s: %s", self.route.service_key, self.target.pod, message)
            self.client.exchange_done(False)
            return
        self._error(f"pod {self.target.pod or '?'} ({self.target.host}:{self.target.port}): {message}")
        if retriable and self.replayable and self.stale_retries < len(self.route.targets) + 2:
            self.stale_retries += 1
            if self.reused:
                # A pooled connection the endpoint had closed: its other idle ones likely too.
                self.client.state.pool.discard_idle(self.target.host, self.target.port)
            else:
                self.attempt += 1
            self.connect_next()
            return
        self._bad_gateway()

    def timed_out(self, seconds: float) -> None:
        """The endpoint did not begin its response within the upstream timeout: 504 to the client,
        and its connection is closed (it may still answer; that answer must not reach the next
        request). Not retried: the endpoint may have acted on the request."""
        if self.finished or self.head_sent:
            return
        self._drop_upstream()
        self.ready = False
        self.finished = True
        self.client._observe(self.route, self.target.revision, 504, self.started)
        t = self.target
        body = (
            f"gateway timeout: pod {t.pod or '?'} ({t.host}:{t.port}) of service {self.route.service_key} "
            f"did not answer within {seconds:g} s; the proxy's limit is PYROLLOUTS_PROXY_UPSTREAM_TIMEOUT\n"
        )
        keep = self.head.keep_alive and self.request_done
        self.client._write(_error_response(self.version, 504, body, keep))
        self.client.exchange_done(keep)

    def _bad_gateway(self) -> None:
        self.finished = True
        self.client._observe(self.route, self.target.revision, 502, self.started)
        body = (
            f"bad gateway: no answer from service {self.route.service_key}: " + "; ".join(self.errors) + "\n"
        )
        keep = self.head.keep_alive and (self.request_done or self.framing == "none")
        self.client._write(_error_response(self.version, 502, body, keep))
        self.client.exchange_done(keep)

    def finish(self) -> None:
        """The response is complete: pool or close the endpoint connection, count, move on."""
        self.finished = True
        client = self.client
        up, self.upstream = self.upstream, None
        if up is not None:
            up.exchange = None  # as up.detach(), inline on the common path
            up.parser = None
            if self.up_keep and self.request_done:
                client.state.pool.release(up)  # closes it if it is not usable any more
            else:
                up.close()
        route = self.route
        client.state.metrics.observe(
            route.namespace, route.service, self.target.revision, self.status, monotonic() - self.started
        )
        client.exchange_done(self.client_keep)

    def abort(self) -> None:
        """The client went away: drop the endpoint connection (it is mid-exchange, not reusable)."""
        self.finished = True
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.mirror is not None and not self.request_done:
            self.mirror.abort()  # its request will never be whole
        self._drop_upstream()
