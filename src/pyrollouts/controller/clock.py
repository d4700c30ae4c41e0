"""Time for the controller: the real UTC clock, with an offset tests can advance.

The engine never reads a clock; the controller passes ``clock.now()`` into ``engine.plan``. Tests
and the scenario drivers advance the offset to skip long delays (scale-down, auto-promotion)
without waiting for them.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from ..model.timefmt import rfc3339

__all__ = ["Clock", "rfc3339"]


class Clock:
    """UTC wall clock plus an adjustable offset (0 in production)."""

    def __init__(self) -> None:
        self._offset = timedelta()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, seconds: float) -> None:
        """Move this clock forward; callers should then requeue timed work."""
        with self._lock:
            self._offset += timedelta(seconds=seconds)
