"""A canary's analysis steps: the AnalysisRun of the current ``analysis`` step, with the canary's
"when" rules (docs/canary.md "Analysis"), on the run machinery of ``engine.analysis``.

- The current run is the one status.canary.currentStepAnalysisRunStatus names; every other run
  the Rollout owns is cancelled while going and deleted beyond the history limits.
- At an ``analysis`` step a run is made (``<rollout>-<hash>-<revision>-<step index>``, labelled
  rollout-type Step and step-index); a run of another step is cancelled; nothing changes while
  paused or aborted.
- Successful completes the step; Failed or Error aborts the update; Inconclusive adds the
  InconclusiveAnalysisRun pause, which halts the update until a promote (which skips the step).

Background analysis (canary.analysis) is not run yet (docs/canary.md "Not yet").
"""

from __future__ import annotations

from typing import Any

from ..model import names
from ..model.analysis import PHASE_ERROR, PHASE_FAILED, PHASE_INCONCLUSIVE, PHASE_SUCCESSFUL
from ..model.rollout import PauseCondition
from . import analysis
from .canarysteps import Steps
from .context import Ctx
from .pause import PauseContext
from .roles import Roles
from .types import AnalysisRunState, CreateAnalysisRun, DeleteAnalysisRun


def _current_name(ctx: Ctx) -> str:
    st = ctx.status.canary
    run_status: dict[str, Any] = (st.current_step_analysis_run_status if st is not None else None) or {}
    return str(run_status.get("name") or "")


def reconcile(ctx: Ctx, roles: Roles, pc: PauseContext, steps: Steps) -> AnalysisRunState | None:
    """Create, cancel and clean up the step runs; turn the current run's verdict into an abort or
    a pause. Returns the current step run (for the step's completion and status)."""
    name = "" if roles.template_changed or steps.reset else _current_name(ctx)
    current = next((r for r in ctx.observed.analysis_runs if name and r.name == name), None)
    others = [r for r in ctx.observed.analysis_runs if r is not current]
    run = _reconcile_step(ctx, roles, pc, steps, current)
    if current is not None and run is not current:
        others.append(current)
    analysis._terminate(ctx, *others)
    for old in analysis._beyond_history(ctx, others):
        ctx.actions.append(DeleteAnalysisRun(name=old.name))
    return run


def _reconcile_step(
    ctx: Ctx, roles: Roles, pc: PauseContext, steps: Steps, current: AnalysisRunState | None
) -> AnalysisRunState | None:
    if roles.new_is_stable or pc.promote_full:
        return None
    if (pc.conditions or pc.abort) and not pc.retrying:
        return current  # paused or aborted: as it is
    step = steps.current
    if step is None or step.analysis is None or not step.analysis.templates:
        return None
    if current is not None and current.labels.get(names.STEP_INDEX_LABEL) != str(steps.index):
        return _create(ctx, roles, steps)  # a run of another step
    if current is None or pc.retrying or _promoted_inconclusive(ctx, current):
        return _create(ctx, roles, steps)
    _verdict(ctx, pc, current)
    return current


def _promoted_inconclusive(ctx: Ctx, run: AnalysisRunState) -> bool:
    """A promote lifted the InconclusiveAnalysisRun pause of this run: measure again."""
    return (
        run.phase == PHASE_INCONCLUSIVE
        and bool(ctx.status.controller_pause)
        and not ctx.status.pause_conditions
    )


def _create(ctx: Ctx, roles: Roles, steps: Steps) -> AnalysisRunState | None:
    step = steps.current
    if step is None or step.analysis is None:
        return None
    kind = analysis.RunKind(
        str(steps.index), names.ROLLOUT_TYPE_STEP, f"spec.strategy.canary.steps[{steps.index}].analysis"
    )
    try:
        body = analysis.run_body(ctx, roles, step.analysis, kind)
    except analysis.AnalysisSpecError:
        return None
    body["metadata"]["labels"][names.STEP_INDEX_LABEL] = str(steps.index)
    run_name = body["metadata"]["name"]
    ctx.actions.append(CreateAnalysisRun(name=run_name, body=body))
    meta = body["metadata"]
    return AnalysisRunState(
        name=run_name, labels=meta["labels"], phase="", message="", terminate=False,
        creation_timestamp=ctx.now_s, obj=body,
    )  # fmt: skip


def _verdict(ctx: Ctx, pc: PauseContext, run: AnalysisRunState) -> None:
    """Inconclusive pauses, Failed or Error aborts (Argo's reconcileStepBasedAnalysisRun)."""
    if run.phase == PHASE_INCONCLUSIVE:
        if not any(p.reason == names.PAUSE_INCONCLUSIVE_ANALYSIS for p in pc.conditions):
            pause = PauseCondition(reason=names.PAUSE_INCONCLUSIVE_ANALYSIS, start_time=ctx.now_s)
            pc.conditions.append(pause)
            pc.controller_pause = True
    elif run.phase in (PHASE_FAILED, PHASE_ERROR):
        message = "Step-based analysis phase error/failed"
        if run.message:
            message += f": {run.message}"
        pc.request_abort(message)


def step_succeeded(run: AnalysisRunState | None) -> bool:
    """The analysis step is done: its run succeeded."""
    return run is not None and run.phase == PHASE_SUCCESSFUL
