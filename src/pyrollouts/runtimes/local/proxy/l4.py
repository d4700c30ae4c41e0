"""Byte pipes: L4 (``appProtocol: tcp``) forwarding, and the tunnel an HTTP Upgrade becomes.

A new connection goes to a ready endpoint of the current snapshot (round robin, trying the next one
if a connect fails); an established connection stays on its endpoint until either side closes,
which is how old connections drain after a switch. Written as asyncio protocols (callbacks, no
per-chunk futures) because this is the data path; flow control pauses reading on one side while
the other side's write buffer is full.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from .split import choose
from .state import ProxyState
from .table import Target
from .upstream import CONNECT_TIMEOUT

log = logging.getLogger(__name__)


class PipeEnd(asyncio.Protocol):
    """The upstream side of a pipe: everything it receives goes to ``peer`` (the client transport)."""

    def __init__(self, peer: asyncio.Transport, on_first_data: Callable[[bytes], None] | None = None) -> None:
        self.peer = peer
        self.transport: asyncio.Transport | None = None
        self.on_first_data = on_first_data

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.on_first_data is not None:
            self.on_first_data(data)
            self.on_first_data = None
        if not self.peer.is_closing():
            self.peer.write(data)

    def eof_received(self) -> bool:
        # Pass the half-close on, so protocols that end input with a FIN keep working.
        if not self.peer.is_closing() and self.peer.can_write_eof():
            self.peer.write_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.peer.close()

    def pause_writing(self) -> None:
        self.peer.pause_reading()

    def resume_writing(self) -> None:
        self.peer.resume_reading()


class ClientPipe:
    """The client side of a pipe, used by a protocol that owns the client transport: buffers what
    the client sends until the upstream connection exists."""

    def __init__(self, client: asyncio.Transport) -> None:
        self.client = client
        self.upstream: PipeEnd | None = None
        self.pending: list[bytes] = []
        self.client_eof = False

    def attach(self, upstream: PipeEnd) -> None:
        """The upstream connection is ready: flush what the client already sent."""
        self.upstream = upstream
        assert upstream.transport is not None
        if self.pending:
            upstream.transport.write(b"".join(self.pending))
            self.pending.clear()
        if self.client_eof and upstream.transport.can_write_eof():
            upstream.transport.write_eof()

    def send(self, data: bytes) -> None:
        """Bytes from the client."""
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.write(data)
        else:
            self.pending.append(data)

    def eof(self) -> None:
        """The client half-closed."""
        self.client_eof = True
        up = self.upstream.transport if self.upstream is not None else None
        if up is not None and not up.is_closing() and up.can_write_eof():
            up.write_eof()

    def close(self) -> None:
        """The client went away."""
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()

    def pause(self) -> None:
        """The client's write buffer is full: stop reading from the upstream."""
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.pause_reading()

    def resume(self) -> None:
        """The client's write buffer drained."""
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.resume_reading()


async def connect_pipe(
    loop: asyncio.AbstractEventLoop,
    targets: tuple[Target, ...],
    start: int,
    client: asyncio.Transport,
    on_first_data: Callable[[bytes], None] | None = None,
) -> tuple[PipeEnd | None, Target | None, list[str]]:
    """Connect to the first endpoint (round robin from ``start``) that accepts; returns the pipe end,
    the endpoint, and the errors of those that refused."""
    errors: list[str] = []
    n = len(targets)
    for attempt in range(n):
        target = targets[(start + attempt) % n]
        try:
            _, end = await asyncio.wait_for(
                loop.create_connection(lambda: PipeEnd(client, on_first_data), target.host, target.port),
                CONNECT_TIMEOUT,
            )
        except (OSError, TimeoutError) as exc:
            errors.append(f"pod {target.pod or '?'} ({target.host}:{target.port}): {reason(exc)}")
            continue
        return end, target, errors
    return None, None, errors


def reason(exc: BaseException) -> str:
    """A short human reason for a connection error."""
    if isinstance(exc, TimeoutError):
        return "connect timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class TcpProxyProtocol(asyncio.Protocol):
    """One client connection on an L4 listener."""

    def __init__(self, state: ProxyState, key: tuple[str, int]) -> None:
        self.state = state
        self.key = key
        self.pipe: ClientPipe | None = None
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        client: asyncio.Transport = transport  # type: ignore[assignment]
        metrics = self.state.metrics
        metrics.active_connections += 1
        if metrics.active_connections > self.state.limits.max_connections:
            # No HTTP here to explain with: closing at once is the clearest TCP answer.
            metrics.refused_connections += 1
            client.close()
            return
        route = self.state.route(self.key)
        if route is not None and route.split is not None:
            # A canary split moves new connections by its weight (no headers to route by at L4).
            route = choose(route.split, route, None, self.state.credits)
        if route is None or not route.targets:
            # No HTTP here to explain with: closing at once is the clearest TCP answer.
            log.info("tcp %s:%s: no ready endpoint, closing", *self.key)
            client.close()
            return
        self.pipe = ClientPipe(client)
        client.pause_reading()  # until the upstream connection exists
        start = self.state.next_index(route.balance)
        connecting = self._connect(route.namespace, route.service, route.targets, start, client)
        self.task = asyncio.get_running_loop().create_task(connecting)

    async def _connect(self, ns: str, svc: str, targets: tuple[Target, ...], start: int, client: Any) -> None:
        end, target, errors = await connect_pipe(asyncio.get_running_loop(), targets, start, client)
        if end is None or target is None:
            log.info("tcp %s/%s: no endpoint accepted: %s", ns, svc, "; ".join(errors))
            client.close()
            return
        if client.is_closing():
            assert end.transport is not None
            end.transport.close()
            return
        self.state.metrics.observe_tcp(ns, svc, target.revision)
        assert self.pipe is not None
        self.pipe.attach(end)
        client.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.pipe is not None:
            self.pipe.send(data)

    def eof_received(self) -> bool:
        if self.pipe is not None:
            self.pipe.eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.metrics.active_connections -= 1
        if self.pipe is not None:
            self.pipe.close()
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def pause_writing(self) -> None:
        if self.pipe is not None:
            self.pipe.pause()

    def resume_writing(self) -> None:
        if self.pipe is not None:
            self.pipe.resume()
