"""What clients show of a canary Rollout: its step, its weights and its list of steps.

Pure functions from the Rollout's JSON (and the info view's ReplicaSet rows) to plain data, shared
by the info view (``service.info``), the CLI's ``list rollouts`` and Argo's ``/api/v1``
RolloutInfo, so the step and the weights are computed once. As Argo's plugin computes them (its
``info`` package):

- ``step``: ``currentStepIndex/len(steps)`` (``2/5``: two steps done, the third one current),
  shown only when the status has an index and the spec has steps.
- ``setWeight``: the weight the steps ask for now, not the one measured: 0 after an abort, the
  maximum weight (100, or ``trafficRouting.maxTrafficWeight``) once every step ran or when there are
  no steps, else the last ``setWeight`` at or before the current step (0 if none).
- ``actualWeight``: the maximum weight once every step ran; while steps remain, 0 until some pod is
  available, then without trafficRouting the canary ReplicaSet's share of the available pods
  (integer division, as Argo), with trafficRouting the canary weight the router was last given
  (``status.canary.weights``), or the set weight before the router was given one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from ..engine.canarysteps import describe
from ..model.rollout import CanaryStep

Obj = dict[str, Any]


def _canary_spec(rollout: Mapping[str, Any]) -> Mapping[str, Any] | None:
    strategy = (rollout.get("spec") or {}).get("strategy") or {}
    canary = strategy.get("canary")
    return canary if isinstance(canary, Mapping) else None


def _steps(canary: Mapping[str, Any]) -> list[Any]:
    steps = canary.get("steps")
    return list(steps) if isinstance(steps, list) else []


def max_weight(canary: Mapping[str, Any]) -> int:
    """100, or the trafficRouting's maxTrafficWeight when it sets one."""
    tr = canary.get("trafficRouting") or {}
    value = tr.get("maxTrafficWeight") if isinstance(tr, Mapping) else None
    return int(value) if isinstance(value, int) and value > 0 else 100


def _index(rollout: Mapping[str, Any]) -> int | None:
    value = (rollout.get("status") or {}).get("currentStepIndex")
    return int(value) if isinstance(value, int) else None


def step_text(rollout: Mapping[str, Any]) -> str:
    """``2/5``, or "" when the Rollout has no steps or its status no index yet."""
    canary = _canary_spec(rollout)
    index = _index(rollout)
    steps = _steps(canary) if canary is not None else []
    return f"{index}/{len(steps)}" if index is not None and steps else ""


def _current(canary: Mapping[str, Any], rollout: Mapping[str, Any]) -> int | None:
    """The current step's index, None once every step ran (or when there are none)."""
    steps = _steps(canary)
    index = max(_index(rollout) or 0, 0)
    return index if index < len(steps) else None


def set_weight(rollout: Mapping[str, Any]) -> int:
    """The weight the steps ask for now (module docstring); 0 for a Rollout that is no canary."""
    canary = _canary_spec(rollout)
    if canary is None or (rollout.get("status") or {}).get("abort"):
        return 0
    current = _current(canary, rollout)
    if current is None:
        return max_weight(canary)
    for step in reversed(_steps(canary)[: current + 1]):
        if isinstance(step, Mapping) and isinstance(step.get("setWeight"), int):
            return int(step["setWeight"])
    return 0


def actual_weight(rollout: Mapping[str, Any], replicasets: Sequence[Mapping[str, Any]]) -> int:
    """The weight in force (module docstring). ``replicasets``: the info view's ReplicaSet rows
    (``roles`` and ``availableReplicas``)."""
    canary = _canary_spec(rollout)
    if canary is None:
        return 0
    status = rollout.get("status") or {}
    if _current(canary, rollout) is None:
        return max_weight(canary)
    available = int(status.get("availableReplicas") or 0)
    if available <= 0:
        return 0
    if not canary.get("trafficRouting"):
        canary_rs = [rs for rs in replicasets if "canary" in (rs.get("roles") or [])]
        if not canary_rs:
            return 0
        return int(canary_rs[-1].get("availableReplicas") or 0) * max_weight(canary) // available
    weights = (status.get("canary") or {}).get("weights")
    if isinstance(weights, Mapping):
        return int((weights.get("canary") or {}).get("weight") or 0)
    return set_weight(rollout)


def describe_step(step: Any) -> str:
    """A step as Argo's events name it (``setWeight: 20``, ``pause: 10s``, ``pause``); a step the
    model cannot read is named by its first field."""
    try:
        return describe(CanaryStep.model_validate(step))
    except ValidationError:
        keys = list(step) if isinstance(step, Mapping) else []
        return str(keys[0]) if keys else "invalid"


def steps_view(rollout: Mapping[str, Any]) -> list[Obj]:
    """Each step with its text and its state: ``done``, ``current`` or ``pending`` (every step is
    done once the index passed the last one)."""
    canary = _canary_spec(rollout)
    if canary is None:
        return []
    current = _current(canary, rollout)
    done_before = len(_steps(canary)) if current is None else current
    out: list[Obj] = []
    for i, step in enumerate(_steps(canary)):
        state = "done" if i < done_before else ("current" if i == current else "pending")
        out.append({"index": i, "text": describe_step(step), "state": state})
    return out


def status_split(rollout: Mapping[str, Any], replicasets: Sequence[Mapping[str, Any]]) -> list[Obj]:
    """The traffic split as the status and the ReplicaSets say it, per revision (newest first):
    with trafficRouting the weights the router was last given (``status.canary.weights``),
    without it each ReplicaSet's share of the available pods (what a Service over all of them
    gives). ``weight`` is a percentage; ``replicasets``: the info view's ReplicaSet rows."""
    canary = _canary_spec(rollout)
    if canary is None:
        return []
    by_hash = {str(rs.get("podTemplateHash") or ""): rs for rs in replicasets}
    weights = ((rollout.get("status") or {}).get("canary") or {}).get("weights")
    shares: dict[str, float] = {}
    if canary.get("trafficRouting") and isinstance(weights, Mapping):
        dests = [weights.get("canary"), weights.get("stable"), *(weights.get("additional") or [])]
        for dest in dests:
            if isinstance(dest, Mapping) and dest.get("podTemplateHash"):
                h = str(dest["podTemplateHash"])
                shares[h] = shares.get(h, 0.0) + float(dest.get("weight") or 0)
    elif not canary.get("trafficRouting"):
        total = sum(int(rs.get("availableReplicas") or 0) for rs in replicasets)
        for h, rs in by_hash.items():
            if total and int(rs.get("availableReplicas") or 0):
                shares[h] = round(100.0 * int(rs["availableReplicas"]) / total, 1)
    out = [
        {
            "podTemplateHash": h,
            "revision": int((by_hash.get(h) or {}).get("revision") or 0),
            "roles": list((by_hash.get(h) or {}).get("roles") or []),
            "weight": weight,
        }
        for h, weight in shares.items()
    ]
    out.sort(key=lambda r: -int(str(r["revision"])))
    return out


def canary_info(rollout: Mapping[str, Any], replicasets: Sequence[Mapping[str, Any]]) -> Obj | None:
    """The canary block of the info view; None for a Rollout that is no canary."""
    canary = _canary_spec(rollout)
    if canary is None:
        return None
    weights = ((rollout.get("status") or {}).get("canary") or {}).get("weights")
    return {
        "step": step_text(rollout),
        "setWeight": set_weight(rollout),
        "actualWeight": actual_weight(rollout, replicasets),
        "steps": steps_view(rollout),
        "trafficRouting": bool(canary.get("trafficRouting")),
        "weights": dict(weights) if isinstance(weights, Mapping) else None,
        "statusSplit": status_split(rollout, replicasets),
        "stableService": canary.get("stableService") or "",
        "canaryService": canary.get("canaryService") or "",
    }
