"""A simulated cluster for the engine: objects as dicts, pods that become ready on a virtual clock.

It applies a Plan exactly as the real controller does (controller/apply.py), so a scenario proven
here means the same thing on the runtimes. The apply semantics, one write per action:

- ``CreateReplicaSet``: create the body as given; the store adds uid, creationTimestamp,
  generation 1 and an empty status. An existing name is left alone (the next plan adopts it).
- ``ScaleReplicaSet``: merge patch ``spec.replicas`` and the ``desired-replicas`` annotation.
- ``AnnotateReplicaSet``: merge patch ``metadata.annotations``, ``metadata.labels`` and
  ``spec.template.metadata.labels`` (a None value removes the key).
- ``SetScaleDownDeadline``: merge patch the ``scale-down-deadline`` annotation (None removes it).
- ``SwitchService``: merge patch ``spec.selector[rollouts-pod-template-hash]`` and the
  ``managed-by-rollouts`` annotation.
- ``PatchPodMetadata``: merge patch the pod's labels/annotations (a missing pod is ignored).
- ``UpdateRollout``: merge patch ``spec.replicas`` (when set) and ``metadata.annotations``; a spec
  change bumps ``metadata.generation``.
- ``DeleteReplicaSet`` (its pods go with it) and ``DeletePod``: delete; a missing object is ignored.
- ``EmitEvent``: create a v1 Event whose involvedObject is the Rollout.
- Then the status: the merge patch from the status the plan was computed from to ``plan.status``
  (only changed fields), applied to ``status`` alone (the status subresource: no generation bump).

Pods are simulated by a tiny ReplicaSet controller: each RS gets as many pods as spec.replicas
(scale-down removes unready pods first, then the newest). A pod becomes ready ``ready_after``
seconds after it starts, unless its revision's pods are set ``unready`` or ``crash`` (a crash also
counts a restart); it is available once it has been ready for the RS's minReadySeconds. RS status
(replicas, readyReplicas, availableReplicas) is computed from the pods, as kube-controller-manager
does. Time only moves when asked: ``advance(seconds)``, or ``settle()``, which jumps to the next pod
event (a pod becoming ready or available) until there is none.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from pyrollouts.engine import plan as engine_plan
from pyrollouts.engine import types as a
from pyrollouts.model import names
from pyrollouts.model.rollout import Rollout
from pyrollouts.model.timefmt import rfc3339
from pyrollouts.model.useractions import apply_merge_patch, merge_patch_to

Obj = dict[str, Any]
PlanHook = Callable[[Obj, a.Observed, a.Plan, datetime], None]

EPOCH = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
POD_MODES = ("ready", "unready", "crash")


class SimulationError(RuntimeError):
    """The simulated world did not converge (an engine that keeps changing its mind)."""


def _merge_in_place(target: Obj, patch: Obj) -> None:
    """RFC 7386 merge patch applied to target itself (the simulation's hot path: no copies)."""
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            _merge_in_place(target[k], v)
        else:
            target[k] = v


class SimCluster:
    """One namespace's Rollout, Services, ReplicaSets, Pods and Events, and a virtual clock."""

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
            if kind not in ("Rollout", "Service", "Deployment"):
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
            elif kind == "Deployment":
                name = obj["metadata"]["name"]
                if name not in self.deployments or last is None:
                    obj["metadata"].setdefault("uid", self._uid())
                    self.deployments[name] = obj
                else:
                    self.deployments[name] = apply_merge_patch(
                        self.deployments[name], merge_patch_to(last, obj)
                    )
            else:
                name = obj["metadata"]["name"]
                if name not in self.services or last is None:
                    obj["metadata"].setdefault("uid", self._uid())
                    self.services[name] = obj
                else:
                    self.services[name] = apply_merge_patch(self.services[name], merge_patch_to(last, obj))

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
            return
        body = {k: v for k, v in patch.items() if k != "status"}
        new = apply_merge_patch(self.rollout, body)
        self.rollout["metadata"] = new["metadata"]
        self._set_spec(new.get("spec") or {})

    def delete_service(self, name: str) -> None:
        self.services.pop(name, None)
        self._last_applied.pop(f"Service/{name}", None)

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

    def _delete_pod(self, name: str) -> None:
        self.pods.pop(name, None)
        self._pod_sim.pop(name, None)

    def _sync_pods(self) -> None:
        """The ReplicaSet controller and the kubelet, at the current time."""
        for name, sim in self._pod_sim.items():
            ready_at = sim["ready_at"]
            if sim["ready_since"] is None and ready_at is not None and ready_at <= self.now:
                sim["ready_since"] = ready_at
            ready = sim["ready_since"] is not None
            self.pods[name]["status"]["conditions"][0]["status"] = "True" if ready else "False"
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
            rs["status"] = {
                "replicas": len(mine),
                "readyReplicas": ready_n,
                "availableReplicas": avail_n,
                "observedGeneration": rs["metadata"].get("generation", 1),
            }

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

    # -- the controller -------------------------------------------------------------------------
    def observed(self) -> a.Observed:
        """What the controller would gather for the Rollout (its RSs, its Services, its Pods)."""
        assert self.rollout is not None
        uid = self.rollout["metadata"]["uid"]
        prefix = f"{self.rollout['metadata']['name']}-"
        rss = []
        foreign = []  # named like the Rollout's, not owned: as controller/observe.gather sees them
        for rs in sorted(self.replicasets.values(), key=lambda r: r["metadata"]["name"]):
            owned = any(ref.get("uid") == uid for ref in rs["metadata"].get("ownerReferences") or [])
            if owned:
                rss.append(self._rs_state(rs))
            elif rs["metadata"]["name"].startswith(prefix):
                foreign.append(self._rs_state(rs))
        bg = ((self.rollout.get("spec") or {}).get("strategy") or {}).get("blueGreen") or {}
        services = {}
        for key in ("activeService", "previewService"):
            svc = self.services.get(bg.get(key) or "")
            if svc is not None:
                services[svc["metadata"]["name"]] = a.ServiceState(
                    name=svc["metadata"]["name"],
                    selector=dict((svc.get("spec") or {}).get("selector") or {}),
                    annotations=dict(svc["metadata"].get("annotations") or {}),
                )
        rs_names = {rs.name for rs in rss}
        pods = tuple(
            a.PodState(
                name=name,
                replicaset=self._rs_of(p),
                labels=dict(p["metadata"]["labels"]),
                annotations=dict(p["metadata"].get("annotations") or {}),
                ready=p["status"]["conditions"][0]["status"] == "True",
                restarts=int(p["status"]["containerStatuses"][0]["restartCount"]),
                creation_timestamp=p["metadata"]["creationTimestamp"],
            )
            for name, p in sorted(self.pods.items())
            if self._rs_of(p) in rs_names
        )
        ref = (self.rollout.get("spec") or {}).get("workloadRef") or {}
        dep = self.deployments.get(str(ref.get("name"))) if ref.get("kind") == "Deployment" else None
        deployments = {str(ref["name"]): dep} if dep is not None else {}
        return a.Observed(
            replicasets=tuple(rss),
            services=services,
            pods=pods,
            first_seen=not self._seen,
            deployments=deployments,
            foreign_replicasets=tuple(foreign),
        )

    @staticmethod
    def _rs_state(rs: dict[str, Any]) -> a.ReplicaSetState:
        meta = rs["metadata"]
        st = rs.get("status") or {}
        return a.ReplicaSetState(
            name=meta["name"],
            uid=meta.get("uid", ""),
            pod_template_hash=(meta.get("labels") or {}).get(names.POD_TEMPLATE_HASH_LABEL, ""),
            template=rs["spec"].get("template") or {},  # the engine never mutates its input
            replicas=int(rs["spec"].get("replicas") or 0),
            status_replicas=int(st.get("replicas") or 0),
            ready_replicas=int(st.get("readyReplicas") or 0),
            available_replicas=int(st.get("availableReplicas") or 0),
            annotations=dict(meta.get("annotations") or {}),
            labels=dict(meta.get("labels") or {}),
            creation_timestamp=meta.get("creationTimestamp", ""),
            obj=rs,
        )

    def reconcile_once(self) -> tuple[a.Plan, bool]:
        """Gather, plan, apply. Returns the plan and whether anything was written."""
        if self.rollout is None:
            raise SimulationError("no Rollout applied yet")
        self._sync_pods()
        observed = self.observed()
        plan = engine_plan(Rollout.from_wire(self.rollout), observed, self.now)
        self._seen = True
        if self.plan_hook is not None:
            self.plan_hook(self.rollout, observed, plan, self.now)
        self.plans.append(plan)
        wrote = self.apply(plan, self.rollout)
        self._sync_pods()
        self._requeue_at = (
            self.now + timedelta(seconds=plan.requeue_after) if plan.requeue_after is not None else None
        )
        return plan, wrote

    def apply(self, plan: a.Plan, read: Obj) -> bool:
        """Apply a plan's actions in order, then its status as a merge patch (module docstring).
        ``read`` is the Rollout (at least its status) as it was when the plan was made."""
        assert self.rollout is not None
        # Computed first: the actions never touch the status, and ``read`` may be the live object.
        patch = merge_patch_to(read.get("status") or {}, plan.status.wire())
        wrote = bool(plan.actions)
        for action in plan.actions:
            self._apply_action(action)
        if patch:
            self.patch_rollout({"status": patch}, subresource="status")
            wrote = True
        return wrote

    def _rs(self, name: str) -> Obj | None:
        return self.replicasets.get(name)

    def _apply_action(self, action: a.Action) -> None:
        assert self.rollout is not None
        match action:
            case a.CreateReplicaSet(name=name, body=body):
                if name in self.replicasets:
                    return
                new_rs: Obj = copy.deepcopy(dict(body))
                new_rs["metadata"].update(uid=self._uid(), generation=1, creationTimestamp=rfc3339(self.now))
                new_rs["status"] = {"replicas": 0}
                self.replicasets[name] = new_rs
            case a.ScaleReplicaSet(name=name, replicas=n, desired_replicas=d):
                if (rs := self._rs(name)) is not None:
                    rs["spec"]["replicas"] = n
                    rs["metadata"].setdefault("annotations", {})[names.DESIRED_REPLICAS_ANNOTATION] = str(d)
            case a.AnnotateReplicaSet(name=name, annotations=ann, labels=labels, template_labels=tl):
                if (rs := self._rs(name)) is not None:
                    meta = rs["metadata"]
                    meta["annotations"] = apply_merge_patch(meta.get("annotations") or {}, dict(ann))
                    meta["labels"] = apply_merge_patch(meta.get("labels") or {}, dict(labels))
                    tmeta = rs["spec"].setdefault("template", {}).setdefault("metadata", {})
                    tmeta["labels"] = apply_merge_patch(tmeta.get("labels") or {}, dict(tl))
            case a.UpdateReplicaSetAffinity(name=name, affinity=affinity):
                if (rs := self._rs(name)) is not None:
                    tspec = rs["spec"].setdefault("template", {}).setdefault("spec", {})
                    _merge_in_place(tspec, {"affinity": copy.deepcopy(affinity)})
            case a.SetScaleDownDeadline(name=name, deadline=deadline):
                if (rs := self._rs(name)) is not None:
                    anns = rs["metadata"].setdefault("annotations", {})
                    if deadline is None:
                        anns.pop(names.SCALE_DOWN_DEADLINE_ANNOTATION, None)
                    else:
                        anns[names.SCALE_DOWN_DEADLINE_ANNOTATION] = deadline
            case a.SwitchService(service=svc_name, pod_template_hash=h, managed_by=owner):
                svc = self.services.get(svc_name)
                if svc is not None:
                    svc.setdefault("spec", {}).setdefault("selector", {})[names.POD_TEMPLATE_HASH_LABEL] = h
                    svc["metadata"].setdefault("annotations", {})[names.MANAGED_BY_ANNOTATION] = owner
            case a.PatchPodMetadata(pod=pod_name, labels=labels, annotations=ann):
                pod = self.pods.get(pod_name)
                if pod is not None:
                    pod["metadata"]["labels"] = apply_merge_patch(pod["metadata"]["labels"], dict(labels))
                    pod["metadata"]["annotations"] = apply_merge_patch(
                        pod["metadata"].get("annotations") or {}, dict(ann)
                    )
            case a.UpdateRollout(replicas=replicas, annotations=ann):
                update: Obj = {}
                if ann:
                    update["metadata"] = {"annotations": dict(ann)}
                if replicas is not None:
                    update["spec"] = {"replicas": replicas}
                if update:
                    self.patch_rollout(update)
            case a.DeleteReplicaSet(name=name):
                self.replicasets.pop(name, None)
                for pod_name in [n for n, p in self.pods.items() if self._rs_of(p) == name]:
                    self._delete_pod(pod_name)
            case a.DeletePod(pod=pod_name):
                self._delete_pod(pod_name)
            case a.EmitEvent(type=type_, reason=reason, message=message):
                meta = self.rollout["metadata"]
                self.events.append(
                    {
                        "apiVersion": "v1",
                        "kind": "Event",
                        "metadata": {
                            "name": f"{meta['name']}.{self._next():08x}",
                            "namespace": meta["namespace"],
                        },
                        "involvedObject": {
                            "apiVersion": names.API_VERSION,
                            "kind": "Rollout",
                            "name": meta["name"],
                            "namespace": meta["namespace"],
                            "uid": meta["uid"],
                        },
                        "type": type_,
                        "reason": reason,
                        "message": message,
                        "count": 1,
                        "firstTimestamp": rfc3339(self.now),
                        "lastTimestamp": rfc3339(self.now),
                        "source": {"component": "rollouts-controller"},
                    }
                )
            case _:
                raise TypeError(f"unknown action {action!r}")

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
        """Copies of (rollout, replicasets, services, events), as a driver returns them."""
        assert self.rollout is not None
        return (
            copy.deepcopy(self.rollout),
            [
                copy.deepcopy(rs)
                for rs in sorted(self.replicasets.values(), key=lambda r: r["metadata"]["name"])
            ],
            [copy.deepcopy(s) for s in sorted(self.services.values(), key=lambda s: s["metadata"]["name"])],
            copy.deepcopy(self.events),
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
