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
from .clock import Clock
from .providers import measure as provider_measure
from .workqueue import WorkQueue

log = logging.getLogger("pyrollouts.controller.analysis")

#: (metric with args substituted, the run, the cluster) -> a Measurement dict. Replaceable in tests.
Measure = Callable[[Mapping[str, Any], Obj, Cluster], Awaitable[dict[str, Any]]]


def key_of(obj: Obj) -> str:
    meta = obj.get("metadata", {})
    return f"{meta.get('namespace', 'default')}/{meta.get('name', '')}"


class AnalysisRunController:
    """Runs every AnalysisRun in scope until it completes. ``run()`` until cancelled."""

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
        self.cluster = cluster
        self.clock = clock or Clock()
        self.namespace = namespace
        self.instance_id = instance_id or None
        self.workers = max(1, workers)
        self.queue = WorkQueue()
        self.measure: Measure = measure or provider_measure
        self._keys: set[str] = set()

    def in_scope(self, run: Obj) -> bool:
        labels = run.get("metadata", {}).get("labels") or {}
        if self.instance_id:
            return labels.get(names.INSTANCE_ID_LABEL) == self.instance_id
        return names.INSTANCE_ID_LABEL not in labels

    async def requeue_all(self) -> None:
        """Queue every known run (after the clock moved)."""
        for key in list(self._keys):
            await self.queue.add(key)

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
        measurements = await self._measure_all(run, run_plan)
        now = self.clock.now()
        update = analysisrun.record(run, run_plan, measurements, now)
        if update.status != (run.get("status") or {}):
            try:
                run = await self.cluster.patch(
                    "AnalysisRun", ns, name, {"status": _replace_lists(update.status)},
                    subresource="status",
                    resource_version=run.get("metadata", {}).get("resourceVersion"),
                )  # fmt: skip
            except Conflict:
                return 0.0  # terminate (or a delete) landed meanwhile: measure again from it
            for ev in update.events:
                await self._event(run, ev.type, ev.reason, ev.message, now)
        wake = analysisrun.next_reconcile(run, run_plan, now)
        return None if wake is None else max(0.0, (wake - now).total_seconds())

    async def _measure_all(self, run: Obj, run_plan: analysisrun.RunPlan) -> dict[str, dict[str, Any]]:
        """Each due metric's measurement, taken concurrently; a terminating run's in-flight
        measurements end as they are (the providers here answer within one call)."""
        tasks = [t for t in run_plan.tasks if not (run_plan.terminating and t.incomplete is not None)]

        async def one(task: analysisrun.MetricTask) -> tuple[str, dict[str, Any]]:
            name = str(task.metric.get("name"))
            try:
                return name, await self.measure(task.metric, run, self.cluster)
            except Exception as exc:  # a provider must never stop the run: an Error measurement
                log.warning("measuring %s of %s failed", name, key_of(run), exc_info=True)
                now = rfc3339(self.clock.now())
                return name, {"phase": PHASE_ERROR, "message": str(exc), "startedAt": now, "finishedAt": now}

        if len(tasks) <= 1:  # the common case, without the tasks gather would make
            return dict([await one(t) for t in tasks])
        return dict(await asyncio.gather(*(one(t) for t in tasks)))

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

    async def run(self) -> None:
        """Watch, list, and work until cancelled."""
        watch_task = asyncio.create_task(self._watch_loop())
        await asyncio.sleep(0)  # subscribe before listing, so no change is missed
        for obj in await self.cluster.list("AnalysisRun", self.namespace):
            key = key_of(obj)
            self._keys.add(key)
            await self.queue.add(key)
        workers = [asyncio.create_task(self._worker()) for _ in range(self.workers)]
        try:
            await asyncio.gather(watch_task, *workers)
        finally:
            await self.queue.shutdown()
            for t in [watch_task, *workers]:
                t.cancel()
            await asyncio.gather(watch_task, *workers, return_exceptions=True)


def _replace_lists(status: dict[str, Any]) -> dict[str, Any]:
    """The status as a merge patch: lists are replaced whole by a merge patch, and keys the new
    status no longer has are not removed by it, so the few that can go away are set to None."""
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
