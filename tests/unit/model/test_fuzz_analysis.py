"""A fuzz of the analysis kinds through lint: an Argo-shaped AnalysisTemplate with one to three
fields replaced by something odd (wrong types, odd numbers and strings, placeholders, deep
nesting, removed fields) gives findings, never an exception; and a clean lint promises what the
controller relies on: the typed template reads, every condition compiles, every duration parses
and every metric's args resolve once values are supplied."""

from __future__ import annotations

import copy
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyrollouts.model.analysis import AnalysisTemplate
from pyrollouts.model.analysisargs import duration_seconds, resolve_metric
from pyrollouts.model.expr import compile_condition
from pyrollouts.model.lint import check_manifests

BASE: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "AnalysisTemplate",
    "metadata": {"name": "fuzz"},
    "spec": {
        "args": [{"name": "service"}, {"name": "threshold", "value": "0.95"}],
        "metrics": [
            {
                "name": "rate",
                "interval": "30s",
                "initialDelay": "5s",
                "count": 3,
                "failureLimit": 1,
                "inconclusiveLimit": 1,
                "consecutiveErrorLimit": 2,
                "successCondition": "len(result) == 0 || result[0] >= {{args.threshold}}",
                "failureCondition": "result[0] < 0.5",
                "provider": {
                    "prometheus": {"address": "http://127.0.0.1:9090", "query": "up{s='{{args.service}}'}"}
                },
            },
            {
                "name": "web",
                "successCondition": "result.ok",
                "provider": {"web": {"url": "http://127.0.0.1/", "timeoutSeconds": 5, "jsonPath": "{$}"}},
            },
        ],
        "dryRun": [{"metricName": "web"}],
        "measurementRetention": [{"metricName": "rate", "limit": 10}],
    },
}

_ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(
        ["{{args.service}}", "{{args.nope}}", "{{", "}}", "result[", "1h2m", "-1", "3", "*", ".*", "(", "0"]
    ),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(
        st.sampled_from(["name", "metricName", "web", "url", "x"]), st.text(max_size=5), max_size=3
    ),
    st.recursive(st.just(1), lambda inner: st.lists(inner, min_size=1, max_size=1), max_leaves=40),
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


PATHS = _paths(BASE)


def _holder(doc: Any, path: tuple[Any, ...]) -> Any:
    """The container of the last key of ``path`` when the path still leads there (an earlier
    replacement may have changed the shape), else None."""
    node = doc
    for key in path[:-1]:
        node = _child(node, key)
    return node if _child(node, path[-1]) is not _MISSING else None


_MISSING = object()


def _child(node: Any, key: Any) -> Any:
    if isinstance(node, dict) and isinstance(key, str):
        return node.get(key, _MISSING)
    if isinstance(node, list) and isinstance(key, int) and key < len(node):
        return node[key]
    return _MISSING


@st.composite
def near_valid(draw: st.DrawFn) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(PATHS))
        holder = _holder(doc, path)
        if holder is None:
            continue
        if isinstance(holder, dict) and draw(st.booleans()):
            del holder[path[-1]]
        else:
            holder[path[-1]] = draw(_ODD)
    return doc


def _promises(obj: dict[str, Any]) -> None:
    template = AnalysisTemplate.from_wire(obj)
    # Lint checks conditions with every arg standing for a plain value, and durations as written
    # when they hold no {{args...}} (their final text is known when a run starts).
    supplied = [{"name": a.name, "value": "0"} for a in template.spec.args or []]
    for metric in template.spec.metrics or []:
        resolved = resolve_metric(metric.wire(), supplied)
        for key in ("successCondition", "failureCondition"):
            if resolved.get(key):
                compile_condition(resolved[key])
        for d in (metric.interval, metric.initial_delay):
            if d and "{{" not in d:
                duration_seconds(d)


@settings(max_examples=600, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
@given(near_valid())
def test_fuzz_analysis_lint(doc: dict[str, Any]) -> None:
    text = yaml.safe_dump(doc, sort_keys=False)
    objects, findings = check_manifests(text, "fuzz.yaml")
    for f in findings:
        assert f.problem and str(f)
    if objects and not [f for f in findings if f.severity == "error"]:
        _promises(objects[0].obj)
