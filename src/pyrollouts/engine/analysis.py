"""The Rollout's analysis step: blue-green pre- and post-promotion AnalysisRuns, as Argo's
reconcileAnalysisRuns decides them (docs/analysis.md "The Rollout side").

- The **current** runs are the ones status.blueGreen.pre/postPromotionAnalysisRunStatus name;
  every other run the Rollout owns is **other**: cancelled (spec.terminate) when still going, and
  deleted beyond spec.analysis's history limits (or when its ReplicaSet is gone).
- Nothing runs when the update is over or never started (the new RS is stable: a first deploy
  included), on abort, on promote --full or on a fast rollback: current runs are cancelled.
- The **pre** run starts once the preview ReplicaSet is saturated (at previewReplicaCount when
  set) while the active Service is still on the old one; the BlueGreenPause and the switch wait
  for it to succeed. The **post** run starts once the active Service is on the new ReplicaSet; the
  new ReplicaSet becomes stable only when it succeeds.
- A run that ends Failed or Error aborts the update; Inconclusive adds the
  ``InconclusiveAnalysisRun`` pause, which halts the update until a promote (that starts a new run).
- A new run also starts on retry (abortedAt set, abort cleared).

Pure: it reads the Observed runs and templates and appends actions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..model import names
from ..model.analysis import (
    PHASE_ERROR,
    PHASE_FAILED,
    PHASE_INCONCLUSIVE,
    PHASE_SUCCESSFUL,
)
from ..model.analysisargs import ArgsError, merge_args
from ..model.rollout import PauseCondition, RolloutAnalysis
from .analysisrun import is_completed
from .context import Ctx
from .pause import PauseContext
from .replicaset import is_saturated
from .roles import Roles
from .types import AnalysisRunState, CreateAnalysisRun, DeleteAnalysisRun, TerminateAnalysisRun

_UNSUCCESSFUL = frozenset({PHASE_FAILED, PHASE_ERROR, PHASE_INCONCLUSIVE})
_PRE, _POST = "prePromotionAnalysis", "postPromotionAnalysis"
_TEMPLATE_LISTS = ("metrics", "args", "dryRun", "measurementRetention")


class AnalysisSpecError(ValueError):
    """A Rollout analysis that cannot make a run (a template missing, an arg never supplied, two
    metrics with one name): the Rollout's InvalidSpec, with the field path in ``path``."""

    def __init__(self, path: str, value: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.value = value


@dataclass
class Runs:
    """The current pre- and post-promotion runs after this step (None: none)."""

    pre: AnalysisRunState | None = None
    post: AnalysisRunState | None = None


def _phase(run: AnalysisRunState | None) -> str:
    return run.phase if run is not None else ""


def pre_completed(ctx: Ctx, runs: Runs) -> bool:
    """Argo's completedPrePromotionAnalysis: no pre-promotion analysis, or its run succeeded."""
    return ctx.rollout.bg.pre_promotion_analysis is None or _phase(runs.pre) == PHASE_SUCCESSFUL


def post_completed(ctx: Ctx, runs: Runs) -> bool:
    """No post-promotion analysis, or its run succeeded: the new RS may become stable."""
    return ctx.rollout.bg.post_promotion_analysis is None or _phase(runs.post) == PHASE_SUCCESSFUL


def _inconclusive(conditions: list[PauseCondition] | None) -> bool:
    """Paused on an inconclusive analysis (the InconclusiveAnalysisRun pause condition)."""
    return any(p.reason == names.PAUSE_INCONCLUSIVE_ANALYSIS for p in conditions or [])


def halted(ctx: Ctx, pc: PauseContext) -> bool:
    """Argo's haltProgress: spec.paused, or paused on an inconclusive analysis."""
    return bool(ctx.rollout.spec.paused) or _inconclusive(pc.conditions)


def holds_old_replicasets(ctx: Ctx, roles: Roles, runs: Runs) -> bool:
    """Old ReplicaSets are not scaled down while a post-promotion run has not succeeded and no
    scaleDownDelaySeconds is set (Argo), nor while paused on an inconclusive analysis."""
    if _inconclusive(ctx.status.pause_conditions):
        return True
    bg = ctx.rollout.bg
    if bg.post_promotion_analysis is None or bg.scale_down_delay_seconds is not None:
        return False
    if _skip_post(ctx, roles, runs.post):
        return False
    return _phase(runs.post) != PHASE_SUCCESSFUL


# -- the step ------------------------------------------------------------------------------------


def reconcile(ctx: Ctx, roles: Roles, pc: PauseContext, *, fast_rollback: bool) -> Runs:
    """Create, cancel and clean up the Rollout's AnalysisRuns; turn a finished run's verdict into
    an abort or a pause. Returns the current runs (for the pause, switch and stable steps)."""
    pre, post, others = _split(ctx, roles)
    cancel = roles.new_is_stable or pc.abort or pc.promote_full or fast_rollback
    if cancel:
        _terminate(ctx, pre, post)
        runs = Runs(pre, post)
    else:
        runs = Runs()
        runs.pre = _reconcile_one(ctx, roles, pc, pre, _PRE)
        verdict(ctx, pc, runs.pre, "Blue/green pre-promotion")
        runs.post = _reconcile_one(ctx, roles, pc, post, _POST)
        verdict(ctx, pc, runs.post, "Blue/green post-promotion")
    current = {r.name for r in (runs.pre, runs.post) if r is not None}
    others = [r for r in others if r.name not in current]
    _terminate(ctx, *others)
    for run in _beyond_history(ctx, others):
        ctx.actions.append(DeleteAnalysisRun(name=run.name))
    _status_events(ctx, runs)
    return runs


def _split(
    ctx: Ctx, roles: Roles
) -> tuple[AnalysisRunState | None, AnalysisRunState | None, list[AnalysisRunState]]:
    """(current pre run, current post run, the others), by the names status gives. A new template
    starts over: the runs of the update it replaces are all others."""
    bgst = ctx.status.blue_green
    pre_name = _name((bgst.pre_promotion_analysis_run_status if bgst else None) or {})
    post_name = _name((bgst.post_promotion_analysis_run_status if bgst else None) or {})
    if roles.template_changed:
        pre_name = post_name = ""
    pre = post = None
    others: list[AnalysisRunState] = []
    for run in ctx.observed.analysis_runs:
        if pre_name and run.name == pre_name:
            pre = run
        elif post_name and run.name == post_name:
            post = run
        else:
            others.append(run)
    return pre, post, others


def _name(run_status: Mapping[str, Any]) -> str:
    return str(run_status.get("name") or "")


def _terminate(ctx: Ctx, *runs: AnalysisRunState | None) -> None:
    """Cancel the runs still going (Argo's cancelAnalysisRuns)."""
    for run in runs:
        if run is not None and not run.terminate and not is_completed(run.phase):
            ctx.actions.append(TerminateAnalysisRun(name=run.name))


def _reconcile_one(
    ctx: Ctx, roles: Roles, pc: PauseContext, current: AnalysisRunState | None, which: str
) -> AnalysisRunState | None:
    """reconcilePre/PostPromotionAnalysisRun: the run to keep as current, created when due."""
    spec = _spec(ctx, which)
    if spec is None or not spec.templates:
        _terminate(ctx, current)
        return None
    skip = _skip_pre(ctx, roles, current) if which == _PRE else _skip_post(ctx, roles, current)
    if skip:
        _terminate(ctx, current)
        return current
    if _inconclusive(ctx.status.pause_conditions):
        return current
    if not _needs_new(ctx, current):
        return current
    return _create(ctx, roles, spec, which)


def _spec(ctx: Ctx, which: str) -> RolloutAnalysis | None:
    bg = ctx.rollout.bg
    return bg.pre_promotion_analysis if which == _PRE else bg.post_promotion_analysis


def _status_selector(ctx: Ctx) -> str:
    bgst = ctx.status.blue_green
    return (bgst.active_selector if bgst is not None else None) or ""


def _skip_pre(ctx: Ctx, roles: Roles, current: AnalysisRunState | None) -> bool:
    """No pre run: the update is done or not started, the active Service is on the new RS already,
    or (none started yet) the preview RS is not at its size yet."""
    h = roles.new_hash if roles.new_rs is not None else ""
    active = _status_selector(ctx)
    if (ctx.status.stable_rs or "") == h or not active or active == h or not h:
        return True
    if current is not None:
        return False
    new_rs = roles.new_rs
    assert new_rs is not None
    count = ctx.rollout.bg.preview_replica_count
    if count is not None:
        return new_rs.replicas != count or new_rs.available_replicas != count
    return not is_saturated(new_rs, ctx.replicas)


def _skip_post(ctx: Ctx, roles: Roles, current: AnalysisRunState | None) -> bool:
    """No post run: the update is done, or the active Service is not on the new RS (as status
    last said), or (none started yet) the new RS is not saturated."""
    h = roles.new_hash if roles.new_rs is not None else ""
    if (ctx.status.stable_rs or "") == h or _status_selector(ctx) != h or not h:
        return True
    if current is not None:
        return False
    return not is_saturated(roles.new_rs, ctx.replicas)


def _needs_new(ctx: Ctx, current: AnalysisRunState | None) -> bool:
    """Argo's needsNewAnalysisRun: none yet; after a promote that lifted an inconclusive pause; or
    on retry after an abort."""
    if current is None:
        return True
    st = ctx.status
    reasons = {p.reason for p in st.pause_conditions or []}
    if st.controller_pause and names.PAUSE_BLUE_GREEN not in reasons:
        return current.phase == PHASE_INCONCLUSIVE
    return st.aborted_at is not None


def verdict(ctx: Ctx, pc: PauseContext, run: AnalysisRunState | None, what: str) -> None:
    """A run's verdict on the Rollout, for every kind of analysis (Argo's
    setPauseOrAbortForBlueGreen and the canary's step and background runs): Inconclusive pauses,
    Failed or Error aborts with "<what> analysis phase error/failed"."""
    if run is None:
        return
    if run.phase == PHASE_INCONCLUSIVE:
        if not _inconclusive(pc.conditions):
            pause = PauseCondition(reason=names.PAUSE_INCONCLUSIVE_ANALYSIS, start_time=ctx.now_s)
            pc.conditions.append(pause)
            pc.controller_pause = True
    elif run.phase in (PHASE_FAILED, PHASE_ERROR):
        message = f"{what} analysis phase error/failed"
        if run.message:
            message += f": {run.message}"
        pc.request_abort(message)


# -- creating a run ------------------------------------------------------------------------------


def _create(ctx: Ctx, roles: Roles, spec: RolloutAnalysis, which: str) -> AnalysisRunState | None:
    """Plan the run's create; returns it as it will be (phase empty). None when the analysis cannot
    make a run (validation reports that as InvalidSpec before this step runs)."""
    try:
        body = run_body(ctx, roles, spec, which)
    except AnalysisSpecError:
        return None
    name = body["metadata"]["name"]
    ctx.actions.append(CreateAnalysisRun(name=name, body=body))
    meta = body["metadata"]
    return AnalysisRunState(
        name=name, labels=meta["labels"], phase="", message="", terminate=False,
        creation_timestamp=ctx.now_s, obj=body,
    )  # fmt: skip


def _free_name(ctx: Ctx, base: str) -> str:
    """The run's name, with ``.1``, ``.2``... when a run of that name exists (a retry or a second
    run of the same revision), as Argo's collision counter gives it."""
    taken = {r.name for r in ctx.observed.analysis_runs}
    name, n = base, 1
    while name in taken:
        name, n = f"{base}.{n}", n + 1
    return name


@dataclass(frozen=True)
class RunKind:
    """What kind of run a Rollout analysis makes: its name's suffix, its rollout-type label and
    where its spec is (for errors)."""

    suffix: str
    type_label: str
    path: str


def kind_of(which: str) -> RunKind:
    """The blue-green pre- or post-promotion kind."""
    if which == _PRE:
        return RunKind("pre", names.ROLLOUT_TYPE_PRE_PROMOTION, f"spec.strategy.blueGreen.{which}")
    return RunKind("post", names.ROLLOUT_TYPE_POST_PROMOTION, f"spec.strategy.blueGreen.{which}")


def run_body(ctx: Ctx, roles: Roles, spec: RolloutAnalysis, which: str | RunKind) -> dict[str, Any]:
    """The AnalysisRun a Rollout analysis makes now: ``<rollout>-<hash>-<revision>-pre|post``
    (a canary step's: ``-<step index>``), owned by the Rollout, labelled with the hash and the
    rollout-type, its templates flattened and its args resolved (podTemplateHashValue, fieldRef)
    and merged. AnalysisSpecError otherwise."""
    revision = str(roles.new.revision)
    kind = which if isinstance(which, RunKind) else kind_of(which)
    infix = kind.suffix
    flat = flatten(ctx, spec, kind.path)
    try:
        args = merge_args(flat["args"], rollout_args(ctx, roles, spec.args or []))
    except ArgsError as e:
        raise AnalysisSpecError(f"{kind.path}.args", "", str(e)) from None
    run_spec: dict[str, Any] = {"metrics": flat["metrics"]}
    extra = {
        "args": args,
        "dryRun": [*(spec.dry_run or []), *flat["dryRun"]],
        "measurementRetention": [*(spec.measurement_retention or []), *flat["measurementRetention"]],
    }
    run_spec.update({k: v for k, v in extra.items() if v})
    labels, annotations = _run_metadata(ctx, roles, spec, kind.type_label)
    return {
        "apiVersion": names.API_VERSION,
        "kind": "AnalysisRun",
        "metadata": {
            "name": _free_name(
                ctx, f"{ctx.name}-{roles.new_hash}-{revision}" + (f"-{infix}" if infix else "")
            ),
            "namespace": ctx.namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": names.API_VERSION,
                    "kind": "Rollout",
                    "name": ctx.name,
                    "uid": ctx.rollout.metadata.uid or "",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": run_spec,
    }


def _run_metadata(
    ctx: Ctx, roles: Roles, spec: RolloutAnalysis, kind: str
) -> tuple[dict[str, str], dict[str, str]]:
    """The run's labels (hash, rollout-type, instance id, analysisRunMetadata's, the Rollout's
    selector) and annotations (the revision, analysisRunMetadata's)."""
    meta = spec.analysis_run_metadata or {}
    labels: dict[str, str] = {names.POD_TEMPLATE_HASH_LABEL: roles.new_hash, names.ROLLOUT_TYPE_LABEL: kind}
    instance = (ctx.rollout.metadata.labels or {}).get(names.INSTANCE_ID_LABEL)
    if instance:
        labels[names.INSTANCE_ID_LABEL] = instance
    labels.update({str(k): str(v) for k, v in (meta.get("labels") or {}).items()})
    sel = ctx.rollout.spec.selector
    labels.update((sel.match_labels or {}) if sel is not None else {})
    annotations = {names.REVISION_ANNOTATION: str(roles.new.revision)}
    annotations.update({str(k): str(v) for k, v in (meta.get("annotations") or {}).items()})
    return labels, annotations


def template_refs(spec: RolloutAnalysis | None) -> list[tuple[bool, str]]:
    """The (clusterScope, name) of each template a Rollout analysis names (not nested ones)."""
    if spec is None:
        return []
    return [(bool(t.get("clusterScope")), str(t.get("templateName") or "")) for t in spec.templates or []]


def flatten(ctx: Ctx, spec: RolloutAnalysis, where: str) -> dict[str, list[dict[str, Any]]]:
    """The templates a Rollout analysis names, nested ones included, each once, as one: their
    metrics, args, dryRun and measurementRetention in order (Argo's FlattenTemplates).
    AnalysisSpecError for a template that is missing, two metrics with one name, or one arg with
    two different values. ``where``: the analysis's field path (or blue-green's pre/post name)."""
    path = f"{where if '.' in where else 'spec.strategy.blueGreen.' + where}.templates"
    seen: set[tuple[bool, str]] = set()
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in _TEMPLATE_LISTS}
    _collect(ctx, template_refs(spec), path, seen, out)
    names_seen: set[str] = set()
    for metric in out["metrics"]:
        name = str(metric.get("name") or "")
        if name in names_seen:
            raise AnalysisSpecError(path, name, f"two metrics have the same name '{name}'")
        names_seen.add(name)
    out["args"] = _template_args(out["args"], path)
    return out


def _template_args(all_args: Sequence[Mapping[str, Any]], path: str) -> list[dict[str, Any]]:
    """The args of several templates as one list: the first with a value (or valueFrom) wins; two
    different values for one arg are an error."""
    args: dict[str, dict[str, Any]] = {}
    for arg in all_args:
        name = str(arg.get("name") or "")
        before = args.get(name)
        both = before is not None and before.get("value") is not None and arg.get("value") is not None
        if both and before is not None and before.get("value") != arg.get("value"):
            raise AnalysisSpecError(path, name, f"arg '{name}' has two different values in the templates")
        if before is None or (before.get("value") is None and before.get("valueFrom") is None):
            args[name] = dict(arg)
    return list(args.values())


def _collect(
    ctx: Ctx,
    refs: Sequence[tuple[bool, str]],
    path: str,
    seen: set[tuple[bool, str]],
    out: dict[str, list[dict[str, Any]]],
) -> None:
    for key in refs:
        if key in seen:
            continue
        template = ctx.observed.analysis_templates.get(key)
        if template is None:
            kind = "ClusterAnalysisTemplate" if key[0] else "AnalysisTemplate"
            raise AnalysisSpecError(path, key[1], f"{kind} '{key[1]}' not found")
        seen.add(key)
        tspec = template.get("spec") or {}
        for field in _TEMPLATE_LISTS:
            out[field].extend(dict(x) for x in tspec.get(field) or [])
        nested = [
            (bool(t.get("clusterScope")), str(t.get("templateName") or ""))
            for t in tspec.get("templates") or []
        ]
        _collect(ctx, nested, "spec.templates", seen, out)


def rollout_args(ctx: Ctx, roles: Roles, args: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The Rollout's args with their valueFrom resolved now (Argo's
    BuildArgumentsForRolloutAnalysisRun): podTemplateHashValue Latest is the new RS's hash, Stable
    the stable one's; fieldRef a field of the Rollout (``metadata.name``, ``metadata.labels['k']``,
    ``spec.replicas``...)."""
    out: list[dict[str, Any]] = []
    for arg in args:
        value = arg.get("value")
        source = arg.get("valueFrom") or {}
        if source.get("podTemplateHashValue") == "Latest":
            value = roles.new_hash
        elif source.get("podTemplateHashValue") == "Stable":
            value = ctx.status.stable_rs or roles.stable or ""
        elif (source.get("fieldRef") or {}).get("fieldPath"):
            value = field_value(ctx, str(source["fieldRef"]["fieldPath"]))
        out.append({"name": arg.get("name"), "value": "" if value is None else str(value)})
    return out


def field_value(ctx: Ctx, path: str) -> str:
    """A field of the Rollout by a fieldRef path: dotted keys, and ``labels['k']`` /
    ``annotations['k']``; "" when there is no such field."""
    obj: Any = ctx.rollout.model_dump(by_alias=True, exclude_none=True, mode="json")
    for part in path.replace("['", ".").replace("']", "").split("."):
        if isinstance(obj, Mapping) and part in obj:
            obj = obj[part]
        else:
            return ""
    if isinstance(obj, bool):
        return "true" if obj else "false"
    return "" if isinstance(obj, (dict, list)) else str(obj)


# -- history and events --------------------------------------------------------------------------


def _history_limits(ctx: Ctx) -> tuple[int, int]:
    """spec.analysis's (successful, unsuccessful) run history limits, Argo's 5 and 5 by default."""
    limits = ctx.rollout.spec.analysis
    ok = limits.successful_run_history_limit if limits is not None else None
    bad = limits.unsuccessful_run_history_limit if limits is not None else None
    return (
        names.DEFAULT_SUCCESSFUL_RUN_HISTORY if ok is None else ok,
        names.DEFAULT_UNSUCCESSFUL_RUN_HISTORY if bad is None else bad,
    )


def _beyond_history(ctx: Ctx, others: Sequence[AnalysisRunState]) -> list[AnalysisRunState]:
    """Argo's FilterAnalysisRunsToDelete: runs with no hash label or whose ReplicaSet is gone, and
    finished runs beyond spec.analysis's limits (newest kept)."""
    keep = dict(zip(("ok", "bad"), _history_limits(ctx), strict=True))
    live = {
        rs.pod_template_hash for rs in ctx.rss if not (rs.obj.get("metadata") or {}).get("deletionTimestamp")
    }
    kept = {"ok": 0, "bad": 0}
    out: list[AnalysisRunState] = []
    for run in sorted(others, key=lambda r: (r.creation_timestamp, r.name), reverse=True):
        if run.labels.get(names.POD_TEMPLATE_HASH_LABEL) not in live:
            out.append(run)
            continue
        outcome = "ok" if run.phase == PHASE_SUCCESSFUL else "bad" if run.phase in _UNSUCCESSFUL else None
        if outcome is None:
            continue
        kept[outcome] += 1
        if kept[outcome] > keep[outcome]:
            out.append(run)
    return out


def _status_events(ctx: Ctx, runs: Runs) -> None:
    """AnalysisRun<Phase> when a current run's phase moved (Argo's emitAnalysisRunStatusChanges;
    post first, then pre, as Argo)."""
    bgst = ctx.status.blue_green
    prev_pre = bgst.pre_promotion_analysis_run_status if bgst else None
    prev_post = bgst.post_promotion_analysis_run_status if bgst else None
    pairs = (
        (prev_post, runs.post, names.ROLLOUT_TYPE_POST_PROMOTION),
        (prev_pre, runs.pre, names.ROLLOUT_TYPE_PRE_PROMOTION),
    )
    for prev, run, kind in pairs:
        if run is None or not run.phase:
            continue
        if prev is not None and not (prev.get("name") == run.name and prev.get("status") != run.phase):
            continue
        before = str(prev.get("status") or "") if prev is not None else "NoPreviousStatus"
        type_ = "Warning" if run.phase in (PHASE_FAILED, PHASE_ERROR) else "Normal"
        message = f"{kind} Analysis Run '{run.name}' Status New: '{run.phase}' Previous: '{before}'"
        ctx.event(f"AnalysisRun{run.phase}", message, type_)


def status_of(run: AnalysisRunState | None) -> dict[str, str] | None:
    """status.blueGreen.pre/postPromotionAnalysisRunStatus for a current run."""
    if run is None:
        return None
    out = {"name": run.name, "status": run.phase, "message": run.message}
    return {k: v for k, v in out.items() if v}


def _analyses(ctx: Ctx) -> list[tuple[str, RolloutAnalysis]]:
    """(field path, analysis) of every analysis of the Rollout's strategy."""
    if ctx.rollout.is_canary:
        steps = ctx.rollout.canary_steps()
        found: list[tuple[str, RolloutAnalysis]] = [
            (f"spec.strategy.canary.steps[{i}].analysis", s.analysis)
            for i, s in enumerate(steps)
            if s.analysis is not None
        ]
        background = ctx.rollout.canary.analysis
        return found + ([("spec.strategy.canary.analysis", background)] if background is not None else [])
    specs = ((f"spec.strategy.blueGreen.{which}", _spec(ctx, which)) for which in (_PRE, _POST))
    return [(path, spec) for path, spec in specs if spec is not None]


def validate(ctx: Ctx) -> tuple[str, str, str] | None:
    """The first analysis of the Rollout that cannot make a run: (field path, value, why)."""
    for path, spec in _analyses(ctx):
        if not spec.templates:
            continue
        try:
            flat = flatten(ctx, spec, path)
            supplied = [{"name": a.get("name"), "value": "x"} for a in spec.args or []]
            merge_args(flat["args"], supplied)
        except AnalysisSpecError as e:
            return e.path, e.value, str(e)
        except ArgsError as e:
            return f"{path}.args", "", str(e)
        if not flat["metrics"]:
            return f"{path}.templates", "", "the templates have no metrics"
    return None
