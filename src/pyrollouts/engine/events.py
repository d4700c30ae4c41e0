"""Argo's event messages, one function per reason (notifications and `kubectl describe` read them)."""

from __future__ import annotations


def scaling(name: str, revision: int, old: int, new: int) -> str:
    direction = "up" if new > old else "down"
    return f"Scaled {direction} ReplicaSet {name} (revision {revision}) from {old} to {new}"


def switch_service(service: str, old: str, new: str) -> str:
    return f"Switched selector for service '{service}' from '{old}' to '{new}'"


def rs_created(name: str, revision: int) -> str:
    return f"Created ReplicaSet {name} (revision {revision})"


def rollout_updated(revision: int) -> str:
    return f"Rollout updated to revision {revision}"


def completed(revision: int, pod_hash: str, detail: str) -> str:
    return f"Rollout completed update to revision {revision} ({pod_hash}): {detail}"


def not_completed(revision: int, pod_hash: str) -> str:
    return f"Rollout not completed, started update to revision {revision} ({pod_hash})"


def paused(reason: str) -> str:
    return f"Rollout is paused ({reason})"


RESUMED = "Rollout is resumed"


def aborted(revision: int, why: str = "") -> str:
    """Argo's RolloutAborted message, with the analysis that aborted it when one did."""
    return f"Rollout aborted update to revision {revision}" + (f": {why}" if why else "")


def added_to_informer(namespace: str, name: str) -> str:
    return f"Rollout resource added to informer: {namespace}/{name}"


def timed_out(rs_name: str) -> str:
    return f"ReplicaSet {rs_name!r} has timed out progressing.".replace("'", '"')
