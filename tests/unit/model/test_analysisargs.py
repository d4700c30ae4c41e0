"""Args and durations of the analysis kinds (model.analysisargs), as Argo reads them."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrollouts.model.analysisargs import (
    ArgsError,
    duration_seconds,
    merge_args,
    placeholders,
    resolve_metric,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("500ms", 0.5),
        ("2m0.5s", 120.5),
        ("-1s", -1.0),
        ("+10s", 10.0),
        ("1us", 1e-6),
        ("\u00b5s".join(["3", ""]), 3e-6),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert duration_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "5 m", "m", "1d", "1h-30m", "1.h.5", "-", "30sec"])
def test_not_durations(text: str) -> None:
    with pytest.raises(ArgsError):
        duration_seconds(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=20))
def test_any_text_is_a_duration_or_args_error(text: str) -> None:
    try:
        assert isinstance(duration_seconds(text), float)
    except ArgsError:
        pass


TEMPLATE_ARGS: list[dict[str, Any]] = [
    {"name": "service-name"},
    {"name": "threshold", "value": "0.95"},
    {"name": "token", "valueFrom": {"secretKeyRef": {"name": "t", "key": "k"}}},
]


def test_merge_args_lays_supplied_values_over_the_template() -> None:
    merged = merge_args(
        TEMPLATE_ARGS,
        [{"name": "service-name", "value": "demo"}, {"name": "threshold", "value": "0.99"}, {"name": "x"}],
    )
    assert merged == [
        {"name": "service-name", "value": "demo"},
        {"name": "threshold", "value": "0.99"},
        {"name": "token", "valueFrom": {"secretKeyRef": {"name": "t", "key": "k"}}},
    ]
    assert TEMPLATE_ARGS[0] == {"name": "service-name"}  # the template is not changed


def test_an_arg_never_supplied_is_an_error() -> None:
    with pytest.raises(ArgsError, match=r"args\.service-name was not resolved"):
        merge_args(TEMPLATE_ARGS, [])


def test_resolve_metric_substitutes_everywhere_and_escapes() -> None:
    metric = {
        "name": "m",
        "count": "{{args.count}}",
        "successCondition": "result == '{{ args.want }}'",
        "provider": {"prometheus": {"query": 'up{job="{{args.job}}"}'}},
    }
    args = [
        {"name": "count", "value": "5"},
        {"name": "want", "value": 'say "hi"\n'},
        {"name": "job", "value": "api"},
    ]
    resolved = resolve_metric(metric, args)
    assert resolved["count"] == "5"
    assert resolved["successCondition"] == "result == 'say \"hi\"\n'"
    assert resolved["provider"]["prometheus"]["query"] == 'up{job="api"}'
    assert metric["count"] == "{{args.count}}"


def test_resolve_metric_errors() -> None:
    with pytest.raises(ArgsError, match="failed to resolve"):
        resolve_metric({"q": "{{args.missing}}"}, [])
    with pytest.raises(ArgsError, match='argument "a" was not supplied'):
        resolve_metric({"q": "{{args.a}}"}, [{"name": "a"}])


def test_placeholders() -> None:
    assert placeholders("a {{args.x}} b {{ args.y-z }} {{other}} {{}}") == ["args.x", "args.y-z", "other", ""]
