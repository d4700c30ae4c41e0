"""Read manifests: multi-document YAML into typed-enough objects, with read-time defaults.

Kinds read: Rollout (argoproj.io/v1alpha1), Service (v1), Namespace (v1), Deployment (apps/v1:
stored only, as the pod template a Rollout's spec.workloadRef names; never run), and the analysis
kinds AnalysisTemplate, ClusterAnalysisTemplate and AnalysisRun (argoproj.io/v1alpha1: linted, and
stored by the local runtime; nothing runs an AnalysisRun yet). Any other kind is a finding.

Defaults are applied only where the API server applies them when an object is stored: the
namespace of namespaced objects, and a Service's type, session affinity, port protocol and target
port. A Rollout's spec is left as written: Argo reads its defaults at use time (``Rollout.effective_*``
and friends), and writing them into the spec would change what users see and what Argo hashes.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import kinds
from .findings import ERROR, Finding, ManifestError, Severity, errors, format_path
from .rollout import Rollout
from .yamlsafe import FieldPath, LineMap, load_documents, read_text

#: kind -> the apiVersion this project reads it in.
SUPPORTED_KINDS: dict[str, str] = {
    k.name: k.api_version
    for k in kinds.MANIFEST_KINDS  # a Deployment: stored, never run
}
CLUSTER_SCOPED = kinds.CLUSTER_SCOPED
DEFAULT_NAMESPACE = "default"


@dataclass(frozen=True)
class Parsed:
    """One object from a manifest file.

    ``obj`` is the object with read-time defaults applied (what a store would hold); ``raw`` is the
    document exactly as written (what lint checks). ``lines`` maps field paths of ``raw`` to lines.
    """

    kind: str
    api_version: str
    obj: dict[str, Any]
    raw: dict[str, Any]
    lines: LineMap
    source: str
    index: int

    @property
    def name(self) -> str:
        """metadata.name ("" when missing)."""
        meta = self.obj.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        return name if isinstance(name, str) else ""

    @property
    def namespace(self) -> str | None:
        """metadata.namespace (None for cluster-scoped kinds)."""
        meta = self.obj.get("metadata")
        ns = meta.get("namespace") if isinstance(meta, dict) else None
        return ns if isinstance(ns, str) else None

    def line(self, path: FieldPath) -> int:
        """The line of a field of this object (or of its nearest written ancestor)."""
        return self.lines.line(path)

    def rollout(self) -> Rollout:
        """The typed Rollout (only for kind Rollout). Raises pydantic's ValidationError for an object
        whose types are wrong; lint and validate report those as findings first."""
        if self.kind != "Rollout":
            raise TypeError(f"{self.kind} is not a Rollout")
        return Rollout.from_wire(self.obj)

    def finding(self, path: FieldPath, problem: str, fix: str, severity: Severity = ERROR) -> Finding:
        """A finding about a field of this object, with its file and line."""
        return Finding(self.source, self.line(path), format_path(path), severity, problem, fix)


def parse_manifests(text: str, source: str, *, default_namespace: str = DEFAULT_NAMESPACE) -> list[Parsed]:
    """Every object in a multi-document manifest, defaults applied.

    Raises ManifestError when the YAML cannot be read (syntax, encoding, size, alias bombs) or when a
    document is not an object of a supported kind; the error carries every such finding.
    """
    parsed, findings = parse_collect(text, source, default_namespace=default_namespace)
    bad = errors(findings)
    if bad:
        raise ManifestError(bad)
    return parsed


def parse_collect(
    text: str, source: str, *, default_namespace: str = DEFAULT_NAMESPACE
) -> tuple[list[Parsed], list[Finding]]:
    """Like ``parse_manifests`` but returns the readable objects together with the findings about
    the documents that were skipped (lint uses this to report everything at once). A YAML error
    still raises ManifestError: nothing after it can be trusted."""
    docs = load_documents(text, source)
    out: list[Parsed] = []
    findings: list[Finding] = []
    seen: dict[tuple[str, str | None, str], int] = {}
    for doc in docs:
        lines = doc.lines
        data = doc.data

        def refuse(at: FieldPath | None, field: str, problem: str, fix: str, _lines: LineMap = lines) -> None:
            # One finding about this document: at the field ``at`` (None: the document's start).
            line = _lines.start if at is None else _lines.line(at)
            findings.append(Finding(source, line, field, ERROR, problem, fix))

        if not isinstance(data, dict):
            refuse(
                None,
                "",
                f"document {doc.index + 1} is not a mapping",
                "each document must be a Kubernetes object with apiVersion, kind and metadata",
            )
            continue
        kind, api_version = data.get("kind"), data.get("apiVersion")
        if not isinstance(kind, str) or not kind:
            refuse(
                ("kind",),
                "kind",
                f"document {doc.index + 1} has no kind",
                "set kind, e.g. kind: Rollout",
            )
            continue
        if kind not in SUPPORTED_KINDS:
            refuse(
                ("kind",),
                "kind",
                f"kind {kind!r} is not supported here",
                "pyrollouts reads Rollout, Service, Namespace, Deployment and the analysis kinds; "
                "apply other kinds with kubectl",
            )
            continue
        want = SUPPORTED_KINDS[kind]
        if api_version != want:
            refuse(
                ("apiVersion",),
                "apiVersion",
                f"{kind} has apiVersion {api_version!r}",
                f"write apiVersion: {want}",
            )
            continue
        meta = data.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        if name is not None and not isinstance(name, str):
            refuse(
                ("metadata", "name"),
                "metadata.name",
                f"metadata.name must be a string, not {type(name).__name__}",
                'write the name as text, quoted if it looks like a number: name: "42"',
            )
            continue
        if not isinstance(name, str) or not name:
            refuse(
                ("metadata",),
                "metadata.name",
                f"the {kind} has no metadata.name",
                "give it a name",
            )
            continue
        obj = _with_defaults(kind, data, default_namespace)
        ns = obj["metadata"].get("namespace") if kind not in CLUSTER_SCOPED else None
        key = (kind, ns if isinstance(ns, str) else None, name)
        if key in seen:
            refuse(
                ("metadata", "name"),
                "metadata.name",
                f"{kind} {name!r} appears twice in this file (also document {seen[key] + 1})",
                "keep one of them",
            )
            continue
        seen[key] = doc.index
        out.append(Parsed(kind, want, obj, data, lines, source, doc.index))
    return out, findings


def load_file(path: str | os.PathLike[str], *, default_namespace: str = DEFAULT_NAMESPACE) -> list[Parsed]:
    """``parse_manifests`` on a file (bounded read, UTF-8 required); ManifestError on any problem."""
    return parse_manifests(read_text(path), str(path), default_namespace=default_namespace)


def by_kind(objects: Sequence[Parsed], kind: str) -> list[Parsed]:
    """The objects of one kind, in file order."""
    return [o for o in objects if o.kind == kind]


def _with_defaults(kind: str, data: dict[str, Any], default_namespace: str) -> dict[str, Any]:
    obj = copy.deepcopy(data)
    meta = obj.setdefault("metadata", {})
    if kind not in CLUSTER_SCOPED and isinstance(meta, dict) and not meta.get("namespace"):
        meta["namespace"] = default_namespace
    if kind == "Service":
        _service_defaults(obj)
    return obj


def _service_defaults(obj: dict[str, Any]) -> None:
    # What the API server fills in when a Service is created (core/v1 defaults).
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if spec.get("type") is None:
        spec["type"] = "ClusterIP"
    if spec.get("sessionAffinity") is None:
        spec["sessionAffinity"] = "None"
    ports = spec.get("ports")
    if isinstance(ports, list):
        for port in ports:
            if not isinstance(port, dict):
                continue
            if port.get("protocol") is None:
                port["protocol"] = "TCP"
            if port.get("targetPort") is None and port.get("port") is not None:
                port["targetPort"] = port["port"]
