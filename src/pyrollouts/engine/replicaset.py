"""ReplicaSets: the new one (found, adopted, created, renumbered), scaling the new and stable ones,
scale-down deadlines of the old ones, and the history cleanup (docs/argo-compat.md "ReplicaSets")."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..model import names
from ..model.hash import ephemeral_keys, pod_template_hash, templates_equal
from ..model.rollout import RolloutStatus
from . import antiaffinity, events, timeutil
from .context import Ctx, revision_of
from .types import (
    AnnotateReplicaSet,
    CreateReplicaSet,
    DeleteReplicaSet,
    ReplicaSetState,
    ScaleReplicaSet,
    SetScaleDownDeadline,
    UpdateRollout,
)

if TYPE_CHECKING:  # the pause and roles modules read ReplicaSets through this one
    from .pause import PauseContext
    from .roles import Roles


@dataclass(frozen=True)
class NewReplicaSet:
    """The outcome of the new-ReplicaSet step: the RS for the current template, and its revision."""

    pod_hash: str  # the hash the new RS has, or will have once created
    rs: ReplicaSetState | None  # None only on the way in; the step always finds or creates one
    revision: int  # 0 when there is no RS and none is created now
    created: bool  # created by this reconcile (the create is in the plan; nothing runs yet)


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


def scale(
    ctx: Ctx, rs: ReplicaSetState, to: int, revision: int | None = None, *, keep_deadline: bool = False
) -> None:
    """Size an RS (and stamp desired-replicas); emits ScalingReplicaSet when the size changes.
    A full scale-down also removes the scale-down deadline, which has then been honoured, unless
    ``keep_deadline`` (an aborted new RS keeps it, as in Argo)."""
    rev = revision if revision is not None else revision_of(rs)
    size_changes = rs.replicas != to
    stamp_changes = to > 0 and desired_annotation(rs) != str(ctx.replicas)
    if size_changes or stamp_changes:
        ctx.actions.append(ScaleReplicaSet(name=rs.name, replicas=to, desired_replicas=ctx.replicas))
    if size_changes:
        ctx.event(names.SCALING_REPLICASET, events.scaling(rs.name, rev, rs.replicas, to))
    if to == 0 and size_changes and has_deadline(rs) and not keep_deadline:
        ctx.actions.append(SetScaleDownDeadline(name=rs.name, deadline=None))


def set_deadline(ctx: Ctx, rs: ReplicaSetState, at: datetime | None) -> None:
    value = timeutil.rfc3339(at) if at is not None else None
    if rs.annotations.get(names.SCALE_DOWN_DEADLINE_ANNOTATION) != value:
        rv = (rs.obj.get("metadata") or {}).get("resourceVersion") if value is not None else None
        ctx.actions.append(SetScaleDownDeadline(name=rs.name, deadline=value, resource_version=rv))


def scale_down_old(ctx: Ctx, old: list[ReplicaSetState], new_deadlines: dict[str, datetime]) -> None:
    """Old RSs (neither new, stable nor active): each keeps running until its scale-down deadline;
    at most scaleDownDelayRevisionLimit of them wait at once (newest first); the rest go to 0 now.
    ``new_deadlines`` are deadlines set in this same reconcile (by the active switch). As in Argo,
    an old RS that still runs pods without a deadline (one that was only ever preview: an update
    abandoned by a new template, an undo or a rollback) gets one too, scaleDownDelaySeconds from
    now, instead of going to 0 at once; a delay of 0 scales it down at once (docs/argo-compat.md)."""
    limit = ctx.rollout.scale_down_delay_revision_limit()
    delay = ctx.rollout.scale_down_delay_seconds()
    waiting = 0
    for rs in sorted(old, key=lambda r: (revision_of(r), r.name), reverse=True):
        if rs.replicas == 0:
            continue
        # A deadline already on the RS wins over one the switch gives (Argo adds one only where
        # there is none): a switch planned again from a cache that missed the first one (after
        # an API outage) must not push the old RS's scale-down further out.
        existing = deadline_of(rs)
        deadline = existing or new_deadlines.get(rs.name)
        fresh = existing is None and rs.name in new_deadlines
        if deadline is None and not has_deadline(rs) and delay > 0:
            deadline, fresh = ctx.now + timedelta(seconds=delay), True
        if deadline is not None and deadline > ctx.now and (limit is None or waiting < limit):
            waiting += 1
            if fresh:
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


# ---------------------------------------------------------------------------------------------
# The steps of a reconcile that act on ReplicaSets, in the order they run.

#: A hash collision writes only the bumped status.collisionCount; that write brings the next
#: reconcile at once, so this requeue is a backstop should the write be lost.
COLLISION_REQUEUE_SECONDS = 1.0


def collision_count(status: RolloutStatus) -> int:
    """status.collisionCount as a count (0 when absent, or not a sensible number)."""
    value = status.collision_count
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def find_current(ctx: Ctx) -> tuple[str, ReplicaSetState | None] | None:
    """The hash of the current template and its RS (None: not created yet); None when the name
    ``<rollout>-<hash>`` is held by a ReplicaSet that is not this template's (a hash collision)."""
    computed = pod_template_hash(ctx.rollout.spec.template, collision_count(ctx.status))
    rs = find_new_rs(ctx, computed)
    if rs is None and name_taken_by(ctx, computed) is not None:
        return None
    return (rs.pod_template_hash if rs is not None else computed), rs


def hash_collision(ctx: Ctx) -> dict[str, Any]:
    """Argo's and Kubernetes' hash collision: create nothing, bump status.collisionCount so that the
    next reconcile computes another hash and so another name, and leave the rest of the status as
    read. Planned from the status as read, so a replan after a lost status write bumps only once."""
    ctx.requeues.append(COLLISION_REQUEUE_SECONDS)
    return {**ctx.status_in, "collisionCount": collision_count(ctx.status) + 1}


def reconcile_new(ctx: Ctx, pod_hash: str, rs: ReplicaSetState | None) -> NewReplicaSet:
    """The new-ReplicaSet step: give the new RS the next revision (an older RS that is new again is
    renumbered, as on undo), stamp it on the Rollout, and create the RS when it does not exist.
    As in Argo this happens even while spec.paused (the pause holds the Services and the
    BlueGreenPause, not the new RS), so status.currentPodHash names the new template at once.
    Emits RolloutUpdated and NewReplicaSetCreated."""
    top = max_revision(ctx.rss)
    if rs is None:
        revision = top + 1
    else:
        revision = revision_of(rs)
        if revision < top or revision == 0:
            revision = top + 1
            renumber(ctx, rs, revision)
    stamped = (ctx.rollout.metadata.annotations or {}).get(names.REVISION_ANNOTATION)
    if revision and stamped != str(revision):
        ctx.actions.append(UpdateRollout(annotations={names.REVISION_ANNOTATION: str(revision)}))
        ctx.event(names.ROLLOUT_UPDATED, events.rollout_updated(revision))
    created = rs is None
    if rs is None:
        rs = create(ctx, pod_hash, revision, ctx.status.stable_rs or None)
    return NewReplicaSet(pod_hash=pod_hash, rs=rs, revision=revision, created=created)


def is_rollback(ctx: Ctx, roles: Roles) -> bool:
    """Argo's isRollback: the new RS is the stable one or was created before it (a ReplicaSet
    abandoned as preview and applied again is not a rollback, whatever its deadline says)."""
    new_rs, stable_rs = roles.new_rs, ctx.rs_by_hash(roles.stable)
    if new_rs is None or stable_rs is None:
        return False
    return new_rs is stable_rs or created_before(new_rs, stable_rs)


def created_before(a: ReplicaSetState, b: ReplicaSetState) -> bool:
    """``a`` was created before ``b``. creationTimestamp has whole seconds, so two ReplicaSets made in
    the same second (a quick update, as the tests make) tie; the revision breaks the tie (as
    observed: an older RS taken back keeps its old number until its renumbering is written, which
    is in the same reconcile that decides the rollback). Without it an undo within the scale-down
    delay paused now and then instead of switching back at once (docs/argo-compat.md)."""
    if not a.creation_timestamp or not b.creation_timestamp:
        return False
    return (a.creation_timestamp, revision_of(a)) < (b.creation_timestamp, revision_of(b))


def rollback_within_window(ctx: Ctx, roles: Roles) -> bool:
    """The new RS is older than the stable one and at most rollbackWindow.revisions RSs lie between
    (creation times, which a renumbering leaves alone): such an update skips the pause."""
    window = ctx.rollout.spec.rollback_window
    new_rs, stable_rs = roles.new_rs, ctx.rs_by_hash(roles.stable)
    if window is None or not window.revisions or stable_rs is None or new_rs is None:
        return False
    if new_rs is stable_rs:
        return False
    if not created_before(new_rs, stable_rs):
        return False
    start, end = new_rs.creation_timestamp, stable_rs.creation_timestamp
    return len([rs for rs in ctx.rss if start < rs.creation_timestamp <= end]) <= window.revisions


def scale_new_and_stable(ctx: Ctx, roles: Roles, pc: PauseContext) -> None:
    """Size the new RS (previewReplicaCount until the checkpoint, full size once promoted; on abort
    it keeps its pods until abortScaleDownDelaySeconds) and keep the stable RS at full size."""
    new_rs, stable_rs = roles.new_rs, ctx.rs_by_hash(roles.stable)
    if new_rs is not None and pc.abort:
        abort_scale_down(ctx, new_rs, stable_rs, roles.active == roles.stable)
    elif new_rs is not None:
        preview_count = ctx.rollout.bg.preview_replica_count
        promoted = not roles.in_flight or roles.stable == roles.new_hash or roles.active == roles.new_hash
        at_preview_size = preview_count is not None and not promoted and not pc.checkpoint
        desired = preview_count if at_preview_size and preview_count is not None else ctx.replicas
        scale(ctx, new_rs, desired, roles.new.revision)
    if stable_rs is not None and roles.stable != roles.new_hash:
        scale(ctx, stable_rs, ctx.replicas)


def abort_scale_down(
    ctx: Ctx, new_rs: ReplicaSetState, stable_rs: ReplicaSetState | None, active_is_stable: bool
) -> None:
    """On abort the new RS keeps its pods until abortScaleDownDelaySeconds after the stable RS is
    fully available again; 0 keeps it running."""
    delay = ctx.rollout.abort_scale_down_delay_seconds()
    if delay <= 0 or new_rs.replicas == 0:
        return
    if not (active_is_stable and is_saturated(stable_rs, ctx.replicas)):
        return
    deadline = deadline_of(new_rs)
    if deadline is None:
        at = ctx.now + timedelta(seconds=delay)
        set_deadline(ctx, new_rs, at)
        ctx.requeue_at(at)
    elif deadline <= ctx.now:
        scale(ctx, new_rs, 0, keep_deadline=True)
    else:
        ctx.requeue_at(deadline)


def old_replicasets(ctx: Ctx, roles: Roles) -> list[ReplicaSetState]:
    """The RSs that hold no role (neither new, stable nor active)."""
    referenced = roles.referenced()
    return [rs for rs in ctx.rss if rs.pod_template_hash not in referenced]
