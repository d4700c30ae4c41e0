"""DESIGN's engine invariants, written independently of the engine so that they can catch it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from harness.simcluster import SimCluster
from pyrollouts.engine import (
    DeleteReplicaSet,
    Observed,
    Plan,
    ReplicaSetState,
    ScaleReplicaSet,
    SetScaleDownDeadline,
    SwitchService,
)

HASH = "rollouts-pod-template-hash"
DEADLINE = "scale-down-deadline"


class InvariantViolation(AssertionError):
    """The engine broke one of DESIGN's invariants."""


def _replicas(rollout: dict[str, Any]) -> int:
    r = rollout.get("spec", {}).get("replicas")
    return 1 if r is None else int(r)


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def check_plan(rollout: dict[str, Any], observed: Observed, plan: Plan, now: datetime) -> None:
    """Invariants on one plan, against the state it was made from."""
    bg = rollout["spec"]["strategy"]["blueGreen"]
    status_in = rollout.get("status") or {}
    status_out = plan.status.wire()
    by_hash = {rs.pod_template_hash: rs for rs in observed.replicasets}
    by_name = {rs.name: rs for rs in observed.replicasets}
    active_svc = observed.services.get(bg["activeService"])
    current_active = active_svc.selector.get(HASH) if active_svc else None
    replicas = _replicas(rollout)
    for action in plan.actions:
        if isinstance(action, SwitchService) and action.service == bg["activeService"]:
            target = action.pod_template_hash
            if target == current_active:
                continue
            rs = by_hash.get(target)
            saturated = rs is not None and rs.replicas == replicas and rs.available_replicas >= replicas
            back_to_stable = bool(status_out.get("abort")) and target == status_in.get("stableRS")
            if not (saturated or back_to_stable):
                size = (rs.replicas, rs.available_replicas) if rs else None
                raise InvariantViolation(
                    f"active switched from {current_active} to {target}, which is not saturated "
                    f"((wanted, available) = {size}, {replicas} needed) and not a return to stable on abort"
                )
    limit = bg.get("scaleDownDelayRevisionLimit")
    waiting = [
        rs
        for rs in observed.replicasets
        if rs.replicas > 0 and DEADLINE in rs.annotations and _parse(rs.annotations[DEADLINE]) > now
    ]
    newly_waiting = {
        a.name
        for a in plan.actions
        if isinstance(a, SetScaleDownDeadline) and a.deadline is not None and _parse(a.deadline) > now
    }
    n_waiting = len({rs.name for rs in waiting} | newly_waiting)
    if limit is None or n_waiting <= int(limit):
        for action in plan.actions:
            if isinstance(action, ScaleReplicaSet) and action.replicas == 0:
                rs = by_name[action.name]
                # The invariant is about *old* ReplicaSets; the current one follows spec.replicas.
                if rs in waiting and rs.pod_template_hash != status_out.get("currentPodHash"):
                    raise InvariantViolation(
                        f"{rs.name} scaled to 0 before its scale-down deadline {rs.annotations[DEADLINE]}"
                    )
    for action in plan.actions:
        if isinstance(action, DeleteReplicaSet):
            rs = by_name[action.name]  # type: ignore[attr-defined]
            if rs.replicas or rs.status_replicas:
                raise InvariantViolation(f"{rs.name} deleted while it still has pods")


def expected_phase(rollout: dict[str, Any]) -> tuple[str, str]:
    """The phase rules of docs/argo-compat.md "Status", restated."""
    st = rollout.get("status") or {}
    spec = rollout["spec"]
    conds = st.get("conditions") or []
    for c in conds:
        if c["type"] == "InvalidSpec" and c["status"] == "True":
            return "Degraded", f"InvalidSpec: {c['message']}"
    for c in conds:
        if c.get("reason") in ("RolloutAborted", "ProgressDeadlineExceeded"):
            return "Degraded", f"{c['reason']}: {c['message']}"
    if spec.get("paused"):
        return "Paused", "manually paused"
    if st.get("pauseConditions"):
        return "Paused", st["pauseConditions"][0]["reason"]
    if spec.get("restartAt") and spec.get("restartAt") != st.get("restartedAt"):
        return "Progressing", "rollout is restarting"
    if int(st.get("updatedReplicas") or 0) < _replicas(rollout):
        return "Progressing", "more replicas need to be updated"
    if int(st.get("availableReplicas") or 0) < int(st.get("updatedReplicas") or 0):
        return "Progressing", "updated replicas are still becoming available"
    active = (st.get("blueGreen") or {}).get("activeSelector")
    if not active or active != st.get("currentPodHash"):
        return "Progressing", "active service cutover pending"
    if st.get("stableRS") != st.get("currentPodHash"):
        return "Progressing", "waiting for analysis to complete"
    return "Healthy", ""


def check_settled(sim: SimCluster) -> None:
    """Invariants on a world that has settled."""
    rollout = sim.rollout
    assert rollout is not None
    st = rollout.get("status") or {}
    spec = rollout["spec"]
    bg = spec["strategy"]["blueGreen"]
    got = (st.get("phase", ""), st.get("message", ""))
    if got != expected_phase(rollout):
        raise InvariantViolation(f"phase {got} but the phase rules say {expected_phase(rollout)}")
    rss: list[ReplicaSetState] = list(sim.observed().replicasets)
    current = st.get("currentPodHash")
    preview_svc = sim.services.get(bg.get("previewService") or "")
    if (
        preview_svc is not None
        and not spec.get("paused")
        and any(rs.pod_template_hash == current for rs in rss)
    ):
        got_preview = preview_svc["spec"]["selector"].get(HASH)
        if got_preview != current:
            raise InvariantViolation(f"preview selects {got_preview}, not the newest RS {current}")
    active_svc = sim.services[bg["activeService"]]
    referenced = {current, st.get("stableRS"), active_svc["spec"]["selector"].get(HASH)}
    old = [rs for rs in rss if rs.pod_template_hash not in referenced]
    limit = spec.get("revisionHistoryLimit", 10)
    running_old = [rs for rs in old if rs.replicas or rs.status_replicas]
    if len(old) > limit and len(old) - limit > len(running_old):
        raise InvariantViolation(
            f"{len(old)} old ReplicaSets remain ({len(running_old)} running), revisionHistoryLimit is {limit}"
        )
