"""status.phase and status.message: the first phase rule that applies (docs/argo-compat.md "Status")."""

from __future__ import annotations

from ..model import names
from ..model.rollout import Rollout, RolloutStatus


def phase(rollout: Rollout, status: RolloutStatus) -> tuple[str, str]:
    """(phase, message) for a status about to be written. Pure function of spec and status."""
    found = _degraded(status) or _paused(rollout, status) or _progressing(rollout, status)
    return found if found is not None else (names.PHASE_HEALTHY, "")


def _degraded(status: RolloutStatus) -> tuple[str, str] | None:
    """Degraded: an InvalidSpec, an abort, or a progress deadline exceeded."""
    conditions = status.conditions or []
    for c in conditions:
        if c.type == names.COND_INVALID_SPEC and c.status == "True":
            return names.PHASE_DEGRADED, f"{names.INVALID_SPEC_REASON}: {c.message}"
    for c in conditions:
        if c.reason in (names.ROLLOUT_ABORTED, names.PROGRESS_DEADLINE_EXCEEDED):
            return names.PHASE_DEGRADED, f"{c.reason}: {c.message}"
    return None


def _paused(rollout: Rollout, status: RolloutStatus) -> tuple[str, str] | None:
    """Paused: spec.paused, or a pause condition."""
    if rollout.spec.paused:
        return names.PHASE_PAUSED, "manually paused"
    if status.pause_conditions:
        return names.PHASE_PAUSED, status.pause_conditions[0].reason
    return None


def _progressing(rollout: Rollout, status: RolloutStatus) -> tuple[str, str] | None:
    """Progressing: a restart, pods to update or to become available, the cutover, or stable."""
    if rollout.spec.restart_at and rollout.spec.restart_at != status.restarted_at:
        return names.PHASE_PROGRESSING, "rollout is restarting"
    replicas = rollout.effective_replicas()
    updated = status.updated_replicas or 0
    available = status.available_replicas or 0
    if updated < replicas:
        return names.PHASE_PROGRESSING, "more replicas need to be updated"
    if available < updated:
        return names.PHASE_PROGRESSING, "updated replicas are still becoming available"
    current = status.current_pod_hash
    if rollout.is_canary:
        return _canary_progressing(rollout, status)
    active = status.blue_green.active_selector if status.blue_green is not None else None
    if not active or active != current:
        return names.PHASE_PROGRESSING, "active service cutover pending"
    if status.stable_rs != current:
        return names.PHASE_PROGRESSING, "waiting for analysis to complete"
    return None


def _canary_progressing(rollout: Rollout, status: RolloutStatus) -> tuple[str, str] | None:
    """A canary's last rules: old pods still to go (without trafficRouting), steps to run."""
    if rollout.canary.traffic_routing is None and (status.replicas or 0) > (status.updated_replicas or 0):
        return names.PHASE_PROGRESSING, "old replicas are pending termination"
    if not status.stable_rs or status.stable_rs != status.current_pod_hash:
        return names.PHASE_PROGRESSING, "waiting for all steps to complete"
    return None
