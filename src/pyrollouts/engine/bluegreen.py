"""One blue-green reconcile, in Argo's order (ARGO-COMPAT "Behaviour in order", steps 2-9).

Each step reads what the earlier ones decided; actions are appended to the plan in the order the
controller must apply them. The status that results is assembled in ``status``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ..model import names
from ..model.hash import pod_template_hash
from . import (
    antiaffinity,
    conditions,
    ephemeral,
    events,
    pause,
    replicaset,
    restart,
    service,
    status,
    timeutil,
)
from .context import Ctx, revision_of
from .types import ReplicaSetState, UpdateRollout


def _rollback_within_window(ctx: Ctx, new_rs: ReplicaSetState, stable_rs: ReplicaSetState | None) -> bool:
    """The new RS is older than the stable one and at most rollbackWindow.revisions RSs lie between
    (creation times, which a renumbering leaves alone)."""
    window = ctx.rollout.spec.rollback_window
    if window is None or not window.revisions or stable_rs is None or new_rs is stable_rs:
        return False
    if not new_rs.creation_timestamp or new_rs.creation_timestamp >= stable_rs.creation_timestamp:
        return False
    between = [
        rs
        for rs in ctx.rss
        if new_rs.creation_timestamp < rs.creation_timestamp <= stable_rs.creation_timestamp
    ]
    return len(between) <= window.revisions


def _timed_out(ctx: Ctx, counts_progress: bool) -> bool:
    """The progress deadline: no progress for progressDeadlineSeconds since Progressing last moved."""
    old = conditions.get(ctx.status_in, names.COND_PROGRESSING)
    if old is None or counts_progress:
        return False
    if old.get("reason") == names.PROGRESS_DEADLINE_EXCEEDED:
        return True
    if old.get("reason") not in (
        names.RS_UPDATED,
        names.NEW_RS_CREATED,
        names.ROLLOUT_RESUMED,
        names.ROLLOUT_RETRY,
    ):
        return False
    last = timeutil.parse(old.get("lastUpdateTime"))
    if last is None:
        return False
    due = last + timedelta(seconds=ctx.rollout.progress_deadline_seconds())
    if ctx.now >= due:
        return True
    ctx.requeue_at(due)
    return False


#: A hash collision writes only the bumped status.collisionCount; that write brings the next
#: reconcile at once, so this requeue is a backstop should the write be lost.
COLLISION_REQUEUE_SECONDS = 1.0


def collision_count(status: dict[str, Any]) -> int:
    """status.collisionCount as a count (0 when absent, or not a sensible number)."""
    value = status.get("collisionCount")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _hash_collision(ctx: Ctx, count: int) -> dict[str, Any]:
    """The name ``<rollout>-<hash>`` is held by a ReplicaSet that is not this template's (Argo's and
    Kubernetes' hash collision): create nothing, bump status.collisionCount so that the next
    reconcile computes another hash and so another name, and leave the rest of the status as read.
    Planned from the status as read, so a replan after a lost status write bumps only once."""
    ctx.requeues.append(COLLISION_REQUEUE_SECONDS)
    return {**ctx.status_in, "collisionCount": count + 1}


def reconcile(ctx: Ctx) -> dict[str, Any]:
    """Plan one blue-green reconcile into ``ctx.actions``; returns the status to write."""
    r = ctx.rollout
    bg = r.bg
    st = ctx.status_in
    replicas = ctx.replicas
    paused_spec = bool(r.spec.paused)

    # -- 2. the new ReplicaSet and its revision -------------------------------------------------
    count = collision_count(st)
    computed = pod_template_hash(r.spec.template, count)
    new_rs = replicaset.find_new_rs(ctx, computed)
    if new_rs is None and not paused_spec and replicaset.name_taken_by(ctx, computed) is not None:
        return _hash_collision(ctx, count)
    prev_cur = st.get("currentPodHash") or None
    cur = new_rs.pod_template_hash if new_rs is not None else computed
    if new_rs is None and paused_spec and prev_cur is not None:
        cur = prev_cur  # paused before the new RS exists: the update has not started yet
    template_changed = prev_cur is not None and prev_cur != cur

    bgst: dict[str, Any] = dict(st.get("blueGreen") or {})
    ps = pause.PauseState([dict(p) for p in st.get("pauseConditions") or []], bool(st.get("controllerPause")))
    abort = bool(st.get("abort"))
    aborted_at: str | None = st.get("abortedAt")
    promote_full = bool(st.get("promoteFull"))
    checkpoint = bool(bgst.get("scaleUpPreviewCheckPoint"))
    if template_changed:
        # 4. A new template while an update is in flight starts over: no pause, abort or checkpoint.
        ps = pause.PauseState([], False)
        abort, aborted_at, promote_full, checkpoint = False, None, False, False
    retrying = not abort and aborted_at is not None

    stable: str | None = st.get("stableRS") or None
    preview = service.selected_hash(ctx, bg.preview_service)

    max_rev = replicaset.max_revision(ctx.rss)
    created = False
    new_rev = 0
    if new_rs is None:
        if not paused_spec:
            new_rev = max_rev + 1
    else:
        new_rev = revision_of(new_rs)
        if not paused_spec and (new_rev < max_rev or new_rev == 0):
            new_rev = max_rev + 1
            replicaset.renumber(ctx, new_rs, new_rev)
    if new_rev and (r.metadata.annotations or {}).get(names.REVISION_ANNOTATION) != str(new_rev):
        ctx.actions.append(UpdateRollout(annotations={names.REVISION_ANNOTATION: str(new_rev)}))
        ctx.event(names.ROLLOUT_UPDATED, events.rollout_updated(new_rev))
    if new_rs is None and not paused_spec:
        new_rs = replicaset.create(ctx, cur, new_rev, stable)
        created = True
    if new_rs is not None and prev_cur != cur:
        ctx.event(names.ROLLOUT_NOT_COMPLETED, events.not_completed(new_rev, cur))

    active = service.selected_hash(ctx, bg.active_service)
    # First deploy (no stable RS yet, or the active Service has never been switched): the new RS is
    # stable at once and there is no pause (ARGO-COMPAT "First deploy").
    initial = new_rs is not None and stable != cur and (stable is None or active is None)
    if initial:
        stable = cur
    stable_rs = ctx.rs_by_hash(stable)
    if abort and cur == stable:
        abort, aborted_at = False, None  # nothing in flight to abort
        retrying = False

    # -- 3. the preview Service follows the newest ReplicaSet -------------------------------------
    if bg.preview_service and new_rs is not None and not paused_spec:
        service.switch(ctx, bg.preview_service, preview, cur)
        preview = cur

    # -- retry, abort and the progress deadline ---------------------------------------------------
    if retrying and new_rs is not None and replicaset.has_deadline(new_rs):
        replicaset.set_deadline(ctx, new_rs, None)  # the abort's scale-down is called off
    in_flight = new_rs is not None and active != cur
    counts_now = status.counts(ctx, new_rs, ctx.rs_by_hash(active))
    counts_now["blueGreen"] = {"activeSelector": active, "previewSelector": preview}
    timed_out = False
    if in_flight and not abort and not paused_spec and not ps.conditions and not template_changed:
        timed_out = _timed_out(ctx, conditions.progress_made(st, counts_now))
    old_reason = (conditions.get(st, names.COND_PROGRESSING) or {}).get("reason")
    if timed_out and new_rs is not None and old_reason != names.PROGRESS_DEADLINE_EXCEEDED:
        ctx.event(names.PROGRESS_DEADLINE_EXCEEDED, events.timed_out(new_rs.name), "Warning")
    if timed_out and r.spec.progress_deadline_abort and cur != stable:
        abort = True  # a first deploy has no stable RS to go back to: it only reports the timeout
    if abort and aborted_at is None and new_rs is not None:
        aborted_at = ctx.now_s
        ps = pause.PauseState([p for p in ps.conditions if p.get("reason") != names.PAUSE_BLUE_GREEN], False)
        promote_full = False
        ctx.event(names.ROLLOUT_ABORTED, events.aborted(new_rev), "Warning")
    if retrying:
        aborted_at = None

    # -- 6. the pause ----------------------------------------------------------------------------
    fast = False
    if new_rs is not None:
        inside_delay = (
            not created
            and not retrying
            and new_rs.replicas > 0
            and (replicaset.deadline_of(new_rs) or ctx.now) > ctx.now
        )
        fast = (
            active is None
            or promote_full
            or cur == stable
            or inside_delay
            or _rollback_within_window(ctx, new_rs, stable_rs)
        )
    needs = pause.needs_pause(ctx)
    preview_size = bg.preview_replica_count if bg.preview_replica_count is not None else replicas
    ready = replicaset.is_available_at(new_rs, replicas if checkpoint else preview_size)
    if in_flight and not abort and not paused_spec:
        pause.reconcile(ctx, ps, skip=fast or not needs, ready=ready)
    was_paused = (conditions.get(st, names.COND_PAUSED) or {}).get("status") == "True"
    # A promote clears status.pauseConditions before we look, so a pause we had recorded (Paused
    # condition, controllerPause) counts as "before" too; that promote then yields RolloutResumed.
    before = list(st.get("pauseConditions") or [])
    if not before and was_paused and st.get("controllerPause") and not template_changed and not paused_spec:
        before = [{"reason": names.PAUSE_BLUE_GREEN}]
    pause.emit_transition(ctx, before, ps.conditions, abort)
    promotion_ok = fast or (ps.completed if needs else ready)
    if bg.preview_replica_count is None or not in_flight:
        checkpoint = False
    elif not abort:
        checkpoint = checkpoint or promotion_ok

    # -- 7. the active Service -------------------------------------------------------------------
    new_deadlines: dict[str, Any] = {}
    if abort:
        if stable_rs is not None and active != stable and stable is not None:
            service.switch(ctx, bg.active_service, active, stable)
            active = stable
    elif (
        in_flight
        and not paused_spec
        and new_rs is not None
        and not created  # never switch to an RS that does not exist yet (spec.replicas 0 is "saturated")
        and promotion_ok
        and replicaset.is_saturated(new_rs, replicas)
    ):
        old_active = ctx.rs_by_hash(active)
        service.switch(ctx, bg.active_service, active, cur)
        active = cur
        if replicaset.has_deadline(new_rs):
            replicaset.set_deadline(ctx, new_rs, None)
        delay = r.scale_down_delay_seconds()
        if old_active is not None and old_active is not new_rs and delay > 0:
            # Written by scale_down_old, and only if this RS is allowed to wait (revision limit).
            new_deadlines[old_active.name] = ctx.now + timedelta(seconds=delay)

    # -- 8. stable (decided here, so that scaling below sees the new roles) ----------------------
    completed_detail: str | None = "Initial deploy" if initial else None
    if (
        not abort
        and new_rs is not None
        and active == cur
        and stable != cur
        and replicaset.is_saturated(new_rs, replicas)
    ):
        stable = cur
        completed_detail = "Completed blue-green update"
    stable_rs = ctx.rs_by_hash(stable)
    if new_rs is not None and stable == cur:
        ps.remove_blue_green()
        ps.controller_pause = False
        promote_full, checkpoint = False, False
        abort, aborted_at = False, None

    # -- 5. scaling ------------------------------------------------------------------------------
    if new_rs is not None:
        if abort:
            _abort_scale_down(ctx, new_rs, stable_rs, active == stable)
        else:
            if not in_flight or stable == cur or active == cur:
                desired = replicas
            elif bg.preview_replica_count is not None and not checkpoint:
                desired = bg.preview_replica_count
            else:
                desired = replicas
            replicaset.scale(ctx, new_rs, desired, new_rev)
    if stable_rs is not None and stable != cur:
        replicaset.scale(ctx, stable_rs, replicas)
    referenced = {h for h in (cur if new_rs is not None else None, stable, active) if h}
    old = [rs for rs in ctx.rss if rs.pod_template_hash not in referenced]
    replicaset.scale_down_old(ctx, old, new_deadlines)
    replicaset.cleanup(ctx, old)

    # -- blueGreen.antiAffinity follows the stable RS (the create above injected it already) --------
    if new_rs is not None and not created:
        antiaffinity.reconcile(ctx, new_rs, stable)

    # -- previewMetadata / activeMetadata ----------------------------------------------------------
    roles: dict[str, str] = {}
    if new_rs is not None and active != cur and not created:
        roles[new_rs.name] = "preview"
    active_rs = ctx.rs_by_hash(active)
    if active_rs is not None:
        roles[active_rs.name] = "active"
    ephemeral.reconcile(ctx, roles)

    # -- restartAt --------------------------------------------------------------------------------
    running = [rs for rs in ctx.rss if rs.pod_template_hash in referenced]
    restarted_at = restart.reconcile(ctx, running, st.get("restartedAt"))

    if completed_detail is not None and new_rs is not None:
        ctx.event(names.ROLLOUT_COMPLETED, events.completed(new_rev, cur, completed_detail))

    # -- 9. status ---------------------------------------------------------------------------------
    now_paused = bool(ps.conditions) or paused_spec
    return status.build(
        ctx,
        status.Decisions(
            cur=cur,
            new_rs=new_rs,
            new_rev=new_rev,
            created=created,
            stable=stable,
            active=active,
            preview=preview,
            checkpoint=checkpoint,
            pause=ps,
            abort=abort,
            aborted_at=aborted_at,
            promote_full=promote_full,
            restarted_at=restarted_at,
            retrying=retrying,
            timed_out=timed_out,
            was_paused=was_paused,
            now_paused=now_paused,
        ),
    )


def _abort_scale_down(
    ctx: Ctx, new_rs: ReplicaSetState, stable_rs: ReplicaSetState | None, active_is_stable: bool
) -> None:
    """On abort the new RS keeps its pods until abortScaleDownDelaySeconds after the stable RS is
    fully available again; 0 keeps it running."""
    delay = ctx.rollout.abort_scale_down_delay_seconds()
    if delay <= 0 or new_rs.replicas == 0:
        return
    if not (active_is_stable and replicaset.is_saturated(stable_rs, ctx.replicas)):
        return
    deadline = replicaset.deadline_of(new_rs)
    if deadline is None:
        at = ctx.now + timedelta(seconds=delay)
        replicaset.set_deadline(ctx, new_rs, at)
        ctx.requeue_at(at)
    elif deadline <= ctx.now:
        replicaset.scale(ctx, new_rs, 0)
    else:
        ctx.requeue_at(deadline)
