"""Lint: validation plus a strict walk of every document against the schema.

``lint_text``/``lint_file`` are what ``rollouts lint -f`` and the local runtime's apply call. A
finding with severity ``error`` means Kubernetes or Argo would refuse the object (apply refuses it
too); ``warning`` means it is accepted but probably not what was meant.
"""

from __future__ import annotations

import os

from .findings import ERROR, WARNING, Finding, ManifestError, sort_findings
from .parse import DEFAULT_NAMESPACE, Parsed, parse_collect
from .schema import kind_type
from .schemawalk import walk
from .validate import validate
from .yamlsafe import read_text


def lint_text(text: str, source: str) -> list[Finding]:
    """Every finding for a manifest's text, in reading order; [] when it is clean."""
    return check_manifests(text, source)[1]


def lint_file(path: str | os.PathLike[str]) -> list[Finding]:
    """Every finding for a manifest file (unreadable, too large or non-UTF-8 files give one finding)."""
    try:
        text = read_text(path)
    except ManifestError as e:
        return list(e.findings)
    return lint_text(text, str(path))


def check_manifests(
    text: str, source: str, *, default_namespace: str = DEFAULT_NAMESPACE
) -> tuple[list[Parsed], list[Finding]]:
    """The objects of a manifest and every finding about them (for apply: refuse when any finding is
    an error, else use the objects). Never raises for bad input: that is a finding too."""
    try:
        objects, findings = parse_collect(text, source, default_namespace=default_namespace)
    except ManifestError as e:
        return [], list(e.findings)
    if not objects and not findings:
        empty = Finding(
            source,
            None,
            "",
            ERROR,
            "the manifest holds no objects (only comments, or empty documents)",
            "add at least one object with apiVersion, kind and metadata.name",
        )
        return [], [empty]
    schema_findings: list[Finding] = []
    for o in objects:
        root = kind_type(o.kind)
        if root is not None:
            schema_findings.extend(walk(o.raw, root, source, o.lines))
    # A field the schema walk already flagged (unknown, wrong type) would only be reported again,
    # less precisely, by the rules that read it; keep the schema's finding.
    flagged = {(f.line, f.path) for f in schema_findings}
    flagged_paths = {f.path for f in schema_findings}
    rule_findings = [
        f
        for f in validate(objects)
        if (f.line, f.path) not in flagged and not any(_under(f.path, p) for p in flagged_paths)
    ]
    return objects, _bounded(sort_findings([*findings, *schema_findings, *rule_findings]), source)


#: The most findings a manifest gets; more would only bury the first ones (and cost time to print).
MAX_FINDINGS = 200


def _bounded(findings: list[Finding], source: str) -> list[Finding]:
    errors = [f for f in findings if f.severity == ERROR]
    if len(findings) <= MAX_FINDINGS:
        return findings
    kept = (errors or findings)[:MAX_FINDINGS]
    more = Finding(
        source,
        None,
        "",
        ERROR if errors else WARNING,
        f"{len(findings) - len(kept)} more findings are not listed",
        "fix these first, then lint again",
    )
    return [*kept, more]


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent + ".") or path.startswith(parent + "[")
