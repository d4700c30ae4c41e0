"""Metric providers of the AnalysisRun controller: each takes one measurement of a metric (with its
args already substituted) and returns it in Argo's Measurement form, never raising for what the
provider or the remote system got wrong (that is the measurement's ``Error`` phase).

The AnalysisRun controller calls the three functions here, which dispatch on the metric's provider
key (``web``, ``prometheus``, ``job``):

- ``measure(metric, ctx)`` takes a new measurement. ``web`` and ``prometheus`` return it finished;
  ``job`` returns it ``Running`` with a ``resumeAt``, to be passed to ``resume`` from then on.
- ``resume(metric, measurement, ctx)`` carries an in-flight (``Running``) measurement on;
- ``terminate(metric, measurement, ctx)`` ends one (the run was terminated);
- ``garbage_collect(metric, ctx, limit)`` removes what old measurements left behind (a job's Jobs);
- ``result_metadata(metric)`` is what Argo stores in the metric result's ``metadata``
  (``ResolvedPrometheusQuery`` for a prometheus metric).

For providers that finish in ``measure``, ``resume`` and ``terminate`` return the measurement as it
is and ``garbage_collect`` does nothing, as in Argo. A metric whose provider is none of these (one of
Argo's other providers, or none) gets an Error measurement naming it and the supported ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

from ...model.analysis import PHASE_ERROR
from ...model.cluster import Cluster
from ...model.timefmt import rfc3339
from . import job, prometheus, web

#: The providers pyrollouts runs, in the order messages list them.
SUPPORTED = ("prometheus", "web", "job")


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Context:
    """What providers need besides the metric: the cluster (``job`` creates Jobs there), the
    AnalysisRun object (its uid, name, namespace and status name the Jobs), an HTTP session to share
    (``web``, ``prometheus``; None: one per request) and the clock."""

    cluster: Cluster
    run: Mapping[str, Any]
    session: aiohttp.ClientSession | None = None
    clock: Callable[[], datetime] = field(default=_utc_now)


def provider_of(metric: Mapping[str, Any]) -> str | None:
    """The metric's provider key (the first one set), None when it has none."""
    for key, value in (metric.get("provider") or {}).items():
        if value is not None:
            return str(key)
    return None


def _unsupported(metric: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    name = provider_of(metric)
    what = f"provider {name!r} is not supported" if name else "the metric has no provider"
    now = rfc3339(ctx.clock())
    return {
        "phase": PHASE_ERROR,
        "message": f"metric {metric.get('name')!r}: {what} by pyrollouts; use one of {', '.join(SUPPORTED)}",
        "startedAt": now,
        "finishedAt": now,
    }


async def measure(metric: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    """A new measurement of the metric (a Measurement dict; never raises for provider errors)."""
    kind = provider_of(metric)
    if kind == "web":
        return await web.measure(metric, session=ctx.session, clock=ctx.clock)
    if kind == "prometheus":
        return await prometheus.measure(metric, session=ctx.session, clock=ctx.clock)
    if kind == "job":
        return await job.measure(metric, ctx.cluster, ctx.run, clock=ctx.clock)
    return _unsupported(metric, ctx)


async def resume(metric: Mapping[str, Any], measurement: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    """The in-flight measurement carried on (finished, or Running with a later ``resumeAt``)."""
    if provider_of(metric) == "job":
        return await job.resume(metric, measurement, ctx.cluster, ctx.run, clock=ctx.clock)
    return dict(measurement)


async def terminate(
    metric: Mapping[str, Any], measurement: Mapping[str, Any], ctx: Context
) -> dict[str, Any]:
    """The in-flight measurement ended because its run is terminating."""
    if provider_of(metric) == "job":
        return await job.terminate(metric, measurement, ctx.cluster, ctx.run, clock=ctx.clock)
    return dict(measurement)


async def garbage_collect(metric: Mapping[str, Any], ctx: Context, limit: int) -> None:
    """Remove what measurements beyond the newest ``limit`` left in the cluster (a job's Jobs).
    Raises ClusterError when the cluster refuses (the caller tries again on its next pass)."""
    if provider_of(metric) == "job":
        await job.garbage_collect(metric, ctx.cluster, ctx.run, limit)


def result_metadata(metric: Mapping[str, Any]) -> dict[str, str]:
    """The metric result's ``metadata`` as Argo's provider gives it: the resolved query of a
    prometheus metric (``ResolvedPrometheusQuery``), nothing for the others."""
    if provider_of(metric) == "prometheus":
        query = (metric["provider"]["prometheus"] or {}).get("query")
        if query:
            return {prometheus.RESOLVED_QUERY_KEY: str(query)}
    return {}


__all__ = [
    "SUPPORTED",
    "Context",
    "garbage_collect",
    "measure",
    "provider_of",
    "result_metadata",
    "resume",
    "terminate",
]
