"""Apply an engine Plan to a Cluster: one write per action, then the status.

The status is written through the ``status`` subresource as a merge patch holding only the fields
this plan changed, with the resourceVersion we planned from as a precondition. A user's write that
landed in between (promote, abort, retry) is therefore never overwritten: either our patch does not
touch that field, or the precondition fails and the rollout is planned again from fresh state.
"""

from __future__ import annotations

import uuid
from typing import Any

from ..engine import types as a
from ..model import names
from ..model.cluster import Cluster, Conflict, Invalid, NotFound, Obj
from ..model.useractions import merge_patch_to
from .clock import Clock, rfc3339
from .faults import kill_point
from .observe import owned_by


def _event(rollout: Obj, ev: a.EmitEvent, clock: Clock) -> Obj:
    meta = rollout.get("metadata", {})
    now = rfc3339(clock.now())
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{meta.get('name')}.{uuid.uuid4().hex[:16]}",
            "namespace": meta.get("namespace", "default"),
        },
        "involvedObject": {
            "apiVersion": names.API_VERSION,
            "kind": "Rollout",
            "name": meta.get("name"),
            "namespace": meta.get("namespace", "default"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "reason": ev.reason,
        "message": ev.message,
        "type": ev.type,
        "count": 1,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "source": {"component": "rollouts-controller"},
        "reportingComponent": "rollouts-controller",
    }


async def apply_action(cluster: Cluster, rollout: Obj, action: a.Action, clock: Clock) -> Obj | None:
    """Carry out one action. Returns the Rollout when the action wrote it (its new resourceVersion)."""
    ns = rollout.get("metadata", {}).get("namespace", "default")
    match action:
        case a.CreateReplicaSet(name=name, body=body):
            try:
                await cluster.create("ReplicaSet", dict(body))
            except Conflict:
                # Ours, from an earlier interrupted reconcile or not yet in a cache: the next plan
                # adopts it. Held by anything else (or not visible yet), the rest of this plan would
                # write to an RS that is not ours: stop, and let the next plan see who holds the name
                # (the engine bumps status.collisionCount for an RS that is not ours).
                owned = await _owned_by_rollout(cluster, ns, name, rollout)
                if owned is None:
                    # Not in a lagging cache yet (on Kubernetes, usually our own create from the
                    # last reconcile): who holds the name is not known, so nothing more is applied.
                    raise ReplicaSetNameTaken(
                        f"ReplicaSet {ns}/{name} exists but is not visible yet", held=False
                    ) from None
                if not owned:
                    raise ReplicaSetNameTaken(f"ReplicaSet {ns}/{name} is not this Rollout's") from None
            except Invalid as exc:
                # The runtime refused the pod template (on Kubernetes, e.g. the seed's port "8080"):
                # retrying cannot help until the spec changes, so surface it (see SpecRejected).
                raise SpecRejected(f"the ReplicaSet {name} was refused: {exc}") from exc
            kill_point("after-rs-create")
        case a.ScaleReplicaSet(name=name, replicas=replicas, desired_replicas=desired):
            await cluster.patch(
                "ReplicaSet",
                ns,
                name,
                {
                    "metadata": {"annotations": {names.DESIRED_REPLICAS_ANNOTATION: str(desired)}},
                    "spec": {"replicas": replicas},
                },
            )
            kill_point("after-scale")
        case a.AnnotateReplicaSet(name=name, annotations=ann, labels=labels, template_labels=tl):
            patch: dict[str, Any] = {"metadata": {}}
            if ann:
                patch["metadata"]["annotations"] = dict(ann)
            if labels:
                patch["metadata"]["labels"] = dict(labels)
            if tl:
                patch["spec"] = {"template": {"metadata": {"labels": dict(tl)}}}
            await cluster.patch("ReplicaSet", ns, name, patch)
        case a.UpdateReplicaSetAffinity(name=name, affinity=affinity):
            # blueGreen.antiAffinity: the injected term follows the stable RS (a merge patch).
            await cluster.patch(
                "ReplicaSet",
                ns,
                name,
                {"spec": {"template": {"spec": {"affinity": None if affinity is None else dict(affinity)}}}},
            )
        case a.SetScaleDownDeadline(name=name, deadline=deadline):
            await cluster.patch(
                "ReplicaSet",
                ns,
                name,
                {"metadata": {"annotations": {names.SCALE_DOWN_DEADLINE_ANNOTATION: deadline}}},
            )
            kill_point("after-deadline-set")
        case a.SwitchService(service=svc, pod_template_hash=h, managed_by=owner):
            await cluster.patch(
                "Service",
                ns,
                svc,
                {
                    "metadata": {"annotations": {names.MANAGED_BY_ANNOTATION: owner}},
                    "spec": {"selector": {names.POD_TEMPLATE_HASH_LABEL: h}},
                },
            )
            kill_point("after-selector-switch")
        case a.PatchPodMetadata(pod=pod, labels=labels, annotations=ann):
            meta: dict[str, Any] = {}
            if labels:
                meta["labels"] = dict(labels)
            if ann:
                meta["annotations"] = dict(ann)
            try:
                await cluster.patch("Pod", ns, pod, {"metadata": meta})
            except NotFound:
                pass  # the pod went away meanwhile; nothing to label
        case a.UpdateRollout(replicas=replicas, annotations=ann):
            body: dict[str, Any] = {}
            if ann:
                body["metadata"] = {"annotations": dict(ann)}
            if replicas is not None:
                body["spec"] = {"replicas": replicas}
            if body:
                # The default replicas goes with the resourceVersion it was planned from (issue 11):
                # a user's spec.replicas written between our read and this write makes it a
                # Conflict (apply_plan plans again) instead of being overwritten. An annotation
                # alone (the revision) overwrites nothing of the user's and needs no precondition.
                rv = rollout.get("metadata", {}).get("resourceVersion") if replicas is not None else None
                return await cluster.patch(
                    "Rollout", ns, rollout["metadata"]["name"], body, resource_version=rv
                )
        case a.DeleteReplicaSet(name=name):
            try:
                await cluster.delete("ReplicaSet", ns, name)
            except NotFound:
                pass
        case a.EmitEvent():
            await cluster.create("Event", _event(rollout, action, clock))
        case a.DeletePod(pod=pod):
            try:
                await cluster.delete("Pod", ns, pod)
            except NotFound:
                pass
        case _:
            raise TypeError(f"unknown action {action!r}")
    return None


async def _owned_by_rollout(cluster: Cluster, ns: str, name: str, rollout: Obj) -> bool | None:
    """Whether the existing RS of that name is the Rollout's; None when it cannot be seen yet."""
    try:
        existing = await cluster.get("ReplicaSet", ns, name)
    except NotFound:
        return None
    return owned_by(existing, str(rollout.get("metadata", {}).get("uid", "")))


class ReplicaSetNameTaken(Exception):
    """The new ReplicaSet's create found its name taken by an RS the last gather did not see.
    ``held``: it is visible and not this Rollout's (the replan steps around it with
    status.collisionCount); False: it is not visible yet (a lagging cache, usually holding our own
    create), so the replan simply waits for the cache. Either way nothing more of the plan is
    applied."""

    def __init__(self, message: str, *, held: bool = True) -> None:
        super().__init__(message)
        self.held = held


class SpecRejected(Exception):
    """The runtime refused an object built from the Rollout's spec (its pod template). apply_plan
    writes an InvalidSpec condition for it and re-raises; the controller retries after 20 s
    instead of backing off into a loop of failed creates."""


def _invalid_spec_status(planned: dict[str, Any], stored: dict[str, Any] | None, message: str,
                         now: str) -> dict[str, Any]:
    status = dict(planned)
    conds = [dict(c) for c in status.get("conditions") or [] if c.get("type") != names.COND_INVALID_SPEC]
    old = next(
        (c for c in (stored or {}).get("conditions") or [] if c.get("type") == names.COND_INVALID_SPEC), None
    )
    if old is not None and old.get("status") == "True" and old.get("message") == message:
        cond = dict(old)  # unchanged: keep its times, so planning again writes nothing
    else:
        cond = {"type": names.COND_INVALID_SPEC, "status": "True", "reason": names.INVALID_SPEC_REASON,
                "message": message, "lastUpdateTime": now, "lastTransitionTime": now}
    status["conditions"] = [cond, *conds]
    status["phase"] = names.PHASE_DEGRADED
    status["message"] = f"{names.INVALID_SPEC_REASON}: {message}"
    return status


def status_patch(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """The merge patch that turns the observed status into the planned one (only changed fields)."""
    patch = merge_patch_to(old or {}, new)
    return patch if isinstance(patch, dict) else {}


async def apply_plan(cluster: Cluster, rollout: Obj, plan: a.Plan, clock: Clock) -> bool:
    """Apply every action, then write the status. Returns False when the status write lost a race
    with another writer (the caller plans again at once). Raises ReplicaSetNameTaken, with nothing
    more of the plan applied, when the new ReplicaSet's name is held by one that is not ours (the
    caller replans after a backoff: normally the next gather sees the holder at once)."""
    current = rollout
    new_status = plan.status.wire()
    try:
        for action in plan.actions:
            try:
                updated = await apply_action(cluster, current, action, clock)
            except Conflict:
                if not (isinstance(action, a.UpdateRollout) and action.replicas is not None):
                    raise
                return False  # the Rollout changed since it was read: plan again from it
            if updated is not None:
                current = updated
    except SpecRejected as exc:
        # Added for the Kubernetes runtime (issue 5): an object the API server refuses becomes an
        # InvalidSpec condition (phase Degraded) and one Warning event, written like any status.
        message = str(exc.__cause__ or exc)
        had = any(c.get("type") == names.COND_INVALID_SPEC and c.get("message") == message
                  for c in (rollout.get("status") or {}).get("conditions") or [])
        if not had:
            await cluster.create("Event", _event(current, a.EmitEvent("Warning", names.INVALID_SPEC_REASON,
                                                                      message), clock))
        invalid = _invalid_spec_status(new_status, rollout.get("status"), message, rfc3339(clock.now()))
        patch = status_patch(rollout.get("status"), invalid)
        if patch:
            meta = current.get("metadata", {})
            try:
                await cluster.patch(
                    "Rollout", meta.get("namespace", "default"), meta["name"], {"status": patch},
                    subresource="status", resource_version=meta.get("resourceVersion"),
                )
            except Conflict:
                pass  # a newer write landed: the retry plans from it
        raise
    patch = status_patch(rollout.get("status"), new_status)
    if not patch:
        return True
    meta = current.get("metadata", {})
    try:
        await cluster.patch(
            "Rollout",
            meta.get("namespace", "default"),
            meta["name"],
            {"status": patch},
            subresource="status",
            resource_version=meta.get("resourceVersion"),
        )
    except Conflict:
        return False
    kill_point("after-status-write")
    return True
