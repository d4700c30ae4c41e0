"""The "info" view of one Rollout: what `rollouts get rollout` and the dashboard show.

A pure function from objects (the Rollout, its ReplicaSets, their Pods) and a time to plain JSON
data: the header (phase, message, images with their roles, replica counts) and the revision tree
(newest revision first, each ReplicaSet with its roles and scale-down deadline, each Pod with
readiness, restarts and, on the local runtime, its host port), and for a canary its step and weights
(``service.canaryinfo``). The HTTP API, the dashboard and the
CLI's Kubernetes backend compute it the same way, so the CLI renders one shape only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ..model import names, owners
from ..model.cluster import Cluster
from ..model.timefmt import rfc3339
from .analysisinfo import rollout_runs
from .canaryinfo import canary_info
from .verbs import get_rollout

Obj = dict[str, Any]


def _pod_ready_counts(pod: Mapping[str, Any]) -> tuple[int, int]:
    spec_containers = (pod.get("spec") or {}).get("containers") or []
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    total = len(spec_containers) or len(statuses)
    ready = sum(1 for cs in statuses if cs.get("ready"))
    return ready, total


def _pod_restarts(pod: Mapping[str, Any]) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return sum(int(cs.get("restartCount") or 0) for cs in statuses)


def host_port(pod: Mapping[str, Any]) -> int | None:
    """The host port a local replica listens on, wherever the runtime recorded it."""
    ann = pod.get("metadata", {}).get("annotations") or {}
    raw = ann.get(names.PORTS_ANNOTATION)
    if raw:
        try:
            ports = json.loads(raw)
            for v in ports.values():
                return int(v)
        except (ValueError, TypeError, AttributeError):
            pass
    status = pod.get("status") or {}
    if isinstance(status.get("hostPort"), int):
        return int(status["hostPort"])
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                return int(p["hostPort"])
    return None


def pod_status(pod: Mapping[str, Any]) -> str:
    """A kubectl-like status word: a waiting/terminated reason, Terminating, or the phase."""
    meta = pod.get("metadata", {})
    status = pod.get("status") or {}
    if meta.get("deletionTimestamp"):
        return "Terminating"
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        for key in ("waiting", "terminated"):
            reason = (state.get(key) or {}).get("reason")
            if reason:
                return str(reason)
    return str(status.get("phase") or "Pending")


def pod_info(pod: Mapping[str, Any]) -> Obj:
    """One Pod's row in the tree."""
    ready, total = _pod_ready_counts(pod)
    meta = pod.get("metadata", {})
    return {
        "name": meta.get("name", ""),
        "creationTimestamp": meta.get("creationTimestamp"),
        "status": pod_status(pod),
        "ready": f"{ready}/{total}",
        "allReady": total > 0 and ready == total,
        "restarts": _pod_restarts(pod),
        "hostPort": host_port(pod),
    }


def _rs_status(rs: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> str:
    desired = int((rs.get("spec") or {}).get("replicas") or 0)
    st = rs.get("status") or {}
    if desired == 0:
        return "ScaledDown" if int(st.get("replicas") or 0) == 0 and not pods else "Progressing"
    if int(st.get("availableReplicas") or 0) >= desired:
        return "Healthy"
    return "Progressing"


def _images(template: Mapping[str, Any]) -> list[str]:
    return [str(c.get("image", "")) for c in (template.get("spec") or {}).get("containers") or []]


def _merge_image(image_roles: dict[str, list[str]], image: str, roles: list[str]) -> None:
    """Argo's Images list: every ReplicaSet that runs pods adds its images (newest revision first),
    with its roles in the order stable, active, preview; an image already listed by another
    ReplicaSet gets the union of both, sorted by name. The list itself is sorted by image."""
    if image not in image_roles:
        image_roles[image] = list(roles)
    else:
        image_roles[image] = sorted(set(image_roles[image]) | set(roles))


def _roles(h: str, stable: str, current: str, active: str, preview: str, is_canary: bool) -> list[str]:
    """A ReplicaSet's roles as Argo's plugin tags it. Canary: ``stable``, else ``canary`` for the
    current pod-template hash. Blue-green: ``stable``, then ``active``, else ``preview`` (the
    preview role only when the RS is not also the active one)."""
    if not h:
        return []
    if is_canary:
        return ["stable"] if h == stable else (["canary"] if h == current else [])
    roles = ["stable"] if h == stable else []
    if h == active:
        roles.append("active")
    elif h == preview:
        roles.append("preview")
    return roles


def rollout_info(
    rollout: Mapping[str, Any],
    replicasets: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    now: datetime,
    analysis_runs: Sequence[Mapping[str, Any]] = (),
) -> Obj:
    """The info view (see the module docstring). ReplicaSets, Pods and AnalysisRuns may include
    unrelated objects of the namespace: only those the Rollout owns (and their Pods) are used.
    ``analysisRuns`` lists the Rollout's runs (``service.analysisinfo.run_summary``), each with
    the revision it belongs to; a revision that has runs but no ReplicaSet left is listed too."""
    meta = rollout.get("metadata", {})
    name = meta.get("name", "")
    spec = rollout.get("spec") or {}
    status = rollout.get("status") or {}
    bg_status = status.get("blueGreen") or {}
    strategy = spec.get("strategy") or {}
    active_sel = bg_status.get("activeSelector") or ""
    preview_sel = bg_status.get("previewSelector") or ""
    stable = status.get("stableRS") or ""
    current_hash = status.get("currentPodHash") or ""
    is_canary = "canary" in strategy and "blueGreen" not in strategy

    own_rs = owners.owned(replicasets, {"kind": "Rollout", **rollout})
    rs_infos: list[Obj] = []
    image_roles: dict[str, list[str]] = {}
    for rs in sorted(own_rs, key=lambda r: (-owners.revision(r), r.get("metadata", {}).get("name", ""))):
        rmeta = rs.get("metadata", {})
        rs_name = rmeta.get("name", "")
        rs_pods = owners.owned(pods, {"kind": "ReplicaSet", **rs})
        rs_pods.sort(
            key=lambda p: (p.get("metadata", {}).get("creationTimestamp") or "", p["metadata"]["name"])
        )
        h = (rmeta.get("labels") or {}).get(names.POD_TEMPLATE_HASH_LABEL, "")
        roles = _roles(h, stable, current_hash, active_sel, preview_sel, is_canary)
        ann = rmeta.get("annotations") or {}
        deadline = ann.get(names.SCALE_DOWN_DEADLINE_ANNOTATION) or None
        rs_spec = rs.get("spec") or {}
        rs_st = rs.get("status") or {}
        images = _images(rs_spec.get("template") or {})
        if int(rs_st.get("replicas") or 0) > 0:
            for img in images:
                _merge_image(image_roles, img, roles)
        rs_infos.append(
            {
                "name": rs_name,
                "revision": owners.revision(rs),
                "podTemplateHash": h,
                "creationTimestamp": rmeta.get("creationTimestamp"),
                "status": _rs_status(rs, rs_pods),
                "roles": roles,
                "scaleDownDeadline": deadline,
                "replicas": int(rs_spec.get("replicas") or 0),
                "readyReplicas": int(rs_st.get("readyReplicas") or 0),
                "availableReplicas": int(rs_st.get("availableReplicas") or 0),
                "images": images,
                "pods": [pod_info(p) for p in rs_pods],
            }
        )

    revisions: list[Obj] = []
    for rsi in rs_infos:
        if revisions and revisions[-1]["revision"] == rsi["revision"]:
            revisions[-1]["replicaSets"].append(rsi)
        else:
            revisions.append({"revision": rsi["revision"], "replicaSets": [rsi]})
    runs = rollout_runs(rollout, analysis_runs, {r["podTemplateHash"]: r["revision"] for r in rs_infos})
    listed = {r["revision"] for r in revisions}
    for rev in sorted({run["revision"] for run in runs} - listed):
        revisions.append({"revision": rev, "replicaSets": []})
    revisions.sort(key=lambda r: -int(r["revision"]))

    desired = spec.get("replicas")
    return {
        "name": name,
        "namespace": meta.get("namespace", "default"),
        "creationTimestamp": meta.get("creationTimestamp"),
        "status": status.get("phase") or "Progressing",
        "message": status.get("message") or "",
        "strategy": "BlueGreen" if "blueGreen" in strategy else ("Canary" if "canary" in strategy else ""),
        "images": [{"image": img, "roles": image_roles[img]} for img in sorted(image_roles)],
        "replicas": {
            "desired": 1 if desired is None else int(desired),
            "current": int(status.get("replicas") or 0),
            "updated": int(status.get("updatedReplicas") or 0),
            "ready": int(status.get("readyReplicas") or 0),
            "available": int(status.get("availableReplicas") or 0),
        },
        "activeSelector": active_sel,
        "previewSelector": preview_sel,
        "stableRS": stable,
        "currentPodHash": current_hash,
        "canary": canary_info(rollout, rs_infos),
        "revisions": revisions,
        "analysisRuns": runs,
        "now": rfc3339(now),
        "rollout": dict(rollout),
    }


async def read_info(cluster: Cluster, namespace: str, name: str, now: datetime) -> Obj:
    """The info view of one Rollout read from a Cluster; VerbError 404 when there is none."""
    ro = await get_rollout(cluster, namespace, name)
    rss = await cluster.list("ReplicaSet", namespace)
    pods = await cluster.list("Pod", namespace)
    runs = await cluster.list("AnalysisRun", namespace)
    return rollout_info(ro, rss, pods, now, runs)
