"""The mutable state the listeners share: the current routing snapshot, the pool, the counters."""

from __future__ import annotations

from typing import Any

from .limits import Limits
from .metrics import ProxyMetrics
from .table import Route, Routing
from .upstream import UpstreamPool


class ProxyState:
    """Holds the current routing snapshot; ``routing`` is replaced in one assignment, never mutated."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.routing = Routing(version=0)
        self.pool = UpstreamPool()
        self.metrics = ProxyMetrics()
        # Round-robin position per listener; kept apart from the snapshot so a table switch does
        # not reset the spread of load.
        self._rr: dict[tuple[Any, ...], int] = {}
        #: Canary splits' credit counters (``split.py``), kept across table switches as ``_rr``.
        self.credits: dict[Any, int] = {}
        #: Mirrored requests not finished yet (``mirror.py`` caps them).
        self.mirrors_in_flight = 0
        #: Open HTTP client connections (for the idle sweep).
        self.clients: set[Any] = set()

    def route(self, key: tuple[str, int]) -> Route | None:
        """The route a new request or connection on listener ``key`` should use now."""
        return self.routing.routes.get(key)

    def next_index(self, key: tuple[Any, ...]) -> int:
        """The next round-robin position for a listener (or its canary side: ``Route.balance``)."""
        i = self._rr.get(key, 0)
        self._rr[key] = i + 1
        return i
