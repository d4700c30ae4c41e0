"""RFC3339 times as Kubernetes writes them: UTC, whole seconds, a trailing 'Z'. Pure functions."""

from __future__ import annotations

from datetime import UTC, datetime

from ..model.timefmt import parse_time as parse
from ..model.timefmt import rfc3339

__all__ = ["parse", "rfc3339", "seconds_until", "utc"]


def utc(t: datetime) -> datetime:
    """The same instant, timezone-aware in UTC."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def seconds_until(target: datetime, now: datetime) -> float:
    """Seconds from now to target (0 when it has passed)."""
    return max(0.0, (target - now).total_seconds())
