"""status.conditions: Progressing, Available, Paused, Healthy, Completed, InvalidSpec.

A condition keeps its times while its status and reason stay the same, so planning again on an
unchanged world writes an identical status (idempotence). Progressing's lastUpdateTime moves when
the rollout makes progress: that is the clock the progress deadline runs on.
"""

from __future__ import annotations

from typing import Any

from ..model import names
from ..model.rollout import Condition, RolloutStatus

ORDER = (
    names.COND_INVALID_SPEC,
    names.COND_PROGRESSING,
    names.COND_AVAILABLE,
    names.COND_PAUSED,
    names.COND_HEALTHY,
    names.COND_COMPLETED,
    names.COND_REPLICA_FAILURE,
)


def get(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in status.get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return None


def find(status: RolloutStatus, type_: str) -> Condition | None:
    """The condition of this type in a typed status (None: there is none)."""
    return next((c for c in status.conditions or [] if c.type == type_), None)


def make(
    old: dict[str, Any] | None,
    type_: str,
    status: str,
    reason: str,
    message: str,
    now: str,
    *,
    touch: bool = False,
) -> dict[str, Any]:
    """A condition; unchanged (status, reason, message) keeps the old times unless ``touch``."""
    if old is not None and old.get("status") == status and old.get("reason") == reason:
        out = dict(old)
        out["message"] = message
        if touch or old.get("message") != message:
            out["lastUpdateTime"] = now
        return out
    transition = (
        old.get("lastTransitionTime", now) if old is not None and old.get("status") == status else now
    )
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": now,
        "lastTransitionTime": transition,
    }


def ordered(conds: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    known = [conds[t] for t in ORDER if t in conds]
    other = [conds[t] for t in sorted(conds) if t not in ORDER]
    return known + other


def progress_made(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Argo's RolloutProgressing: more updated/ready/available pods, fewer old ones, or a selector
    switch since the status we read."""

    def n(s: dict[str, Any], k: str) -> int:
        return int(s.get(k) or 0)

    old_bg = old.get("blueGreen") or {}
    new_bg = new.get("blueGreen") or {}
    return (
        n(new, "updatedReplicas") != n(old, "updatedReplicas")
        or n(new, "replicas") - n(new, "updatedReplicas") < n(old, "replicas") - n(old, "updatedReplicas")
        or n(new, "readyReplicas") > n(old, "readyReplicas")
        or n(new, "availableReplicas") > n(old, "availableReplicas")
        or old_bg.get("activeSelector") != new_bg.get("activeSelector")
        or old_bg.get("previewSelector") != new_bg.get("previewSelector")
        or old.get("currentStepIndex") != new.get("currentStepIndex")  # a canary's step
    )
