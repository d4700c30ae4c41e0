"""The JSONPath of a ``web`` metric (``jsonPath: "{$.data.ok}"``), in the Kubernetes template
syntax Argo uses (k8s.io/client-go/util/jsonpath), for the subset metrics need. Pure.

Supported, inside one ``{...}``: an optional root ``$``, fields (``.name``, ``['name']``,
``["name"]``), array indexes (``[0]``, ``[-1]``) and wildcards (``.*``, ``[*]``). ``{$}`` (or an
empty jsonPath) is the whole document. Every problem is a ``JSONPathError``: a path that does not
parse, or, while finding, a field that is not there (``ok is not found``) or an index out of range,
as the Kubernetes library words them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final


class JSONPathError(ValueError):
    """A jsonPath that does not parse, or that does not find its way in a document."""


_WILDCARD: Final = object()
_STEP: Final = re.compile(
    r"""\.(?P<field>[A-Za-z0-9_\-]+)
      | \.\*
      | \[\s*(?P<index>-?[0-9]+)\s*\]
      | \[\s*'(?P<sq>[^']*)'\s*\]
      | \[\s*"(?P<dq>[^"]*)"\s*\]
      | \[\s*\*\s*\]""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class JSONPath:
    """A parsed jsonPath: ``find`` gives the values it reaches in a document."""

    text: str
    steps: tuple[str | int | object, ...]

    def find(self, data: Any) -> list[Any]:
        """Every value the path reaches in ``data`` (a parsed JSON document), in document order;
        JSONPathError for a missing field or an index out of range."""
        values = [data]
        for step in self.steps:
            values = [v for value in values for v in _apply(step, value)]
        return values


def compile_path(text: str | None) -> JSONPath:
    """Parse a jsonPath (see the module docstring); JSONPathError naming what is wrong."""
    raw = (text or "").strip() or "{$}"
    if not (raw.startswith("{") and raw.endswith("}")):
        raise JSONPathError(f'jsonPath "{raw}" must be written in braces, e.g. {{$.data.ok}}')
    inner = raw[1:-1].strip()
    if inner.startswith("$"):
        inner = inner[1:]
    steps: list[str | int | object] = []
    pos = 0
    while pos < len(inner):
        m = _STEP.match(inner, pos)
        if m is None:
            raise JSONPathError(
                f'jsonPath "{raw}" is not supported at "{inner[pos:]}" (write fields, [N] indexes and '
                "* wildcards, e.g. {$.items[0].value})"
            )
        steps.append(_step_of(m))
        pos = m.end()
    return JSONPath(raw, tuple(steps))


def _step_of(m: re.Match[str]) -> str | int | object:
    if m.group("index") is not None:
        return int(m.group("index"))
    for name in ("field", "sq", "dq"):
        if m.group(name) is not None:
            return m.group(name)
    return _WILDCARD


def _apply(step: str | int | object, value: Any) -> list[Any]:
    if step is _WILDCARD:
        if isinstance(value, dict):
            return list(value.values())
        return list(value) if isinstance(value, list) else []
    if isinstance(step, int):
        return [_index(value, step)]
    if isinstance(value, dict) and step in value:
        return [value[step]]
    raise JSONPathError(f"{step} is not found")


def _index(value: Any, i: int) -> Any:
    if not isinstance(value, list):
        raise JSONPathError(f"cannot index [{i}]: not an array")
    if not -len(value) <= i < len(value):
        raise JSONPathError(f"array index out of bounds: index {i}, length {len(value)}")
    return value[i]
