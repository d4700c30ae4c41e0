"""Keep-alive connections to endpoints, pooled per (host, port).

A connection goes back to the pool only after a complete response that allows keep-alive. Idle
connections to endpoints that left the routing table are closed when the table changes; a request
still running on one finishes first (that is the draining guarantee) and its connection is closed
when it is released.

The pool has no cap of its own: it is sized by demand. A connection is idle here only because it
carried a request that ran at the same time as the others, so the idle count never exceeds the
peak number of concurrent requests to that endpoint (itself bounded by the proxy's
``max_connections``), and the sweep closes what a fallen demand leaves idle for ``IDLE_TIMEOUT``.
A fixed cap below the concurrency seen (64 until issue 17) closed the surplus after every burst and
made the proxy open them again on the next one: thousands of connects per second at 256 clients,
an overflowing listen queue at the endpoint, and SYNs retried after 1 s (the p99).
"""

from __future__ import annotations

import time
from typing import Any, Protocol

CONNECT_TIMEOUT = 5.0
IDLE_TIMEOUT = 30.0


class PooledConn(Protocol):
    """What the pool needs from a connection (the L7 upstream protocol)."""

    host: str
    port: int
    idle_since: float

    def usable(self) -> bool: ...

    def close(self) -> None: ...


class UpstreamPool:
    """Idle keep-alive connections per endpoint."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[Any]] = {}
        # None until the first table: then only endpoints in the table may keep idle connections.
        self._live: set[tuple[str, int]] | None = None

    def take(self, host: str, port: int) -> Any | None:
        """An idle, still usable connection to host:port, or None (then the caller connects)."""
        idle = self._idle.get((host, port))
        while idle:
            conn = idle.pop()
            if conn.usable():
                return conn
            conn.close()
        return None

    def release(self, conn: PooledConn) -> None:
        """Return a connection after a complete keep-alive exchange."""
        key = (conn.host, conn.port)
        if not conn.usable() or (self._live is not None and key not in self._live):
            conn.close()
            return
        conn.idle_since = time.monotonic()
        self._idle.setdefault(key, []).append(conn)

    def discard_idle(self, host: str, port: int) -> None:
        """Close the idle connections to one endpoint (after one of them proved stale)."""
        for conn in self._idle.pop((host, port), []):
            conn.close()

    def retain_only(self, live: set[tuple[str, int]]) -> None:
        """Close idle connections to endpoints not in ``live`` (called on every table change)."""
        self._live = live
        for key in [k for k in self._idle if k not in live]:
            for conn in self._idle.pop(key):
                conn.close()

    def sweep(self, max_idle: float = IDLE_TIMEOUT) -> None:
        """Close connections idle longer than max_idle seconds or closed by the endpoint."""
        now = time.monotonic()
        for key, idle in list(self._idle.items()):
            keep = [c for c in idle if c.usable() and now - c.idle_since < max_idle]
            for c in idle:
                if c not in keep:
                    c.close()
            if keep:
                self._idle[key] = keep
            else:
                del self._idle[key]

    def close_all(self) -> None:
        """Close every idle connection (on shutdown)."""
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
