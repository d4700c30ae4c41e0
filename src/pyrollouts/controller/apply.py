"""Apply an engine Plan to a Cluster: one write per action, then the status.

The status is written through the ``status`` subresource as a merge patch holding only the fields
this plan changed, with the resourceVersion we planned from as a precondition. A user's write that
landed in between (promote, abort, retry) is therefore never overwritten: either our patch does not
touch that field, or the precondition fails and the rollout is planned again from fresh state.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..engine import types as a
from ..model import names
from ..model.cluster import Cluster, Conflict, Invalid, NotFound, Obj
from ..model.events import event
from ..model.owners import owned_by_uid
from ..model.useractions import merge_patch_to
from . import routers
from .clock import Clock, rfc3339
from .faults import kill_point
from .routers.errors import TrafficRouterError


def _event(rollout: Obj, ev: a.EmitEvent, clock: Clock) -> Obj:
    about = {**rollout, "apiVersion": names.API_VERSION, "kind": "Rollout"}
    return event(
        about, ev.type, ev.reason, ev.message,
        component="rollouts-controller", now=clock.now(), name_suffix=uuid.uuid4().hex[:16],
    )  # fmt: skip


@dataclass(frozen=True)
class _Target:
    """Where one action is written: the cluster, the Rollout as last written, and the clock."""

    cluster: Cluster
    rollout: Obj
    clock: Clock
    # The ReplicaSets this plan has written so far: their resourceVersion is no longer the one
    # the plan saw, so a later write of the same plan to them carries no precondition.
    written: set[str] = field(default_factory=set)

    @property
    def ns(self) -> str:
        return str(self.rollout.get("metadata", {}).get("namespace", "default"))


async def apply_action(
    cluster: Cluster, rollout: Obj, action: a.Action, clock: Clock, written: set[str] | None = None
) -> Obj | None:
    """Carry out one action. Returns the Rollout when the action wrote it (its new resourceVersion).
    ``written``: the ReplicaSets the plan wrote before this action (updated here)."""
    write = _WRITERS.get(type(action))
    if write is None:
        raise TypeError(f"unknown action {action!r}")
    target = _Target(cluster, rollout, clock, written if written is not None else set())
    result = await write(target, action)
    if isinstance(action, _RS_WRITES):
        target.written.add(action.name)
    return result


async def _create_replicaset(t: _Target, action: a.CreateReplicaSet) -> None:
    try:
        await t.cluster.create("ReplicaSet", dict(action.body))
    except Conflict:
        # Ours, from an earlier interrupted reconcile or not yet in a cache: the next plan
        # adopts it. Held by anything else (or not visible yet), the rest of this plan would
        # write to an RS that is not ours: stop, and let the next plan see who holds the name
        # (the engine bumps status.collisionCount for an RS that is not ours).
        owned = await _owned_by_rollout(t.cluster, t.ns, action.name, t.rollout)
        if owned is None:
            # Not in a lagging cache yet (on Kubernetes, usually our own create from the
            # last reconcile): who holds the name is not known, so nothing more is applied.
            raise ReplicaSetNameTaken(
                f"ReplicaSet {t.ns}/{action.name} exists but is not visible yet", held=False
            ) from None
        if not owned:
            raise ReplicaSetNameTaken(f"ReplicaSet {t.ns}/{action.name} is not this Rollout's") from None
    except Invalid as exc:
        # The runtime refused the pod template (on Kubernetes, e.g. the seed's port "8080"):
        # retrying cannot help until the spec changes, so surface it (see SpecRejected).
        raise SpecRejected(f"the ReplicaSet {action.name} was refused: {exc}") from exc
    kill_point("after-rs-create")


async def _patch_then(
    t: _Target,
    kind: str,
    name: str,
    annotation: tuple[str, str | None],
    spec: Obj | None,
    point: str,
    resource_version: str | None = None,
) -> None:
    """One merge patch of an annotation and (when given) spec fields, then the kill point after it.
    With ``resource_version``: Conflict unless the object still has that version."""
    patch: dict[str, Any] = {"metadata": {"annotations": dict([annotation])}}
    if spec is not None:
        patch["spec"] = spec
    await t.cluster.patch(kind, t.ns, name, patch, resource_version=resource_version)
    kill_point(point)


async def _scale_replicaset(t: _Target, action: a.ScaleReplicaSet) -> None:
    desired = (names.DESIRED_REPLICAS_ANNOTATION, str(action.desired_replicas))
    await _patch_then(t, "ReplicaSet", action.name, desired, {"replicas": action.replicas}, "after-scale")


async def _annotate_replicaset(t: _Target, action: a.AnnotateReplicaSet) -> None:
    patch: dict[str, Any] = {"metadata": {}}
    if action.annotations:
        patch["metadata"]["annotations"] = dict(action.annotations)
    if action.labels:
        patch["metadata"]["labels"] = dict(action.labels)
    if action.template_labels:
        patch["spec"] = {"template": {"metadata": {"labels": dict(action.template_labels)}}}
    await t.cluster.patch("ReplicaSet", t.ns, action.name, patch)


async def _update_replicaset_affinity(t: _Target, action: a.UpdateReplicaSetAffinity) -> None:
    # blueGreen.antiAffinity: the injected term follows the stable RS (a merge patch).
    affinity = None if action.affinity is None else dict(action.affinity)
    await t.cluster.patch(
        "ReplicaSet", t.ns, action.name, {"spec": {"template": {"spec": {"affinity": affinity}}}}
    )


async def _set_scale_down_deadline(t: _Target, action: a.SetScaleDownDeadline) -> None:
    # A deadline goes only on the RS as the plan saw it (its resourceVersion). After an API
    # outage a cache can lag behind a deadline written just before it: a plan from that view
    # would replace the deadline with a later one (tests/k8s/test_apiserver_faults.py).
    rv = action.resource_version if action.name not in t.written else None
    deadline = (names.SCALE_DOWN_DEADLINE_ANNOTATION, action.deadline)
    try:
        await _patch_then(t, "ReplicaSet", action.name, deadline, None, "after-deadline-set", rv)
    except Conflict:
        raise StaleReplicaSet(f"ReplicaSet {t.ns}/{action.name} changed since it was read") from None


async def _switch_service(t: _Target, action: a.SwitchService) -> None:
    managed_by = (names.MANAGED_BY_ANNOTATION, action.managed_by)
    selector = {"selector": {names.POD_TEMPLATE_HASH_LABEL: action.pod_template_hash}}
    await _patch_then(t, "Service", action.service, managed_by, selector, "after-selector-switch")


async def _patch_pod_metadata(t: _Target, action: a.PatchPodMetadata) -> None:
    meta: dict[str, Any] = {}
    if action.labels:
        meta["labels"] = dict(action.labels)
    if action.annotations:
        meta["annotations"] = dict(action.annotations)
    try:
        await t.cluster.patch("Pod", t.ns, action.pod, {"metadata": meta})
    except NotFound:
        pass  # the pod went away meanwhile; nothing to label


async def _update_rollout(t: _Target, action: a.UpdateRollout) -> Obj | None:
    body: dict[str, Any] = {}
    if action.annotations:
        body["metadata"] = {"annotations": dict(action.annotations)}
    if action.replicas is not None:
        body["spec"] = {"replicas": action.replicas}
    if not body:
        return None
    # The default replicas goes with the resourceVersion it was planned from (issue 11): a user's
    # spec.replicas written between our read and this write makes it a Conflict (apply_plan plans
    # again) instead of being overwritten. An annotation alone (the revision) overwrites nothing
    # of the user's and needs no precondition.
    meta = t.rollout.get("metadata", {})
    rv = meta.get("resourceVersion") if action.replicas is not None else None
    return await t.cluster.patch("Rollout", t.ns, meta["name"], body, resource_version=rv)


async def _delete_replicaset(t: _Target, action: a.DeleteReplicaSet) -> None:
    with contextlib.suppress(NotFound):
        await t.cluster.delete("ReplicaSet", t.ns, action.name)


async def _delete_pod(t: _Target, action: a.DeletePod) -> None:
    with contextlib.suppress(NotFound):
        await t.cluster.delete("Pod", t.ns, action.pod)


async def _create_analysis_run(t: _Target, action: a.CreateAnalysisRun) -> None:
    try:
        await t.cluster.create("AnalysisRun", dict(action.body))
    except Conflict:
        # A run of that name the last gather did not see (ours from an interrupted reconcile, or
        # a lagging cache): replan; the engine names the next one around it.
        raise AnalysisRunNameTaken(f"AnalysisRun {t.ns}/{action.name} exists already") from None
    except Invalid as exc:
        raise SpecRejected(f"the AnalysisRun {action.name} was refused: {exc}") from exc


async def _terminate_analysis_run(t: _Target, action: a.TerminateAnalysisRun) -> None:
    with contextlib.suppress(NotFound):
        await t.cluster.patch("AnalysisRun", t.ns, action.name, {"spec": {"terminate": True}})


async def _delete_analysis_run(t: _Target, action: a.DeleteAnalysisRun) -> None:
    with contextlib.suppress(NotFound):
        await t.cluster.delete("AnalysisRun", t.ns, action.name)


async def _emit_event(t: _Target, action: a.EmitEvent) -> None:
    await t.cluster.create("Event", _event(t.rollout, action, t.clock))


#: The actions that write a ReplicaSet (each names it in ``name``).
_RS_WRITES = (
    a.CreateReplicaSet,
    a.ScaleReplicaSet,
    a.AnnotateReplicaSet,
    a.UpdateReplicaSetAffinity,
    a.SetScaleDownDeadline,
)


async def _set_traffic_split(t: _Target, action: a.SetTrafficSplit) -> None:
    """Give the router the split, with the Rollout's name and uid (NGINX names and owns its
    canary Ingress by them). Where a Kubernetes router applied it, the split is also recorded on
    the stable Service (the annotation the local proxy reads), so that the engine sees what was
    given, header and mirror routes included, and plans it again only when it changes. A router
    that cannot apply it (a missing HTTPRoute or Ingress, a router we do not have) is the spec's
    problem, shown as InvalidSpec and retried like one."""
    meta = t.rollout.get("metadata", {})
    split = replace(
        action.split, rollout_name=str(meta.get("name", "")), rollout_uid=str(meta.get("uid", ""))
    )
    try:
        await routers.apply_split(t.cluster, t.ns, split)
    except TrafficRouterError as exc:
        raise SpecRejected(str(exc)) from exc
    if not routers.routes_in_proxy(t.cluster):
        await routers.annotate_stable_service(t.cluster, t.ns, split)


#: One writer per action type: each carries out one write of the plan.
_WRITERS: dict[type[Any], Callable[[_Target, Any], Awaitable[Obj | None]]] = {
    a.CreateReplicaSet: _create_replicaset,
    a.ScaleReplicaSet: _scale_replicaset,
    a.AnnotateReplicaSet: _annotate_replicaset,
    a.UpdateReplicaSetAffinity: _update_replicaset_affinity,
    a.SetScaleDownDeadline: _set_scale_down_deadline,
    a.SwitchService: _switch_service,
    a.PatchPodMetadata: _patch_pod_metadata,
    a.UpdateRollout: _update_rollout,
    a.DeleteReplicaSet: _delete_replicaset,
    a.DeletePod: _delete_pod,
    a.EmitEvent: _emit_event,
    a.CreateAnalysisRun: _create_analysis_run,
    a.TerminateAnalysisRun: _terminate_analysis_run,
    a.DeleteAnalysisRun: _delete_analysis_run,
    a.SetTrafficSplit: _set_traffic_split,
}


async def _owned_by_rollout(cluster: Cluster, ns: str, name: str, rollout: Obj) -> bool | None:
    """Whether the existing RS of that name is the Rollout's; None when it cannot be seen yet."""
    try:
        existing = await cluster.get("ReplicaSet", ns, name)
    except NotFound:
        return None
    return owned_by_uid(existing, str(rollout.get("metadata", {}).get("uid", "")))


class ReplicaSetNameTaken(Exception):
    """The new ReplicaSet's create found its name taken by an RS the last gather did not see.
    ``held``: it is visible and not this Rollout's (the replan steps around it with
    status.collisionCount); False: it is not visible yet (a lagging cache, usually holding our own
    create), so the replan simply waits for the cache. Either way nothing more of the plan is
    applied."""

    def __init__(self, message: str, *, held: bool = True) -> None:
        super().__init__(message)
        self.held = held


class AnalysisRunNameTaken(ReplicaSetNameTaken):
    """The name the engine gave a new AnalysisRun is taken by one the last gather did not see:
    nothing more of the plan is applied, and the replan (after a backoff) names it around it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, held=False)


class StaleReplicaSet(ReplicaSetNameTaken):
    """A deadline write found its ReplicaSet changed since the gather (a cache behind the API
    server): nothing more of the plan is applied, and the replan waits for the cache (the per-key
    backoff) instead of writing from a view that is out of date."""

    def __init__(self, message: str) -> None:
        super().__init__(message, held=False)


class SpecRejected(Exception):
    """The runtime refused an object built from the Rollout's spec (its pod template). apply_plan
    writes an InvalidSpec condition for it and re-raises; the controller retries after 20 s
    instead of backing off into a loop of failed creates."""


def _invalid_spec_status(
    planned: dict[str, Any], stored: dict[str, Any] | None, message: str, now: str
) -> dict[str, Any]:
    status = dict(planned)
    conds = [dict(c) for c in status.get("conditions") or [] if c.get("type") != names.COND_INVALID_SPEC]
    old = next(
        (c for c in (stored or {}).get("conditions") or [] if c.get("type") == names.COND_INVALID_SPEC), None
    )
    if old is not None and old.get("status") == "True" and old.get("message") == message:
        cond = dict(old)  # unchanged: keep its times, so planning again writes nothing
    else:
        cond = {
            "type": names.COND_INVALID_SPEC,
            "status": "True",
            "reason": names.INVALID_SPEC_REASON,
            "message": message,
            "lastUpdateTime": now,
            "lastTransitionTime": now,
        }
    status["conditions"] = [cond, *conds]
    status["phase"] = names.PHASE_DEGRADED
    status["message"] = f"{names.INVALID_SPEC_REASON}: {message}"
    return status


def status_patch(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """The merge patch that turns the observed status into the planned one (only changed fields)."""
    patch = merge_patch_to(old or {}, new)
    return patch if isinstance(patch, dict) else {}


class _PlanWriter:
    """Writes one plan: its actions in order (following the Rollout each write returns), then
    its status with the resourceVersion last seen as the precondition."""

    def __init__(self, cluster: Cluster, rollout: Obj, clock: Clock) -> None:
        self.cluster = cluster
        self.read = rollout  # as the plan was made from it
        self.current = rollout  # as last written
        self.clock = clock
        self.written: set[str] = set()  # the ReplicaSets written so far

    async def actions(self, actions: Sequence[a.Action]) -> bool:
        """Apply every action; False when the Rollout changed since it was read (plan again)."""
        for action in actions:
            try:
                updated = await apply_action(self.cluster, self.current, action, self.clock, self.written)
            except Conflict:
                if not (isinstance(action, a.UpdateRollout) and action.replicas is not None):
                    raise
                return False
            if updated is not None:
                self.current = updated
        return True

    async def status(self, new_status: dict[str, Any]) -> bool:
        """Write the fields of the status that changed; False when a newer write landed first."""
        patch = status_patch(self.read.get("status"), new_status)
        if not patch:
            return True
        meta = self.current.get("metadata", {})
        try:
            await self.cluster.patch(
                "Rollout",
                meta.get("namespace", "default"),
                meta["name"],
                {"status": patch},
                subresource="status",
                resource_version=meta.get("resourceVersion"),
            )
        except Conflict:
            return False
        return True

    async def rejection(self, new_status: dict[str, Any], exc: SpecRejected) -> None:
        """An object the runtime refused: an InvalidSpec condition (phase Degraded) and, the first
        time this message is seen, one Warning event."""
        message = str(exc.__cause__ or exc)
        stored = self.read.get("status")
        had = any(
            c.get("type") == names.COND_INVALID_SPEC and c.get("message") == message
            for c in (stored or {}).get("conditions") or []
        )
        if not had:
            event = a.EmitEvent("Warning", names.INVALID_SPEC_REASON, message)
            await self.cluster.create("Event", _event(self.current, event, self.clock))
        # A Conflict means a newer write landed: the retry plans from it.
        await self.status(_invalid_spec_status(new_status, stored, message, rfc3339(self.clock.now())))


async def apply_plan(cluster: Cluster, rollout: Obj, plan: a.Plan, clock: Clock) -> bool:
    """Apply every action, then write the status. Returns False when the status write lost a race
    with another writer (the caller plans again at once). Raises ReplicaSetNameTaken, with nothing
    more of the plan applied, when the new ReplicaSet's name is held by one that is not ours (the
    caller replans after a backoff: normally the next gather sees the holder at once)."""
    writer = _PlanWriter(cluster, rollout, clock)
    new_status = plan.status.wire()
    try:
        if not await writer.actions(plan.actions):
            return False  # the Rollout changed since it was read: plan again from it
    except SpecRejected as exc:
        # Added for the Kubernetes runtime (issue 5): an object the API server refuses becomes an
        # InvalidSpec condition (phase Degraded) and one Warning event, written like any status.
        await writer.rejection(new_status, exc)
        raise
    if not status_patch(rollout.get("status"), new_status):
        return True
    if not await writer.status(new_status):
        return False
    kill_point("after-status-write")
    return True
