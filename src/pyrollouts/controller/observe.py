"""Gather what the engine needs about one Rollout from a Cluster."""

from __future__ import annotations

from collections.abc import Mapping

from ..engine.types import Observed, PodState, ReplicaSetState, ServiceState
from ..model import names
from ..model.cluster import Cluster, NotFound, Obj
from ..model.owners import owned_by_uid


def replicaset_state(rs: Obj) -> ReplicaSetState:
    meta = rs.get("metadata", {})
    spec = rs.get("spec", {})
    status = rs.get("status") or {}
    labels = meta.get("labels") or {}
    return ReplicaSetState(
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        pod_template_hash=labels.get(names.POD_TEMPLATE_HASH_LABEL, ""),
        template=spec.get("template") or {},
        replicas=int(spec.get("replicas") or 0),
        status_replicas=int(status.get("replicas") or 0),
        ready_replicas=int(status.get("readyReplicas") or 0),
        available_replicas=int(status.get("availableReplicas") or 0),
        annotations=dict(meta.get("annotations") or {}),
        labels=dict(labels),
        creation_timestamp=meta.get("creationTimestamp", ""),
        obj=rs,
    )


def pod_ready(pod: Obj) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def pod_restarts(pod: Obj) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return sum(int(cs.get("restartCount") or 0) for cs in statuses)


def pod_state(pod: Obj, rs_by_uid: Mapping[str, str]) -> PodState | None:
    meta = pod.get("metadata", {})
    owner = ""
    for ref in meta.get("ownerReferences") or []:
        if ref.get("uid") in rs_by_uid:
            owner = rs_by_uid[ref["uid"]]
    if not owner:
        return None
    return PodState(
        name=meta.get("name", ""),
        replicaset=owner,
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        ready=pod_ready(pod),
        restarts=pod_restarts(pod),
        # restartAt replaces the pods created before it: without this every pod looked new, so a
        # restart was recorded as done at once and no pod was ever replaced.
        creation_timestamp=str(meta.get("creationTimestamp") or ""),
    )


async def gather(cluster: Cluster, rollout: Obj, *, first_seen: bool = False) -> Observed:
    """The Observed state for a Rollout: its ReplicaSets, its Services and its Pods, and the
    ReplicaSets named ``<rollout>-...`` that it does not own (``Observed.foreign_replicasets``)."""
    ns = rollout.get("metadata", {}).get("namespace", "default")
    replicasets, foreign = _replicasets(await cluster.list("ReplicaSet", ns), rollout)
    return Observed(
        replicasets=replicasets,
        services=await _services(cluster, ns, rollout),
        pods=await _pods(cluster, ns, rollout, replicasets),
        first_seen=first_seen,
        deployments=await _deployments(cluster, ns, rollout),
        foreign_replicasets=foreign,
    )


def _replicasets(
    all_rs: list[Obj], rollout: Obj
) -> tuple[tuple[ReplicaSetState, ...], tuple[ReplicaSetState, ...]]:
    """(the ReplicaSets the Rollout owns, those named like its own that it does not own)."""
    meta = rollout.get("metadata", {})
    uid = meta.get("uid", "")
    owned = tuple(replicaset_state(rs) for rs in all_rs if owned_by_uid(rs, uid))
    # Not ours but named like ours: one of them may hold the name our next RS would get (a hash
    # collision, which the engine steps around with status.collisionCount).
    prefix = f"{meta.get('name', '')}-"
    foreign = tuple(
        replicaset_state(rs)
        for rs in all_rs
        if not owned_by_uid(rs, uid) and str(rs.get("metadata", {}).get("name", "")).startswith(prefix)
    )
    return owned, foreign


async def _services(cluster: Cluster, ns: str, rollout: Obj) -> dict[str, ServiceState]:
    """The active and preview Services that exist (the engine reports a missing one)."""
    bg = ((rollout.get("spec") or {}).get("strategy") or {}).get("blueGreen") or {}
    services: dict[str, ServiceState] = {}
    for svc_name in {bg.get("activeService"), bg.get("previewService")} - {None, ""}:
        try:
            svc = await cluster.get("Service", ns, str(svc_name))
        except NotFound:
            continue
        services[str(svc_name)] = ServiceState(
            name=str(svc_name),
            selector=dict((svc.get("spec") or {}).get("selector") or {}),
            annotations=dict(svc.get("metadata", {}).get("annotations") or {}),
        )
    return services


async def _pods(
    cluster: Cluster, ns: str, rollout: Obj, replicasets: tuple[ReplicaSetState, ...]
) -> tuple[PodState, ...]:
    """The pods of the Rollout's ReplicaSets, by name."""
    rs_by_uid = {rs.uid: rs.name for rs in replicasets}
    if not rs_by_uid:
        return ()
    selector = ((rollout.get("spec") or {}).get("selector") or {}).get("matchLabels") or None
    states = (pod_state(pod, rs_by_uid) for pod in await cluster.list("Pod", ns, selector))
    return tuple(sorted((s for s in states if s is not None), key=lambda p: p.name))


async def _deployments(cluster: Cluster, ns: str, rollout: Obj) -> dict[str, Obj]:
    """spec.workloadRef's Deployment when it exists: the engine plans with its template (and
    reports a missing one as InvalidSpec), so a NotFound is simply left out here."""
    ref = (rollout.get("spec") or {}).get("workloadRef") or {}
    if ref.get("kind") != "Deployment" or not ref.get("name"):
        return {}
    try:
        return {str(ref["name"]): await cluster.get("Deployment", ns, str(ref["name"]))}
    except NotFound:
        return {}
