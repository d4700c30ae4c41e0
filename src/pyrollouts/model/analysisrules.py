"""The rules Argo enforces on the analysis kinds (AnalysisTemplate, ClusterAnalysisTemplate,
AnalysisRun) that one manifest can show, as findings: today, that every successCondition and
failureCondition parses in Argo's expression syntax (``model.expr``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .expr import ExprError, compile_condition
from .findings import ERROR, Severity
from .yamlsafe import FieldPath

Report = Callable[[FieldPath, str, str, Severity], None]

#: Argo substitutes ``{{args.name}}`` (and ``{{ args.name }}``) into a metric before evaluating it;
#: lint checks the condition with each placeholder standing for a plain value.
_PLACEHOLDER = re.compile(r"\{\{[^{}]*\}\}")
_CONDITIONS = ("successCondition", "failureCondition")


def analysis_rules(obj: Mapping[str, Any], report: Report) -> None:
    """Report every metric condition of an analysis object that does not parse."""
    spec = obj.get("spec")
    metrics = spec.get("metrics") if isinstance(spec, dict) else None
    if not isinstance(metrics, list):
        return
    for i, metric in enumerate(metrics):
        if isinstance(metric, dict):
            for key in _CONDITIONS:
                _condition_rule(metric.get(key), ("spec", "metrics", i, key), report)


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
