"""User actions as the patches Argo's kubectl plugin sends (docs/argo-compat.md, "User actions").

Each function returns a list of ``Patch``: a JSON merge patch and whether it goes to the object
(spec/metadata) or to its ``status`` subresource. The controller needs no API of its own: any client
that applies these patches (our CLI, the dashboard, Argo's own plugin) drives the rollout.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from . import names
from .hash import ephemeral_keys, strip_injected_anti_affinity
from .owners import revision_of


class ActionError(ValueError):
    """The action does not apply to the Rollout in its current state (message says why)."""


class UnknownTarget(ActionError):
    """The action names what the Rollout does not have: a container, a revision."""


@dataclass(frozen=True)
class Patch:
    body: dict[str, Any]
    subresource: str | None = None  # "status" or None for the object itself


def _spec_paused(rollout: dict[str, Any]) -> bool:
    return bool(rollout.get("spec", {}).get("paused"))


def _next_canary_step(rollout: dict[str, Any]) -> int | None:
    """The step after the current one of a canary update in flight (None: not a canary, no steps,
    or nothing in flight): what Argo's plugin writes to move a canary that is not paused on."""
    status = rollout.get("status") or {}
    canary = ((rollout.get("spec") or {}).get("strategy") or {}).get("canary")
    steps = canary.get("steps") if isinstance(canary, dict) else None
    if not isinstance(steps, list) or not steps:
        return None
    if status.get("stableRS") and status.get("stableRS") == status.get("currentPodHash"):
        return None
    index = status.get("currentStepIndex")
    index = index if isinstance(index, int) and not isinstance(index, bool) else 0
    return min(index + 1, len(steps))


def promote(rollout: dict[str, Any], full: bool = False) -> list[Patch]:
    """promote: unpause and clear pause conditions (a canary that is not paused moves on one
    step, status.currentStepIndex + 1, as Argo's plugin does); --full: skip the remaining
    pauses, steps and analysis."""
    status = rollout.get("status") or {}
    paused = (
        _spec_paused(rollout) or bool(status.get("pauseConditions")) or bool(status.get("controllerPause"))
    )
    name = rollout.get("metadata", {}).get("name", "")
    next_step = _next_canary_step(rollout)
    reasons = {p.get("reason") for p in status.get("pauseConditions") or [] if isinstance(p, dict)}
    if (
        not full
        and next_step is not None
        and "InconclusiveAnalysisRun" in reasons
        and status.get("controllerPause")
    ):
        # As Argo's plugin: promoting a canary paused on an inconclusive analysis skips that step.
        body = {"pauseConditions": None, "controllerPause": False, "currentStepIndex": next_step}
        unpause = [Patch({"spec": {"paused": False}})] if _spec_paused(rollout) else []
        return [Patch({"status": body}, "status"), *unpause]
    if not full and not _spec_paused(rollout) and not status.get("pauseConditions") and next_step is not None:
        return [Patch({"status": {"pauseConditions": None, "currentStepIndex": next_step}}, "status")]
    if not full and not paused:
        raise ActionError(f"rollout '{name}' is not paused")
    promoted = bool(status.get("stableRS")) and status.get("stableRS") == status.get("currentPodHash")
    if full and promoted and not _spec_paused(rollout):
        raise ActionError(f"rollout '{name}' is already fully promoted")
    # As Argo's plugin: the status patch first, then the unpause, so a reconcile in between sees
    # promoteFull (or the cleared pause) already; promoteFull only while an update is in flight.
    patches: list[Patch] = []
    if full and not promoted:
        patches.append(Patch({"status": {"promoteFull": True}}, "status"))
    elif not full:
        patches.append(Patch({"status": {"pauseConditions": None}}, "status"))
    if _spec_paused(rollout):
        patches.append(Patch({"spec": {"paused": False}}))
    return patches


def abort(rollout: dict[str, Any]) -> list[Patch]:
    return [Patch({"status": {"abort": True}}, "status")]


def retry(rollout: dict[str, Any]) -> list[Patch]:
    return [Patch({"status": {"abort": False}}, "status")]


def pause(rollout: dict[str, Any]) -> list[Patch]:
    return [Patch({"spec": {"paused": True}})]


def resume(rollout: dict[str, Any]) -> list[Patch]:
    return [Patch({"spec": {"paused": False}})]


def restart(rollout: dict[str, Any], now_rfc3339: str) -> list[Patch]:
    return [Patch({"spec": {"restartAt": now_rfc3339}})]


def terminate_analysis_run(run: dict[str, Any]) -> list[Patch]:
    """terminate analysisrun: spec.terminate=true on the run itself (not its status), as Argo's
    plugin sends it; the analysis controller then stops measuring and ends the run."""
    return [Patch({"spec": {"terminate": True}})]


def set_image(rollout: dict[str, Any], container: str, image: str) -> list[Patch]:
    """Set one container's image (``*``: every container and init container)."""
    tmpl = copy.deepcopy(rollout.get("spec", {}).get("template") or {})
    pod = tmpl.setdefault("spec", {})
    found = False
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in pod.get(key) or []:
            if container == "*" or c.get("name") == container:
                c["image"] = image
                found = True
    if not found:
        name = rollout.get("metadata", {}).get("name", "")
        raise UnknownTarget(f"rollout '{name}' has no container named '{container}'")
    return [Patch({"spec": {"template": tmpl}})]


def set_env(rollout: dict[str, Any], container: str, key: str, value: str) -> list[Patch]:
    """Set (or add) one env var on a container (``*``: every container)."""
    tmpl = copy.deepcopy(rollout.get("spec", {}).get("template") or {})
    found = False
    for c in tmpl.get("spec", {}).get("containers") or []:
        if container == "*" or c.get("name") == container:
            found = True
            env = c.setdefault("env", [])
            for e in env:
                if e.get("name") == key:
                    e.clear()
                    e.update({"name": key, "value": value})
                    break
            else:
                env.append({"name": key, "value": value})
    if not found:
        name = rollout.get("metadata", {}).get("name", "")
        raise UnknownTarget(f"rollout '{name}' has no container named '{container}'")
    return [Patch({"spec": {"template": tmpl}})]


def undo(rollout: dict[str, Any], replicasets: list[dict[str, Any]], to_revision: int | None) -> list[Patch]:
    """Restore the template of an earlier revision (default: the one before the current).

    The hash label the controller injected is removed so the restored template hashes to the old
    ReplicaSet's hash and that ReplicaSet is reused (a fast rollback)."""
    name = rollout.get("metadata", {}).get("name", "")
    by_rev: dict[int, dict[str, Any]] = {}
    for rs in replicasets:
        rev = revision_of(rs)
        if rev is not None:
            by_rev[rev] = rs
    if not by_rev:
        raise ActionError(f"rollout '{name}' has no revisions to undo to")
    current = max(by_rev)
    if to_revision is None or to_revision == 0:
        older = sorted(r for r in by_rev if r < current)
        if not older:
            raise ActionError(f"rollout '{name}' has no previous revision to undo to")
        to_revision = older[-1]
    if to_revision not in by_rev:
        known = ", ".join(str(r) for r in sorted(by_rev))
        raise UnknownTarget(f"rollout '{name}' has no revision {to_revision} (revisions: {known})")
    target = by_rev[to_revision]
    tmpl = copy.deepcopy(target.get("spec", {}).get("template") or {})
    tmeta = tmpl.get("metadata") or {}
    labels = tmeta.get("labels") or {}
    labels.pop(names.POD_TEMPLATE_HASH_LABEL, None)
    # Labels/annotations the controller injected for a role (previewMetadata/activeMetadata) are
    # not the user's: drop them, or they would become part of the restored template.
    eph_labels, eph_annotations = ephemeral_keys(target.get("metadata", {}).get("annotations"))
    for key in eph_labels:
        labels.pop(key, None)
    for key in eph_annotations:
        (tmeta.get("annotations") or {}).pop(key, None)
    # Likewise the anti-affinity term to the stable ReplicaSet that antiAffinity injected.
    if isinstance(tmpl.get("spec"), dict):
        strip_injected_anti_affinity(tmpl["spec"])
    current_tmpl = rollout.get("spec", {}).get("template") or {}
    return [Patch({"spec": {"template": merge_patch_to(current_tmpl, tmpl)}})]


def merge_patch_to(old: Any, new: Any) -> Any:
    """A JSON merge patch (RFC 7386) that turns ``old`` into ``new`` (keys only in old become null)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return copy.deepcopy(new)
    out: dict[str, Any] = {}
    for k in old:
        if k not in new:
            out[k] = None
    for k, v in new.items():
        if k not in old:
            out[k] = copy.deepcopy(v)
        elif old[k] != v:
            out[k] = merge_patch_to(old[k], v)
    return out


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """Apply a JSON merge patch (RFC 7386) and return the result; inputs are not modified."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[str, Any] = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = apply_merge_patch(result.get(k), v)
    return result
