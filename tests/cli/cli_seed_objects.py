"""The seed's rollout (super-hello, 3 replicas) in its four states, as fixed objects.

Used by the golden tests of the `get rollout` tree: fixed names, hashes, times and ports, so the
rendering is deterministic."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

NS = "my-app"
NAME = "super-hello"
IMAGE = "ghcr.io/gbaeke/super:1.0.2"
T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
HASH1 = "6b9c8d7f5"
HASH2 = "7d4f6c9b8"


def ts(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def rollout(status: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": NAME, "namespace": NS, "uid": "uid-ro", "creationTimestamp": ts(0)},
        "spec": {
            "replicas": 3,
            "strategy": {
                "blueGreen": {
                    "activeService": "super-hello-prod",
                    "previewService": "super-hello-preview",
                    "autoPromotionEnabled": False,
                }
            },
            "template": {"spec": {"containers": [{"name": "super-hello", "image": IMAGE}]}},
        },
        "status": status,
    }


def replicaset(
    rev: int,
    h: str,
    created: float,
    replicas: int,
    available: int,
    deadline: str | None = None,
    welcome: str = "VERSION V2",
) -> dict[str, Any]:
    ann = {"rollout.argoproj.io/revision": str(rev)}
    if deadline:
        ann["scale-down-deadline"] = deadline
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{NAME}-{h}",
            "namespace": NS,
            "uid": f"uid-rs-{h}",
            "creationTimestamp": ts(created),
            "labels": {"app": NAME, "rollouts-pod-template-hash": h},
            "annotations": ann,
            "ownerReferences": [
                {
                    "apiVersion": "argoproj.io/v1alpha1",
                    "kind": "Rollout",
                    "name": NAME,
                    "uid": "uid-ro",
                    "controller": True,
                }
            ],
        },
        "spec": {
            "replicas": replicas,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "super-hello",
                            "image": IMAGE,
                            "env": [{"name": "WELCOME", "value": welcome}],
                        }
                    ]
                }
            },
        },
        "status": {"replicas": available, "readyReplicas": available, "availableReplicas": available},
    }


def pod(
    h: str, suffix: str, created: float, port: int, ready: bool = True, restarts: int = 0
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{NAME}-{h}-{suffix}",
            "namespace": NS,
            "uid": f"uid-pod-{suffix}",
            "creationTimestamp": ts(created),
            "labels": {"app": NAME, "rollouts-pod-template-hash": h},
            "annotations": {"local.pyrollouts.io/ports": json.dumps({"8080": port})},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": f"{NAME}-{h}",
                    "uid": f"uid-rs-{h}",
                    "controller": True,
                }
            ],
        },
        "spec": {"containers": [{"name": "super-hello", "image": IMAGE}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [
                {
                    "name": "super-hello",
                    "ready": ready,
                    "restartCount": restarts,
                    "state": {"running": {"startedAt": ts(created)}},
                }
            ],
        },
    }


def pods1() -> list[dict[str, Any]]:
    return [pod(HASH1, "abcde", 2, 41001), pod(HASH1, "fghij", 2, 41002), pod(HASH1, "klmno", 2, 41003)]


def pods2() -> list[dict[str, Any]]:
    return [
        pod(HASH2, "pqrst", 120, 41004),
        pod(HASH2, "uvwxy", 120, 41005, restarts=1),
        pod(HASH2, "zabcd", 121, 41006),
    ]


def bg(active: str, preview: str) -> dict[str, str]:
    return {"activeSelector": active, "previewSelector": preview}


def healthy() -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], datetime]:
    """First deploy done: revision 1 stable and active."""
    ro = rollout(
        {
            "phase": "Healthy",
            "stableRS": HASH1,
            "currentPodHash": HASH1,
            "blueGreen": bg(HASH1, HASH1),
            "replicas": 3,
            "updatedReplicas": 3,
            "readyReplicas": 3,
            "availableReplicas": 3,
        }
    )
    return ro, [replicaset(1, HASH1, 1, 3, 3)], pods1(), T0 + timedelta(seconds=95)


def paused() -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], datetime]:
    """WELCOME=V3 applied: revision 2 on preview, paused before the switch."""
    ro = rollout(
        {
            "phase": "Paused",
            "message": "BlueGreenPause",
            "stableRS": HASH1,
            "currentPodHash": HASH2,
            "blueGreen": bg(HASH1, HASH2),
            "replicas": 6,
            "updatedReplicas": 3,
            "readyReplicas": 3,
            "availableReplicas": 3,
            "pauseConditions": [{"reason": "BlueGreenPause", "startTime": ts(125)}],
        }
    )
    rss = [replicaset(1, HASH1, 1, 3, 3), replicaset(2, HASH2, 119, 3, 3, welcome="VERSION V3")]
    return ro, rss, pods1() + pods2(), T0 + timedelta(seconds=150)


def promoted() -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], datetime]:
    """Promoted: revision 2 stable and active; revision 1 waits for its scale-down deadline."""
    ro = rollout(
        {
            "phase": "Healthy",
            "stableRS": HASH2,
            "currentPodHash": HASH2,
            "blueGreen": bg(HASH2, HASH2),
            "replicas": 6,
            "updatedReplicas": 3,
            "readyReplicas": 3,
            "availableReplicas": 3,
        }
    )
    rss = [
        replicaset(1, HASH1, 1, 3, 3, deadline=ts(190)),
        replicaset(2, HASH2, 119, 3, 3, welcome="VERSION V3"),
    ]
    return ro, rss, pods1() + pods2(), T0 + timedelta(seconds=170)


def scaled_down() -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], datetime]:
    """After the delay: revision 1 scaled to zero."""
    ro = rollout(
        {
            "phase": "Healthy",
            "stableRS": HASH2,
            "currentPodHash": HASH2,
            "blueGreen": bg(HASH2, HASH2),
            "replicas": 3,
            "updatedReplicas": 3,
            "readyReplicas": 3,
            "availableReplicas": 3,
        }
    )
    rss = [replicaset(1, HASH1, 1, 0, 0), replicaset(2, HASH2, 119, 3, 3, welcome="VERSION V3")]
    return ro, rss, pods2(), T0 + timedelta(seconds=200)


STATES = {"healthy": healthy, "paused": paused, "promoted": promoted, "scaled-down": scaled_down}


def analysis_run(
    name: str,
    h: str,
    created: float,
    phase: str | None,
    counts: list[dict[str, int]],
    *,
    revision: int | None = None,
    owner_uid: str = "uid-ro",
    rollout_type: str = "PrePromotion",
) -> dict[str, Any]:
    """An AnalysisRun as Argo's controller writes one for a revision: owned by the Rollout,
    labelled with the revision's pod-template hash and the step that started it (the revision
    annotation only when given), one metric result per entry of ``counts``."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": NS,
        "uid": f"uid-ar-{name}",
        "creationTimestamp": ts(created),
        "labels": {"rollouts-pod-template-hash": h, "rollout-type": rollout_type},
        "ownerReferences": [
            {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": NAME, "uid": owner_uid}
        ],
    }
    if revision is not None:
        meta["annotations"] = {"rollout.argoproj.io/revision": str(revision)}
    n = len(counts)
    results = [{"name": f"m{i}", "phase": phase or "Pending", **c} for i, c in enumerate(counts)]
    status: dict[str, Any] = {"metricResults": results} if phase else {}
    if phase:
        status["phase"] = phase
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": meta,
        "spec": {"metrics": [{"name": f"m{i}", "provider": {"web": {"url": "http://x/"}}} for i in range(n)]},
        "status": status,
    }


def paused_with_analysis() -> tuple[
    dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], datetime, list[dict[str, Any]]
]:
    """The paused state with runs: revision 2's pre-promotion run still running (placed by its
    hash label), a finished one of revision 1 (placed by its revision annotation), a run that
    has no phase yet, and a run owned by another Rollout (left out)."""
    ro, rss, pods, now = paused()
    runs = [
        analysis_run(
            f"{NAME}-{HASH2}-2-pre", HASH2, 121, "Running", [{"successful": 2}, {"successful": 1, "error": 1}]
        ),
        analysis_run(
            f"{NAME}-{HASH1}-1-post",
            HASH1,
            30,
            "Failed",
            [{"successful": 1, "failed": 2, "inconclusive": 1}],
            revision=1,
            rollout_type="PostPromotion",
        ),
        analysis_run(f"{NAME}-{HASH2}-2-new", HASH2, 140, None, []),
        analysis_run("someone-else", HASH2, 100, "Successful", [{"successful": 1}], owner_uid="uid-other"),
    ]
    return ro, rss, pods, now, runs
