"""The status to write: every field of ARGO-COMPAT "Status", conditions, phase and message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..model import names
from . import conditions as cond
from . import phase as phase_rules
from .context import Ctx
from .pause import PauseState
from .replicaset import is_saturated
from .types import ReplicaSetState


@dataclass
class Decisions:
    """What the reconcile decided, as the status needs it."""

    cur: str
    new_rs: ReplicaSetState | None
    new_rev: int
    created: bool
    stable: str | None
    active: str | None
    preview: str | None
    checkpoint: bool
    pause: PauseState
    abort: bool
    aborted_at: str | None
    promote_full: bool
    restarted_at: str | None
    retrying: bool
    timed_out: bool
    was_paused: bool
    now_paused: bool


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


def _conditions(ctx: Ctx, d: Decisions, new: dict[str, Any]) -> list[dict[str, Any]]:
    old = ctx.status_in
    now = ctx.now_s
    replicas = ctx.replicas
    rs_name = d.new_rs.name if d.new_rs is not None else f"{ctx.name}-{d.cur}"
    out: dict[str, dict[str, Any]] = {}

    t = names.COND_PROGRESSING
    prev = cond.get(old, t)
    complete = d.stable == d.cur and d.active == d.cur and is_saturated(d.new_rs, replicas)
    if d.abort:
        c = cond.make(
            prev, t, "False", names.ROLLOUT_ABORTED, f"Rollout aborted update to revision {d.new_rev}", now
        )
    elif d.now_paused:
        c = cond.make(prev, t, "Unknown", names.ROLLOUT_PAUSED, "Rollout is paused", now)
    elif d.retrying:
        c = cond.make(prev, t, "Unknown", names.ROLLOUT_RETRY, "Retrying Rollout after abort", now)
    elif d.was_paused:
        c = cond.make(prev, t, "Unknown", names.ROLLOUT_RESUMED, "Rollout is resumed", now)
    elif complete:
        c = cond.make(
            prev,
            t,
            "True",
            names.NEW_RS_AVAILABLE,
            f'ReplicaSet "{rs_name}" has successfully progressed.',
            now,
        )
    elif d.created:
        c = cond.make(prev, t, "True", names.NEW_RS_CREATED, f'Created new replica set "{rs_name}"', now)
    elif d.timed_out:
        c = cond.make(
            prev,
            t,
            "False",
            names.PROGRESS_DEADLINE_EXCEEDED,
            f'ReplicaSet "{rs_name}" has timed out progressing.',
            now,
        )
    else:
        progressed = cond.progress_made(old, new)
        c = cond.make(
            prev,
            t,
            "True",
            names.RS_UPDATED,
            f'ReplicaSet "{rs_name}" is progressing.',
            now,
            touch=progressed,
        )
    out[t] = c

    t = names.COND_AVAILABLE
    # Argo: available when the active ReplicaSet is saturated (sized for spec.replicas, all available).
    if is_saturated(ctx.rs_by_hash(d.active), replicas):
        out[t] = cond.make(
            cond.get(old, t), t, "True", names.AVAILABLE_REASON, "Rollout has minimum availability", now
        )
    else:
        out[t] = cond.make(
            cond.get(old, t),
            t,
            "False",
            names.AVAILABLE_REASON,
            "Rollout does not have minimum availability",
            now,
        )

    t = names.COND_PAUSED
    if d.now_paused:
        out[t] = cond.make(cond.get(old, t), t, "True", names.ROLLOUT_PAUSED, "Rollout is paused", now)
    elif cond.get(old, t) is not None:
        out[t] = cond.make(cond.get(old, t), t, "False", names.ROLLOUT_RESUMED, "Rollout is resumed", now)

    t = names.COND_HEALTHY
    bg = ctx.rollout.bg
    healthy = (
        int(new.get("updatedReplicas") or 0) == replicas
        and int(new.get("availableReplicas") or 0) == replicas
        and d.active == d.cur
        and (not bg.preview_service or d.preview == d.cur)
        and not d.abort
    )
    if healthy:
        out[t] = cond.make(cond.get(old, t), t, "True", names.ROLLOUT_HEALTHY, "Rollout is healthy", now)
    else:
        out[t] = cond.make(cond.get(old, t), t, "False", names.ROLLOUT_HEALTHY, "Rollout is not healthy", now)

    t = names.COND_COMPLETED
    if d.stable is not None and d.stable == d.cur:
        out[t] = cond.make(cond.get(old, t), t, "True", names.ROLLOUT_COMPLETED, names.ROLLOUT_COMPLETED, now)
    else:
        out[t] = cond.make(
            cond.get(old, t), t, "False", names.ROLLOUT_COMPLETED, names.ROLLOUT_COMPLETED, now
        )
    failure = replica_failure(ctx, d.new_rs)
    if failure is not None:
        t = names.COND_REPLICA_FAILURE
        out[t] = cond.make(
            cond.get(old, t),
            t,
            str(failure.get("status") or "True"),
            str(failure.get("reason") or ""),
            str(failure.get("message") or ""),
            now,
        )
    return cond.ordered(out)


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


def build(ctx: Ctx, d: Decisions) -> dict[str, Any]:
    """The full status (wire form). Fields we do not own (analysis run status, canary) are kept."""
    s: dict[str, Any] = dict(ctx.status_in)
    gen = ctx.rollout.metadata.generation
    s["observedGeneration"] = str(gen) if gen is not None else s.get("observedGeneration")
    s["currentPodHash"] = d.cur
    s["stableRS"] = d.stable
    bgst = dict(s.get("blueGreen") or {})
    bgst["activeSelector"] = d.active
    bgst["previewSelector"] = d.preview
    bgst["scaleUpPreviewCheckPoint"] = True if d.checkpoint else None
    s["blueGreen"] = {k: v for k, v in bgst.items() if v is not None}
    s["pauseConditions"] = d.pause.conditions or None
    s["controllerPause"] = True if d.pause.controller_pause else None
    s["abort"] = True if d.abort else None
    s["abortedAt"] = d.aborted_at if d.abort else None
    s["promoteFull"] = True if d.promote_full else None
    s["restartedAt"] = d.restarted_at
    s.update(counts(ctx, d.new_rs, ctx.rs_by_hash(d.active)))
    s["conditions"] = _conditions(ctx, d, s)
    s["phase"], s["message"] = phase_rules.phase(ctx.rollout, s)
    # Argo omits empty values (omitempty); so do we, so that a status compares equal when unchanged.
    return {k: v for k, v in s.items() if v not in (None, "", 0, False)}


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
    s["phase"], s["message"] = phase_rules.phase(ctx.rollout, s)
    return {k: v for k, v in s.items() if v not in (None, "", 0, False)}
