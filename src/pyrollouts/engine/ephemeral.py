"""previewMetadata / activeMetadata: labels and annotations a ReplicaSet's pods carry while it holds a
role, removed when the role changes.

What was injected is recorded on the RS in the ``rollout.argoproj.io/ephemeral-metadata``
annotation (JSON), so it can be removed later and so that template comparison can ignore it. Labels
also go into the RS's pod template (new pods start with them); existing pods are patched one by one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..model import names
from ..model.rollout import PodMetadata
from .context import Ctx
from .types import AnnotateReplicaSet, DeleteReplicaSet, PatchPodMetadata, ReplicaSetState


def _as_dict(meta: PodMetadata | None) -> dict[str, dict[str, str]]:
    if meta is None:
        return {}
    out: dict[str, dict[str, str]] = {}
    if meta.labels:
        out["labels"] = dict(meta.labels)
    if meta.annotations:
        out["annotations"] = dict(meta.annotations)
    return out


def _recorded(rs: ReplicaSetState) -> dict[str, dict[str, str]]:
    raw = rs.annotations.get(names.EPHEMERAL_METADATA_ANNOTATION)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: dict(v) for k, v in data.items() if k in ("labels", "annotations") and isinstance(v, dict)}


def _changes(
    current: Mapping[str, str], want: Mapping[str, str], injected_before: Mapping[str, str]
) -> dict[str, str | None]:
    out: dict[str, str | None] = {k: v for k, v in want.items() if current.get(k) != v}
    for k in injected_before:
        if k not in want and k in current:
            out[k] = None
    return out


def reconcile(ctx: Ctx, roles: Mapping[str, str]) -> None:
    """``roles`` maps RS name -> "active" or "preview" (blue-green), "canary" or "stable" (canary);
    every other RS loses what it was given."""
    bg, canary = ctx.rollout.bg, ctx.rollout.canary
    wanted_by_role = {
        "active": _as_dict(bg.active_metadata),
        "preview": _as_dict(bg.preview_metadata),
        "canary": _as_dict(canary.canary_metadata),
        "stable": _as_dict(canary.stable_metadata),
    }
    pods_by_rs: dict[str, list[Any]] = {}
    for pod in ctx.observed.pods:
        pods_by_rs.setdefault(pod.replicaset, []).append(pod)
    # A ReplicaSet this plan deletes (revisionHistoryLimit) keeps what it has: a write to it after
    # the delete would fail and cost the controller a retry.
    deleted = {x.name for x in ctx.actions if isinstance(x, DeleteReplicaSet)}
    for rs in ctx.rss:
        if rs.name in deleted:
            continue
        role = roles.get(rs.name)
        want = wanted_by_role.get(role, {}) if role else {}
        before = _recorded(rs)
        if not want and not before:
            continue
        want_labels = want.get("labels", {})
        want_anns = want.get("annotations", {})
        if want != before:
            tmpl_labels = dict((rs.template.get("metadata") or {}).get("labels") or {})
            value = json.dumps(want, sort_keys=True, separators=(",", ":")) if want else None
            ctx.actions.append(
                AnnotateReplicaSet(
                    name=rs.name,
                    annotations={names.EPHEMERAL_METADATA_ANNOTATION: value},
                    template_labels=_changes(tmpl_labels, want_labels, before.get("labels", {})),
                )
            )
        for pod in sorted(pods_by_rs.get(rs.name, []), key=lambda p: p.name):
            labels = _changes(pod.labels, want_labels, before.get("labels", {}))
            anns = _changes(pod.annotations, want_anns, before.get("annotations", {}))
            if labels or anns:
                ctx.actions.append(PatchPodMetadata(pod=pod.name, labels=labels, annotations=anns))
