"""The AnalysisRun controller: watch -> workqueue -> engine.analysisrun.plan -> providers -> record.

It drives any ``Cluster`` as the rollout controller does, so AnalysisRuns run on both runtimes. A
reconcile of a run asks the pure ``engine.analysisrun`` which metrics are due, takes those
measurements through the metric providers (the only I/O besides the Cluster), folds them in with
``record``, writes the run's status through the status subresource and its Events, and looks again
when ``next_reconcile`` says. A Rollout that owns the run is requeued by its own controller,
which watches AnalysisRuns.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from ..engine import analysisrun
from ..model import names
from ..model.analysis import PHASE_ERROR
from ..model.cluster import Cluster, Conflict, NotFound, Obj
from ..model.events import event
from ..model.timefmt import rfc3339
from . import providers
from .base import QueueController, key_of
from .clock import Clock

log = logging.getLogger("pyrollouts.controller.analysis")

#: (metric with args substituted, the providers' context) -> a new Measurement dict (the providers'
#: ``measure``; the engine's simulated cluster gives its own).
Measure = Callable[[Mapping[str, Any], providers.Context], Awaitable[dict[str, Any]]]


class AnalysisRunController(QueueController):
    """Runs every AnalysisRun in scope until it completes. ``run()`` until cancelled."""

    kind = "AnalysisRun"

    def __init__(
        self,
        cluster: Cluster,
        clock: Clock | None = None,
        *,
        namespace: str | None = None,
        instance_id: str | None = None,
        workers: int = 2,
        measure: Measure | None = None,
    ) -> None:
        super().__init__(cluster, clock, namespace=namespace, instance_id=instance_id, workers=workers)
        self.measure: Measure = measure or providers.measure

    # -- reconcile -----------------------------------------------------------------------------
    async def reconcile(self, key: str) -> float | None:
        """Measure what is due for one run and write its status; seconds until it is due again."""
        ns, _, name = key.partition("/")
        try:
            run = await self.cluster.get("AnalysisRun", ns, name)
        except NotFound:
            self._keys.discard(key)
            return None
        if not self.in_scope(run) or run.get("metadata", {}).get("deletionTimestamp"):
            return None
        now = self.clock.now()
        run_plan = analysisrun.plan(run, now)
        if run_plan.done:
            return None
        ctx = providers.Context(self.cluster, run, clock=self.clock.now)
        measurements = await self._measure_all(ctx, run_plan)
        now = self.clock.now()
        update = analysisrun.record(run, run_plan, measurements, now)
        if update.status != (run.get("status") or {}):
            try:
                run = await self.cluster.patch(
                    "AnalysisRun", ns, name, {"status": _status_patch(update.status)},
                    subresource="status",
                    resource_version=run.get("metadata", {}).get("resourceVersion"),
                )  # fmt: skip
            except Conflict:
                return 0.0  # terminate (or a delete) landed meanwhile: measure again from it
            for ev in update.events:
                await self._event(run, ev.type, ev.reason, ev.message, now)
        await self._collect_garbage(ctx, run_plan)
        wake = analysisrun.next_reconcile(run, run_plan, now)
        return None if wake is None else max(0.0, (wake - now).total_seconds())

    async def _measure_all(
        self, ctx: providers.Context, run_plan: analysisrun.RunPlan
    ) -> dict[str, dict[str, Any]]:
        """Each due metric's measurement, taken concurrently: a new one, or an in-flight one (a
        job's) carried on, or ended when the run is terminating."""

        async def one(task: analysisrun.MetricTask) -> tuple[str, dict[str, Any]]:
            name = str(task.metric.get("name"))
            try:
                if task.incomplete is None:
                    return name, await self.measure(task.metric, ctx)
                if run_plan.terminating:
                    return name, await providers.terminate(task.metric, task.incomplete, ctx)
                return name, await providers.resume(task.metric, task.incomplete, ctx)
            except Exception as exc:  # a provider must never stop the run: an Error measurement
                log.warning("measuring %s of %s failed", name, key_of(dict(ctx.run)), exc_info=True)
                now = rfc3339(self.clock.now())
                return name, {"phase": PHASE_ERROR, "message": str(exc), "startedAt": now, "finishedAt": now}

        tasks = run_plan.tasks
        if len(tasks) <= 1:  # the common case, without the tasks gather would make
            return dict([await one(t) for t in tasks])
        return dict(await asyncio.gather(*(one(t) for t in tasks)))

    async def _collect_garbage(self, ctx: providers.Context, run_plan: analysisrun.RunPlan) -> None:
        """What measurements beyond each metric's retention left in the cluster (a job's Jobs)."""
        for metric in run_plan.metrics:
            if providers.provider_of(metric) != "job":
                continue
            limit = run_plan.retention.get(
                str(metric.get("name")), analysisrun.DEFAULT_MEASUREMENT_HISTORY_LIMIT
            )
            try:
                await providers.garbage_collect(metric, ctx, limit)
            except Exception:  # tried again on the run's next reconcile
                log.warning(
                    "cleaning up after %s of %s failed",
                    metric.get("name"),
                    key_of(dict(ctx.run)),
                    exc_info=True,
                )

    async def _event(self, run: Obj, type_: str, reason: str, message: str, now: datetime) -> None:
        about = {**run, "apiVersion": names.API_VERSION, "kind": "AnalysisRun"}
        body = event(
            about, type_, reason, message,
            component="rollouts-controller", now=now, name_suffix=uuid.uuid4().hex[:16],
        )  # fmt: skip
        try:
            await self.cluster.create("Event", body)
        except Exception:  # an Event is best effort, as the rollout controller's
            log.warning("recording event %s on %s failed", reason, key_of(run), exc_info=True)

    # -- loop ----------------------------------------------------------------------------------
    async def _watch_loop(self) -> None:
        async for ev in self.cluster.watch(("AnalysisRun",), self.namespace):
            key = key_of(ev.obj)
            if ev.type == "DELETED":
                self._keys.discard(key)
                continue
            self._keys.add(key)
            await self.queue.add(key)

    async def _worker(self) -> None:
        while (key := await self.queue.get()) is not None:
            try:
                again = await self.reconcile(key)
            except Exception as exc:
                delay = self.queue.add_rate_limited(key)
                log.warning("analysis run %s failed (retry in %.3fs): %s", key, delay, exc, exc_info=True)
            else:
                self.queue.forget(key)
                if again is not None:
                    self.queue.add_after(key, again)
            finally:
                await self.queue.done(key)


def _status_patch(status: dict[str, Any]) -> dict[str, Any]:
    """The new status as a merge patch: lists are replaced whole anyway, but a key the new status
    no longer has would stay, so the ones that can go away (message, completedAt) are set to None."""
    out = dict(status)
    for key in ("message", "completedAt"):
        out.setdefault(key, None)
    return out


class Controllers:
    """Several controllers run as one (the operator runs the rollout and AnalysisRun controllers
    together, under one leader election)."""

    def __init__(self, *parts: Any) -> None:
        self.parts = parts

    async def run(self) -> None:
        await asyncio.gather(*(p.run() for p in self.parts))

    async def requeue_all(self) -> None:
        for p in self.parts:
            await p.requeue_all()
