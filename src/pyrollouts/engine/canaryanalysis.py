"""A canary's analysis: the AnalysisRun of the current ``analysis`` step and the background run
(``canary.analysis``), with the canary's "when" rules (docs/canary.md "Analysis"), on the run
machinery of ``engine.analysis``.

- The current run is the one status.canary.currentStepAnalysisRunStatus names; every other run
  the Rollout owns is cancelled while going and deleted beyond the history limits.
- At an ``analysis`` step a run is made (``<rollout>-<hash>-<revision>-<step index>``, labelled
  rollout-type Step and step-index); a run of another step is cancelled; nothing changes while
  paused or aborted.
- Successful completes the step; Failed or Error aborts the update; Inconclusive adds the
  InconclusiveAnalysisRun pause, which halts the update until a promote (which skips the step).

- The background run (``<rollout>-<hash>-<revision>``, rollout-type Background) goes from
  ``startingStep`` (default the first) until the update completes; its verdict is the same.
  status.canary.currentBackgroundAnalysisRunStatus names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..model import names
from ..model.analysis import PHASE_INCONCLUSIVE, PHASE_SUCCESSFUL
from ..model.rollout import RolloutAnalysis
from . import analysis
from .canarysteps import Steps
from .context import Ctx
from .pause import PauseContext
from .roles import Roles
from .types import AnalysisRunState, CreateAnalysisRun, DeleteAnalysisRun


@dataclass
class Runs:
    """The current step and background runs after this step (None: none)."""

    step: AnalysisRunState | None = None
    background: AnalysisRunState | None = None


def _current(ctx: Ctx, field: str, forget: bool) -> AnalysisRunState | None:
    """The run status.canary names in ``field`` (none when the update started over)."""
    st = ctx.status.canary
    run_status: dict[str, Any] = (getattr(st, field) if st is not None else None) or {}
    name = "" if forget else str(run_status.get("name") or "")
    return next((r for r in ctx.observed.analysis_runs if name and r.name == name), None)


def reconcile(ctx: Ctx, roles: Roles, pc: PauseContext, steps: Steps) -> Runs:
    """Create, cancel and clean up the step and background runs; turn a current run's verdict
    into an abort or a pause. Returns the current runs (for the step's completion and status)."""
    forget = roles.template_changed or steps.reset
    step_run = _current(ctx, "current_step_analysis_run_status", forget)
    bg_run = _current(ctx, "current_background_analysis_run_status", forget)
    runs = Runs(
        _reconcile_step(ctx, roles, pc, steps, step_run), _reconcile_background(ctx, roles, pc, steps, bg_run)
    )
    kept = {r.name for r in (runs.step, runs.background) if r is not None}
    others = [r for r in ctx.observed.analysis_runs if r.name not in kept]
    analysis._terminate(ctx, *others)
    for old in analysis._beyond_history(ctx, others):
        ctx.actions.append(DeleteAnalysisRun(name=old.name))
    return runs


def _reconcile_background(
    ctx: Ctx, roles: Roles, pc: PauseContext, steps: Steps, current: AnalysisRunState | None
) -> AnalysisRunState | None:
    """Argo's reconcileBackgroundAnalysisRun: from startingStep until the update completes."""
    spec = ctx.rollout.canary.analysis
    if spec is None or not spec.templates or roles.new_is_stable or pc.promote_full:
        return None
    if pc.abort and not pc.retrying:
        return current
    if steps.index < (spec.starting_step or 0):
        return None
    if any(p.reason == names.PAUSE_INCONCLUSIVE_ANALYSIS for p in pc.conditions):
        return current
    if current is None or pc.retrying or _promoted_inconclusive(ctx, current):
        kind = analysis.RunKind("", names.ROLLOUT_TYPE_BACKGROUND, "spec.strategy.canary.analysis")
        return _create(ctx, roles, spec, kind, {})
    analysis.verdict(ctx, pc, current, "Background")
    return current


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
    stale = current is not None and current.labels.get(names.STEP_INDEX_LABEL) != str(steps.index)
    if current is None or stale or pc.retrying or _promoted_inconclusive(ctx, current):
        kind = analysis.RunKind(
            str(steps.index), names.ROLLOUT_TYPE_STEP, f"spec.strategy.canary.steps[{steps.index}].analysis"
        )
        return _create(ctx, roles, step.analysis, kind, {names.STEP_INDEX_LABEL: str(steps.index)})
    analysis.verdict(ctx, pc, current, "Step-based")
    return current


def _promoted_inconclusive(ctx: Ctx, run: AnalysisRunState) -> bool:
    """A promote lifted the InconclusiveAnalysisRun pause of this run: measure again."""
    return (
        run.phase == PHASE_INCONCLUSIVE
        and bool(ctx.status.controller_pause)
        and not ctx.status.pause_conditions
    )


def _create(
    ctx: Ctx, roles: Roles, spec: RolloutAnalysis, kind: analysis.RunKind, labels: dict[str, str]
) -> AnalysisRunState | None:
    try:
        body = analysis.run_body(ctx, roles, spec, kind)
    except analysis.AnalysisSpecError:
        return None
    body["metadata"]["labels"].update(labels)
    run_name = body["metadata"]["name"]
    ctx.actions.append(CreateAnalysisRun(name=run_name, body=body))
    meta = body["metadata"]
    return AnalysisRunState(
        name=run_name, labels=meta["labels"], phase="", message="", terminate=False,
        creation_timestamp=ctx.now_s, obj=body,
    )  # fmt: skip


def step_succeeded(run: AnalysisRunState | None) -> bool:
    """The analysis step is done: its run succeeded."""
    return run is not None and run.phase == PHASE_SUCCESSFUL
