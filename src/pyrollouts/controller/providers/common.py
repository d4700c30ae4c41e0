"""What the providers that answer within one call (``web``, ``prometheus``) share: the clock, the
error that ends a measurement, and the Measurement dict a result becomes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp

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


async def http(
    method: str,
    url: str,
    *,
    data: Any,
    headers: Mapping[str, str],
    timeout: float,
    insecure: bool,
    session: aiohttp.ClientSession | None,
) -> tuple[int, str]:
    """One HTTP request of a provider: (status, body text). A timeout or a connection problem is a
    MeasurementError in Go's words (``Get "URL": ...``), as Argo's providers report them."""
    what = f'{method.title()} "{url}"'
    own = session is None
    client = session or aiohttp.ClientSession()
    try:
        async with client.request(
            method,
            url,
            data=data,
            headers=dict(headers),
            timeout=aiohttp.ClientTimeout(total=timeout),
            ssl=not insecure,
        ) as response:
            return response.status, await response.text(errors="replace")
    except TimeoutError as e:
        raise MeasurementError(f"{what}: timed out after {timeout:g}s") from e
    except (aiohttp.ClientError, ValueError) as e:
        raise MeasurementError(f"{what}: {e or type(e).__name__}") from e
    finally:
        if own:
            await client.close()
