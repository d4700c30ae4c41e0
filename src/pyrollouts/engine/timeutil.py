"""RFC3339 times as Kubernetes writes them: UTC, whole seconds, a trailing 'Z'. Pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def rfc3339(t: datetime) -> str:
    """Format a time as Kubernetes does (``2026-01-02T03:04:05Z``); naive times are taken as UTC."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(value: str | None) -> datetime | None:
    """Parse an RFC3339 time (``Z`` or an offset, optional fraction); None for empty or malformed."""
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC)


def utc(t: datetime) -> datetime:
    """The same instant, timezone-aware in UTC."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def after(t: datetime, seconds: float) -> datetime:
    return t + timedelta(seconds=seconds)


def seconds_until(target: datetime, now: datetime) -> float:
    """Seconds from now to target (0 when it has passed)."""
    return max(0.0, (target - now).total_seconds())
