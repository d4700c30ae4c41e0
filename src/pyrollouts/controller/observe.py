"""Gather what the engine needs about one Rollout from a Cluster."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..engine.types import AnalysisRunState, Observed, PodState, ReplicaSetState, ServiceState
from ..model import names
from ..model.cluster import Cluster, NotFound, Obj, get_readonly, list_owned
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
    replicasets, foreign = await _replicasets(cluster, ns, rollout)
    return Observed(
        replicasets=replicasets,
        services=await _services(cluster, ns, rollout),
        pods=await _pods(cluster, ns, rollout, replicasets),
        first_seen=first_seen,
        deployments=await _deployments(cluster, ns, rollout),
        foreign_replicasets=foreign,
        analysis_runs=await _analysis_runs(cluster, ns, rollout),
        analysis_templates=await _analysis_templates(cluster, ns, rollout),
    )


def analysis_run_state(run: Obj) -> AnalysisRunState:
    meta = run.get("metadata", {})
    status = run.get("status") or {}
    return AnalysisRunState(
        name=meta.get("name", ""),
        labels=dict(meta.get("labels") or {}),
        phase=str(status.get("phase") or ""),
        message=str(status.get("message") or ""),
        terminate=bool((run.get("spec") or {}).get("terminate")),
        creation_timestamp=str(meta.get("creationTimestamp") or ""),
        obj=run,
    )


def _analysis(rollout: Obj) -> list[dict[str, Any]]:
    """The Rollout's analyses: blue-green's pre/post-promotion, a canary's steps' and background."""
    strategy = (rollout.get("spec") or {}).get("strategy") or {}
    bg = strategy.get("blueGreen") or {}
    canary = strategy.get("canary") or {}
    found = [bg.get("prePromotionAnalysis"), bg.get("postPromotionAnalysis"), canary.get("analysis")]
    found += [s.get("analysis") for s in canary.get("steps") or [] if isinstance(s, dict)]
    return [a for a in found if isinstance(a, dict)]


async def _analysis_runs(cluster: Cluster, ns: str, rollout: Obj) -> tuple[AnalysisRunState, ...]:
    """The AnalysisRuns the Rollout controls (none are listed for a Rollout with no analysis that
    never had a run: status names none)."""
    status = rollout.get("status") or {}
    bgst = status.get("blueGreen") or {}
    cst = status.get("canary") or {}
    had = bgst.get("prePromotionAnalysisRunStatus") or bgst.get("postPromotionAnalysisRunStatus")
    had = had or cst.get("currentStepAnalysisRunStatus") or cst.get("currentBackgroundAnalysisRunStatus")
    if not _analysis(rollout) and not had:
        return ()
    uid = rollout.get("metadata", {}).get("uid", "")
    return tuple(analysis_run_state(r) for r in await list_owned(cluster, "AnalysisRun", ns, (uid,)))


async def _analysis_templates(cluster: Cluster, ns: str, rollout: Obj) -> dict[tuple[bool, str], Obj]:
    """The templates the Rollout's analyses name, and the ones they name in turn; a missing one is
    left out (the engine reports it as InvalidSpec)."""
    out: dict[tuple[bool, str], Obj] = {}
    todo = [t for a in _analysis(rollout) for t in a.get("templates") or [] if isinstance(t, dict)]
    while todo:
        ref = todo.pop()
        key = (bool(ref.get("clusterScope")), str(ref.get("templateName") or ""))
        if key in out or not key[1]:
            continue
        kind = "ClusterAnalysisTemplate" if key[0] else "AnalysisTemplate"
        try:
            template = await cluster.get(kind, ns, key[1])
        except NotFound:
            continue
        out[key] = template
        todo.extend(t for t in (template.get("spec") or {}).get("templates") or [] if isinstance(t, dict))
    return out


async def _replicasets(
    cluster: Cluster, ns: str, rollout: Obj
) -> tuple[tuple[ReplicaSetState, ...], tuple[ReplicaSetState, ...]]:
    """(the ReplicaSets the Rollout owns, those named like its own that it does not own), read
    through the owner index where the runtime has one (no list of the namespace)."""
    meta = rollout.get("metadata", {})
    uid = meta.get("uid", "")
    # Not ours but named like ours (``<rollout>-<suffix>``): one of them may hold the name our next
    # RS would get (a hash collision, which the engine steps around with status.collisionCount).
    # Read only: the engine reads a ReplicaSetState (its obj and template too) and never changes it,
    # and the caches replace an object on each change rather than change it, so the cache's own
    # objects serve without copies.
    related = await list_owned(
        cluster, "ReplicaSet", ns, (uid,), also_named=str(meta.get("name", "")), readonly=True
    )
    owned = tuple(replicaset_state(rs) for rs in related if owned_by_uid(rs, uid))
    foreign = tuple(replicaset_state(rs) for rs in related if not owned_by_uid(rs, uid))
    return owned, foreign


async def _services(cluster: Cluster, ns: str, rollout: Obj) -> dict[str, ServiceState]:
    """The Services the strategy names that exist (the engine reports a missing one): active and
    preview (blueGreen), stable and canary (canary)."""
    strategy = (rollout.get("spec") or {}).get("strategy") or {}
    bg = strategy.get("blueGreen") or {}
    canary = strategy.get("canary") or {}
    services: dict[str, ServiceState] = {}
    named = {bg.get("activeService"), bg.get("previewService")}
    named |= {canary.get("stableService"), canary.get("canaryService")}
    for svc_name in named - {None, ""}:
        try:
            # Read only (the selector and annotations are copied below): no copy of the cache's.
            svc = await get_readonly(cluster, "Service", ns, str(svc_name))
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
    # Read only: pod_state copies what it keeps, so the cache need not copy whole Pods.
    pods = await list_owned(cluster, "Pod", ns, tuple(rs_by_uid), labels=selector, readonly=True)
    states = (pod_state(pod, rs_by_uid) for pod in pods)
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
