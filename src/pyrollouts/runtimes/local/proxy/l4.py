"""L4 (``appProtocol: tcp``) forwarding, and the byte pipe that WebSocket tunnels reuse.

A new connection goes to a ready endpoint of the current snapshot (round robin, trying the next
one if a connect fails); an established connection stays on its endpoint until either side
closes, which is how old connections drain after a switch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .state import ProxyState
from .upstream import CONNECT_TIMEOUT, READ_LIMIT

log = logging.getLogger(__name__)

CHUNK = 2**16


async def _copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(CHUNK):
            dst.write(data)
            await dst.drain()
        # Pass the half-close on, so request/response protocols over TCP see the end of input.
        if dst.can_write_eof() and not dst.is_closing():
            dst.write_eof()
    except (ConnectionError, OSError):
        dst.close()


async def pipe(
    a_reader: asyncio.StreamReader,
    a_writer: asyncio.StreamWriter,
    b_reader: asyncio.StreamReader,
    b_writer: asyncio.StreamWriter,
) -> None:
    """Copy bytes both ways until both directions ended, then close both sides."""
    try:
        await asyncio.gather(_copy(a_reader, b_writer), _copy(b_reader, a_writer))
    finally:
        a_writer.close()
        b_writer.close()


class TcpListener:
    """Accepts connections on one listener key and forwards them at L4."""

    def __init__(self, state: ProxyState, key: tuple[str, int]) -> None:
        self.state = state
        self.key = key

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Connection callback for asyncio.start_server."""
        metrics = self.state.metrics
        metrics.active_connections += 1
        try:
            route = self.state.route(self.key)
            if route is None or not route.targets:
                # No HTTP here to explain with: closing at once is the clearest TCP answer.
                log.info("tcp %s:%s: no ready endpoint, closing", *self.key)
                writer.close()
                return
            n = len(route.targets)
            start = self.state.next_index(self.key)
            for attempt in range(n):
                target = route.targets[(start + attempt) % n]
                try:
                    up_reader, up_writer = await asyncio.wait_for(
                        asyncio.open_connection(target.host, target.port, limit=READ_LIMIT),
                        CONNECT_TIMEOUT,
                    )
                except (OSError, TimeoutError) as exc:
                    log.info(
                        "tcp %s: connect to %s:%s failed: %s",
                        route.service_key,
                        target.host,
                        target.port,
                        exc,
                    )
                    continue
                metrics.observe_tcp(route.namespace, route.service, target.revision)
                await pipe(reader, writer, up_reader, up_writer)
                return
            writer.close()
        finally:
            metrics.active_connections -= 1
            with contextlib.suppress(Exception):
                writer.close()
