"""The progress step: retry after an abort, the progress deadline, and an abort taking effect.

Strategy-neutral: it reads the roles and the pause context only, so a canary reconcile calls it as
the blue-green one does (docs/argo-compat.md "Progress deadline" and "Abort and retry").
"""

from __future__ import annotations

from datetime import timedelta

from ..model import names
from . import conditions, events, replicaset, status, timeutil
from .context import Ctx
from .pause import PauseContext
from .roles import Roles

#: The Progressing reasons under which the deadline runs (it stops while paused, aborted, done).
_DEADLINE_REASONS = (names.RS_UPDATED, names.NEW_RS_CREATED, names.ROLLOUT_RESUMED, names.ROLLOUT_RETRY)


def reconcile(ctx: Ctx, roles: Roles, pc: PauseContext) -> bool:
    """Call off an aborted update's scale-down on retry, check the progress deadline (an abort when
    progressDeadlineAbort says so), and stamp an abort that starts now. Returns whether the update
    has timed out."""
    new_rs = roles.new_rs
    if pc.retrying and new_rs is not None and replicaset.has_deadline(new_rs):
        replicaset.set_deadline(ctx, new_rs, None)  # the abort's scale-down is called off
    timed_out = check_deadline(ctx, roles, pc)
    if (
        timed_out
        and new_rs is not None
        and ctx.rollout.spec.progress_deadline_abort
        and roles.new_hash != roles.stable
    ):
        # A first deploy has no stable RS to go back to: it only reports the timeout. As Argo: a
        # RolloutAborted Warning with the timeout, then the abort's own (which names it too).
        why = events.timed_out(new_rs.name)
        ctx.event(names.ROLLOUT_ABORTED, why, "Warning")
        pc.request_abort(why)
    if pc.abort and pc.aborted_at is None and new_rs is not None:
        pc.start_abort(ctx, roles.new.revision)
    if pc.retrying:
        pc.end_retry()
    return timed_out


def check_deadline(ctx: Ctx, roles: Roles, pc: PauseContext) -> bool:
    """Has an update in flight (not paused, not aborted) gone progressDeadlineSeconds without
    progress? (No event: Argo's controller emits none for the timeout itself, only for the abort
    that progressDeadlineAbort makes of it.)"""
    new_rs = roles.new_rs
    if new_rs is None or not roles.in_flight or pc.abort or ctx.rollout.spec.paused:
        return False
    if pc.conditions or roles.template_changed:
        return False
    return timed_out(ctx, conditions.progress_made(ctx.status_in, _counts_now(ctx, roles)))


def _counts_now(ctx: Ctx, roles: Roles) -> dict[str, object]:
    """What progress is measured on, as the ReplicaSets are now (a canary's step moves count
    when the status is built)."""
    if ctx.rollout.is_canary:
        now = status.counts(ctx, roles.new_rs, None)
        now["currentStepIndex"] = ctx.status_in.get("currentStepIndex")
        return now
    now = status.counts(ctx, roles.new_rs, ctx.rs_by_hash(roles.active))
    now["blueGreen"] = {"activeSelector": roles.active, "previewSelector": roles.preview}
    return now


def timed_out(ctx: Ctx, counts_progress: bool) -> bool:
    """The progress deadline: no progress for progressDeadlineSeconds since Progressing last moved
    (requeues for the moment it will pass)."""
    old = conditions.find(ctx.status, names.COND_PROGRESSING)
    if old is None or counts_progress:
        return False
    if old.reason == names.PROGRESS_DEADLINE_EXCEEDED:
        return True
    if old.reason not in _DEADLINE_REASONS:
        return False
    last = timeutil.parse(old.last_update_time)
    if last is None:
        return False
    due = last + timedelta(seconds=ctx.rollout.progress_deadline_seconds())
    if ctx.now >= due:
        return True
    ctx.requeue_at(due)
    return False
