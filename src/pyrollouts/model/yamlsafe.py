"""Safe, bounded YAML loading that remembers where every field came from.

Manifests are untrusted input: a file may be huge, may not be UTF-8, or may be an alias bomb
("billion laughs") that expands a few hundred bytes into billions of nodes. This loader refuses all
of these quickly with a ``ManifestError`` instead of hanging or crashing, and records the line of
every mapping key and sequence item so that findings can point at a line.

It reads YAML the way Kubernetes' own decoder (sigs.k8s.io/yaml) does for JSON-shaped data: only the
core scalar types (string, integer, float, boolean, null), timestamps kept as strings, mapping keys
turned into strings, merge keys (``<<``) honoured, duplicate keys refused.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .findings import ERROR, Finding, ManifestError, format_path

#: One document, or one file, may not exceed this many bytes.
MAX_BYTES = 4 * 1024 * 1024
#: How many extra nodes aliases may add by expansion, per file, beyond the nodes written.
MAX_ALIAS_EXPANSION = 100_000
#: Deepest nesting accepted; real manifests stay well below 30 levels.
MAX_DEPTH = 64
#: Longest number accepted, in characters: an int64 has 19 digits, so 40 leaves room for signs,
#: underscores and float exponents while keeping every number cheap to convert and to print.
MAX_NUMBER_CHARS = 40

FieldPath = tuple[str | int, ...]

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_TAG}{t}" for t in ("str", "int", "float", "bool", "null")}
_MERGE_TAG = f"{_TAG}merge"
_NUMBER_TAGS = {f"{_TAG}int", f"{_TAG}float"}

# The C parser when PyYAML was built with libyaml (same grammar, much faster on large files); the
# safe constructor either way. Nothing here ever builds arbitrary Python objects.
_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# Kubernetes' decoder reads a plain 1e3 as a number (Go's ParseFloat); YAML 1.1, and so PyYAML,
# wants a dot (1.0e3) and reads 1e3 as a string. Read it as Kubernetes does.
_EXPONENT = re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$")


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """SafeLoader that leaves timestamps as strings, as Kubernetes does, and reads 1e3 as a number."""

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != f"{_TAG}timestamp"]
        + ([(f"{_TAG}float", _EXPONENT)] if first in "-+0123456789" else [])
        for first, resolvers in _Base.yaml_implicit_resolvers.items()
    }


@dataclass(frozen=True)
class LineMap:
    """Field path -> 1-based line of the mapping key (or sequence item) that holds it."""

    lines: Mapping[FieldPath, int] = field(default_factory=dict)
    start: int = 1

    def line(self, path: FieldPath) -> int:
        """The line of ``path``, or of its nearest ancestor present in the map."""
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.start

    def has(self, path: FieldPath) -> bool:
        """Whether this exact path was written in the document."""
        return tuple(path) in self.lines


@dataclass(frozen=True)
class Document:
    """One YAML document: its data (JSON-shaped), its position in the file, and its line map."""

    index: int
    data: Any
    lines: LineMap


class _Refused(Exception):
    def __init__(self, line: int, path: FieldPath, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.line, self.path, self.problem, self.fix = line, path, problem, fix

    @classmethod
    def at(cls, node: yaml.Node, path: FieldPath, problem: str, fix: str) -> _Refused:
        """The refusal of ``node``, at its first line (1-based, as editors count)."""
        return cls(node.start_mark.line + 1, path, problem, fix)

    @classmethod
    def not_plain(cls, node: yaml.Node, path: FieldPath) -> _Refused:
        """The refusal of a node whose explicit tag makes it something other than plain data."""
        return cls.at(
            node,
            path,
            f"the YAML tag {node.tag!r} is not plain data",
            "remove the tag (Kubernetes manifests hold strings, numbers, booleans, lists and maps)",
        )


def decode(data: bytes, source: str, *, max_bytes: int = MAX_BYTES) -> str:
    """The text of a manifest file's bytes; ManifestError when too large or not UTF-8."""
    if len(data) > max_bytes:
        raise ManifestError([_too_large(source, len(data), max_bytes)])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ManifestError(
            [
                Finding(
                    source,
                    line,
                    "",
                    ERROR,
                    f"the file is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})",
                    "save the manifest as UTF-8",
                )
            ]
        ) from None
    return text.removeprefix("\ufeff")


def read_text(path: str | os.PathLike[str], *, max_bytes: int = MAX_BYTES) -> str:
    """Read a manifest file as text, refusing files over ``max_bytes`` before reading them whole."""
    source = str(path)
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise ManifestError(
            [Finding(source, None, "", ERROR, f"cannot read the file: {e.strerror or e}", "check the path")]
        ) from None
    if len(data) > max_bytes:
        size = p.stat().st_size if p.is_file() else len(data)
        raise ManifestError([_too_large(source, size, max_bytes)])
    return decode(data, source, max_bytes=max_bytes)


def load_documents(
    text: str,
    source: str,
    *,
    max_bytes: int = MAX_BYTES,
    max_alias_expansion: int = MAX_ALIAS_EXPANSION,
    max_depth: int = MAX_DEPTH,
) -> list[Document]:
    """Parse every YAML document in ``text``; empty documents are skipped.

    Raises ManifestError (with the line) for a YAML syntax error, a size over ``max_bytes``, aliases
    expanding beyond ``max_alias_expansion`` extra nodes, nesting deeper than ``max_depth``, a
    recursive alias, a duplicate key, a complex key, or a tag outside the JSON data model.
    """
    if len(text) > max_bytes:
        raise ManifestError([_too_large(source, len(text), max_bytes)])
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as e:
        # Only a str built in memory can hold a lone surrogate; a file decoded as UTF-8 cannot.
        bad_line = text.count("\n", 0, e.start) + 1
        raise ManifestError(
            [
                Finding(
                    source,
                    bad_line,
                    "",
                    ERROR,
                    f"the text is not valid Unicode (a lone surrogate at offset {e.start})",
                    "pass UTF-8 text",
                )
            ]
        ) from None
    if size > max_bytes:
        raise ManifestError([_too_large(source, size, max_bytes)])
    text = text.removeprefix("\ufeff")
    loader = _Loader(text)
    builder = _Builder(loader, max_alias_expansion, max_depth)
    docs: list[Document] = []
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            builder.lines = {}
            data = builder.build(node, (), 0)
            if data is not None:
                docs.append(Document(index, data, LineMap(dict(builder.lines), node.start_mark.line + 1)))
            index += 1
    except _Refused as r:
        raise ManifestError([Finding(source, r.line, format_path(r.path), ERROR, r.problem, r.fix)]) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        what = " ".join(x for x in (e.context, e.problem) if x)
        raise ManifestError(
            [Finding(source, line, "", ERROR, f"invalid YAML: {what}", "fix the YAML syntax at this line")]
        ) from None
    except yaml.YAMLError as e:
        line = None
        pos = getattr(e, "position", None)
        if isinstance(pos, int):
            line = text.count("\n", 0, pos) + 1
        raise ManifestError(
            [Finding(source, line, "", ERROR, f"invalid YAML: {e}", "remove the offending characters")]
        ) from None
    except RecursionError:
        raise ManifestError(
            [Finding(source, None, "", ERROR, "the YAML is nested too deeply", "flatten the document")]
        ) from None
    finally:
        loader.dispose()
    return docs


def _too_large(source: str, size: int, limit: int) -> Finding:
    return Finding(
        source,
        None,
        "",
        ERROR,
        f"the manifest is {size} bytes, over the limit of {limit} bytes",
        "split it into smaller files",
    )


class _Builder:
    """Turns a composed node graph into JSON-shaped data, counting alias expansion as it goes."""

    def __init__(self, loader: Any, max_alias_expansion: int, max_depth: int) -> None:
        self.loader = loader
        self.max_alias_expansion = max_alias_expansion
        self.max_depth = max_depth
        self.seen: set[int] = set()
        self.visits = 0
        self.on_path: set[int] = set()
        self.lines: dict[FieldPath, int] = {}

    def _count(self, node: yaml.Node, path: FieldPath) -> None:
        # An alias makes the graph visit a node again; visits beyond the distinct nodes written are
        # the expansion, and bounding them bounds time and memory however the aliases nest.
        self.visits += 1
        self.seen.add(id(node))
        if self.visits - len(self.seen) > self.max_alias_expansion:
            raise _Refused.at(
                node,
                path,
                f"YAML aliases expand to more than {self.max_alias_expansion} extra nodes (an alias bomb?)",
                "write the repeated values out, or use fewer nested aliases",
            )

    def build(self, node: yaml.Node, path: FieldPath, depth: int) -> Any:
        line = node.start_mark.line + 1
        if depth > self.max_depth:
            raise _Refused(
                line,
                path,
                f"the document is nested deeper than {self.max_depth} levels",
                "flatten the document",
            )
        self._count(node, path)
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if id(node) in self.on_path:
            raise _Refused(
                line, path, "a YAML alias refers to a node that contains it", "remove the recursive alias"
            )
        self.on_path.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                self._check_tag(node, f"{_TAG}seq", path)
                out: list[Any] = []
                for i, item in enumerate(node.value):
                    self.lines[(*path, i)] = item.start_mark.line + 1
                    out.append(self.build(item, (*path, i), depth + 1))
                return out
            if isinstance(node, yaml.MappingNode):
                self._check_tag(node, f"{_TAG}map", path)
                return self._mapping(node, path, depth)
        finally:
            self.on_path.discard(id(node))
        raise _Refused(line, path, f"unsupported YAML node {type(node).__name__}", "use plain YAML data")

    def _mapping(self, node: yaml.MappingNode, path: FieldPath, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                for key, value in self._merge_sources(value_node, path, depth):
                    merged.setdefault(key, value)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise _Refused.at(
                    key_node, path, "a mapping key is not a plain value", "use a string as the key"
                )
            key = _key_string(self._scalar(key_node, path))
            if key in out:
                raise _Refused.at(
                    key_node,
                    (*path, key),
                    f"the key {key!r} appears twice in this mapping",
                    "keep only one of them (Kubernetes refuses duplicate keys)",
                )
            self.lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = self.build(value_node, (*path, key), depth + 1)
        # Explicit keys override merged ones, as the YAML merge-key convention says.
        for key, value in merged.items():
            out.setdefault(key, value)
        return out

    def _merge_sources(self, node: yaml.Node, path: FieldPath, depth: int) -> list[tuple[str, Any]]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        pairs: list[tuple[str, Any]] = []
        for src in sources:
            if not isinstance(src, yaml.MappingNode):
                raise _Refused.at(
                    src, path, "a merge key (<<) must refer to a mapping", "merge only mappings"
                )
            data = self.build(src, path, depth)
            pairs.extend(data.items())
        return pairs

    def _scalar(self, node: yaml.ScalarNode, path: FieldPath) -> Any:
        if node.tag not in _SCALAR_TAGS:
            raise _Refused.not_plain(node, path)
        if node.tag in _NUMBER_TAGS:
            if ":" in node.value:
                # YAML 1.1's base-60 numbers (1:30 is 90 to PyYAML); Kubernetes' decoder reads a
                # string, so do the same and let the schema say it is not a number.
                return node.value
            if len(node.value) > MAX_NUMBER_CHARS:
                raise _Refused.at(
                    node,
                    path,
                    f"a number of {len(node.value)} characters: "
                    "no Kubernetes field holds a number that large",
                    "write a realistic number (an int64 has at most 19 digits), or quote it if it is text",
                )
        try:
            return self.loader.yaml_constructors[node.tag](self.loader, node)
        except (ValueError, IndexError) as e:
            # An explicit tag on a value that is not of its type (!!int "", !!float abc).
            raise _Refused.at(
                node,
                path,
                f"{node.value!r} is not a valid {node.tag.removeprefix(_TAG)}: {e}",
                "write a plain value without the tag",
            ) from None

    def _check_tag(self, node: yaml.Node, expected: str, path: FieldPath) -> None:
        if node.tag != expected:
            raise _Refused.not_plain(node, path)


def _key_string(key: Any) -> str:
    # sigs.k8s.io/yaml turns non-string keys into their JSON text; do the same.
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    return str(key)
