"""The status step: every field of status (docs/argo-compat.md "Status"), conditions, phase, message.

Built once per reconcile from the ``Outcome`` of the steps; the fields the engine does not own
(canary) are carried over as read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..model import names
from ..model.rollout import RolloutStatus
from . import conditions as cond
from . import events
from . import phase as phase_rules
from .context import Ctx
from .pause import PauseContext
from .replicaset import is_saturated
from .roles import Roles
from .types import ReplicaSetState


@dataclass(frozen=True)
class Outcome:
    """What a reconcile's steps decided, as the status needs it: the roles and pause context as
    they ended, and what the progress and restart steps returned."""

    roles: Roles
    pause: PauseContext
    timed_out: bool
    restarted_at: str | None
    # status.blueGreen.pre/postPromotionAnalysisRunStatus (None: no current run).
    pre_run: dict[str, str] | None = None
    post_run: dict[str, str] | None = None
    # A canary's own block: currentStepIndex, currentStepHash and status.canary (None: blue-green).
    canary: CanaryBlock | None = None


@dataclass(frozen=True)
class CanaryBlock:
    """What a canary reconcile writes besides the shared fields."""

    step_index: int | None
    step_hash: str
    canary: dict[str, Any]
    steps_done: bool  # every step has run (or there are none)


def format_selector(labels: dict[str, str]) -> str:
    """A label selector as Kubernetes prints it (``a=b,c=d``, keys sorted)."""
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def counts(ctx: Ctx, new_rs: ReplicaSetState | None, active_rs: ReplicaSetState | None) -> dict[str, Any]:
    """replicas (all RSs), updatedReplicas (new RS), and ready/available/HPAReplicas/selector (the
    active RS when there is one, else the sums and the Rollout's own selector), from RS status."""
    rss = ctx.rss
    base = dict((ctx.rollout.spec.selector.match_labels or {}) if ctx.rollout.spec.selector else {})
    out: dict[str, Any] = {
        "replicas": sum(rs.status_replicas for rs in rss),
        "updatedReplicas": new_rs.status_replicas if new_rs is not None else 0,
    }
    if active_rs is not None:
        out["readyReplicas"] = active_rs.ready_replicas
        out["availableReplicas"] = active_rs.available_replicas
        out["HPAReplicas"] = active_rs.status_replicas
        out["selector"] = format_selector(
            {**base, names.POD_TEMPLATE_HASH_LABEL: active_rs.pod_template_hash}
        )
    else:
        out["readyReplicas"] = sum(rs.ready_replicas for rs in rss)
        out["availableReplicas"] = sum(rs.available_replicas for rs in rss)
        out["HPAReplicas"] = sum(rs.status_replicas for rs in rss)
        out["selector"] = format_selector(base)
    return out


def _progressing(ctx: Ctx, o: Outcome, new: dict[str, Any]) -> dict[str, Any]:
    """The Progressing condition: aborted, paused, retrying, resumed, complete, created, timed out,
    or progressing (its lastUpdateTime moves only on progress: the progress deadline's clock)."""
    old = ctx.status_in
    now = ctx.now_s
    roles, pc = o.roles, o.pause
    cur = roles.new_hash
    rs_name = roles.new_rs.name if roles.new_rs is not None else f"{ctx.name}-{cur}"
    t = names.COND_PROGRESSING
    prev = cond.get(old, t)
    complete = (
        roles.stable == cur
        and roles.active == cur
        and is_saturated(roles.new_rs, ctx.replicas)
        and (o.canary is None or _canary_done(ctx, o, new))
    )
    if pc.abort:
        return cond.make(prev, t, "False", names.ROLLOUT_ABORTED, _abort_message(o, prev), now)
    if complete:  # as Argo: a completed rollout that is paused by hand still reads available
        message = f'ReplicaSet "{rs_name}" has successfully progressed.'
        return cond.make(prev, t, "True", names.NEW_RS_AVAILABLE, message, now)
    if pc.paused(ctx):
        return cond.make(prev, t, "Unknown", names.ROLLOUT_PAUSED, "Rollout is paused", now)
    if pc.retrying:
        return cond.make(prev, t, "Unknown", names.ROLLOUT_RETRY, "Retrying Rollout after abort", now)
    if pc.was_paused:
        return cond.make(prev, t, "Unknown", names.ROLLOUT_RESUMED, "Rollout is resumed", now)
    if roles.new.created:
        return cond.make(prev, t, "True", names.NEW_RS_CREATED, f'Created new replica set "{rs_name}"', now)
    if o.timed_out:
        message = f'ReplicaSet "{rs_name}" has timed out progressing.'
        return cond.make(prev, t, "False", names.PROGRESS_DEADLINE_EXCEEDED, message, now)
    message = f'ReplicaSet "{rs_name}" is progressing.'
    return cond.make(prev, t, "True", names.RS_UPDATED, message, now, touch=cond.progress_made(old, new))


def _abort_message(o: Outcome, prev: dict[str, Any] | None) -> str:
    """The aborted Progressing condition's message. As Argo, it keeps the message it was made with
    (naming the timeout or analysis that caused the abort), which later reconciles no longer know."""
    pc = o.pause
    if not pc.abort_message and prev is not None and prev.get("reason") == names.ROLLOUT_ABORTED:
        return str(prev.get("message") or events.aborted(o.roles.new.revision))
    return events.aborted(o.roles.new.revision, pc.abort_message)


def _make(ctx: Ctx, type_: str, true: bool, reason: str, message: str) -> dict[str, Any]:
    """A True/False condition, keeping the times of the one read while it does not change."""
    status = "True" if true else "False"
    return cond.make(cond.get(ctx.status_in, type_), type_, status, reason, message, ctx.now_s)


def _conditions(ctx: Ctx, o: Outcome, new: dict[str, Any]) -> list[dict[str, Any]]:
    roles, replicas = o.roles, ctx.replicas
    cur = roles.new_hash
    out: dict[str, dict[str, Any]] = {names.COND_PROGRESSING: _progressing(ctx, o, new)}
    # Argo: available when the active ReplicaSet is saturated (sized for spec.replicas, all available);
    # a canary when its ReplicaSets together have spec.replicas pods available.
    if o.canary is not None:
        available = int(new.get("availableReplicas") or 0) >= replicas
    else:
        available = is_saturated(ctx.rs_by_hash(roles.active), replicas)
    out[names.COND_AVAILABLE] = _make(
        ctx,
        names.COND_AVAILABLE,
        available,
        names.AVAILABLE_REASON,
        "Rollout has minimum availability" if available else "Rollout does not have minimum availability",
    )
    paused = _paused_condition(ctx, o)
    if paused is not None:
        out[names.COND_PAUSED] = paused
    healthy = _healthy_condition(ctx, o, new)
    if healthy is not None:
        out[names.COND_HEALTHY] = healthy
    completed = roles.stable is not None and roles.stable == cur
    t = names.COND_COMPLETED
    out[t] = _make(ctx, t, completed, names.ROLLOUT_COMPLETED, names.ROLLOUT_COMPLETED)
    failure = replica_failure(ctx, roles.new_rs)
    if failure is not None:
        t = names.COND_REPLICA_FAILURE
        out[t] = cond.make(
            cond.get(ctx.status_in, t),
            t,
            str(failure.get("status") or "True"),
            str(failure.get("reason") or ""),
            str(failure.get("message") or ""),
            ctx.now_s,
        )
    return cond.ordered(out)


def _paused_condition(ctx: Ctx, o: Outcome) -> dict[str, Any] | None:
    """Argo's Paused condition: True while paused (a pause condition or spec.paused), False once
    resumed, always with reason RolloutPaused; absent until the first pause. An abort leaves it as
    it was (an aborted update that was paused still says Paused True) until the abort is over."""
    t = names.COND_PAUSED
    old = cond.get(ctx.status_in, t)
    progressing = cond.get(ctx.status_in, names.COND_PROGRESSING) or {}
    if o.pause.abort or progressing.get("reason") == names.ROLLOUT_ABORTED:
        return old
    if o.pause.paused(ctx):
        return _make(ctx, t, True, names.ROLLOUT_PAUSED, "Rollout is paused")
    if old is None:
        return None
    return _make(ctx, t, False, names.ROLLOUT_PAUSED, "Rollout is paused")


def _healthy_condition(ctx: Ctx, o: Outcome, new: dict[str, Any]) -> dict[str, Any] | None:
    """Argo's Healthy condition: True when everything is updated and available and both Services
    select the new RS, and the rollout is not paused (so `kubectl wait --for=condition=Healthy`
    does not return on a paused rollout); False once it was True and no longer is; absent before."""
    roles, replicas, cur = o.roles, ctx.replicas, o.roles.new_hash
    healthy = (
        int(new.get("updatedReplicas") or 0) == replicas
        and int(new.get("availableReplicas") or 0) == replicas
        and roles.active == cur
        and (not ctx.rollout.bg.preview_service or roles.preview == cur)
        and not o.pause.abort
        and not o.pause.paused(ctx)
        and (o.canary is None or _canary_done(ctx, o, new))
    )
    if not healthy and cond.get(ctx.status_in, names.COND_HEALTHY) is None:
        return None
    message = "Rollout is healthy" if healthy else "Rollout is not healthy"
    return _make(ctx, names.COND_HEALTHY, healthy, names.ROLLOUT_HEALTHY, message)


def _canary_done(ctx: Ctx, o: Outcome, new: dict[str, Any]) -> bool:
    """Argo's canary completion: every step run, and no pods left beyond spec.replicas."""
    return o.canary is not None and o.canary.steps_done and int(new.get("replicas") or 0) == ctx.replicas


def replica_failure(ctx: Ctx, new_rs: ReplicaSetState | None) -> dict[str, Any] | None:
    """Argo's getReplicaFailures: the ReplicaFailure condition (status True) a ReplicaSet reports
    (e.g. FailedCreate), the new RS's first, else any other's; None when none fails, so the
    Rollout's ReplicaFailure condition goes away once the ReplicaSets recover."""
    ordered_rss = ([new_rs] if new_rs is not None else []) + [rs for rs in ctx.rss if rs is not new_rs]
    for rs in ordered_rss:
        for c in (rs.obj.get("status") or {}).get("conditions") or []:
            if c.get("type") == names.COND_REPLICA_FAILURE and c.get("status") == "True":
                return dict(c)
    return None


def build(ctx: Ctx, o: Outcome) -> dict[str, Any]:
    """The full status (wire form). Fields we do not own (canary) are kept."""
    s: dict[str, Any] = dict(ctx.status_in)
    roles, pc = o.roles, o.pause
    gen = ctx.rollout.metadata.generation
    s["observedGeneration"] = str(gen) if gen is not None else s.get("observedGeneration")
    s["currentPodHash"] = roles.new_hash
    s["stableRS"] = roles.stable
    s["blueGreen"] = _blue_green(s, o) if o.canary is None else {}
    _canary_block(s, o)
    s["pauseConditions"] = [p.wire() for p in pc.conditions] or None
    s["controllerPause"] = True if pc.controller_pause else None
    s["abort"] = True if pc.abort else None
    s["abortedAt"] = pc.aborted_at if pc.abort else None
    s["promoteFull"] = True if pc.promote_full else None
    s["restartedAt"] = o.restarted_at
    s.update(counts(ctx, roles.new_rs, ctx.rs_by_hash(roles.active) if o.canary is None else None))
    s["conditions"] = _conditions(ctx, o, s)
    s["phase"], s["message"] = phase_rules.phase(ctx.rollout, RolloutStatus.model_validate(s))
    out = _omit_empty(s)
    if not pc.abort and ctx.status_in.get("abort") is False:
        # A retry writes abort: false; Argo's controller never writes abort itself unless it is
        # true (omitempty), so the user's false stays in the stored status. So does ours.
        out["abort"] = False
    if o.canary is not None and o.canary.step_index is not None:
        out["currentStepIndex"] = o.canary.step_index  # 0 is a value here (Argo: a pointer)
    return out


def _canary_block(s: dict[str, Any], o: Outcome) -> None:
    """A canary's own fields (its step index is written after the empty values are dropped)."""
    if o.canary is not None:
        s["canary"] = o.canary.canary
        s["currentStepHash"] = o.canary.step_hash
    else:  # a Rollout switched from canary to blueGreen keeps nothing of it
        s["canary"], s["currentStepHash"] = {}, None
    s["currentStepIndex"] = None


def _blue_green(s: dict[str, Any], o: Outcome) -> dict[str, Any]:
    """status.blueGreen: the selectors, the preview checkpoint, the current analysis runs."""
    bgst = dict(s.get("blueGreen") or {})
    bgst["activeSelector"] = o.roles.active
    bgst["previewSelector"] = o.roles.preview
    bgst["scaleUpPreviewCheckPoint"] = True if o.pause.checkpoint else None
    bgst["prePromotionAnalysisRunStatus"] = o.pre_run
    bgst["postPromotionAnalysisRunStatus"] = o.post_run
    return {k: v for k, v in bgst.items() if v is not None}


def _omit_empty(s: dict[str, Any]) -> dict[str, Any]:
    """Argo omits empty values (omitempty); so do we, so that a status compares equal when
    unchanged. Its status always carries the canary block, empty for a blue-green rollout (a Go
    struct, which omitempty does not drop), and tools reading it with strict schemas expect it."""
    out = {k: v for k, v in s.items() if v not in (None, "", 0, False)}
    out.setdefault("canary", {})
    return out


def invalid(ctx: Ctx, message: str) -> dict[str, Any]:
    """The status for an InvalidSpec: the old status plus the condition; phase Degraded."""
    s: dict[str, Any] = dict(ctx.status_in)
    gen = ctx.rollout.metadata.generation
    if gen is not None:
        s["observedGeneration"] = str(gen)
    conds = {c["type"]: dict(c) for c in s.get("conditions") or [] if "type" in c}
    t = names.COND_INVALID_SPEC
    conds[t] = cond.make(conds.get(t), t, "True", names.INVALID_SPEC_REASON, message, ctx.now_s)
    s["conditions"] = cond.ordered(conds)
    s["phase"], s["message"] = phase_rules.phase(ctx.rollout, RolloutStatus.model_validate(s))
    return _omit_empty(s)
