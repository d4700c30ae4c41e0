"""Prometheus metrics with Argo Rollouts' names, and the /healthz and /readyz endpoints.

Rollout gauges are computed at scrape time from the controller's Rollout cache, so they are live:
``rollout_info{namespace,name,strategy,phase}`` (always 1) and
``rollout_info_replicas_{available,unavailable,desired,updated}{namespace,name}``. The reconcile
histogram, the reconcile error counter and ``rollout_events_total{type,reason}`` count as they
happen. Dashboards and alerts written for Argo's controller therefore work unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from ...model.cluster import Obj

log = logging.getLogger("pyrollouts.kubernetes.metrics")

# The same buckets as Argo's reconcile histogram (seconds).
RECONCILE_BUCKETS = (0.01, 0.15, 0.25, 0.5, 1.0)


def _strategy(rollout: Obj) -> str:
    strategy = (rollout.get("spec") or {}).get("strategy") or {}
    if "blueGreen" in strategy:
        return "blueGreen"
    if "canary" in strategy:
        return "canary"
    return "none"


class RolloutCollector(Collector):
    """The rollout_info* gauges, from a function returning the Rollouts in scope."""

    def __init__(self, rollouts: Callable[[], Iterable[Obj]]) -> None:
        self._rollouts = rollouts

    def collect(self) -> Iterable[Metric]:
        """One sample per Rollout for each gauge."""
        info = GaugeMetricFamily(
            "rollout_info", "Information about a rollout.", labels=["namespace", "name", "strategy", "phase"]
        )
        gauges = {
            key: GaugeMetricFamily(
                f"rollout_info_replicas_{key}",
                f"The number of {key} replicas per rollout.",
                labels=["namespace", "name"],
            )
            for key in ("available", "unavailable", "desired", "updated")
        }
        try:
            rollouts = list(self._rollouts())
        except Exception:  # a scrape must never fail because the cache is not ready
            log.exception("reading rollouts for metrics failed")
            rollouts = []
        for ro in rollouts:
            meta = ro.get("metadata") or {}
            ns, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
            status = ro.get("status") or {}
            spec = ro.get("spec") or {}
            info.add_metric([ns, name, _strategy(ro), str(status.get("phase") or "")], 1)
            available = int(status.get("availableReplicas") or 0)
            replicas = int(status.get("replicas") or 0)
            desired = spec.get("replicas")
            gauges["available"].add_metric([ns, name], available)
            gauges["unavailable"].add_metric([ns, name], max(0, replicas - available))
            gauges["desired"].add_metric([ns, name], 1 if desired is None else int(desired))
            gauges["updated"].add_metric([ns, name], int(status.get("updatedReplicas") or 0))
        yield info
        yield from gauges.values()


class ControllerMetrics:
    """Every metric of the controller in one registry (not the process-global one)."""

    def __init__(self, rollouts: Callable[[], Iterable[Obj]]) -> None:
        # Argo exposes no *_created series; prometheus_client's switch for them is process-wide.
        disable_created_metrics()
        self.registry = CollectorRegistry()
        self.registry.register(RolloutCollector(rollouts))
        self.reconcile = Histogram(
            "rollout_reconcile",
            "Rollout reconciliation performance.",
            ["namespace", "name"],
            buckets=RECONCILE_BUCKETS,
            registry=self.registry,
        )
        self.reconcile_error = Counter(
            "rollout_reconcile_error",
            "Error occurring during the rollout",
            ["namespace", "name"],
            registry=self.registry,
        )
        self.events = Counter(
            "rollout_events", "Count of rollout events", ["type", "reason"], registry=self.registry
        )

    def observe_reconcile(self, key: str, seconds: float, error: Exception | None) -> None:
        """Record one reconcile of ``namespace/name`` (the controller's on_reconcile hook)."""
        ns, _, name = key.partition("/")
        self.reconcile.labels(ns, name).observe(seconds)
        if error is not None:
            self.reconcile_error.labels(ns, name).inc()

    def count_event(self, event: Obj) -> None:
        """Count one Kubernetes Event the controller created."""
        self.events.labels(str(event.get("type") or "Normal"), str(event.get("reason") or "")).inc()

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)


def metrics_app(metrics: ControllerMetrics) -> web.Application:
    """An aiohttp app serving GET /metrics."""

    async def handle(_: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", handle)
    return app


def health_app(
    ready: Callable[[], bool], details: Callable[[], dict[str, Any]] | None = None
) -> web.Application:
    """An aiohttp app: /healthz answers 200 while the process serves; /readyz 200 once ``ready()``."""

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        ok = False
        try:
            ok = ready()
        except Exception:
            log.exception("readiness check failed")
        body = "ok" if ok else "not ready"
        if details is not None:
            body += "".join(f"\n{k}: {v}" for k, v in details().items())
        return web.Response(text=body, status=200 if ok else 503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Start an aiohttp app on host:port; returns the runner (``await runner.cleanup()`` to stop)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner
