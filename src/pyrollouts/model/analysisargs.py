"""Args and durations of the analysis kinds, as Argo reads them. Pure functions on the JSON form.

- ``merge_args``: a template's args with the ones a Rollout (or ``create analysisrun``) supplies;
  every arg must end with a ``value`` or a ``valueFrom`` (Argo: ``args.x was not resolved``).
- ``resolve_metric``: a metric with every ``{{args.name}}`` replaced by its value, as Argo does it:
  on the metric's JSON text, the value escaped as inside a JSON string, so an arg can fill a query,
  a URL, a condition or a count (``count: "{{args.n}}"`` becomes ``"5"``).
- ``duration_seconds``: a Go duration (``30s``, ``1m30s``, ``1.5h``, ``0``), Argo's DurationString.

Every problem is an ``ArgsError`` naming the arg or the text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final


class ArgsError(ValueError):
    """An arg with no value, a placeholder with no arg, or a duration that does not parse."""


_PLACEHOLDER: Final = re.compile(r"\{\{([^{}]*)\}\}")
_UNIT_SECONDS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART: Final = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def duration_seconds(text: str) -> float:
    """Seconds in a Go duration string; ArgsError when it is not one (Go's time.ParseDuration)."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if body == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(body):
        m = _DURATION_PART.match(body, pos)
        if m is None:
            raise ArgsError(f"{text!r} is not a duration (write e.g. 30s, 5m or 1h30m)")
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if not body:
        raise ArgsError("an empty duration (write e.g. 30s, 5m or 1h30m)")
    return -total if text.startswith("-") else total


def merge_args(
    template_args: Sequence[Mapping[str, Any]], supplied: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The template's args with supplied values (or valueFrom) laid over them by name, as Argo's
    MergeArgs: a supplied arg the template does not declare is ignored. ArgsError when an arg ends
    with neither a value nor a valueFrom."""
    merged = [dict(a) for a in template_args]
    by_name = {a.get("name"): a for a in merged}
    for arg in supplied:
        target = by_name.get(arg.get("name"))
        if target is None:
            continue
        if arg.get("value") is not None:
            target["value"] = arg["value"]
        elif arg.get("valueFrom") is not None:
            target["valueFrom"] = arg["valueFrom"]
    for arg in merged:
        if arg.get("value") is None and arg.get("valueFrom") is None:
            raise ArgsError(f"args.{arg.get('name')} was not resolved (no value is supplied for it)")
    return merged


def resolve_metric(metric: Mapping[str, Any], args: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``metric`` with every ``{{args.name}}`` (spaces allowed inside the braces) replaced by the
    arg's value. Args must have values here (a valueFrom is resolved to a value before). ArgsError
    for an arg without a value or a placeholder that names no arg."""
    values: dict[str, str] = {}
    for arg in args:
        value = arg.get("value")
        if not isinstance(value, str):
            raise ArgsError(f'argument "{arg.get("name")}" was not supplied')
        # As inside a JSON string: quotes, backslashes and control characters escaped.
        values[f"args.{arg.get('name')}"] = json.dumps(value)[1:-1]

    def one(m: re.Match[str]) -> str:
        tag = m.group(1).strip()
        if tag not in values:
            raise ArgsError(f"failed to resolve {{{{{m.group(1)}}}}}")
        return values[tag]

    text = _PLACEHOLDER.sub(one, json.dumps(metric))
    try:
        resolved: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError as e:  # a value that broke the JSON (cannot happen once escaped)
        raise ArgsError(f"the metric does not read back after substituting args: {e}") from e
    return resolved


def placeholders(text: str) -> list[str]:
    """Every ``{{...}}`` tag of a text, stripped (``args.name`` for an arg), in order of appearance."""
    return [t.strip() for t in _PLACEHOLDER.findall(text)]
