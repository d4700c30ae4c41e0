"""Walk a document against its schema (``model.schema``): unknown fields, wrong types, bounds.

This is what makes lint strict. It is general: nothing here knows about probes or ports. An unknown
field is searched for in the schema nearby (a typo of a field of the same object, a field of an
enclosing object, or of an object one level down) so the finding can say where it belongs.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .findings import ERROR, Finding, format_path
from .schema import INT_RANGES, FieldInfo, ListOf, MapOf, ObjectType, Open, Scalar, TypeNode
from .yamlsafe import FieldPath, LineMap

# How many enclosing objects to search for a misplaced field: "nearby", not anywhere in the schema.
_ANCESTOR_DEPTH = 3

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")
# Kubernetes' resource quantity syntax (a decimal number and an optional suffix).
_QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")


#: The most findings one walk reports before it stops.
MAX_FINDINGS = 100


class _Enough(Exception):
    """Raised to end a walk that has found MAX_FINDINGS problems."""


@dataclass(frozen=True)
class _Frame:
    """An enclosing object on the way down: its type, its path, and the key it sits under."""

    type: ObjectType
    path: FieldPath


def walk(
    data: Any,
    root: TypeNode,
    source: str,
    lines: LineMap,
    *,
    base: FieldPath = (),
    unknown_fields: bool = True,
) -> list[Finding]:
    """Findings for ``data`` checked against ``root``: unknown fields (when ``unknown_fields``), type
    mismatches, missing required fields, and bounds. ``base`` is the path of ``data`` in its document."""
    out: list[Finding] = []

    def report(path: FieldPath, problem: str, fix: str) -> None:
        if len(out) >= MAX_FINDINGS:
            # A document of thousands of mistakes (a flood of unknown fields, each searched for
            # nearby) would take seconds to describe; the first ones say what is wrong.
            raise _Enough
        out.append(Finding(source, lines.line(path), format_path(path), ERROR, problem, fix))

    try:
        _Walker(report, unknown_fields).value(data, root, base, ())
    except _Enough:
        out.append(
            Finding(
                source,
                lines.line(base),
                format_path(base),
                ERROR,
                f"more than {MAX_FINDINGS} problems in this object; the rest are not listed",
                "fix these first, then lint again",
            )
        )
    return out


class _Walker:
    def __init__(self, report: Callable[[FieldPath, str, str], None], unknown_fields: bool) -> None:
        self.report = report
        self.unknown_fields = unknown_fields

    def value(self, data: Any, node: TypeNode, path: FieldPath, frames: tuple[_Frame, ...]) -> None:
        if data is None:
            # JSON null means "not set" to Kubernetes; required fields are checked by the parent.
            return
        if isinstance(node, Scalar):
            self.scalar(data, node, path)
        elif isinstance(node, Open):
            if node.object_only and not isinstance(data, dict):
                self.report(path, f"expected an object, got {_describe(data)}", "write a mapping here")
        elif isinstance(node, ListOf):
            if not isinstance(data, list):
                self.report(
                    path, f"expected a list, got {_describe(data)}", "write a YAML list (items with '- ')"
                )
                return
            for i, item in enumerate(data):
                if item is None and not isinstance(node.item, Open):
                    # Unlike a field, a list item cannot be "not set": the API server refuses a null
                    # item (and a Go client would decode it as an empty object).
                    self.report((*path, i), "the list has an empty (null) item", "remove the lone '-'")
                    continue
                self.value(item, node.item, (*path, i), frames)
        elif isinstance(node, MapOf):
            if not isinstance(data, dict):
                self.report(
                    path, f"expected a map, got {_describe(data)}", "write a mapping of names to values"
                )
                return
            for k, v in data.items():
                if v is None and not isinstance(node.value, Open):
                    # A map's value, like a list item, is never "not set": the typed model (and a
                    # Go client) cannot read a null label or annotation value.
                    self.report(
                        (*path, k), "the value is null", 'give it a value ("" for empty) or remove the key'
                    )
                    continue
                self.value(v, node.value, (*path, k), frames)
        else:
            self.obj(data, node, path, frames)

    def obj(self, data: Any, node: ObjectType, path: FieldPath, frames: tuple[_Frame, ...]) -> None:
        if not isinstance(data, dict):
            self.report(
                path, f"expected an object ({node.name}), got {_describe(data)}", "write a mapping here"
            )
            return
        fields = node.fields
        inner = (*frames, _Frame(node, path))
        for key, val in data.items():
            f = fields.get(key)
            if f is None:
                if self.unknown_fields:
                    self.unknown(key, node, (*path, key), frames)
                continue
            self.value(val, f.type, (*path, key), inner)
            self.bounds(val, f, (*path, key))
        for f in fields.values():
            if f.required and data.get(f.name) in (None, "") and not _is_apiversion_kind(f):
                self.report(
                    (*path, f.name) if f.name in data else path,
                    f"the required field {f.name!r} of {_label(path)} ({node.name}) is missing",
                    f"set {f.name}",
                )

    def scalar(self, data: Any, node: Scalar, path: FieldPath) -> None:
        kind = node.kind
        if kind in ("string", "date-time"):
            if not isinstance(data, str):
                self.report(
                    path,
                    f"expected a string, got {_describe(data)}",
                    f'quote the value: "{_plain(data)}"' if _is_scalar(data) else "write a string",
                )
            elif kind == "date-time" and data and not is_rfc3339(data):
                self.report(
                    path,
                    f"{data[:60]!r} is not an RFC 3339 time",
                    "write a time such as 2024-05-01T12:00:00Z",
                )
        elif kind == "integer":
            if isinstance(data, bool) or not (
                isinstance(data, int) or (isinstance(data, float) and data.is_integer())
            ):
                self.report(
                    path, f"expected an integer, got {_describe(data)}", _number_fix(data, "an integer")
                )
            else:
                self.int_range(data, node, path)
        elif kind == "number":
            if isinstance(data, bool) or not isinstance(data, int | float):
                self.report(path, f"expected a number, got {_describe(data)}", _number_fix(data, "a number"))
        elif kind == "boolean":
            if not isinstance(data, bool):
                fix = (
                    f"write {str(data).lower()} without quotes"
                    if str(data).lower() in ("true", "false")
                    else "write true or false"
                )
                self.report(path, f"expected a boolean, got {_describe(data)}", fix)
        elif kind in ("int-or-string", "int-or-args"):
            if isinstance(data, bool) or not isinstance(data, int | str):
                self.report(
                    path, f"expected an integer or a name, got {_describe(data)}", "write a number or a name"
                )
            elif isinstance(data, int):
                self.int_range(data, node, path)
            elif kind == "int-or-string" and isinstance(data, str) and re.fullmatch(r"[0-9]+", data):
                # Kubernetes keeps a quoted number in an IntOrString as a string: a port *name* (which
                # must contain a letter) or a percentage (which must end in %). Either way, refused.
                self.report(
                    path,
                    f'"{data}" is a string, and Kubernetes rejects a numeric string as a port name',
                    f"write {data}, a number without quotes",
                )
        elif kind == "quantity":
            if isinstance(data, bool) or not isinstance(data, int | float | str):
                self.report(
                    path,
                    f"expected a quantity, got {_describe(data)}",
                    "write a quantity such as 128Mi or 500m",
                )
            elif isinstance(data, float) and not math.isfinite(data):
                self.report(
                    path,
                    f"{_number(data)} is not a Kubernetes quantity",
                    "write a finite number with an optional suffix such as 128Mi, 1Gi, 500m or 2",
                )
            elif isinstance(data, str) and not _QUANTITY.match(data):
                self.report(
                    path,
                    f"{data!r} is not a Kubernetes quantity",
                    "write a number with an optional suffix such as 128Mi, 1Gi, 500m or 2",
                )

    def int_range(self, data: int | float, node: Scalar, path: FieldPath) -> None:
        """An integer must fit its format (int32 or int64), as Kubernetes stores it."""
        if node.format is None:
            return
        low, high = INT_RANGES[node.format]
        if low <= data <= high:
            return
        name = _label(path)
        bits = node.format.removeprefix("int")
        if data > high:
            problem = f"{name} is {_number(data)}, over {high}, the most a {bits}-bit integer holds"
            fix = f"set {name} to a realistic number, at most {high}"
        else:
            problem = f"{name} is {_number(data)}, under {low}, the least a {bits}-bit integer holds"
            fix = f"set {name} to a realistic number, at least {low}"
        self.report(path, f"{problem}: Kubernetes refuses it", fix)

    def bounds(self, data: Any, f: FieldInfo, path: FieldPath) -> None:
        if not isinstance(data, int | float) or isinstance(data, bool):
            return
        if f.minimum is not None and data < f.minimum:
            self.report(
                path,
                f"{f.name} is {data}; it must be at least {f.minimum}",
                f"set {f.name} to {f.minimum} or more",
            )
        if f.maximum is not None and data > f.maximum:
            self.report(
                path,
                f"{f.name} is {data}; it must be at most {f.maximum}",
                f"set {f.name} to {f.maximum} or less",
            )

    def unknown(self, key: str, node: ObjectType, path: FieldPath, frames: tuple[_Frame, ...]) -> None:
        where = _label(path[:-1])
        problem = f"unknown field {key!r} in {where} ({node.name})"
        self.report(path, problem, _hint(key, node, path, frames))


def is_rfc3339(text: str) -> bool:
    """Whether ``text`` is a time as Kubernetes reads one (Go's RFC 3339: date, T, time, zone)."""
    if not _RFC3339.match(text):
        return False
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return True


def _hint(key: str, node: ObjectType, path: FieldPath, frames: tuple[_Frame, ...]) -> str:
    """Where an unknown field probably belongs: nearest enclosing object that has it, a typo of a
    field here, or an object one level down that has it."""
    for frame in reversed(frames[-_ANCESTOR_DEPTH:]):
        if key in frame.type.fields:
            target = _label(frame.path)
            return (
                f"{key} belongs to {target}, not to {_label(path[:-1])}: move it to {format_path(frame.path)}"
            )
    close = difflib.get_close_matches(key, list(node.fields), n=1, cutoff=0.75)
    if not close:
        lower = {name.lower(): name for name in node.fields}
        if key.lower() in lower:
            close = [lower[key.lower()]]
    if close:
        return f"did you mean {close[0]!r}?"
    homes = [name for name, f in node.fields.items() if _child_has(f.type, key)]
    if homes:
        return f"{key} is a field of {' or '.join(homes)}: move it inside one of them"
    return f"remove it; {node.name} has no such field"


def _child_has(node: TypeNode, key: str) -> bool:
    while isinstance(node, ListOf | MapOf):
        node = node.item if isinstance(node, ListOf) else node.value
    return isinstance(node, ObjectType) and key in node.fields


def _label(path: FieldPath) -> str:
    """A short name for where a field sits: the last named key, with the list index if any."""
    if not path:
        return "the document"
    last = path[-1]
    if isinstance(last, int) and len(path) > 1:
        return f"{path[-2]}[{last}]"
    return str(last)


def _is_apiversion_kind(f: FieldInfo) -> bool:
    return f.name in ("apiVersion", "kind")


def _is_scalar(data: Any) -> bool:
    return isinstance(data, int | float | bool)


def _plain(data: Any) -> str:
    if isinstance(data, bool):
        return "true" if data else "false"
    return str(data)


def _describe(data: Any) -> str:
    if isinstance(data, bool):
        return f"the boolean {_plain(data)}"
    if isinstance(data, int | float):
        return f"the number {data}"
    if isinstance(data, str):
        return f"the string {data!r}"
    if isinstance(data, list):
        return "a list"
    if isinstance(data, dict):
        return "a mapping"
    return type(data).__name__


def _number(data: int | float) -> str:
    """A number as users wrote it, shortened when it is very long (so a message stays readable)."""
    text = f"{data:.6g}" if isinstance(data, float) else _int_text(data)
    return text


def _int_text(n: int) -> str:
    # str() of an int over 4300 digits raises; a message needs only its head and size.
    if n.bit_length() < 200:
        return str(n)
    return f"a number of about {int(n.bit_length() * 0.30103) + 1} digits"


def _number_fix(data: Any, what: str) -> str:
    if isinstance(data, str) and re.fullmatch(r"[+-]?[0-9]+(\.[0-9]+)?", data.strip()):
        return f"write {data.strip()} without quotes"
    return f"write {what}"
