"""The rollout controller: watch -> workqueue -> gather observed state -> engine.plan -> apply.

It drives any ``Cluster`` (model/cluster.py) and never knows which runtime is underneath: the local
server runs it over SQLite and processes, ``rollouts controller`` over the Kubernetes API.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from .. import engine
from ..engine import analysisrun
from ..model import names
from ..model.cluster import Cluster, NotFound, Obj, WatchEvent
from ..model.rollout import Rollout
from .apply import ReplicaSetNameTaken, SpecRejected, apply_plan
from .base import QueueController, key_of
from .clock import Clock
from .observe import gather

log = logging.getLogger("pyrollouts.controller")

#: The kinds whose changes queue a Rollout. Not Pods, as in Argo's rollout controller: what the plan
#: waits for in its pods (created, ready, available, gone) reaches it through their ReplicaSet's
#: status, which the ReplicaSet controller (kube-controller-manager; the local runtime's ReplicaSet
#: loop) writes after each such change, and whose event follows. Routing every Pod event too made
#: 22.5 reconciles per Rollout where 17.4 do the same work (bench-scale at 100, issue 15). The Pods
#: are still read, from the caches, by each reconcile.
WATCHED_KINDS = ("Rollout", "ReplicaSet", "Service")
#: The operator's default --rollout-coalesce: a Rollout's changes within this many seconds make one
#: reconcile. A reconcile writes several objects at once (a ReplicaSet, a Service, its status) and the
#: echo of each comes back on its own watch, while the ReplicaSet controller moves each ReplicaSet's
#: status a step at a time: one reconcile per change was 14.4 per Rollout to Healthy at 300 Rollouts
#: (Argo's: 6.3). The cost is at most this much latency on a reaction (docs/kubernetes.md).
DEFAULT_COALESCE_SECONDS = 0.5
#: Watched too where the runtime can: a run's phase moving re-queues the Rollout that owns it
#: (elsewhere the Rollout looks again on its own schedule, see ANALYSIS_POLL_SECONDS).
ANALYSIS_KINDS = ("AnalysisRun",)
#: How often a Rollout with a run going looks at it when AnalysisRuns cannot be watched.
ANALYSIS_POLL_SECONDS = 5.0
#: Watched too where the runtime can (spec.workloadRef): a Deployment change re-queues its Rollouts.
WORKLOAD_KINDS = ("Deployment",)


class RolloutController(QueueController):
    """Reconciles every Rollout in scope. ``run()`` until cancelled."""

    kind = "Rollout"

    def __init__(
        self,
        cluster: Cluster,
        clock: Clock | None = None,
        *,
        namespace: str | None = None,
        instance_id: str | None = None,
        workers: int = 1,
        on_reconcile: Callable[[Obj, float, Exception | None], None] | None = None,
        coalesce: float = 0.0,
    ) -> None:
        """``coalesce``: seconds a Rollout's changes are gathered before it is queued (the
        operator's ``--rollout-coalesce``), so that a burst of them (our own writes' echoes, its
        ReplicaSets' status moving) makes one reconcile; 0 queues it on each change."""
        super().__init__(
            cluster, clock, namespace=namespace, instance_id=instance_id, workers=workers, coalesce=coalesce
        )
        self.on_reconcile = on_reconcile
        self._seen: set[str] = set()
        # (kind, namespace, name) of a Service or Deployment -> the Rollouts that name it, and back.
        self._referrers: dict[tuple[str, str, str], set[str]] = {}
        self._refs_of: dict[str, set[tuple[str, str, str]]] = {}
        self.watches_analysis = True

    # -- event routing -------------------------------------------------------------------------
    async def _route(self, ev: WatchEvent) -> None:
        if ev.kind == "Rollout":
            await self._route_rollout(ev)
        elif ev.kind in ("ReplicaSet", "AnalysisRun"):
            await self._route_owned(ev.obj)
        elif ev.kind in ("Service", "Deployment"):
            # Services and workloadRef Deployments are referenced by name from the Rollout's spec:
            # re-queue the Rollouts that name this one (not the whole namespace: a selector switch
            # would otherwise reconcile every Rollout of the namespace, issue 15).
            await self._route_referenced(ev.kind, ev.obj)

    async def _route_rollout(self, ev: WatchEvent) -> None:
        key = key_of(ev.obj)
        if ev.type == "DELETED":
            self._keys.discard(key)
            self._seen.discard(key)
            self._remember_refs(key, None)
            return
        self._keys.add(key)
        self._remember_refs(key, ev.obj)
        await self.queue.add_soon(key)

    def _remember_refs(self, key: str, rollout: Obj | None) -> None:
        """Index the Services and the Deployment a Rollout names (None: it is gone)."""
        refs = _references(rollout) if rollout is not None else set()
        old = self._refs_of.pop(key, set())
        for ref in old - refs:
            keys = self._referrers.get(ref)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._referrers[ref]
        for ref in refs - old:
            self._referrers.setdefault(ref, set()).add(key)
        if refs:
            self._refs_of[key] = refs

    async def _route_referenced(self, kind: str, obj: Obj) -> None:
        meta = obj.get("metadata", {})
        ref = (kind, meta.get("namespace", "default"), meta.get("name", ""))
        for rkey in list(self._referrers.get(ref, ())):
            await self.queue.add_soon(rkey)

    async def _route_owned(self, obj: Obj) -> None:
        meta = obj.get("metadata", {})
        ns = meta.get("namespace", "default")
        for ref in meta.get("ownerReferences") or []:
            if ref.get("kind") == "Rollout":
                await self.queue.add_soon(f"{ns}/{ref.get('name')}")

    def _stream(self) -> Any:
        """The watch of every kind this runtime can watch: the Rollout's own three, and where the
        runtime's caches hold them, Deployments (workloadRef) and AnalysisRuns."""
        self.watches_analysis = True
        for kinds in (
            (*WATCHED_KINDS, *WORKLOAD_KINDS, *ANALYSIS_KINDS),
            (*WATCHED_KINDS, *ANALYSIS_KINDS),
            (*WATCHED_KINDS, *WORKLOAD_KINDS),
        ):
            try:
                stream = self.cluster.watch(kinds, self.namespace)
            except ValueError:
                continue
            self.watches_analysis = "AnalysisRun" in kinds
            return stream
        # A runtime whose caches hold neither: a workloadRef Rollout still reads its Deployment on
        # every reconcile and resync, and a Rollout with a run going looks at it every few seconds.
        log.info("this runtime cannot watch Deployments or AnalysisRuns; they are read on each reconcile")
        self.watches_analysis = False
        return self.cluster.watch(WATCHED_KINDS, self.namespace)

    async def _watch_loop(self) -> None:
        stream = self._stream()
        async for ev in stream:
            try:
                await self._route(ev)
            except Exception:  # routing must never stop the watch
                log.exception("routing a watch event failed")

    # -- reconcile -----------------------------------------------------------------------------
    async def reconcile(self, key: str) -> float | None:
        """Plan and apply once for one Rollout; returns seconds until it should be looked at again."""
        ns, _, name = key.partition("/")
        try:
            obj = await self.cluster.get("Rollout", ns, name)
        except NotFound:
            self._keys.discard(key)
            self._seen.discard(key)
            self._remember_refs(key, None)
            return None
        # Also how the Rollouts of the initial list (no watch event) get their references indexed.
        self._remember_refs(key, obj)
        if not self.in_scope(obj) or obj.get("metadata", {}).get("deletionTimestamp"):
            return None
        first = key not in self._seen
        try:
            rollout = Rollout.from_wire(obj)
        except ValidationError as exc:
            await self._write_unparseable(obj, exc)
            return float(names.INVALID_SPEC_RETRY_SECONDS)
        observed = await gather(self.cluster, obj, first_seen=first)
        plan = engine.plan(rollout, observed, self.clock.now())
        try:
            ok = await apply_plan(self.cluster, obj, plan, self.clock)
        except SpecRejected:
            # The InvalidSpec condition is written; look again on the next change or in 20 s (Argo).
            self._seen.add(key)
            return float(names.INVALID_SPEC_RETRY_SECONDS)
        self._seen.add(key)
        if not ok:
            return 0.0  # lost a race with a user's write: plan again from fresh state
        if not self.watches_analysis and _runs_going(plan):
            return min(plan.requeue_after or ANALYSIS_POLL_SECONDS, ANALYSIS_POLL_SECONDS)
        return plan.requeue_after

    async def _write_unparseable(self, obj: Obj, exc: ValidationError) -> None:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        msg = f"InvalidSpec: {where}: {first.get('msg')}"
        meta = obj["metadata"]
        await self.cluster.patch(
            "Rollout",
            meta.get("namespace", "default"),
            meta["name"],
            {"status": {"phase": names.PHASE_DEGRADED, "message": msg}},
            subresource="status",
        )

    async def _worker(self) -> None:
        while (key := await self.queue.get()) is not None:
            started = time.monotonic()
            try:
                err = await self._work(key)
            finally:
                await self.queue.done(key)
            if self.on_reconcile is not None:
                with contextlib.suppress(Exception):
                    self.on_reconcile({"key": key}, time.monotonic() - started, err)

    async def _work(self, key: str) -> Exception | None:
        """Reconcile one key and queue it again as its outcome asks; returns the error to report."""
        try:
            again = await self.reconcile(key)
        except ReplicaSetNameTaken as exc:
            # The name of the new RS is taken by one this controller's last gather did not see
            # (a race, or a lagging cache): replan with the per-key backoff, so a holder that
            # stays invisible costs a doubling delay, not a tight create loop. Only a holder
            # that is not ours is worth a warning; a cache behind our own create is routine.
            delay = self.queue.add_rate_limited(key)
            if not exc.held:
                log.debug("reconcile %s: %s; planning again in %.3fs", key, exc, delay)
                return None
            log.warning("reconcile %s: %s; planning again in %.3fs", key, exc, delay)
            return exc
        except Exception as exc:
            delay = self.queue.add_rate_limited(key)
            log.warning("reconcile %s failed (retry in %.3fs): %s", key, delay, exc, exc_info=True)
            return exc
        self.queue.forget(key)
        if again is not None:
            self.queue.add_after(key, again)
        return None


def _references(rollout: Obj) -> set[tuple[str, str, str]]:
    """(kind, namespace, name) of the Services and the workloadRef Deployment the Rollout names."""
    ns = rollout.get("metadata", {}).get("namespace", "default")
    spec = rollout.get("spec") or {}
    strategy = spec.get("strategy") or {}
    bg = strategy.get("blueGreen") or {}
    canary = strategy.get("canary") or {}
    named = (
        bg.get("activeService"),
        bg.get("previewService"),
        canary.get("stableService"),
        canary.get("canaryService"),
    )
    refs = {("Service", ns, str(n)) for n in named if n}
    ref = spec.get("workloadRef") or {}
    if ref.get("kind") == "Deployment" and ref.get("name"):
        refs.add(("Deployment", ns, str(ref["name"])))
    return refs


def describe(obj: Any) -> str:
    return key_of(obj) if isinstance(obj, dict) else str(obj)


def _runs_going(plan: engine.Plan) -> bool:
    """The planned status names an AnalysisRun that has not finished."""
    bg, canary = plan.status.blue_green, plan.status.canary
    runs = (bg.pre_promotion_analysis_run_status, bg.post_promotion_analysis_run_status) if bg else ()
    if canary is not None:
        runs += (canary.current_step_analysis_run_status, canary.current_background_analysis_run_status)
    return any(r and not analysisrun.is_completed(r.get("status")) for r in runs)
