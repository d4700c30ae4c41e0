"""One blue-green reconcile: a sequence of named steps, as Argo's controller takes them
(docs/argo-compat.md "A reconcile, step by step").

Each step lives in the module named after its concept and reads what the earlier ones decided
(the roles and the pause context); actions are appended to the plan in the order the controller
must apply them, and the status is built once, at the end. Only what is blue-green's own is here:
when an update skips the pause (fast track) and when the new ReplicaSet becomes stable.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..model import names
from . import (
    analysis,
    antiaffinity,
    conditions,
    ephemeral,
    events,
    pause,
    progress,
    replicaset,
    restart,
    service,
    status,
)
from .context import Ctx
from .pause import PauseContext
from .roles import Roles


def reconcile(ctx: Ctx) -> dict[str, Any]:
    """Plan one blue-green reconcile into ``ctx.actions``; returns the status to write."""
    current = replicaset.find_current(ctx)
    if current is None:
        return replicaset.hash_collision(ctx)
    new = replicaset.reconcile_new(ctx, *current)
    roles = Roles.assign(ctx, new)
    pc = PauseContext.read(ctx, roles)
    runs = analysis.reconcile(ctx, roles, pc, fast_rollback=fast_rollback(ctx, roles, pc))
    timed_out, deadlines, completed = cutover(ctx, roles, pc, runs)

    replicaset.scale_new_and_stable(ctx, roles, pc)
    old = replicaset.old_replicasets(ctx, roles)
    if not analysis.holds_old_replicasets(ctx, roles, runs):
        replicaset.scale_down_old(ctx, old, deadlines)
    replicaset.cleanup(ctx, old)

    if new.rs is not None and not new.created:  # a create injects blueGreen.antiAffinity itself
        antiaffinity.reconcile(ctx, new.rs, roles.stable)
    ephemeral.reconcile(ctx, roles.pod_roles(ctx))
    referenced = roles.referenced()
    running = [rs for rs in ctx.rss if rs.pod_template_hash in referenced]
    restarted_at = restart.reconcile(ctx, running, ctx.status.restarted_at)
    if completed is not None and new.rs is not None:
        ctx.event(names.ROLLOUT_COMPLETED, events.completed(new.revision, new.pod_hash, completed))

    outcome = status.Outcome(
        roles, pc, timed_out, restarted_at, analysis.status_of(runs.pre), analysis.status_of(runs.post)
    )
    return status.build(ctx, outcome)


def cutover(
    ctx: Ctx, roles: Roles, pc: PauseContext, runs: analysis.Runs
) -> tuple[bool, dict[str, datetime], str | None]:
    """The preview Service, the progress deadline, the pause, the active Service and the stable
    mark, in Argo's order. Returns (timed out, the scale-down deadlines the switch gives, the
    RolloutCompleted detail)."""
    halted = analysis.halted(ctx, pc)
    service.reconcile_preview(ctx, roles, halted=halted)
    not_completed(ctx, roles)  # as Argo: after the preview Service's SwitchService, before the scaling
    timed_out = progress.reconcile(ctx, roles, pc)
    fast = fast_tracked(ctx, roles, pc)
    why = completion_detail(ctx, roles, pc)
    pre_done = analysis.pre_completed(ctx, runs)
    promotion_ok = pause.reconcile(ctx, roles, pc, fast=fast, pre_done=pre_done, halted=halted)
    deadlines = service.reconcile_active(ctx, roles, pc, promotion_ok=promotion_ok, halted=halted)
    post_done = fast or analysis.post_completed(ctx, runs)
    completed = mark_stable(ctx, roles, pc, post_done=post_done, detail=why)
    return timed_out, deadlines, completed


def completion_detail(ctx: Ctx, roles: Roles, pc: PauseContext) -> str:
    """Why the update completes, for the RolloutCompleted event, in Argo's words and order:
    promote --full, a fast rollback (within rollbackWindow or the scale-down delay), else the
    ordinary end of a blue-green update. Read before the cutover changes what it looks at."""
    if pc.promote_full:
        return "Full promotion requested"
    if fast_rollback(ctx, roles, pc):
        return "Rollback within window" if replicaset.rollback_within_window(ctx, roles) else "Fast rollback"
    return "Completed blue-green update"


def fast_tracked(ctx: Ctx, roles: Roles, pc: PauseContext) -> bool:
    """The update skips the pause (and analysis): nothing is active yet, promote --full, the new
    RS is the stable one, or a fast rollback."""
    if roles.new_rs is None:
        return False
    return (
        roles.active is None
        or pc.promote_full
        or roles.new_hash == roles.stable
        or fast_rollback(ctx, roles, pc)
    )


def fast_rollback(ctx: Ctx, roles: Roles, pc: PauseContext) -> bool:
    """A rollback to an RS still inside its scale-down delay (it was active moments ago), or
    within rollbackWindow: no pause, no analysis."""
    new_rs = roles.new_rs
    if new_rs is None:
        return False
    inside_delay = (
        not roles.new.created
        and not pc.retrying
        and new_rs.replicas > 0
        and (replicaset.deadline_of(new_rs) or ctx.now) > ctx.now
        and replicaset.is_rollback(ctx, roles)
    )
    return inside_delay or replicaset.rollback_within_window(ctx, roles)


def mark_stable(
    ctx: Ctx,
    roles: Roles,
    pc: PauseContext,
    *,
    post_done: bool = True,
    detail: str = "Completed blue-green update",
) -> str | None:
    """The new RS becomes stable once the active Service selects it and it is saturated (and its
    post-promotion analysis, if any, succeeded: ``post_done``); that ends the update (pause, abort,
    promoteFull, checkpoint). Returns the RolloutCompleted detail when the update completed in this
    reconcile (a first deploy included; else ``detail``), else None."""
    completed: str | None = "Initial deploy" if roles.initial else None
    new_rs = roles.new_rs
    if (
        not pc.abort
        and (post_done or pc.promote_full)
        and new_rs is not None
        and roles.active == roles.new_hash
        and roles.stable != roles.new_hash
        and replicaset.is_saturated(new_rs, ctx.replicas)
    ):
        roles.stable = roles.new_hash
        completed = detail
    if roles.new_is_stable:
        pc.finish()
    return completed


def not_completed(ctx: Ctx, roles: Roles) -> None:
    """RolloutNotCompleted when the Completed condition is about to turn False (the new RS is not
    the stable one), as Argo emits it: once per update, not on a first deploy (its RS is stable at
    once) and not again when a newer template replaces an update already in flight."""
    if roles.new_is_stable or roles.new_rs is None:
        return
    old = conditions.find(ctx.status, names.COND_COMPLETED)
    if old is None or old.status != "False":
        ctx.event(names.ROLLOUT_NOT_COMPLETED, events.not_completed(roles.new.revision, roles.new_hash))
