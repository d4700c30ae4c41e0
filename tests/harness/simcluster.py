"""A simulated cluster for the engine: objects as dicts, pods that become ready on a virtual clock.

``SimCluster`` implements the controller's ``Cluster`` protocol (model/cluster.py) over in-memory
dicts, and a reconcile here runs the controller's own code: ``controller.observe.gather``, then
``engine.plan``, then ``controller.apply.apply_plan`` with a clock that reads the virtual time. A
scenario proven here has therefore run the same gather and apply as the runtimes; only the store
and the pods are simulated. The controller's coroutines never wait on anything here (every call
answers at once), so the simulation drives them to completion synchronously (``_complete``).

Pods are simulated by a tiny ReplicaSet controller: each RS gets as many pods as spec.replicas
(scale-down removes unready pods first, then the newest). A pod becomes ready ``ready_after``
seconds after it starts, unless its revision's pods are set ``unready`` or ``crash`` (a crash also
counts a restart); it is available once it has been ready for the RS's minReadySeconds. RS status
(replicas, readyReplicas, availableReplicas) is computed from the pods, as kube-controller-manager
does. Time only moves when asked: ``advance(seconds)``, or ``settle()``, which jumps to the next pod
event (a pod becoming ready or available) until there is none.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from harness.support import owned_replicasets
from pyrollouts.controller.analysisruns import AnalysisRunController
from pyrollouts.controller.apply import ReplicaSetNameTaken, apply_plan
from pyrollouts.controller.clock import Clock
from pyrollouts.controller.observe import gather
from pyrollouts.engine import plan as engine_plan
from pyrollouts.engine import types as a
from pyrollouts.engine.measurement import assess
from pyrollouts.model import names
from pyrollouts.model.cluster import Conflict, Invalid, NotFound, Obj, WatchEvent
from pyrollouts.model.owners import owned_by_uid
from pyrollouts.model.rollout import Rollout
from pyrollouts.model.timefmt import rfc3339
from pyrollouts.model.useractions import apply_merge_patch, merge_patch_to
from pyrollouts.runtimes.local.store import labels_match

T = TypeVar("T")
PlanHook = Callable[[Obj, a.Observed, a.Plan, datetime], None]

EPOCH = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
POD_MODES = ("ready", "unready", "crash")


class SimulationError(RuntimeError):
    """The simulated world did not converge (an engine that keeps changing its mind), or the
    engine changed what it was given."""


def _whole(observed: a.Observed) -> tuple[a.Observed, list[Any], list[Any]]:
    """Observed with the JSON objects its states carry (``obj``, which their equality leaves out)."""
    rss = [rs.obj for rs in (*observed.replicasets, *observed.foreign_replicasets)]
    return observed, rss, [run.obj for run in observed.analysis_runs]


def _diff(before: a.Observed, after: a.Observed) -> str:
    """The fields of Observed that differ (for the purity check's message)."""
    return (
        ", ".join(
            f.name for f in dataclasses.fields(before) if getattr(before, f.name) != getattr(after, f.name)
        )
        or "the objects of its ReplicaSets or AnalysisRuns"
    )


def _merge_in_place(target: Obj, patch: Obj) -> None:
    """RFC 7386 merge patch applied to target itself (the simulation's hot path: no copies)."""
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict):
            if not isinstance(target.get(k), dict):
                target[k] = {}
            _merge_in_place(target[k], v)
        else:
            target[k] = v


def _complete(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never waits (the controller's code over a SimCluster) to its end."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise SimulationError("the controller waited on something; a SimCluster call never blocks")


def _about_rollout(event: Obj) -> bool:
    return (event.get("involvedObject") or {}).get("kind") == "Rollout"


def _ns(obj: Obj) -> str:
    return str(obj.get("metadata", {}).get("namespace") or "default")


class SimClock(Clock):
    """The controller's clock, reading the simulated cluster's virtual time."""

    def __init__(self, sim: SimCluster) -> None:
        super().__init__()
        self._sim = sim

    def now(self) -> datetime:
        return self._sim.now

    def advance(self, seconds: float) -> None:
        self._sim.now += timedelta(seconds=seconds)


class SimCluster:
    """One namespace's Rollout, Services, ReplicaSets, Pods and Events, and a virtual clock."""

    #: As the local runtime: a canary's split goes into the stable Service's annotation.
    proxy_routes_traffic = True

    def __init__(
        self,
        *,
        ready_after: float = 1.0,
        start: datetime = EPOCH,
        plan_hook: PlanHook | None = None,
        max_reconciles: int = 200,
    ) -> None:
        self.now = start
        self.ready_after = ready_after
        self.rollout: Obj | None = None
        self.replicasets: dict[str, Obj] = {}
        self.services: dict[str, Obj] = {}
        self.deployments: dict[str, Obj] = {}  # stored only (spec.workloadRef reads them), never run
        self.pods: dict[str, Obj] = {}
        self.events: list[Obj] = []
        # The analysis kinds: templates as applied, runs as the controller creates them. Runs are
        # measured by the real AnalysisRunController with a provider that reads the scenario's
        # metric endpoint's value directly (the runtime drivers measure it over HTTP).
        self.templates: dict[str, Obj] = {}
        self.analysis_runs: dict[str, Obj] = {}
        self.metric_source: Any = None  # harness.support.MetricEndpoint, set by the scenario
        self.pod_modes: dict[str, str] = {}  # pod-template hash -> ready | unready | crash
        self.pending_modes: dict[int, str] = {}  # revision not created yet -> mode
        self.plan_hook = plan_hook
        self.max_reconciles = max_reconciles
        self.plans: list[a.Plan] = []
        self._pod_sim: dict[str, dict[str, datetime | None]] = {}
        self._seq = 0
        self._seen = False
        self._requeue_at: datetime | None = None
        self._last_applied: dict[str, Obj] = {}
        self._writes = 0  # writes through the Cluster protocol: a reconcile that made none is idle
        self._watchers: list[tuple[frozenset[str], str | None, asyncio.Queue[WatchEvent]]] = []
        self.clock = SimClock(self)
        self.analysis = AnalysisRunController(self, self.clock, measure=self._measure)

    async def _measure(self, metric: Mapping[str, Any], ctx: Any) -> dict[str, Any]:
        """A ``web`` measurement that never waits: the endpoint's value as the result, assessed by
        the real condition evaluator, at the virtual time."""
        if self.metric_source is None:
            raise SimulationError("an AnalysisRun was measured but the scenario has no metric endpoint")
        value = self.metric_source.value
        verdict = assess(value, metric.get("successCondition"), metric.get("failureCondition"))
        now = rfc3339(self.now)
        out = {"phase": verdict.phase, "value": json.dumps(value), "startedAt": now, "finishedAt": now}
        if verdict.message:
            out["message"] = verdict.message
        return out

    # -- object store ---------------------------------------------------------------------------
    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def _uid(self) -> str:
        return f"00000000-0000-0000-0000-{self._next():012d}"

    def apply_objects(self, objs: Iterable[Obj]) -> None:
        """Create or update objects as ``kubectl apply`` does: the first apply creates; later ones
        apply the JSON merge patch from the previously applied manifest to this one, so fields that
        others wrote (spec.paused, the controller's spec.replicas, the hash label it put in a Service
        selector) survive. A Rollout spec change bumps metadata.generation."""
        for obj in objs:
            kind = obj.get("kind")
            if kind not in ("Rollout", "Service", "Deployment", "AnalysisTemplate"):
                continue  # Namespaces (and anything else) need nothing here
            obj = copy.deepcopy(obj)
            obj.pop("status", None)
            key = f"{kind}/{obj['metadata']['name']}"
            last = self._last_applied.get(key)
            self._last_applied[key] = copy.deepcopy(obj)
            if kind == "Rollout":
                if self.rollout is None or self.rollout["metadata"]["name"] != obj["metadata"]["name"]:
                    self._create_rollout(obj)
                else:
                    self.patch_rollout(merge_patch_to(last or {}, obj))
            elif kind == "AnalysisTemplate":
                obj["metadata"].setdefault("uid", self._uid())
                obj["metadata"].setdefault("namespace", "default")
                self.templates[obj["metadata"]["name"]] = obj
            elif kind == "Deployment":
                name = obj["metadata"]["name"]
                if name not in self.deployments or last is None:
                    obj["metadata"].setdefault("uid", self._uid())
                    self.deployments[name] = obj
                    self._notify("ADDED", kind, obj)
                else:
                    self.deployments[name] = apply_merge_patch(
                        self.deployments[name], merge_patch_to(last, obj)
                    )
                    self._notify("MODIFIED", kind, self.deployments[name])
            else:
                name = obj["metadata"]["name"]
                if name not in self.services or last is None:
                    obj["metadata"].setdefault("uid", self._uid())
                    self.services[name] = obj
                    self._notify("ADDED", kind, obj)
                else:
                    self.services[name] = apply_merge_patch(self.services[name], merge_patch_to(last, obj))
                    self._notify("MODIFIED", kind, self.services[name])

    def _create_rollout(self, obj: Obj) -> None:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", "default")
        meta.update(
            uid=self._uid(),
            generation=1,
            creationTimestamp=rfc3339(self.now),
            resourceVersion=str(self._next()),
        )
        self.rollout = obj
        self._seen = False
        self._notify("ADDED", "Rollout", obj)

    def _set_spec(self, spec: Obj) -> None:
        assert self.rollout is not None
        if spec != self.rollout.get("spec"):
            self.rollout["spec"] = spec
            self.rollout["metadata"]["generation"] = int(self.rollout["metadata"].get("generation") or 0) + 1
        self.rollout["metadata"]["resourceVersion"] = str(self._next())

    def patch_rollout(self, patch: Obj, subresource: str | None = None) -> None:
        """A JSON merge patch on the Rollout (``subresource="status"``: status only, as the API)."""
        if self.rollout is None:
            raise SimulationError("no Rollout to patch")
        if subresource == "status":
            status = self.rollout.setdefault("status", {})
            _merge_in_place(status, copy.deepcopy(patch.get("status") or {}))
            self.rollout["metadata"]["resourceVersion"] = str(self._next())
        else:
            body = {k: v for k, v in patch.items() if k != "status"}
            new = apply_merge_patch(self.rollout, body)
            self.rollout["metadata"] = new["metadata"]
            self._set_spec(new.get("spec") or {})
        self._written("MODIFIED", "Rollout", self.rollout)

    def delete_service(self, name: str) -> None:
        svc = self.services.pop(name, None)
        self._last_applied.pop(f"Service/{name}", None)
        if svc is not None:
            self._notify("DELETED", "Service", svc)

    # -- pods -----------------------------------------------------------------------------------
    def set_pod_mode(self, pod_hash: str, mode: str) -> None:
        """How the pods of one revision (by hash) behave from now on: ready, unready or crash."""
        if mode not in POD_MODES:
            raise ValueError(f"pod state must be one of {', '.join(POD_MODES)}, not {mode!r}")
        self.pod_modes[pod_hash] = mode
        for name, pod in self.pods.items():
            if pod["metadata"]["labels"].get(names.POD_TEMPLATE_HASH_LABEL) != pod_hash:
                continue
            sim = self._pod_sim[name]
            if mode == "ready":
                if sim["ready_since"] is None and sim["ready_at"] is None:
                    sim["ready_at"] = self.now + timedelta(seconds=self.ready_after)
            else:
                sim["ready_at"] = None
                sim["ready_since"] = None
                if mode == "crash":
                    cs = pod["status"]["containerStatuses"][0]
                    cs["restartCount"] = int(cs["restartCount"]) + 1
                    self._notify("MODIFIED", "Pod", pod)
        self._sync_pods()

    def set_revision_pod_mode(self, revision: int, mode: str) -> None:
        """Like set_pod_mode, by revision number; a revision that does not exist yet gets the
        mode when its ReplicaSet appears."""
        try:
            pod_hash = self.hash_of_revision(revision)
        except SimulationError:
            if mode not in POD_MODES:
                raise ValueError(f"pod state must be one of {', '.join(POD_MODES)}, not {mode!r}") from None
            self.pending_modes[revision] = mode
            return
        self.set_pod_mode(pod_hash, mode)

    def _rs_of(self, pod: Obj) -> str:
        return str(pod["metadata"]["ownerReferences"][0]["name"])

    def _new_pod(self, rs: Obj) -> None:
        rs_name = rs["metadata"]["name"]
        name = f"{rs_name}-{self._next():05d}"
        tmpl = (rs.get("spec") or {}).get("template") or {}
        labels = dict((tmpl.get("metadata") or {}).get("labels") or {})
        mode = self.pod_modes.get(labels.get(names.POD_TEMPLATE_HASH_LABEL, ""), "ready")
        self.pods[name] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": rs["metadata"].get("namespace"),
                "uid": self._uid(),
                "labels": labels,
                "annotations": dict((tmpl.get("metadata") or {}).get("annotations") or {}),
                "creationTimestamp": rfc3339(self.now),
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": rs_name,
                        "uid": rs["metadata"]["uid"],
                    }
                ],
            },
            "status": {
                "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [{"name": "main", "restartCount": 1 if mode == "crash" else 0}],
            },
        }
        ready_at = self.now + timedelta(seconds=self.ready_after) if mode == "ready" else None
        self._pod_sim[name] = {"ready_at": ready_at, "ready_since": None, "created": self.now}
        self._notify("ADDED", "Pod", self.pods[name])

    def _delete_pod(self, name: str) -> None:
        pod = self.pods.pop(name, None)
        self._pod_sim.pop(name, None)
        if pod is not None:
            self._notify("DELETED", "Pod", pod)

    def _sync_pods(self) -> None:
        """The ReplicaSet controller and the kubelet, at the current time."""
        for name, sim in self._pod_sim.items():
            ready_at = sim["ready_at"]
            if sim["ready_since"] is None and ready_at is not None and ready_at <= self.now:
                sim["ready_since"] = ready_at
            ready = "True" if sim["ready_since"] is not None else "False"
            cond = self.pods[name]["status"]["conditions"][0]
            if cond["status"] != ready:
                cond["status"] = ready
                self._notify("MODIFIED", "Pod", self.pods[name])
        for rs in self.replicasets.values():
            rs_name = rs["metadata"]["name"]
            if self.pending_modes:
                rev = int((rs["metadata"].get("annotations") or {}).get(names.REVISION_ANNOTATION, "0"))
                if rev in self.pending_modes:
                    h = (rs["metadata"].get("labels") or {}).get(names.POD_TEMPLATE_HASH_LABEL, "")
                    self.pod_modes[h] = self.pending_modes.pop(rev)
            mine = [n for n, p in self.pods.items() if self._rs_of(p) == rs_name]
            want = int(rs["spec"].get("replicas") or 0)
            while len(mine) < want:
                self._new_pod(rs)
                mine = [n for n, p in self.pods.items() if self._rs_of(p) == rs_name]
            if len(mine) > want:
                # Unready pods go first, then the newest (kube-controller-manager's preference).
                order = sorted(
                    mine,
                    key=lambda n: (self._pod_sim[n]["ready_since"] is not None, -self._pod_num(n)),
                )
                for n in order[: len(mine) - want]:
                    self._delete_pod(n)
                mine = [n for n, p in self.pods.items() if self._rs_of(p) == rs_name]
            min_ready = timedelta(seconds=int(rs["spec"].get("minReadySeconds") or 0))
            ready_n = sum(1 for n in mine if self._pod_sim[n]["ready_since"] is not None)
            avail_n = sum(
                1
                for n in mine
                if (since := self._pod_sim[n]["ready_since"]) is not None and since + min_ready <= self.now
            )
            status = {
                "replicas": len(mine),
                "readyReplicas": ready_n,
                "availableReplicas": avail_n,
                "observedGeneration": rs["metadata"].get("generation", 1),
            }
            if rs.get("status") != status:
                rs["status"] = status
                self._notify("MODIFIED", "ReplicaSet", rs)

    @staticmethod
    def _pod_num(name: str) -> int:
        try:
            return int(name.rsplit("-", 1)[1])
        except (IndexError, ValueError):
            return 0

    def _next_pod_event(self) -> datetime | None:
        times: list[datetime] = []
        for name, sim in self._pod_sim.items():
            ready_at = sim["ready_at"]
            if sim["ready_since"] is None and ready_at is not None and ready_at > self.now:
                times.append(ready_at)
            since = sim["ready_since"]
            if since is not None:
                rs = self.replicasets.get(self._rs_of(self.pods[name]))
                min_ready = int((rs or {}).get("spec", {}).get("minReadySeconds") or 0)
                t = since + timedelta(seconds=min_ready)
                if t > self.now:
                    times.append(t)
        return min(times) if times else None

    # -- the Cluster protocol (model/cluster.py) ------------------------------------------------
    def _table(self, kind: str) -> dict[str, Obj]:
        if kind == "Rollout":
            return {self.rollout["metadata"]["name"]: self.rollout} if self.rollout is not None else {}
        if kind == "Event":
            return {e["metadata"]["name"]: e for e in self.events}
        tables = {
            "ReplicaSet": self.replicasets,
            "Service": self.services,
            "Deployment": self.deployments,
            "Pod": self.pods,
            "AnalysisTemplate": self.templates,
            "ClusterAnalysisTemplate": {},
            "AnalysisRun": self.analysis_runs,
        }
        if kind not in tables:
            raise Invalid(f"the simulated cluster holds no {kind}")
        return tables[kind]

    def _stored(self, kind: str, namespace: str, name: str) -> Obj:
        obj = self._table(kind).get(name)
        if obj is None or _ns(obj) != namespace:
            raise NotFound(f"{kind} {namespace}/{name} not found")
        return obj

    def _written(self, type_: str, kind: str, obj: Obj) -> None:
        """Count a write and tell the watches."""
        self._writes += 1
        self._notify(type_, kind, obj)

    def _notify(self, type_: str, kind: str, obj: Obj) -> None:
        for kinds, namespace, queue in self._watchers:
            if kind in kinds and (namespace is None or _ns(obj) == namespace):
                queue.put_nowait(WatchEvent(type_, kind, copy.deepcopy(obj)))

    async def get(self, kind: str, namespace: str, name: str) -> Obj:
        """The object; raises NotFound."""
        return copy.deepcopy(self._stored(kind, namespace, name))

    async def list(
        self, kind: str, namespace: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[Obj]:
        """Objects of a kind by name (Events oldest first), in a namespace, with all the labels."""
        objs = self._table(kind)
        keys = list(objs) if kind == "Event" else sorted(objs)
        return [
            copy.deepcopy(objs[k])
            for k in keys
            if (namespace is None or _ns(objs[k]) == namespace) and labels_match(objs[k], labels)
        ]

    async def create(self, kind: str, obj: Obj) -> Obj:
        """Create a ReplicaSet (the store adds uid, creationTimestamp, generation 1 and an empty
        status) or an Event; Conflict when the name is taken."""
        new = copy.deepcopy(obj)
        meta = new.setdefault("metadata", {})
        meta.setdefault("namespace", "default")
        if kind == "Event":
            self.events.append(new)
        elif kind == "ReplicaSet":
            if meta["name"] in self.replicasets:
                raise Conflict(f"ReplicaSet {_ns(new)}/{meta['name']} already exists")
            meta.update(uid=self._uid(), generation=1, creationTimestamp=rfc3339(self.now))
            meta["resourceVersion"] = str(self._next())
            new["status"] = {"replicas": 0}
            self.replicasets[meta["name"]] = new
        elif kind == "AnalysisRun":
            if meta["name"] in self.analysis_runs:
                raise Conflict(f"AnalysisRun {_ns(new)}/{meta['name']} already exists")
            meta.update(uid=self._uid(), generation=1, creationTimestamp=rfc3339(self.now))
            self.analysis_runs[meta["name"]] = new
        else:
            raise Invalid(f"the controller creates ReplicaSets and Events, not {kind}")
        self._written("ADDED", kind, new)
        return copy.deepcopy(new)

    async def patch(
        self,
        kind: str,
        namespace: str,
        name: str,
        patch: Obj,
        *,
        subresource: str | None = None,
        resource_version: str | None = None,
    ) -> Obj:
        """A JSON merge patch (``subresource="status"``: status only), with an optional
        resourceVersion precondition (Conflict when the object moved on)."""
        stored = self._stored(kind, namespace, name)
        have = stored["metadata"].get("resourceVersion")
        if resource_version is not None and str(resource_version) != str(have):
            raise Conflict(f"{kind} {namespace}/{name}: resourceVersion {resource_version} is stale")
        if kind == "Rollout":
            self.patch_rollout(patch, subresource)
            return copy.deepcopy(self._stored(kind, namespace, name))
        if subresource == "status":
            _merge_in_place(stored.setdefault("status", {}), copy.deepcopy(patch.get("status") or {}))
        else:
            _merge_in_place(stored, copy.deepcopy({k: v for k, v in patch.items() if k != "status"}))
        if kind == "ReplicaSet":  # versioned, as the deadline write's precondition needs
            stored["metadata"]["resourceVersion"] = str(self._next())
        self._written("MODIFIED", kind, stored)
        return copy.deepcopy(stored)

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        """Delete a ReplicaSet (its pods go with it) or a Pod; NotFound when missing."""
        obj = self._stored(kind, namespace, name)
        if kind == "ReplicaSet":
            del self.replicasets[name]
            for pod_name in [n for n, p in self.pods.items() if owned_by_uid(p, obj["metadata"]["uid"])]:
                self._delete_pod(pod_name)
        elif kind == "Pod":
            self._delete_pod(name)
        elif kind == "AnalysisRun":
            del self.analysis_runs[name]
        else:
            raise Invalid(f"the controller deletes ReplicaSets and Pods, not {kind}")
        self._written("DELETED", kind, obj)

    def watch(self, kinds: Sequence[str], namespace: str | None = None) -> AsyncIterator[WatchEvent]:
        """Every change to objects of these kinds from this call on: writes through this protocol,
        ``apply_objects`` and user patches, and the simulated pods and ReplicaSet statuses."""
        queue: asyncio.Queue[WatchEvent] = asyncio.Queue()
        self._watchers.append((frozenset(kinds), namespace, queue))

        async def events() -> AsyncIterator[WatchEvent]:
            while True:
                yield await queue.get()

        return events()

    # -- the controller -------------------------------------------------------------------------
    def observed(self) -> a.Observed:
        """What the controller gathers for the Rollout (``controller.observe.gather``)."""
        assert self.rollout is not None
        return _complete(gather(self, copy.deepcopy(self.rollout), first_seen=not self._seen))

    def reconcile_once(self) -> tuple[a.Plan, bool]:
        """Gather, plan, apply, as the controller's reconcile does. Returns the plan and whether
        anything was written."""
        if self.rollout is None:
            raise SimulationError("no Rollout applied yet")
        self._sync_pods()
        read = copy.deepcopy(self.rollout)
        observed = self.observed()
        before = copy.deepcopy(_whole(observed))
        plan = engine_plan(Rollout.from_wire(read), observed, self.now)
        if _whole(observed) != before:
            # The operator hands the engine the caches' own ReplicaSets, Pods and Services (read
            # only, no copies): a plan that changed what it observed would change the caches.
            raise SimulationError(f"the plan changed what it observed: {_diff(before[0], observed)}")
        self._seen = True
        if self.plan_hook is not None:
            self.plan_hook(read, observed, plan, self.now)
        self.plans.append(plan)
        wrote = self.apply(plan, read)
        self._sync_pods()
        wakes = [plan.requeue_after] if plan.requeue_after is not None else []
        wrote = self._reconcile_runs(wakes) or wrote
        self._requeue_at = self.now + timedelta(seconds=min(wakes)) if wakes else None
        return plan, wrote

    def _reconcile_runs(self, wakes: list[float]) -> bool:
        """One reconcile of every AnalysisRun by the real AnalysisRunController; adds when each
        wants to be looked at again to ``wakes``. Returns whether anything was written."""
        before = self._writes
        for name in sorted(self.analysis_runs):
            again = _complete(self.analysis.reconcile(f"{_ns(self.analysis_runs[name])}/{name}"))
            if again is not None:
                wakes.append(again)
        return self._writes != before

    def apply(self, plan: a.Plan, read: Obj) -> bool:
        """Apply a plan with ``controller.apply.apply_plan``. ``read`` is the Rollout as it was
        when the plan was made. Returns whether anything was written (or must be planned again)."""
        before = self._writes
        try:
            if not _complete(apply_plan(self, read, plan, self.clock)):
                return True  # lost a race with a write since the read: the controller plans again
        except ReplicaSetNameTaken:
            return True  # the controller plans again (after a backoff the simulation skips)
        return self._writes != before

    # -- time -----------------------------------------------------------------------------------
    def run(self) -> None:
        """Reconcile at the current time until a plan writes nothing (nothing to do without a Rollout)."""
        if self.rollout is None:
            return
        for _ in range(self.max_reconciles):
            _, wrote = self.reconcile_once()
            if not wrote:
                return
        last = self.plans[-1]
        raise SimulationError(
            f"no convergence after {self.max_reconciles} reconciles at {rfc3339(self.now)}; "
            f"last plan: {last.actions!r}"
        )

    def _run_until(self, target: datetime) -> None:
        """Move the clock to target, stopping at every pod event and requeue on the way."""
        self.run()
        while True:
            stops = [t for t in (self._next_pod_event(), self._requeue_at) if t is not None and t > self.now]
            nxt = min(stops) if stops else None
            if nxt is None or nxt > target:
                break
            self.now = nxt
            self.run()
        if target > self.now:
            self.now = target
            self.run()

    def settle(self, limit: int = 1000) -> None:
        """Converge: reconcile, then let pending pods become ready/available, until nothing is
        pending. Requeue deadlines are honoured on the way but never waited for on their own."""
        self.run()
        for _ in range(limit):
            nxt = self._next_pod_event()
            if nxt is None:
                return
            self._run_until(nxt)
        raise SimulationError("pods never settled")

    def advance(self, seconds: float) -> None:
        """Move the clock forward (every deadline on the way fires in order), then settle."""
        self._run_until(self.now + timedelta(seconds=seconds))
        self.settle()

    # -- views ----------------------------------------------------------------------------------
    def objects(self) -> tuple[Obj, list[Obj], list[Obj], list[Obj]]:
        """Copies of (the Rollout, its ReplicaSets, the Services, the Events), as a driver returns them."""
        assert self.rollout is not None
        return (
            copy.deepcopy(self.rollout),
            [copy.deepcopy(rs) for rs in owned_replicasets(self.rollout, self.replicasets.values())],
            [copy.deepcopy(s) for s in sorted(self.services.values(), key=lambda s: s["metadata"]["name"])],
            # The Rollout's Events only, as the runtime drivers return them (not its runs').
            [copy.deepcopy(e) for e in self.events if _about_rollout(e)],
        )

    def hash_of_revision(self, revision: int) -> str:
        """The pod-template hash of the RS that currently has this revision."""
        for rs in self.replicasets.values():
            ann = rs["metadata"].get("annotations") or {}
            if ann.get(names.REVISION_ANNOTATION) == str(revision):
                return str(rs["metadata"]["labels"][names.POD_TEMPLATE_HASH_LABEL])
        raise SimulationError(f"no ReplicaSet has revision {revision}")


class SimDriver:
    """The scenario driver for the engine: a SimCluster behind the ``scenarios.Driver`` protocol."""

    def __init__(self, *, ready_after: float = 1.0, plan_hook: PlanHook | None = None) -> None:
        self.sim = SimCluster(ready_after=ready_after, plan_hook=plan_hook)

    @property
    def metric_endpoint(self) -> Any:
        return self.sim.metric_source

    @metric_endpoint.setter
    def metric_endpoint(self, endpoint: Any) -> None:
        self.sim.metric_source = endpoint

    async def start(self, objects: Iterable[Obj]) -> None:
        """Nothing to start: the simulated cluster is empty until the first ``apply``."""

    async def now(self) -> datetime:
        return self.sim.now

    async def do(self, step: Any) -> None:
        """Carry out one ``scenarios.Step`` (see the protocol in ``scenarios``)."""
        sim = self.sim
        if step.do == "apply":
            for name in step.deleted:
                sim.delete_service(name)
            sim.apply_objects(step.objects)
        elif step.patches:
            for p in step.patches:
                sim.patch_rollout(p.body, p.subresource)
        elif step.do in ("advance", "wait"):
            sim.advance(step.seconds)
        elif step.do == "pods":
            sim.set_revision_pod_mode(int(step.revision), str(step.state))
        else:
            raise ValueError(f"step {step.index}: nothing to do for {step.do!r}")

    async def objects(self) -> tuple[Obj, list[Obj], list[Obj], list[Obj]]:
        if self.sim.rollout is None:
            raise LookupError("no Rollout applied yet")
        return self.sim.objects()

    async def settle(self) -> None:
        self.sim.settle()

    async def close(self) -> None:
        """Nothing to stop."""
