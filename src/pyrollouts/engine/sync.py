"""The engine's entry point: ``plan(rollout, observed, now) -> Plan`` (Argo's sync loop, minus I/O)."""

from __future__ import annotations

from datetime import datetime

from ..model import names
from ..model.rollout import Rollout, RolloutStatus
from . import analysis, bluegreen, canary, events, status, timeutil, validation, workload
from .context import Ctx
from .types import Observed, Plan, UpdateRollout


def plan(rollout: Rollout, observed: Observed, now: datetime) -> Plan:
    """Decide what to do for one Rollout, given what was observed at ``now``.

    Pure and deterministic: no I/O, no clock, no randomness. Idempotent: once the world has caught
    up with a plan, planning again yields no write actions and the same status. The controller
    applies ``actions`` in order, then writes ``status`` (only what changed) through the status
    subresource, then plans again after ``requeue_after`` seconds (None: only on a change)."""
    now = timeutil.utc(now)
    # spec.workloadRef: plan with the Deployment's template; a reference that cannot be used is an
    # InvalidSpec, reported on the Rollout as written.
    rollout, ref_problem = workload.resolve(rollout, observed)
    status_in = rollout.status.wire() if rollout.status is not None else {}
    ctx = Ctx(rollout=rollout, observed=observed, now=now, status_in=status_in)
    if observed.first_seen:
        ctx.event(names.ROLLOUT_ADDED_TO_INFORMER, events.added_to_informer(ctx.namespace, ctx.name))
    if rollout.spec.replicas is None:
        ctx.actions.append(UpdateRollout(replicas=1))  # Argo writes the default back into the spec
    problem = ref_problem or validation.invalid_spec(rollout, observed) or analysis_problem(ctx)
    if problem is not None:
        new_status = status.invalid(ctx, problem)
        ctx.requeues.append(float(names.INVALID_SPEC_RETRY_SECONDS))
    elif rollout.is_canary:
        new_status = canary.reconcile(ctx)
    else:
        new_status = bluegreen.reconcile(ctx)
    waits = [w for w in ctx.requeues if w > 0]
    return Plan(
        actions=tuple(ctx.actions),
        status=RolloutStatus.model_validate(new_status),
        requeue_after=min(waits) if waits else None,
    )


def analysis_problem(ctx: Ctx) -> str | None:
    """An analysis that cannot make its AnalysisRun (a template missing, an arg never supplied):
    the InvalidSpec message, as Argo's (``... Invalid value: "name": AnalysisTemplate 'name' not
    found``)."""
    bad = analysis.validate(ctx)
    if bad is None:
        return None
    path, value, why = bad
    return validation.invalid(ctx.name, path, value, why)
