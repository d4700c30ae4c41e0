"""What the providers that answer within one call (``web``, ``prometheus``) share: the clock, the
error that ends a measurement, and the Measurement dict a result becomes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ...engine.measurement import assess
from ...model.analysis import PHASE_ERROR
from ...model.timefmt import rfc3339


class MeasurementError(Exception):
    """Ends the measurement in Error with this message."""


def utc_now() -> datetime:
    return datetime.now(UTC)


async def take(
    metric: Mapping[str, Any],
    fetch: Awaitable[tuple[Any, str, dict[str, str]]],
    clock: Callable[[], datetime],
) -> dict[str, Any]:
    """One measurement: ``fetch`` gives (the condition's result, the measurement's value, its
    metadata) or raises MeasurementError; the conditions are assessed by ``engine.measurement``.
    Nothing is raised for what the remote system got wrong: that is the Error phase."""
    started = rfc3339(clock())
    try:
        result, value, metadata = await fetch
    except MeasurementError as e:
        return {"phase": PHASE_ERROR, "message": str(e), "startedAt": started, "finishedAt": rfc3339(clock())}
    verdict = assess(result, metric.get("successCondition"), metric.get("failureCondition"))
    out: dict[str, Any] = {"phase": verdict.phase, "value": value, "startedAt": started}
    if verdict.message:
        out["message"] = verdict.message
    if metadata:
        out["metadata"] = metadata
    out["finishedAt"] = rfc3339(clock())
    return out
