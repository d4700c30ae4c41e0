"""One canary reconcile: a sequence of named steps, the sibling of ``bluegreen.reconcile``
(docs/canary.md).

Shared with blue-green: the new ReplicaSet, the pause context, the progress deadline and abort,
the old ReplicaSets' cleanup, ephemeral metadata, restarts and the status. A canary's own: its
steps (``canarysteps``), the sizes of the canary and stable ReplicaSets for the weight in force
(``canaryscale``), the Services and the traffic split (``canarytraffic``), and when the new
ReplicaSet becomes stable (every step done, or promote --full, and the new RS fully available).
"""

from __future__ import annotations

from typing import Any

from ..model import names
from . import (
    analysis,
    antiaffinity,
    bluegreen,
    canaryanalysis,
    canaryscale,
    canarysteps,
    canarytraffic,
    ephemeral,
    events,
    pause,
    progress,
    replicaset,
    restart,
    status,
)
from .canarysteps import Steps
from .context import Ctx, revision_of
from .pause import PauseContext
from .roles import Roles
from .types import AnalysisRunState, ReplicaSetState


def reconcile(ctx: Ctx) -> dict[str, Any]:
    """Plan one canary reconcile into ``ctx.actions``; returns the status to write."""
    current = replicaset.find_current(ctx)
    if current is None:
        return replicaset.hash_collision(ctx)
    new = replicaset.reconcile_new(ctx, *current)
    roles = Roles.assign_canary(ctx, new)
    pc = PauseContext.read(ctx, roles)
    steps = Steps.read(ctx, roles, pc)
    bluegreen.not_completed(ctx, roles)
    runs = canaryanalysis.reconcile(ctx, roles, pc, steps)
    timed_out = progress.reconcile(ctx, roles, pc)
    completed = promote(ctx, roles, pc, steps)

    at_desired = reconcile_replicasets(ctx, roles, pc, steps)
    canarytraffic.reconcile_services(ctx, roles, pc)
    weights = canarytraffic.reconcile_split(ctx, roles, pc, steps, at_desired)
    done = step_completed(ctx, steps, pc, at_desired, runs.step)
    run_steps(ctx, roles, pc, steps, done)

    if new.rs is not None and not new.created:  # a create injects canary.antiAffinity itself
        antiaffinity.reconcile(ctx, new.rs, roles.stable)
    ephemeral.reconcile(ctx, roles.canary_pod_roles(ctx))
    running = [rs for rs in ctx.rss if rs.pod_template_hash in roles.referenced()]
    restarted_at = restart.reconcile(ctx, running, ctx.status.restarted_at)
    if completed is not None and new.rs is not None:
        ctx.event(names.ROLLOUT_COMPLETED, events.completed(new.revision, new.pod_hash, completed))
    return status.build(
        ctx, status.Outcome(roles, pc, timed_out, restarted_at, canary=_block(steps, weights, runs, done))
    )


def _block(
    steps: Steps, weights: dict[str, Any] | None, runs: canaryanalysis.Runs, advanced: bool
) -> status.CanaryBlock:
    """The canary's own status: the step, its hash, the weights, the current step's run (gone
    once its step is done) and the background run."""
    canary: dict[str, Any] = {"weights": weights} if weights is not None else {}
    run_status = None if advanced else analysis.status_of(runs.step)
    if run_status is not None:
        canary["currentStepAnalysisRunStatus"] = run_status
    background = analysis.status_of(runs.background)
    if background is not None:
        canary["currentBackgroundAnalysisRunStatus"] = background
    return status.CanaryBlock(
        step_index=steps.index if steps.count else None,
        step_hash=steps.hash,
        canary=canary,
        steps_done=steps.done,
    )


def run_steps(ctx: Ctx, roles: Roles, pc: PauseContext, steps: Steps, done: bool) -> None:
    """The pause step, then the current step's completion (not while halted or aborted)."""
    canarysteps.reconcile_pause(ctx, steps, pc)
    if not steps.reset and not pc.abort and not analysis.halted(ctx, pc):
        canarysteps.advance(ctx, steps, pc, completed=done)
    if pc.abort and not roles.new_is_stable:
        steps.index = 0  # Argo: an aborted update starts its steps over on retry
    if not pc.conditions:
        pc.controller_pause = False
    pause.emit_transition(ctx, pc.before, pc.conditions, pc.abort)


def promote(ctx: Ctx, roles: Roles, pc: PauseContext, steps: Steps) -> str | None:
    """Argo's shouldFullPromote for a canary: the new RS becomes stable once it has every pod
    available and every step ran (or promote --full). Ends the update (pause, abort,
    promoteFull). Returns the RolloutCompleted detail when that happens now (a first deploy
    included)."""
    if roles.initial:
        _finish(pc)
        steps.index = steps.count
        return "Initial deploy"
    if pc.promote_full or pc.abort:
        canarysteps.remove_pause(pc)  # Argo clears the pause conditions then
    if pc.promote_full:
        steps.index = steps.count
    new_rs = roles.new_rs
    if roles.new_is_stable or pc.abort or new_rs is None or new_rs.available_replicas < ctx.replicas:
        if roles.new_is_stable:
            _finish(pc)
        return None
    if not (pc.promote_full or steps.done):
        return None
    detail = "Full promotion requested" if pc.promote_full else f"Completed all {steps.count} canary steps"
    roles.stable = roles.active = roles.new_hash
    _finish(pc)
    steps.index = steps.count
    return detail


def _finish(pc: PauseContext) -> None:
    """The update is over: its pause, abort and promoteFull go."""
    pc.finish()
    canarysteps.remove_pause(pc)


def weight_for_sizes(ctx: Ctx, roles: Roles, pc: PauseContext, steps: Steps) -> int:
    """The canary's weight the ReplicaSets are sized for (Argo's GetCanaryReplicasOrWeight):
    everything once stable or on promote --full, else what the steps call for (0 on abort)."""
    if roles.new_is_stable or pc.promote_full:
        return canaryscale.MAX_WEIGHT
    return steps.set_weight(aborted=pc.abort)


def sizes(
    ctx: Ctx, roles: Roles, pc: PauseContext, steps: Steps, old: list[ReplicaSetState]
) -> tuple[int, int]:
    """(new, stable) sizes for this reconcile."""
    r = ctx.rollout
    weight = weight_for_sizes(ctx, roles, pc, steps)
    stable_rs = ctx.rs_by_hash(roles.stable)
    if r.canary.traffic_routing is None:
        f = canaryscale.Fenceposts(ctx.replicas, r.max_surge(), r.max_unavailable())
        return canaryscale.basic(f, weight, roles.new_rs, stable_rs, old)
    weights = ctx.status.canary.weights if ctx.status.canary is not None else None
    routed = canaryscale.Routed(
        replicas=ctx.replicas,
        scale_replicas=_canary_scale(ctx, steps, pc),
        min_pods=r.canary.min_pods_per_replica_set,
        dynamic=bool(r.canary.dynamic_stable_scale),
        stable_weight=weights.stable.weight if weights is not None else None,
        canary_weight=weights.canary.weight if weights is not None else None,
        aborted=pc.abort,
    )
    if not roles.new_is_stable and not pc.promote_full:
        weight = _scale_weight(ctx, steps, pc, weight)
    return canaryscale.routed(routed, weight)


def _scale_step(ctx: Ctx, steps: Steps, pc: PauseContext) -> Any:
    """The setCanaryScale in force (the last one up to the current step), unless it says
    matchTrafficWeight, or the update is aborted with an abort delay."""
    if pc.abort or steps.done:
        return None
    for step in reversed(steps.steps[: steps.index + 1]):
        if step.set_canary_scale is not None:
            return None if step.set_canary_scale.match_traffic_weight else step.set_canary_scale
    return None


def _canary_scale(ctx: Ctx, steps: Steps, pc: PauseContext) -> int | None:
    scs = _scale_step(ctx, steps, pc)
    return scs.replicas if scs is not None else None


def _scale_weight(ctx: Ctx, steps: Steps, pc: PauseContext, weight: int) -> int:
    scs = _scale_step(ctx, steps, pc)
    if scs is not None and scs.replicas is None and scs.weight is not None:
        return int(scs.weight)
    return weight


def reconcile_replicasets(ctx: Ctx, roles: Roles, pc: PauseContext, steps: Steps) -> bool:
    """Size the stable and new ReplicaSets and scale down the old ones; returns whether the
    ReplicaSets are at the sizes the current weight wants (the step's condition to move on)."""
    old = replicaset.old_replicasets(ctx, roles)
    new_size, stable_size = sizes(ctx, roles, pc, steps, old)
    new_rs, stable_rs = roles.new_rs, ctx.rs_by_hash(roles.stable)
    halted = analysis.halted(ctx, pc)
    if not halted:
        _scale_stable(ctx, roles, stable_rs, stable_size)
        _scale_new(ctx, roles, pc, new_rs, stable_rs, new_size)
        scale_down_old(ctx, roles, old)
    replicaset.cleanup(ctx, old)
    return at_desired(ctx, new_rs, stable_rs, old, new_size, stable_size)


def _scale_stable(ctx: Ctx, roles: Roles, stable_rs: ReplicaSetState | None, size: int) -> None:
    if stable_rs is not None and not roles.new_is_stable:
        if replicaset.has_deadline(stable_rs):
            replicaset.set_deadline(ctx, stable_rs, None)  # Argo removes it from the RSs in use
        replicaset.scale(ctx, stable_rs, size)


def _scale_new(
    ctx: Ctx,
    roles: Roles,
    pc: PauseContext,
    new_rs: ReplicaSetState | None,
    stable_rs: ReplicaSetState | None,
    size: int,
) -> None:
    """The new RS takes its size; on an abort with trafficRouting it keeps its pods until
    abortScaleDownDelaySeconds after the stable RS is back at full size."""
    if new_rs is None:
        return
    if pc.abort and not roles.new_is_stable and ctx.rollout.canary.traffic_routing is not None:
        if ctx.rollout.abort_scale_down_delay_seconds() > 0 or new_rs.replicas == 0:
            replicaset.abort_scale_down(ctx, new_rs, stable_rs, True)
        return
    if replicaset.has_deadline(new_rs) and size > 0:
        replicaset.set_deadline(ctx, new_rs, None)
    replicaset.scale(ctx, new_rs, size, roles.new.revision)


def scale_down_old(ctx: Ctx, roles: Roles, old: list[ReplicaSetState]) -> None:
    """Old ReplicaSets. Without trafficRouting they go as fast as maxUnavailable allows (their
    unavailable pods first). With it, the RS that was stable waits scaleDownDelaySeconds once
    the update is fully promoted (dynamicStableScale: no wait); an abandoned canary goes at once."""
    running = [rs for rs in old if rs.replicas > 0]
    if not running:
        return
    if ctx.rollout.canary.traffic_routing is None:
        _scale_down_within_unavailable(ctx, running)
        return
    dynamic = bool(ctx.rollout.canary.dynamic_stable_scale)
    waiting = [rs for rs in running if not dynamic and (roles.new_is_stable or replicaset.has_deadline(rs))]
    for rs in running:
        if rs not in waiting:
            replicaset.scale(ctx, rs, 0)
    replicaset.scale_down_old(ctx, waiting, {})


def _scale_down_within_unavailable(ctx: Ctx, old: list[ReplicaSetState]) -> None:
    """Argo's scaleDownOldReplicaSetsForCanary without trafficRouting: unavailable pods of old
    RSs go at once; available ones only while the Rollout keeps replicas - maxUnavailable."""
    available = sum(rs.available_replicas for rs in ctx.rss)
    room = available - (ctx.replicas - ctx.rollout.max_unavailable())
    for rs in sorted(old, key=lambda r: (revision_of(r), r.name), reverse=True):
        keep = min(rs.replicas, rs.available_replicas)  # the unavailable ones cost nothing
        cut = max(0, min(keep, room))
        room -= cut
        if keep - cut != rs.replicas:
            replicaset.scale(ctx, rs, keep - cut)


def at_desired(
    ctx: Ctx,
    new_rs: ReplicaSetState | None,
    stable_rs: ReplicaSetState | None,
    old: list[ReplicaSetState],
    new_size: int,
    stable_size: int,
) -> bool:
    """Argo's AtDesiredReplicaCountsForCanary: the new RS has its size, all available; the stable
    RS has its size, all created (unless dynamicStableScale); no old pods available (without
    trafficRouting)."""
    canary = ctx.rollout.canary
    if new_rs is None or new_rs.replicas != new_size or new_rs.available_replicas != new_size:
        return False
    check_stable = canary.traffic_routing is None or not canary.dynamic_stable_scale
    if (
        check_stable
        and stable_rs is not None
        and new_rs is not stable_rs
        and (stable_rs.replicas != stable_size or stable_rs.status_replicas != stable_size)
    ):
        return False
    return canary.traffic_routing is not None or sum(rs.available_replicas for rs in old) == 0


def step_completed(
    ctx: Ctx, steps: Steps, pc: PauseContext, at_desired_now: bool, run: AnalysisRunState | None
) -> bool:
    """Is the current step done? Argo's completedCurrentCanaryStep."""
    step = steps.current
    if step is None or steps.reset or pc.abort or analysis.halted(ctx, pc):
        return False
    if step.analysis is not None:
        return canaryanalysis.step_succeeded(run)
    if step.pause is not None:
        return canarysteps.pause_completed(ctx, step, pc)
    if step.set_weight is not None or step.set_canary_scale is not None:
        return at_desired_now
    # Route steps are done once given.
    return step.set_header_route is not None or step.set_mirror_route is not None
