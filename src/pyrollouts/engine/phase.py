"""status.phase and status.message: the first phase rule that applies (docs/argo-compat.md "Status")."""

from __future__ import annotations

from typing import Any

from ..model import names
from ..model.rollout import Rollout


def phase(rollout: Rollout, status: dict[str, Any]) -> tuple[str, str]:
    """(phase, message) for a status about to be written. Pure function of spec and status."""
    found = _degraded(status) or _paused(rollout, status) or _progressing(rollout, status)
    return found if found is not None else (names.PHASE_HEALTHY, "")


def _degraded(status: dict[str, Any]) -> tuple[str, str] | None:
    """Degraded: an InvalidSpec, an abort, or a progress deadline exceeded."""
    conditions = status.get("conditions") or []
    for c in conditions:
        if c.get("type") == names.COND_INVALID_SPEC and c.get("status") == "True":
            return names.PHASE_DEGRADED, f"{names.INVALID_SPEC_REASON}: {c.get('message', '')}"
    for c in conditions:
        if c.get("reason") in (names.ROLLOUT_ABORTED, names.PROGRESS_DEADLINE_EXCEEDED):
            return names.PHASE_DEGRADED, f"{c['reason']}: {c.get('message', '')}"
    return None


def _paused(rollout: Rollout, status: dict[str, Any]) -> tuple[str, str] | None:
    """Paused: spec.paused, or a pause condition."""
    if rollout.spec.paused:
        return names.PHASE_PAUSED, "manually paused"
    pauses = status.get("pauseConditions") or []
    if pauses:
        return names.PHASE_PAUSED, str(pauses[0].get("reason", ""))
    return None


def _progressing(rollout: Rollout, status: dict[str, Any]) -> tuple[str, str] | None:
    """Progressing: a restart, pods to update or to become available, the cutover, or stable."""
    if rollout.spec.restart_at and rollout.spec.restart_at != status.get("restartedAt"):
        return names.PHASE_PROGRESSING, "rollout is restarting"
    replicas = rollout.effective_replicas()
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if updated < replicas:
        return names.PHASE_PROGRESSING, "more replicas need to be updated"
    if available < updated:
        return names.PHASE_PROGRESSING, "updated replicas are still becoming available"
    current = status.get("currentPodHash")
    active = (status.get("blueGreen") or {}).get("activeSelector")
    if not active or active != current:
        return names.PHASE_PROGRESSING, "active service cutover pending"
    if status.get("stableRS") != current:
        return names.PHASE_PROGRESSING, "waiting for analysis to complete"
    return None
