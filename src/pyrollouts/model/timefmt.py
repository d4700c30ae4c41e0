"""RFC3339 times as Kubernetes writes them: UTC, whole seconds, a trailing 'Z'. Pure functions,
shared by every layer so each formats and parses times the same way."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(t: datetime) -> str:
    """Format a time as Kubernetes does (``2026-01-02T03:04:05Z``); naive times are taken as UTC."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(t: datetime) -> str:
    """Format a time as a Kubernetes MicroTime (``2026-01-02T03:04:05.123456Z``: leases, condition
    transitions); naive times are taken as UTC."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | None) -> datetime | None:
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
