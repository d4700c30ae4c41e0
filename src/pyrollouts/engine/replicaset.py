"""ReplicaSets: finding the new one, creating it, scaling, scale-down deadlines, history cleanup."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ..model import names
from ..model.hash import ephemeral_keys, templates_equal
from . import antiaffinity, events, timeutil
from .context import Ctx, revision_of
from .types import (
    AnnotateReplicaSet,
    CreateReplicaSet,
    DeleteReplicaSet,
    ReplicaSetState,
    ScaleReplicaSet,
    SetScaleDownDeadline,
)


def max_revision(rss: Iterable[ReplicaSetState]) -> int:
    return max((revision_of(rs) for rs in rss), default=0)


def find_new_rs(ctx: Ctx, computed_hash: str) -> ReplicaSetState | None:
    """The RS for the current template: by hash label, else by semantic template equality (adoption
    of ReplicaSets another controller, such as Argo, created with its own hash).

    An owned RS carrying the computed hash label is ours whatever its stored template says: we put
    that label there for this template, and the stored copy may differ only by what the API server
    or an admission webhook wrote into it (quantities rewritten, defaults we do not know). Argo
    trusts the label for the same reason; checking the template here would turn every such
    difference into a false collision and a new ReplicaSet on every reconcile."""
    by_label = ctx.rs_by_hash(computed_hash)
    if by_label is not None:
        return by_label
    template = ctx.rollout.spec.template or {}
    matches = []
    for rs in ctx.rss:
        labels, anns = ephemeral_keys(rs.annotations)
        if templates_equal(rs.template, template, ignore_labels=labels, ignore_annotations=anns):
            matches.append(rs)
    if not matches:
        return None
    return max(matches, key=lambda rs: (revision_of(rs), rs.creation_timestamp, rs.name))


def new_rs_name(ctx: Ctx, pod_hash: str) -> str:
    """The name of the Rollout's ReplicaSet for a hash: ``<rollout>-<hash>``, as Argo names it."""
    return f"{ctx.name}-{pod_hash}"


def name_taken_by(ctx: Ctx, pod_hash: str) -> ReplicaSetState | None:
    """The ReplicaSet that already holds the name a new RS for this hash would get, if any.

    Asked only when ``find_new_rs`` found nothing, so no RS the Rollout owns carries this hash label
    or an equal template: whatever holds the name (an RS of ours with another template, or one the
    Rollout does not own) is not ours to reuse, and creating the RS would fail. That is a hash
    collision, as Argo and Kubernetes call it."""
    name = new_rs_name(ctx, pod_hash)
    for rs in (*ctx.rss, *ctx.observed.foreign_replicasets):
        if rs.name == name:
            return rs
    return None


def new_rs_body(ctx: Ctx, pod_hash: str, revision: int, stable: str | None = None) -> dict[str, Any]:
    """The full JSON of the new ReplicaSet: size 0, owned by the Rollout, hash label everywhere,
    and the blueGreen.antiAffinity term against the ``stable`` hash (see engine.antiaffinity)."""
    r = ctx.rollout
    template: dict[str, Any] = copy.deepcopy(r.spec.template or {})
    affinity = antiaffinity.desired_affinity(ctx, antiaffinity.stable_to_avoid(ctx, stable, pod_hash))
    if affinity is not None:
        template.setdefault("spec", {})["affinity"] = affinity
    tmeta = template.setdefault("metadata", {})
    tlabels = dict(tmeta.get("labels") or {})
    tlabels[names.POD_TEMPLATE_HASH_LABEL] = pod_hash
    tmeta["labels"] = tlabels
    selector = r.spec.selector.wire() if r.spec.selector is not None else {}
    match_labels = dict(selector.get("matchLabels") or {})
    match_labels[names.POD_TEMPLATE_HASH_LABEL] = pod_hash
    selector["matchLabels"] = match_labels
    name = new_rs_name(ctx, pod_hash)
    instance = (r.metadata.labels or {}).get(names.INSTANCE_ID_LABEL)
    rs_labels = dict(tlabels)
    if instance is not None:
        rs_labels[names.INSTANCE_ID_LABEL] = instance  # sharding: the RS belongs to the same controller
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": ctx.namespace,
            "labels": rs_labels,
            "annotations": {
                names.REVISION_ANNOTATION: str(revision),
                names.DESIRED_REPLICAS_ANNOTATION: str(ctx.replicas),
            },
            "ownerReferences": [
                {
                    "apiVersion": names.API_VERSION,
                    "kind": "Rollout",
                    "name": ctx.name,
                    "uid": r.metadata.uid or "",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "replicas": 0,
            "minReadySeconds": r.min_ready_seconds(),
            "selector": selector,
            "template": template,
        },
    }


def create(ctx: Ctx, pod_hash: str, revision: int, stable: str | None = None) -> ReplicaSetState:
    """Emit the create and return the RS as it will be (size 0, nothing running)."""
    body = new_rs_body(ctx, pod_hash, revision, stable)
    name = body["metadata"]["name"]
    ctx.actions.append(CreateReplicaSet(name=name, body=body))
    ctx.event(names.NEW_RS_CREATED, events.rs_created(name, revision))
    return ReplicaSetState(
        name=name,
        uid="",
        pod_template_hash=pod_hash,
        template=body["spec"]["template"],
        replicas=0,
        status_replicas=0,
        ready_replicas=0,
        available_replicas=0,
        annotations=dict(body["metadata"]["annotations"]),
        labels=dict(body["metadata"]["labels"]),
        creation_timestamp=ctx.now_s,
        obj=body,
    )


def renumber(ctx: Ctx, rs: ReplicaSetState, revision: int) -> None:
    """An older RS becomes the new one again (undo): give it the next revision and remember the old
    one in revision-history, as Argo does."""
    old = revision_of(rs)
    history = [h for h in rs.annotations.get(names.REVISION_HISTORY_ANNOTATION, "").split(",") if h]
    if old and str(old) not in history:
        history.append(str(old))
    ann: dict[str, str | None] = {names.REVISION_ANNOTATION: str(revision)}
    if history:
        ann[names.REVISION_HISTORY_ANNOTATION] = ",".join(history)
    ctx.actions.append(AnnotateReplicaSet(name=rs.name, annotations=ann))


def desired_annotation(rs: ReplicaSetState) -> str | None:
    return rs.annotations.get(names.DESIRED_REPLICAS_ANNOTATION)


def is_saturated(rs: ReplicaSetState | None, replicas: int) -> bool:
    """Argo's saturation: sized for the Rollout's replicas and every one of them available."""
    if rs is None:
        return False
    return (
        rs.replicas == replicas
        and desired_annotation(rs) == str(replicas)
        and rs.available_replicas >= replicas
    )


def is_available_at(rs: ReplicaSetState | None, size: int) -> bool:
    """At least ``size`` pods requested and available (ReadyForPause with previewReplicaCount)."""
    if rs is None:
        return False
    return rs.replicas >= size and rs.available_replicas >= size


def deadline_of(rs: ReplicaSetState) -> datetime | None:
    return timeutil.parse(rs.annotations.get(names.SCALE_DOWN_DEADLINE_ANNOTATION))


def has_deadline(rs: ReplicaSetState) -> bool:
    return names.SCALE_DOWN_DEADLINE_ANNOTATION in rs.annotations


def scale(ctx: Ctx, rs: ReplicaSetState, to: int, revision: int | None = None) -> None:
    """Size an RS (and stamp desired-replicas); emits ScalingReplicaSet when the size changes.
    A full scale-down also removes the scale-down deadline, which has then been honoured."""
    rev = revision if revision is not None else revision_of(rs)
    size_changes = rs.replicas != to
    stamp_changes = to > 0 and desired_annotation(rs) != str(ctx.replicas)
    if size_changes or stamp_changes:
        ctx.actions.append(ScaleReplicaSet(name=rs.name, replicas=to, desired_replicas=ctx.replicas))
    if size_changes:
        ctx.event(names.SCALING_REPLICASET, events.scaling(rs.name, rev, rs.replicas, to))
    if to == 0 and size_changes and has_deadline(rs):
        ctx.actions.append(SetScaleDownDeadline(name=rs.name, deadline=None))


def set_deadline(ctx: Ctx, rs: ReplicaSetState, at: datetime | None) -> None:
    value = timeutil.rfc3339(at) if at is not None else None
    if rs.annotations.get(names.SCALE_DOWN_DEADLINE_ANNOTATION) != value:
        ctx.actions.append(SetScaleDownDeadline(name=rs.name, deadline=value))


def scale_down_old(ctx: Ctx, old: list[ReplicaSetState], new_deadlines: dict[str, datetime]) -> None:
    """Old RSs (neither new, stable nor active): each keeps running until its scale-down deadline;
    at most scaleDownDelayRevisionLimit of them wait at once (newest first); the rest go to 0 now.
    ``new_deadlines`` are deadlines set in this same reconcile (by the active switch)."""
    limit = ctx.rollout.bg.scale_down_delay_revision_limit
    waiting = 0
    for rs in sorted(old, key=lambda r: (revision_of(r), r.name), reverse=True):
        if rs.replicas == 0:
            continue
        deadline = new_deadlines.get(rs.name) or deadline_of(rs)
        if deadline is not None and deadline > ctx.now and (limit is None or waiting < limit):
            waiting += 1
            if rs.name in new_deadlines:
                set_deadline(ctx, rs, deadline)
            ctx.requeue_at(deadline)
            continue
        scale(ctx, rs, 0)


def cleanup(ctx: Ctx, old: list[ReplicaSetState]) -> None:
    """Delete the oldest scaled-down RSs beyond revisionHistoryLimit (only those already at 0)."""
    limit = ctx.rollout.revision_history_limit()
    excess = len(old) - limit
    if excess <= 0:
        return
    for rs in sorted(old, key=lambda r: (revision_of(r), r.creation_timestamp, r.name)):
        if excess <= 0:
            break
        if rs.replicas == 0 and rs.status_replicas == 0:
            ctx.actions.append(DeleteReplicaSet(name=rs.name))
            excess -= 1
