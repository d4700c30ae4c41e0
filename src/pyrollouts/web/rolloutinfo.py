"""RolloutInfo in the shape of Argo's dashboard API, and which user actions apply to it.

The tree itself (which ReplicaSets a Rollout owns, their roles, pods, readiness) is computed once,
by the info view the CLI also shows (``service.info.rollout_info``). The web layer sits below the
server, so that function is handed in as an ``InfoBuilder`` instead of imported; this module only
renames and regroups its fields into Argo's RolloutInfo (``objectMeta``, ``status``,
``replicaSets[].stable/active/preview``, ``pods[].ready``, ...), which Argo's own UI code reads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from ..model import names
from ..service.analysisinfo import analysis_icon

Obj = dict[str, Any]

#: (rollout, replicasets, pods, now, analysis runs) -> the info view (see service/info.py).
InfoBuilder = Callable[
    [
        Mapping[str, Any],
        Sequence[Mapping[str, Any]],
        Sequence[Mapping[str, Any]],
        datetime,
        Sequence[Mapping[str, Any]],
    ],
    Obj,
]

#: kubectl's copy of the applied manifest: large, and nothing a viewer needs.
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

#: The actions the dashboard offers, in button order.
ACTIONS = ("promote", "promoteFull", "abort", "retry", "restart")


def _object_meta(obj: Mapping[str, Any], namespace: str) -> Obj:
    meta = obj.get("metadata") or {}
    out: Obj = {"name": meta.get("name", ""), "namespace": meta.get("namespace", namespace)}
    for key in ("uid", "creationTimestamp", "resourceVersion", "generation", "labels"):
        if meta.get(key) is not None:
            out[key] = meta[key]
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED}
    if annotations:
        out["annotations"] = annotations
    return out


def available_actions(rollout: Mapping[str, Any]) -> dict[str, bool]:
    """Which dashboard buttons apply now, judged as Argo's UI does, from the phase and status.

    promote: only while paused. promote full: while an update is in flight (the stable ReplicaSet is
    not the current one) and not aborted. abort: while an update is in flight and not yet aborted.
    retry: only after an abort. restart: whenever the rollout has pods to restart."""
    status = rollout.get("status") or {}
    spec = rollout.get("spec") or {}
    phase = status.get("phase") or names.PHASE_PROGRESSING
    aborted = bool(status.get("abort"))
    in_flight = bool(status.get("currentPodHash")) and status.get("stableRS") != status.get("currentPodHash")
    paused = (
        bool(spec.get("paused")) or bool(status.get("pauseConditions")) or bool(status.get("controllerPause"))
    )
    return {
        "promote": phase == names.PHASE_PAUSED and paused and not aborted,
        "promoteFull": in_flight and not aborted,
        "abort": in_flight and not aborted and phase != names.PHASE_DEGRADED,
        "retry": aborted,
        "restart": phase != names.PHASE_DEGRADED and bool(status.get("stableRS")),
    }


def _int_or_zero(value: Any) -> int:
    """An IntOrString limit as Argo's RolloutInfo reports it: its int value, 0 for a string."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def argo_analysis_run(run: Mapping[str, Any], ns: str) -> Obj:
    """Argo's AnalysisRunInfo from a run of the info view (``service.analysisinfo.run_summary``):
    objectMeta, icon, revision, status, the four counts, ``metrics`` (name, successCondition,
    count, inconclusiveLimit, failureLimit), each measurement as ``nonJobInfo`` (value, status,
    metricName, startedAt) or, when it ran a Job, as ``jobs``, and the run's spec and status."""
    spec_status = run.get("specAndStatus") or {}
    spec = spec_status.get("spec") or {}
    status = spec_status.get("status") or {}
    jobs: list[Obj] = []
    non_jobs: list[Obj] = []
    for mr in status.get("metricResults") or []:
        for m in mr.get("measurements") or []:
            job = (m.get("metadata") or {}).get("job-name")
            if job:
                job_ns = (m.get("metadata") or {}).get("job-namespace") or ns
                jobs.append(
                    {
                        "objectMeta": {
                            "name": job,
                            "namespace": job_ns,
                            "creationTimestamp": m.get("startedAt"),
                        },
                        "icon": analysis_icon(m.get("phase")),
                        "status": m.get("phase", ""),
                        "startedAt": m.get("startedAt"),
                        "metricName": mr.get("name", ""),
                    }
                )
            else:
                non_jobs.append(
                    {
                        "value": m.get("value", ""),
                        "status": m.get("phase", ""),
                        "startedAt": m.get("startedAt"),
                        "metricName": mr.get("name", ""),
                    }
                )
    return {
        "objectMeta": {
            "name": run.get("name", ""),
            "namespace": run.get("namespace") or ns,
            "creationTimestamp": run.get("creationTimestamp"),
            "uid": run.get("uid", ""),
        },
        "icon": run.get("icon", " "),
        "revision": int(run.get("revision") or 0),
        "status": run.get("status", ""),
        "successful": int(run.get("successful") or 0),
        "failed": int(run.get("failed") or 0),
        "inconclusive": int(run.get("inconclusive") or 0),
        "error": int(run.get("error") or 0),
        "jobs": jobs,
        "nonJobInfo": non_jobs,
        "metrics": [
            {
                "name": m.get("name", ""),
                "successCondition": m.get("successCondition", ""),
                "count": _int_or_zero(m.get("count")),
                "inconclusiveLimit": _int_or_zero(m.get("inconclusiveLimit")),
                "failureLimit": _int_or_zero(m.get("failureLimit")),
            }
            for m in spec.get("metrics") or []
        ],
        "specAndStatus": {"spec": spec, "status": status},
    }


def argo_info(view: Mapping[str, Any]) -> Obj:
    """Argo's RolloutInfo from the info view (plus a few fields of ours Argo clients ignore:
    ``phase``, ``activeSelector``, ``previewSelector``, ``stableRS``, ``currentPodHash``,
    ``actions``, ``revisions`` and ``now``)."""
    rollout: Mapping[str, Any] = view.get("rollout") or {}
    ns = str(view.get("namespace") or "default")
    spec = rollout.get("spec") or {}
    status = rollout.get("status") or {}
    replicas = view.get("replicas") or {}
    replica_sets: list[Obj] = []
    newest = max(
        (int(rs.get("revision") or 0) for r in view.get("revisions") or [] for rs in r["replicaSets"]),
        default=0,
    )
    for rev in view.get("revisions") or []:
        for rs in rev.get("replicaSets") or []:
            roles = rs.get("roles") or []
            replica_sets.append(
                {
                    "objectMeta": {
                        "name": rs.get("name", ""),
                        "namespace": ns,
                        "creationTimestamp": rs.get("creationTimestamp"),
                    },
                    "status": rs.get("status", ""),
                    "revision": int(rs.get("revision") or 0),
                    "stable": "stable" in roles,
                    "active": "active" in roles,
                    # Argo marks the preview role also on the active RS when the preview Service
                    # points there too; the info view shows it once, as active, and so do we.
                    "preview": "preview" in roles,
                    "canary": "canary" in roles,
                    "replicas": int(rs.get("replicas") or 0),
                    "available": int(rs.get("availableReplicas") or 0),
                    "ready": int(rs.get("readyReplicas") or 0),
                    "template": rs.get("podTemplateHash", ""),
                    "scaleDownDeadline": rs.get("scaleDownDeadline") or "",
                    "images": list(rs.get("images") or []),
                    "pods": [
                        {
                            "objectMeta": {
                                "name": p.get("name", ""),
                                "namespace": ns,
                                "creationTimestamp": p.get("creationTimestamp"),
                            },
                            "status": p.get("status", ""),
                            "ready": p.get("ready", "0/0"),
                            "allReady": bool(p.get("allReady")),
                            "restarts": int(p.get("restarts") or 0),
                            "hostPort": p.get("hostPort"),
                        }
                        for p in rs.get("pods") or []
                    ],
                    "current": int(rs.get("revision") or 0) == newest,
                }
            )
    containers = [
        {"name": c.get("name", ""), "image": c.get("image", "")}
        for c in ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    ]
    canary = view.get("canary") or {}
    canary_fields = (
        {
            # Argo's RolloutInfo carries these as strings, and the steps as the spec wrote them
            "step": str(canary.get("step") or ""),
            "setWeight": str(canary.get("setWeight", 0)),
            "actualWeight": str(canary.get("actualWeight", 0)),
            "steps": list(((spec.get("strategy") or {}).get("canary") or {}).get("steps") or []),
            # ours beside Argo's: each step's text and state, the services, the status split
            "canary": dict(canary),
        }
        if canary
        else {}
    )
    return {
        "objectMeta": _object_meta(rollout, ns),
        **canary_fields,
        "status": view.get("status", ""),
        "phase": view.get("status", ""),
        "message": view.get("message", ""),
        "strategy": view.get("strategy", ""),
        "desired": int(replicas.get("desired") or 0),
        "current": int(replicas.get("current") or 0),
        "updated": int(replicas.get("updated") or 0),
        "ready": int(replicas.get("ready") or 0),
        "available": int(replicas.get("available") or 0),
        "restartedAt": status.get("restartedAt") or "",
        "generation": str(status.get("observedGeneration") or ""),
        "containers": containers,
        "images": list(view.get("images") or []),
        "replicaSets": replica_sets,
        "analysisRuns": [argo_analysis_run(r, ns) for r in view.get("analysisRuns") or []],
        "revisions": sorted(
            {rs["revision"] for rs in replica_sets}
            | {int(r.get("revision") or 0) for r in view.get("analysisRuns") or []},
            reverse=True,
        ),
        "activeSelector": view.get("activeSelector", ""),
        "previewSelector": view.get("previewSelector", ""),
        "stableRS": view.get("stableRS", ""),
        "currentPodHash": view.get("currentPodHash", ""),
        "actions": available_actions(rollout),
        "now": view.get("now", ""),
    }
