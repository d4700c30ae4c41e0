"""An AnalysisRun's progress, decided as Argo's analysis controller decides it: pure, no I/O.

A reconcile of a run has two halves around the measurements themselves (the providers' I/O):

- ``plan(run, now)``: which metrics are due for a measurement now (a first one once
  ``initialDelay`` has passed since the run started; the next one ``interval`` after the last one
  finished, 10 s after an Error; none once ``count`` is reached), or, when the run is terminating
  (``spec.terminate``, or a metric that is not dryRun ended Failed, Error or Inconclusive), only
  the in-flight measurements, to be terminated. A spec whose args do not resolve or whose metrics
  Argo would refuse gives ``plan.error`` instead, and the run ends ``Error`` with that message.
- ``record(run, plan, measurements, now)``: the run's new status once the due measurements are
  taken: the measurements and counts of each metric, each metric's phase (``failureLimit``,
  ``inconclusiveLimit``, ``consecutiveErrorLimit``, ``count``, ``consecutiveSuccessLimit``), the
  run's phase (the worst of its metrics once all are complete; dryRun metrics never make it worse)
  and message, ``runSummary``/``dryRunSummary``, ``startedAt``/``completedAt``, the measurements
  kept (the last 10 per metric, or ``measurementRetention``'s limit), and the Events to record.
- ``next_reconcile(run, now)``: when the run wants to be looked at again (None: never by itself).

The run is its Kubernetes JSON form (camelCase), as stored; nothing here mutates it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from ..model.analysis import (
    DEFAULT_CONSECUTIVE_ERROR_LIMIT,
    PHASE_ERROR,
    PHASE_FAILED,
    PHASE_INCONCLUSIVE,
    PHASE_PENDING,
    PHASE_RUNNING,
    PHASE_SUCCESSFUL,
)
from ..model.analysisargs import ArgsError, duration_seconds, merge_args, resolve_metric
from ..model.analysisrules import analysis_rules
from ..model.findings import ERROR, Severity
from ..model.yamlsafe import FieldPath
from .timeutil import parse, rfc3339
from .types import EmitEvent

#: Measurements kept per metric when no measurementRetention rule says otherwise (Argo's default).
DEFAULT_MEASUREMENT_HISTORY_LIMIT: Final = 10
#: Time before a measurement that ended in Error is retried, whatever the metric's interval.
ERROR_RETRY_INTERVAL: Final = timedelta(seconds=10)
COMPLETED_PHASES: Final = frozenset({PHASE_SUCCESSFUL, PHASE_FAILED, PHASE_ERROR, PHASE_INCONCLUSIVE})
#: Best to worst; the run's phase is the worst of its completed metrics.
_PHASE_ORDER: Final = (
    PHASE_SUCCESSFUL,
    PHASE_RUNNING,
    PHASE_PENDING,
    PHASE_INCONCLUSIVE,
    PHASE_ERROR,
    PHASE_FAILED,
)
_COUNTERS: Final = {
    PHASE_SUCCESSFUL: "successful",
    PHASE_FAILED: "failed",
    PHASE_INCONCLUSIVE: "inconclusive",
    PHASE_ERROR: "error",
}
TERMINATED_MESSAGE: Final = "Run Terminated"
METRIC_TERMINATED_MESSAGE: Final = "Metric Terminated"


@dataclass(frozen=True)
class MetricTask:
    """A measurement to take now: ``metric`` with its args substituted, and, for a measurement
    still in flight (a provider that answers later, e.g. a Job), that measurement, to resume or,
    when the plan is terminating, to terminate."""

    metric: dict[str, Any]
    incomplete: dict[str, Any] | None = None


@dataclass(frozen=True)
class RunPlan:
    """What a reconcile of a run does: nothing (``done``), end in Error (``error``), or take the
    measurements of ``tasks``."""

    tasks: list[MetricTask] = field(default_factory=list)
    terminating: bool = False
    error: str = ""
    done: bool = False
    metrics: list[dict[str, Any]] = field(default_factory=list)
    dry_run: frozenset[str] = frozenset()
    retention: Mapping[str, int] = field(default_factory=dict)


#: An Event the reconcile records on the run (Argo's reasons and messages): the same
#: type-reason-message shape as the Rollout's, so one builder writes both.
RunEvent = EmitEvent


@dataclass(frozen=True)
class RunUpdate:
    """The run's new ``status`` and the Events that go with it."""

    status: dict[str, Any]
    events: list[RunEvent] = field(default_factory=list)


class _SpecError(Exception):
    pass


def is_completed(phase: str | None) -> bool:
    """True for the phases a run, a metric or a measurement ends in."""
    return phase in COMPLETED_PHASES


def plan(run: Mapping[str, Any], now: datetime, arg_values: Mapping[str, str] | None = None) -> RunPlan:
    """The measurements this reconcile takes (see the module docstring). ``arg_values`` are the
    values of args given by ``valueFrom`` (a Secret's key, a field of the Rollout), which the
    caller reads; args with a ``value`` need nothing."""
    status = run.get("status") or {}
    if is_completed(status.get("phase")):
        return RunPlan(done=True)
    spec = run.get("spec") or {}
    try:
        metrics = _resolved_metrics(spec, arg_values or {})
        _validate(metrics)
        dry_run = frozenset(_matching(spec.get("dryRun") or [], metrics, "dryRun"))
        retention = _retention(spec.get("measurementRetention") or [], metrics)
    except ArgsError as e:
        return RunPlan(error=f"Unable to resolve metric arguments: {e}")
    except _SpecError as e:
        return RunPlan(error=f"Analysis spec invalid: {e}")
    terminating = _terminating(run)
    tasks = [t for m in metrics if (t := _task(m, status, terminating, now)) is not None]
    return RunPlan(tasks, terminating, metrics=metrics, dry_run=dry_run, retention=retention)


def _resolved_metrics(spec: Mapping[str, Any], arg_values: Mapping[str, str]) -> list[dict[str, Any]]:
    args = merge_args(spec.get("args") or [], [])
    for arg in args:
        if arg.get("valueFrom") is not None and arg.get("value") is None:
            value = arg_values.get(str(arg.get("name")))
            if value is None:
                raise ArgsError(f"args.{arg.get('name')}: its valueFrom was not read")
            arg["value"] = value
    return [resolve_metric(m, args) for m in spec.get("metrics") or []]


def _validate(metrics: Sequence[Mapping[str, Any]]) -> None:
    problems: list[str] = []

    def report(path: FieldPath, message: str, fix: str, severity: Severity) -> None:
        if severity == ERROR:
            problems.append(message)

    analysis_rules({"kind": "AnalysisRun", "spec": {"metrics": list(metrics)}}, report)
    if problems:
        raise _SpecError(problems[0])


def _matching(rules: Sequence[Mapping[str, Any]], metrics: Sequence[Mapping[str, Any]], key: str) -> set[str]:
    """Names of the metrics that the rules' ``metricName`` match; _SpecError for a rule that
    matches none."""
    names: set[str] = set()
    for i, rule in enumerate(rules):
        names |= _rule_matches(rule, metrics, f"{key}[{i}]")
    return names


def _rule_matches(rule: Mapping[str, Any], metrics: Sequence[Mapping[str, Any]], where: str) -> set[str]:
    # A regular expression matched anywhere in the name (Go's regexp.MatchString); one that does
    # not compile matches nothing, as in Argo.
    pattern = str(rule.get("metricName", ""))
    try:
        matched = {str(m.get("name")) for m in metrics if re.search(pattern, str(m.get("name", "")))}
    except re.error:
        matched = set()
    if not matched:
        raise _SpecError(f"{where}: Rule didn't match any metric name(s)")
    return matched


def _retention(rules: Sequence[Mapping[str, Any]], metrics: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    limits: dict[str, int] = {}
    for i, rule in enumerate(rules):
        for name in _rule_matches(rule, metrics, f"measurementRetention[{i}]"):
            limits[name] = int(rule.get("limit") or 0)
    return limits


def _terminating(run: Mapping[str, Any]) -> bool:
    """Argo's IsTerminating: terminate was asked, or a metric that is not dryRun has ended badly."""
    if (run.get("spec") or {}).get("terminate"):
        return True
    results = (run.get("status") or {}).get("metricResults") or []
    bad = (PHASE_FAILED, PHASE_ERROR, PHASE_INCONCLUSIVE)
    return any(r.get("phase") in bad and not r.get("dryRun") for r in results)


def _result(status: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    for r in status.get("metricResults") or []:
        if r.get("name") == name:
            return dict(r)
    return None


def _last(result: Mapping[str, Any] | None) -> dict[str, Any] | None:
    measurements = (result or {}).get("measurements") or []
    return dict(measurements[-1]) if measurements else None


def _task(
    metric: dict[str, Any], status: Mapping[str, Any], terminating: bool, now: datetime
) -> MetricTask | None:
    result = _result(status, str(metric.get("name")))
    if result is not None and is_completed(result.get("phase")):
        return None
    last = _last(result)
    if last is not None and not last.get("finishedAt"):
        resume_at = parse(last.get("resumeAt"))
        if not terminating and resume_at is not None and resume_at > now:
            return None
        return MetricTask(metric, incomplete=last)
    if terminating:
        return None
    due = _due_at(metric, status, result, last, now)
    return MetricTask(metric) if due is not None and due <= now else None


def _due_at(
    metric: Mapping[str, Any],
    status: Mapping[str, Any],
    result: Mapping[str, Any] | None,
    last: Mapping[str, Any] | None,
    now: datetime,
) -> datetime | None:
    """When the metric's next measurement is due (None: not before something else happens)."""
    if last is None:
        return _first_due_at(metric, status, now)
    count = effective_count(metric)
    if count is not None and int((result or {}).get("count") or 0) >= count:
        return None
    finished = parse(last.get("finishedAt"))
    interval = _interval(metric, last)
    if finished is None or interval is None:
        return None
    # Argo takes the measurement once now is strictly after finishedAt + interval; our clock has
    # whole seconds, so "at" is the same instant.
    return finished + interval


def _first_due_at(metric: Mapping[str, Any], status: Mapping[str, Any], now: datetime) -> datetime | None:
    delay = metric.get("initialDelay")
    if not delay:
        return now
    # The delay counts from the run's start, which the first reconcile records.
    started = parse(status.get("startedAt"))
    if started is None:
        return None
    return started + timedelta(seconds=duration_seconds(str(delay)))


def _interval(metric: Mapping[str, Any], last: Mapping[str, Any]) -> timedelta | None:
    if last.get("phase") == PHASE_ERROR:
        return ERROR_RETRY_INTERVAL
    if metric.get("interval"):
        return timedelta(seconds=duration_seconds(str(metric["interval"])))
    return ERROR_RETRY_INTERVAL


def effective_count(metric: Mapping[str, Any]) -> int | None:
    """Measurements the metric takes: its ``count``; 1 when it has neither count nor interval;
    None (forever, until the run ends) with an interval and no count."""
    count = _int(metric.get("count"), 0)
    if count == 0:
        return None if metric.get("interval") else 1
    return count


def _int(value: Any, default: int) -> int:
    if value is None or value == "":
        return default
    return int(value)


def record(
    run: Mapping[str, Any], run_plan: RunPlan, measurements: Mapping[str, Mapping[str, Any]], now: datetime
) -> RunUpdate:
    """The run's status after this reconcile: ``measurements`` (metric name -> the measurement its
    provider returned for a task of ``run_plan``) folded in and everything assessed (see the module
    docstring)."""
    status: dict[str, Any] = copy.deepcopy(dict(run.get("status") or {}))
    if run_plan.done:
        return RunUpdate(status)
    if run_plan.error:
        status.update(phase=PHASE_ERROR, message=run_plan.error)
        return RunUpdate(status, [_run_event(PHASE_ERROR)])
    status.setdefault("metricResults", [])
    for task in run_plan.tasks:
        name = str(task.metric.get("name"))
        if name in measurements:
            _fold(status, name, _finished(task, measurements[name], run_plan.terminating, now), run_plan)
    return _assess(run, status, run_plan, now)


def _finished(
    task: MetricTask, measurement: Mapping[str, Any], terminating: bool, now: datetime
) -> dict[str, Any]:
    m = dict(measurement)
    phase = m.get("phase")
    if task.incomplete is not None and terminating and phase in (PHASE_SUCCESSFUL, PHASE_INCONCLUSIVE):
        m["message"] = METRIC_TERMINATED_MESSAGE
    m.setdefault("startedAt", rfc3339(now))
    if is_completed(phase) and not m.get("finishedAt"):
        m["finishedAt"] = rfc3339(now)
    return m


def _fold(status: dict[str, Any], name: str, measurement: dict[str, Any], run_plan: RunPlan) -> None:
    """Add (or, for one in flight, replace) the metric's last measurement, and count it."""
    result = _result(status, name) or {"name": name, "phase": PHASE_RUNNING}
    if name in run_plan.dry_run:
        result["dryRun"] = True
    measurements = list(result.get("measurements") or [])
    last = measurements[-1] if measurements else None
    if last is not None and not last.get("finishedAt"):
        measurements[-1] = measurement
    else:
        measurements.append(measurement)
    result["measurements"] = measurements
    phase = measurement.get("phase")
    if is_completed(phase):
        _count(result, str(phase))
    _set_result(status, result)


def _count(result: dict[str, Any], phase: str) -> None:
    counter = _COUNTERS[phase]
    result[counter] = int(result.get(counter) or 0) + 1
    if phase == PHASE_ERROR:
        result["consecutiveError"] = int(result.get("consecutiveError") or 0) + 1
        result["consecutiveSuccess"] = 0
        return
    result["count"] = int(result.get("count") or 0) + 1
    result["consecutiveError"] = 0
    success = phase == PHASE_SUCCESSFUL
    result["consecutiveSuccess"] = int(result.get("consecutiveSuccess") or 0) + 1 if success else 0


def _set_result(status: dict[str, Any], result: dict[str, Any]) -> None:
    results: list[dict[str, Any]] = status["metricResults"]
    for i, r in enumerate(results):
        if r.get("name") == result["name"]:
            results[i] = result
            return
    results.append(result)


@dataclass
class _Tally:
    """The run's worst phase and message so far, and its summaries."""

    worst: str = ""
    message: str = ""
    complete: bool = True
    summary: dict[str, int] = field(default_factory=lambda: {"count": 0})
    dry_summary: dict[str, int] = field(default_factory=lambda: {"count": 0})
    events: list[RunEvent] = field(default_factory=list)


def _assess(run: Mapping[str, Any], status: dict[str, Any], run_plan: RunPlan, now: datetime) -> RunUpdate:
    """Argo's assessRunStatus, then the bookkeeping of a reconcile's end."""
    terminating = _terminating({"spec": run.get("spec"), "status": status})
    status.setdefault("startedAt", rfc3339(now))
    tally = _Tally(message=TERMINATED_MESSAGE if (run.get("spec") or {}).get("terminate") else "")
    for metric in run_plan.metrics:
        _assess_metric(metric, status, terminating, run_plan, tally)
    status["runSummary"] = _nonzero(tally.summary)
    status["dryRunSummary"] = _nonzero(tally.dry_summary)
    phase, message = _run_phase(tally, terminating)
    if phase != status.get("phase"):
        status["phase"] = phase
        _set_or_drop(status, "message", message)
        if is_completed(phase):
            tally.events.append(_run_event(phase))
            status.setdefault("completedAt", rfc3339(now))
    _trim(status, run_plan.retention)
    return RunUpdate(status, tally.events)


def _run_phase(tally: _Tally, terminating: bool) -> tuple[str, str]:
    message = tally.message.strip()
    if terminating:
        return tally.worst or PHASE_SUCCESSFUL, message
    if not tally.complete or not tally.worst:
        return PHASE_RUNNING, ""
    return tally.worst, message


def _assess_metric(
    metric: Mapping[str, Any], status: dict[str, Any], terminating: bool, run_plan: RunPlan, tally: _Tally
) -> None:
    name = str(metric.get("name"))
    dry = name in run_plan.dry_run
    (tally.dry_summary if dry else tally.summary)["count"] += 1
    result = _result(status, name)
    if result is None:  # not measured yet (an initialDelay)
        tally.complete = False
        return
    phase = metric_phase(metric, result, terminating)
    if phase != result.get("phase"):
        _metric_transition(result, name, phase, tally)
    if not is_completed(phase):
        tally.complete = False
    elif dry:
        _dry_run_metric(metric, result, tally)
    else:
        _counted_metric(metric, result, phase, tally)
    _set_result(status, result)


def _metric_transition(result: dict[str, Any], name: str, phase: str, tally: _Tally) -> None:
    if is_completed(phase):
        kind = "Warning" if phase in (PHASE_ERROR, PHASE_FAILED) else "Normal"
        tally.events.append(RunEvent(kind, f"Metric{phase}", f"Metric '{name}' Completed. Result: {phase}"))
    _set_or_drop(result, "message", (_last(result) or {}).get("message") or "")
    result["phase"] = phase


def _counted_metric(metric: Mapping[str, Any], result: Mapping[str, Any], phase: str, tally: _Tally) -> None:
    bad, why = limit_exceeded(metric, result)
    if not tally.worst or _worse(tally.worst, phase):
        tally.worst = phase
        if why:
            tally.message = f'Metric "{result["name"]}" assessed {phase} due to {why}'
            if result.get("message"):
                tally.message += f': "Error Message: {result["message"]}"'
    _tally(tally.summary, bad or PHASE_SUCCESSFUL)


def _dry_run_metric(metric: Mapping[str, Any], result: dict[str, Any], tally: _Tally) -> None:
    bad, why = limit_exceeded(metric, result)
    if not tally.worst:
        tally.worst = PHASE_SUCCESSFUL
    if why:
        result["message"] = f"Metric assessed {result['phase']} due to {why}"
    _tally(tally.dry_summary, bad or PHASE_SUCCESSFUL)


def _tally(summary: dict[str, int], phase: str) -> None:
    key = _COUNTERS[phase]
    summary[key] = summary.get(key, 0) + 1


def _worse(current: str, new: str) -> bool:
    return _PHASE_ORDER.index(new) > _PHASE_ORDER.index(current)


def metric_phase(metric: Mapping[str, Any], result: Mapping[str, Any], terminating: bool) -> str:
    """A metric's phase from its measurements so far and its limits (Argo's assessMetricStatus)."""
    if is_completed(result.get("phase")):
        return str(result["phase"])
    last = _last(result)
    if last is None:
        return PHASE_SUCCESSFUL if terminating else PHASE_PENDING
    if not is_completed(last.get("phase")):
        return PHASE_RUNNING
    bad, _ = limit_exceeded(metric, result)
    if bad:
        return bad
    return _phase_by_count(metric, result, terminating)


def _phase_by_count(metric: Mapping[str, Any], result: Mapping[str, Any], terminating: bool) -> str:
    success_limit = _int(metric.get("consecutiveSuccessLimit"), 0)
    if success_limit > 0 and int(result.get("consecutiveSuccess") or 0) >= success_limit:
        return PHASE_SUCCESSFUL
    count = effective_count(metric)
    if count is not None and int(result.get("count") or 0) >= count:
        if success_limit > 0:
            # Count reached without the successes in a row: Inconclusive while failureLimit still
            # applies (it was not exceeded), Failed when failureLimit is -1 (not applicable).
            return PHASE_INCONCLUSIVE if _int(metric.get("failureLimit"), 0) >= 0 else PHASE_FAILED
        return PHASE_SUCCESSFUL
    return PHASE_SUCCESSFUL if terminating else PHASE_RUNNING


def limit_exceeded(metric: Mapping[str, Any], result: Mapping[str, Any]) -> tuple[str, str]:
    """The phase a metric ends in because a limit is exceeded, and Argo's reason for it (the last
    check that applies wins: consecutive errors, then inconclusive, then failed); ("", "") when
    none is."""
    phase, why = "", ""
    failure_limit = _int(metric.get("failureLimit"), 0)
    failed = int(result.get("failed") or 0)
    if failure_limit >= 0 and failed > failure_limit:
        phase, why = PHASE_FAILED, f"failed ({failed}) > failureLimit ({failure_limit})"
    inconclusive_limit = _int(metric.get("inconclusiveLimit"), 0)
    inconclusive = int(result.get("inconclusive") or 0)
    if inconclusive > inconclusive_limit:
        phase = PHASE_INCONCLUSIVE
        why = f"inconclusive ({inconclusive}) > inconclusiveLimit ({inconclusive_limit})"
    error_limit = _int(metric.get("consecutiveErrorLimit"), DEFAULT_CONSECUTIVE_ERROR_LIMIT)
    errors = int(result.get("consecutiveError") or 0)
    if errors > error_limit:
        phase, why = PHASE_ERROR, f"consecutiveErrors ({errors}) > consecutiveErrorLimit ({error_limit})"
    return phase, why


def _trim(status: dict[str, Any], retention: Mapping[str, int]) -> None:
    """Keep the last measurements of each metric: measurementRetention's limit, else 10."""
    for result in status.get("metricResults") or []:
        limit = retention.get(str(result.get("name")), 0) or DEFAULT_MEASUREMENT_HISTORY_LIMIT
        measurements = result.get("measurements") or []
        if len(measurements) > limit:
            result["measurements"] = measurements[-limit:]


def next_reconcile(run: Mapping[str, Any], run_plan: RunPlan, now: datetime) -> datetime | None:
    """The earliest time a metric of the run becomes due (an initialDelay ending, an interval after
    the last measurement, a measurement in flight to resume); None when nothing is waited for."""
    status = run.get("status") or {}
    if is_completed(status.get("phase")) or run_plan.error:
        return None
    if _terminating(run):
        # A metric has just ended the run (or terminate was asked): Argo's next reconcile, which
        # its own status update triggers, completes the run; here it is due at once.
        return now
    times = [t for m in run_plan.metrics if (t := _metric_wake(m, status, now)) is not None]
    return min(times) if times else None


def _metric_wake(metric: Mapping[str, Any], status: Mapping[str, Any], now: datetime) -> datetime | None:
    result = _result(status, str(metric.get("name")))
    if result is not None and is_completed(result.get("phase")):
        return None
    last = _last(result)
    if last is not None and not last.get("finishedAt"):
        return parse(last.get("resumeAt"))
    return _due_at(metric, status, result, last, now)


def _run_event(phase: str) -> RunEvent:
    kind = "Warning" if phase in (PHASE_ERROR, PHASE_FAILED) else "Normal"
    return RunEvent(kind, f"AnalysisRun{phase}", f"Analysis Completed. Result: {phase}")


def _nonzero(counts: Mapping[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}


def _set_or_drop(obj: dict[str, Any], key: str, value: str) -> None:
    if value:
        obj[key] = value
    else:
        obj.pop(key, None)
