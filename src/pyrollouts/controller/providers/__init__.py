"""Metric providers of the AnalysisRun controller: each takes one measurement of a metric (with its
args already substituted) and returns it in Argo's Measurement form, never raising for what the
provider or the remote system got wrong (that is the measurement's ``Error`` phase)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ...model.analysis import PHASE_ERROR
from ...model.cluster import Cluster, Obj
from ...model.timefmt import rfc3339
from . import prometheus, web

#: The providers this controller measures with, by their key under ``metric.provider``.
SUPPORTED = ("prometheus", "web")


async def measure(metric: Mapping[str, Any], run: Obj, cluster: Cluster) -> dict[str, Any]:
    """One measurement of ``metric`` (args substituted) for ``run``, by its provider; a provider
    that is not supported is an Error measurement saying which are."""
    provider = metric.get("provider") or {}
    if "web" in provider:
        return await web.measure(metric)
    if "prometheus" in provider:
        return await prometheus.measure(metric)
    now = rfc3339(datetime.now(UTC))
    which = ", ".join(sorted(provider)) or "none"
    return {
        "phase": PHASE_ERROR,
        "message": f"metric provider {which} is not supported; supported: {', '.join(SUPPORTED)}",
        "startedAt": now,
        "finishedAt": now,
    }
