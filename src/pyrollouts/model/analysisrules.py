"""The rules Argo enforces on the analysis kinds (AnalysisTemplate, ClusterAnalysisTemplate,
AnalysisRun) that one manifest can show, as findings: every successCondition and failureCondition
parses in Argo's expression syntax (``model.expr``), and the checks of Argo's ``ValidateMetrics``
(metrics present with unique names, one provider each, limits and counts that agree, durations
that parse, dryRun and measurementRetention rules that match a metric)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .analysisargs import ArgsError, duration_seconds, placeholders
from .expr import ExprError, compile_condition
from .findings import ERROR, WARNING, Finding, Severity
from .parse import Parsed
from .yamlsafe import FieldPath

Report = Callable[[FieldPath, str, str, Severity], None]

#: Argo substitutes ``{{args.name}}`` (and ``{{ args.name }}``) into a metric before evaluating it;
#: lint checks the condition with each placeholder standing for a plain value.
_PLACEHOLDER = re.compile(r"\{\{[^{}]*\}\}")
_CONDITIONS = ("successCondition", "failureCondition")


_PROVIDERS = (
    "prometheus",
    "web",
    "job",
    "kayenta",
    "datadog",
    "wavefront",
    "newRelic",
    "cloudWatch",
    "graphite",
    "influxdb",
    "skywalking",
    "plugin",
)
#: dryRun and measurementRetention name metrics by a regular expression (RE2, unanchored); lint
#: checks the plain names only (a general pattern is matched when a run starts).
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def analysis_rules(obj: Mapping[str, Any], report: Report) -> None:
    """Report what Argo would refuse in an analysis object's spec (see the module docstring)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    metrics = spec.get("metrics")
    if not metrics and not spec.get("templates"):
        report(("spec", "metrics"), "no metrics specified", "add at least one metric", ERROR)
    if not isinstance(metrics, list):
        return
    names: dict[str, int] = {}
    declared = _declared_args(spec.get("args"))
    for i, metric in enumerate(metrics):
        if isinstance(metric, dict):
            _metric_rules(metric, ("spec", "metrics", i), report)
            _unique_name(metric.get("name"), i, names, report)
            _undeclared_args(metric, declared, ("spec", "metrics", i), report)
    for key in ("dryRun", "measurementRetention"):
        _metric_name_rules(spec.get(key), key, set(names), report)


def _metric_rules(metric: Mapping[str, Any], path: FieldPath, report: Report) -> None:
    for key in _CONDITIONS:
        _condition_rule(metric.get(key), (*path, key), report)
    for key in ("interval", "initialDelay"):
        _duration_rule(metric.get(key), (*path, key), report)
    _provider_rule(metric.get("provider"), (*path, "provider"), report)
    _limit_rules(metric, path, report)


def _unique_name(name: Any, i: int, names: dict[str, int], report: Report) -> None:
    if not isinstance(name, str) or not name:
        return
    if name in names:
        report(
            ("spec", "metrics", i, "name"),
            f"duplicate metric name {name!r} (also metrics[{names[name]}])",
            "give each metric its own name",
            ERROR,
        )
        return
    names[name] = i


def _duration_rule(value: Any, path: FieldPath, report: Report) -> None:
    if not isinstance(value, str) or not value or _PLACEHOLDER.search(value):
        return
    try:
        duration_seconds(value)
    except ArgsError:
        report(
            path,
            f"{path[-1]} {value!r} is not a duration",
            "write a Go duration such as 30s, 5m or 1h30m",
            ERROR,
        )


def _provider_rule(provider: Any, path: FieldPath, report: Report) -> None:
    if not isinstance(provider, dict):
        return  # missing or ill-typed: the schema walk's finding
    given = [k for k in _PROVIDERS if provider.get(k)]
    if not given:
        report(path, "no provider specified", "set one of prometheus, web or job", ERROR)
    elif len(given) > 1:
        report(
            path,
            f"a metric has one provider, this one has {len(given)} ({', '.join(given)})",
            "split it into one metric per provider",
            ERROR,
        )


def _int_value(value: Any) -> int | None:
    """An int-or-string's number (Argo's IntValue); None when unset or an unresolved {{args...}}."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value):
        return int(value)
    return None


def _limit_rules(metric: Mapping[str, Any], path: FieldPath, report: Report) -> None:
    lows = {
        "failureLimit": -1,
        "inconclusiveLimit": 0,
        "consecutiveErrorLimit": 0,
        "consecutiveSuccessLimit": 0,
    }
    for key, low in lows.items():
        v = _int_value(metric.get(key))
        if v is not None and v < low:
            fix = "use 0 or more, or -1 to disable it" if low == -1 else "use 0 or more"
            report((*path, key), f"{key} is {v}, below {low}", fix, ERROR)
    count = _int_value(metric.get("count"))
    if count is None:
        return
    if count > 1 and not metric.get("interval"):
        report((*path, "count"), f"count is {count} but no interval is set", "set interval, e.g. 30s", ERROR)
    for key in ("failureLimit", "inconclusiveLimit"):
        limit = _int_value(metric.get(key))
        if count > 0 and limit is not None and count < limit:
            report(
                (*path, "count"),
                f"count ({count}) is below {key} ({limit}): the limit could never be reached",
                f"raise count or lower {key}",
                ERROR,
            )


def _metric_name_rules(rules: Any, key: str, names: set[str], report: Report) -> None:
    if not isinstance(rules, list) or not names:
        return
    for i, rule in enumerate(rules):
        name = rule.get("metricName") if isinstance(rule, dict) else None
        if isinstance(name, str) and _PLAIN_NAME.match(name) and not any(name in n for n in names):
            report(
                ("spec", key, i, "metricName"),
                f"{key}[{i}] matches no metric ({name!r})",
                f"name one of the metrics: {', '.join(sorted(names))} (or a pattern such as .*)",
                ERROR,
            )


def condition_error(text: str) -> str | None:
    """Why a condition (with ``{{args.*}}`` placeholders) does not parse; None when it does."""
    try:
        compile_condition(_PLACEHOLDER.sub("0", text))
    except ExprError as e:
        return str(e)
    return None


def _condition_rule(text: Any, path: FieldPath, report: Report) -> None:
    if not isinstance(text, str) or text == "":
        return  # a missing condition is Argo's default; a non-string is the schema walk's finding
    problem = condition_error(text)
    if problem is not None:
        report(
            path,
            f"{path[-1]} does not parse: {problem}",
            "write it in Argo's expression syntax over result, e.g. result[0] >= 0.95 "
            "(docs/analysis.md lists what is supported)",
            ERROR,
        )


def _declared_args(args: Any) -> set[str]:
    if not isinstance(args, list):
        return set()
    return {a["name"] for a in args if isinstance(a, dict) and isinstance(a.get("name"), str)}


def _undeclared_args(metric: Mapping[str, Any], declared: set[str], path: FieldPath, report: Report) -> None:
    # Argo substitutes args into the metric's JSON text; a tag naming no declared arg fails the run.
    known = {f"args.{name}" for name in declared}
    missing = sorted(set(placeholders(json.dumps(metric))) - known)
    if missing:
        listed = ", ".join(f"{{{{{m}}}}}" for m in missing)
        first = missing[0][5:] if missing[0].startswith("args.") else missing[0]
        report(
            path,
            f"the metric uses {listed}, which is not an arg that spec.args declares",
            f"declare it under spec.args (- name: {first}), or fix the name",
            ERROR,
        )


# --- a Rollout's analysis against the templates of the same manifest -------------------------------

_ROLLOUT_ANALYSES = ("prePromotionAnalysis", "postPromotionAnalysis")


def rollout_analysis_rules(objects: Sequence[Parsed]) -> list[Finding]:
    """A Rollout's blue-green analysis against the templates of the same manifest: a template it
    names that the manifest lacks (a warning, when the manifest holds templates: it looks
    self-contained), and a template arg with no value that the Rollout never supplies (an error:
    Argo could not start the run, ``args.x was not resolved``)."""
    templates = {(o.kind, o.namespace, o.name): o.obj for o in objects if o.kind in _TEMPLATE_KINDS}
    out: list[Finding] = []
    for o in objects:
        if o.kind != "Rollout":
            continue
        bg = _at(o.obj, "spec", "strategy", "blueGreen")
        for key in _ROLLOUT_ANALYSES:
            analysis = bg.get(key) if isinstance(bg, dict) else None
            if isinstance(analysis, dict):
                path = ("spec", "strategy", "blueGreen", key)
                out.extend(_analysis_refs(o, analysis, path, templates))
    return out


_TEMPLATE_KINDS = ("AnalysisTemplate", "ClusterAnalysisTemplate")


def _at(obj: Any, *keys: str) -> Any:
    for k in keys:
        obj = obj.get(k) if isinstance(obj, dict) else None
    return obj


def _analysis_refs(
    rollout: Parsed,
    analysis: Mapping[str, Any],
    path: FieldPath,
    templates: Mapping[tuple[str, str | None, str], Mapping[str, Any]],
) -> list[Finding]:
    refs = analysis.get("templates")
    if not isinstance(refs, list):
        return []
    supplied = _supplied_args(analysis.get("args"))
    out: list[Finding] = []
    for i, ref in enumerate(refs):
        if not isinstance(ref, dict):
            continue
        ref_path = (*path, "templates", i, "templateName")
        name = ref.get("templateName")
        if not isinstance(name, str) or not name:
            out.append(
                rollout.finding(ref_path, "the template reference has no templateName", "name a template")
            )
            continue
        kind = "ClusterAnalysisTemplate" if ref.get("clusterScope") is True else "AnalysisTemplate"
        ns = None if kind == "ClusterAnalysisTemplate" else rollout.namespace
        template = templates.get((kind, ns, name))
        if template is None:
            if templates:
                where = "the cluster" if ns is None else f"namespace {ns}"
                out.append(
                    rollout.finding(
                        ref_path,
                        f"{kind} {name!r} is not in this manifest",
                        f"add it, or make sure it exists in {where} before the analysis starts",
                        WARNING,
                    )
                )
            continue
        out.extend(_unsupplied(rollout, template, kind, name, supplied, (*path, "args")))
    return out


def _supplied_args(args: Any) -> set[str]:
    if not isinstance(args, list):
        return set()
    return {
        a["name"]
        for a in args
        if isinstance(a, dict)
        and isinstance(a.get("name"), str)
        and (a.get("value") is not None or a.get("valueFrom") is not None)
    }


def _unsupplied(
    rollout: Parsed, template: Mapping[str, Any], kind: str, name: str, supplied: set[str], path: FieldPath
) -> list[Finding]:
    args = _at(template, "spec", "args")
    if not isinstance(args, list):
        return []
    out = []
    for arg in args:
        if not isinstance(arg, dict) or not isinstance(arg.get("name"), str):
            continue
        if arg.get("value") is None and arg.get("valueFrom") is None and arg["name"] not in supplied:
            out.append(
                rollout.finding(
                    path,
                    f"arg {arg['name']!r} of {kind} {name!r} has no value and the Rollout never supplies it",
                    f"add it: args: [{{name: {arg['name']}, value: ...}}] (or a valueFrom)",
                )
            )
    return out
