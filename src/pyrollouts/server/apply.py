"""Apply and create of many objects at once, all or nothing (POST /api/apply, POST /api/{kind}).

Everything is checked before anything is written: lint errors, the runtime's admission (what one
machine cannot run, Service port clashes), duplicate objects, and for create an object that
already exists. An update works like ``kubectl apply``: a three-way merge between the manifest
last applied (kept in the ``kubectl.kubernetes.io/last-applied-configuration`` annotation), the
live object and the new manifest, over labels, annotations and spec. Fields the controller wrote
(the pod-template hash it injects into Service selectors, its annotations) are not the user's and
survive a re-apply; status is never touched.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..model import names
from ..model.cluster import Cluster, NotFound, Obj
from ..model.findings import Finding
from ..model.objects import KINDS, NAMESPACED

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

#: Annotations the controller owns; an apply never removes them.
CONTROLLER_ANNOTATIONS = {
    names.MANAGED_BY_ANNOTATION,
    names.REVISION_ANNOTATION,
    names.REVISION_HISTORY_ANNOTATION,
    names.DESIRED_REPLICAS_ANNOTATION,
    names.SCALE_DOWN_DEADLINE_ANNOTATION,
    names.EPHEMERAL_METADATA_ANNOTATION,
}

#: Creation order: what others refer to first (a Rollout finds its Services and its analysis
#: templates on its first reconcile).
_ORDER = {"Namespace": 0, "Service": 1, "AnalysisTemplate": 2, "ClusterAnalysisTemplate": 2, "Rollout": 3}


class ApplyRefused(Exception):
    """The request was refused as a whole; nothing was written."""

    def __init__(self, status: int, error: str, details: Sequence[Any] = ()) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.details = list(details)

    def __str__(self) -> str:
        # The details are the actionable part (which field, which port): keep them in tracebacks.
        if not self.details:
            return self.error
        return self.error + "".join(f"\n  {d}" for d in self.details)


def finding_json(f: Finding) -> dict[str, Any]:
    """A Finding as the API sends it."""
    return {
        "severity": f.severity,
        "file": f.source,
        "line": f.line,
        "path": f.path,
        "problem": f.problem,
        "fix": f.fix,
        "text": str(f),
    }


def check_text(text: str, source: str, namespace: str) -> tuple[list[Obj], list[dict[str, Any]]]:
    """The objects of a manifest text (namespace filled in) and every lint finding about it."""
    from ..model.lint import check_manifests

    parsed, findings = check_manifests(text, source, default_namespace=namespace)
    return [copy.deepcopy(p.obj) for p in parsed], [finding_json(f) for f in findings]


def findings_for_objects(objects: Sequence[Obj], namespace: str) -> list[dict[str, Any]]:
    """Lint findings of objects sent as JSON (no file, so no lines)."""
    text = "\n---\n".join(json.dumps(o) for o in objects)
    return check_text(text, "<request>", namespace)[1]


def _key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return str(obj.get("kind", "")), str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _describe(kind: str, ns: str, name: str) -> str:
    return f"{kind.lower()} '{name}'" + (f" in namespace '{ns}'" if ns else "")


def normalise(obj: Obj, namespace: str) -> Obj:
    """A copy fit to store: server-set fields and status dropped, namespace filled in."""
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.setdefault("metadata", {})
    for k in (
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "generation",
        "managedFields",
        "deletionTimestamp",
        "selfLink",
    ):
        meta.pop(k, None)
    kind = out.get("kind", "")
    if kind in NAMESPACED:
        meta["namespace"] = meta.get("namespace") or namespace
    else:
        meta.pop("namespace", None)
    if kind in KINDS and not out.get("apiVersion"):
        out["apiVersion"] = KINDS[kind]
    return out


def _user_part(obj: Mapping[str, Any]) -> Obj:
    """What an apply manages: labels, annotations (without the last-applied copy) and spec."""
    meta = obj.get("metadata") or {}
    ann = {k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED}
    out: Obj = {"metadata": {"labels": dict(meta.get("labels") or {}), "annotations": ann}}
    if "spec" in obj:
        out["spec"] = copy.deepcopy(obj["spec"])
    return out


def _without_controller_fields(kind: str, part: Obj) -> Obj:
    """The live object's user part minus what the controller put there (used when no
    last-applied copy exists: everything else that is not in the manifest is removed)."""
    out = copy.deepcopy(part)
    for k in list(out["metadata"]["annotations"]):
        if k in CONTROLLER_ANNOTATIONS:
            del out["metadata"]["annotations"][k]
    if kind == "Service":
        sel = (out.get("spec") or {}).get("selector")
        if isinstance(sel, dict):
            sel.pop(names.POD_TEMPLATE_HASH_LABEL, None)
    return out


def three_way_patch(last: Any, current: Any, new: Any) -> Any:
    """A JSON merge patch that sets every field of ``new`` and removes the fields that were in
    ``last`` (the manifest applied before) but are no longer in ``new``; other live fields stay."""
    patch: dict[str, Any] = {}
    cur = current if isinstance(current, dict) else {}
    old = last if isinstance(last, dict) else {}
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(cur.get(k), dict):
            sub = three_way_patch(old.get(k), cur[k], v)
            if sub:
                patch[k] = sub
        elif cur.get(k) != v or k not in cur:
            patch[k] = copy.deepcopy(v)
    for k in old:
        if k not in new and k in cur:
            patch[k] = None
    return patch


async def apply_objects(
    cluster: Cluster,
    admission: Callable[[list[Obj]], list[str]],
    objects: Sequence[Obj],
    namespace: str,
    *,
    create_only: bool,
    findings: Sequence[Mapping[str, Any]] = (),
) -> list[dict[str, str]]:
    """Validate every object, then create or update each. Returns per object
    {kind, namespace, name, result: created|configured|unchanged}, in the order given.
    Raises ApplyRefused (nothing written) on any problem."""
    errors = [dict(f) for f in findings if f.get("severity") == "error"]
    if errors:
        raise ApplyRefused(422, f"{len(errors)} error(s) in the manifest; nothing was applied", errors)
    if not objects:
        raise ApplyRefused(422, "the manifest holds no objects; nothing was applied")
    prepared: list[Obj] = []
    problems: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    for i, raw in enumerate(objects):
        if not isinstance(raw, dict):
            problems.append(f"object {i + 1}: not a mapping")
            continue
        obj = normalise(raw, namespace)
        kind, ns, name = _key(obj)
        if kind not in KINDS or kind == "Event":
            known = ", ".join(k for k in KINDS if k != "Event")
            problems.append(f"object {i + 1}: kind '{kind}' cannot be applied here (kinds: {known})")
            continue
        if not name:
            problems.append(f"object {i + 1} ({kind}): metadata.name is missing")
            continue
        if (kind, ns, name) in seen:
            problems.append(f"{_describe(kind, ns, name)} appears twice in the manifest")
        seen.add((kind, ns, name))
        prepared.append(obj)
    if problems:
        raise ApplyRefused(422, "the manifest cannot be applied; nothing was applied", problems)

    refusals = list(admission([copy.deepcopy(o) for o in prepared]))
    if refusals:
        raise ApplyRefused(422, "refused by the runtime; nothing was applied", refusals)

    # Decide everything before the first write.
    plans: list[tuple[int, Obj, Obj | None, Any]] = []  # (index, obj, live or None, patch)
    conflicts: list[str] = []
    for i, obj in enumerate(prepared):
        kind, ns, name = _key(obj)
        try:
            live: Obj | None = await cluster.get(kind, ns, name)
        except NotFound:
            live = None
        if live is not None and create_only:
            conflicts.append(f"{_describe(kind, ns, name)} already exists (use apply to update it)")
            continue
        if live is None:
            plans.append((i, obj, None, None))
            continue
        new_part = _user_part(obj)
        live_part = _user_part(live)
        last_text = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
        try:
            last = _user_part(json.loads(last_text)) if last_text else None
        except (json.JSONDecodeError, AttributeError, TypeError):
            last = None
        if last is None:
            last = _without_controller_fields(kind, live_part)
        patch = three_way_patch(last, live_part, new_part)
        plans.append((i, obj, live, patch))
    if conflicts:
        raise ApplyRefused(
            409, "the manifest conflicts with existing objects; nothing was applied", conflicts
        )

    results: list[dict[str, str] | None] = [None] * len(prepared)
    for i, obj, live, patch in sorted(plans, key=lambda p: _ORDER.get(p[1]["kind"], 2)):
        kind, ns, name = _key(obj)
        applied_copy = json.dumps(obj, sort_keys=True, separators=(",", ":"))
        if live is None:
            to_store = copy.deepcopy(obj)
            if not create_only:
                to_store["metadata"].setdefault("annotations", {})[LAST_APPLIED] = applied_copy
            await cluster.create(kind, to_store)
            result = "created"
        else:
            live_ann = (live.get("metadata") or {}).get("annotations") or {}
            if not patch and live_ann.get(LAST_APPLIED) == applied_copy:
                result = "unchanged"
            else:
                body = copy.deepcopy(patch) or {}
                if live_ann.get(LAST_APPLIED) != applied_copy:
                    body.setdefault("metadata", {}).setdefault("annotations", {})[LAST_APPLIED] = applied_copy
                await cluster.patch(kind, ns, name, body)
                result = "configured" if patch else "unchanged"
        results[i] = {"kind": kind, "namespace": ns, "name": name, "result": result}
    return [r for r in results if r is not None]
