"""A mirrored request: a copy of a client's request sent to a canary endpoint, its answer dropped.

The copy never touches the client's exchange: it has its own connection (``Connection: close``,
so the answer ends when the endpoint closes and no response parser is needed), the body is teed
to it as it is forwarded, and whatever happens to it (refused, slow, broken) is only counted.
It is bounded: at most ``MAX_IN_FLIGHT`` copies at once per proxy (a copy beyond it is not sent,
and counted as dropped), at most ``MAX_BUFFER`` bytes waiting for a slow canary (then the copy is
abandoned), and ``TIMEOUT`` seconds from its start to the end of its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .state import ProxyState
    from .table import Route, Target

#: Copies in flight at once, per proxy process; beyond it a copy is dropped.
MAX_IN_FLIGHT = 64
#: Bytes of a copy waiting for the canary (not connected yet, or reading slowly); beyond it the
#: copy is abandoned.
MAX_BUFFER = 2**20
#: Seconds from the start of a copy to the end of its answer.
TIMEOUT = 10.0


class Mirror(asyncio.Protocol):
    """One copy of one request, to one canary endpoint."""

    def __init__(self, state: ProxyState, route: Route, target: Target, head: bytes) -> None:
        self.state = state
        self.route = route
        self.target = target
        self.pending: list[bytes] = [head]
        self.size = len(head)
        self.transport: asyncio.Transport | None = None
        self.first = b""
        self.status = 0
        self.done = False
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(TIMEOUT, self.abort)
        self.task = loop.create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        t = self.target
        try:
            await loop.create_connection(lambda: self, t.host, t.port)
        except OSError:
            self._finish()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        t: asyncio.Transport = transport  # type: ignore[assignment]
        self.transport = t
        if self.done:
            t.close()
            return
        t.write(b"".join(self.pending))
        self.pending = []

    def send(self, data: bytes) -> None:
        """More of the request (already framed for the endpoint)."""
        if self.done:
            return
        t = self.transport
        if t is None:
            self.pending.append(data)
            self.size += len(data)
            if self.size > MAX_BUFFER:
                self.abort()
        elif t.get_write_buffer_size() + len(data) > MAX_BUFFER:
            self.abort()
        elif not t.is_closing():
            t.write(data)

    def data_received(self, data: bytes) -> None:
        if not self.status and len(self.first) < 64:
            self.first += data[:64]
            line = self.first.split(b"\r\n", 1)
            if len(line) == 2 or len(self.first) >= 64:
                with contextlib.suppress(IndexError, ValueError):
                    self.status = int(line[0].split(b" ", 2)[1])

    def eof_received(self) -> bool:
        return False  # close: the answer ends with the connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()

    def abort(self) -> None:
        """Give up on this copy (too slow, or the client's request will never be whole)."""
        if self.transport is not None:
            self.transport.abort()
        elif not self.task.done():
            self.task.cancel()
        self._finish()

    def _finish(self) -> None:
        if self.done:
            return
        self.done = True
        self.timer.cancel()
        self.pending = []
        self.state.mirrors_in_flight -= 1
        r = self.route
        self.state.metrics.observe_mirror(r.namespace, r.service, self.target.revision, self.status)


def start_mirror(state: ProxyState, canary: Route, head: bytes) -> Mirror | None:
    """Send a copy of a request (its forwarded head; the body follows through ``Mirror.send``) to
    the next canary endpoint; None when ``MAX_IN_FLIGHT`` copies are running (counted as dropped)."""
    if state.mirrors_in_flight >= MAX_IN_FLIGHT:
        state.metrics.mirror_dropped(canary.namespace, canary.service)
        return None
    targets = canary.targets
    target = targets[state.next_index(canary.balance) % len(targets)]
    state.mirrors_in_flight += 1
    # The copy's answer ends when the endpoint closes: ask it to.
    return Mirror(state, canary, target, head[:-2] + b"Connection: close\r\n\r\n")
