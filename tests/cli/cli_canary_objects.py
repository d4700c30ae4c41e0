"""The seed's rollout as a canary (5 replicas, Argo's five steps) in fixed states, for the golden
tests of `get rollout`: fixed names, hashes, times and ports, so the rendering is deterministic."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from cli_seed_objects import HASH1, HASH2, T0, pod, replicaset, rollout, ts

STEPS: list[dict[str, Any]] = [
    {"setWeight": 20},
    {"pause": {}},
    {"setWeight": 50},
    {"pause": {"duration": "10s"}},
    {"setWeight": 100},
]
GATEWAY = {"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "super-hello", "namespace": "my-app"}}}

State = tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], datetime]


def canary_rollout(status: dict[str, Any], traffic_routing: dict[str, Any] | None = None) -> dict[str, Any]:
    ro = rollout(status)
    canary: dict[str, Any] = {
        "canaryService": "super-hello-canary",
        "stableService": "super-hello-stable",
        "steps": STEPS,
    }
    if traffic_routing is not None:
        canary["trafficRouting"] = traffic_routing
    ro["spec"] = dict(ro["spec"], replicas=5, strategy={"canary": canary})
    return ro


def pods(h: str, n: int, created: float, first_port: int) -> list[dict[str, Any]]:
    return [pod(h, f"p{i}x{h[:3]}", created + i, first_port + i) for i in range(n)]


def counts(current: int, updated: int, available: int) -> dict[str, int]:
    return {
        "replicas": current,
        "updatedReplicas": updated,
        "readyReplicas": available,
        "availableReplicas": available,
    }


def canary_paused() -> State:
    """V3 applied: the first step (setWeight: 20) sized the canary to 1 pod of 5, and the
    indefinite pause (step 2) waits for a promote."""
    ro = canary_rollout(
        {
            "phase": "Paused",
            "message": "CanaryPauseStep",
            "stableRS": HASH1,
            "currentPodHash": HASH2,
            "currentStepIndex": 1,
            "currentStepHash": "5f8b7c6d4",
            "controllerPause": True,
            "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": ts(125)}],
            "canary": {},
            **counts(5, 1, 5),
        }
    )
    rss = [replicaset(1, HASH1, 1, 4, 4), replicaset(2, HASH2, 119, 1, 1, welcome="VERSION V3")]
    return ro, rss, pods(HASH1, 4, 2, 41001) + pods(HASH2, 1, 120, 41011), T0 + timedelta(seconds=150)


def canary_traffic() -> State:
    """With trafficRouting: at step 4 (pause: 10s) after setWeight: 50; the stable ReplicaSet
    keeps its full size and the router was given 50."""
    weights = {
        "canary": {"weight": 50, "podTemplateHash": HASH2, "serviceName": "super-hello-canary"},
        "stable": {"weight": 50, "podTemplateHash": HASH1, "serviceName": "super-hello-stable"},
    }
    ro = canary_rollout(
        {
            "phase": "Paused",
            "message": "CanaryPauseStep",
            "stableRS": HASH1,
            "currentPodHash": HASH2,
            "currentStepIndex": 3,
            "controllerPause": True,
            "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": ts(145)}],
            "canary": {"weights": weights},
            **counts(8, 3, 8),
        },
        GATEWAY,
    )
    rss = [replicaset(1, HASH1, 1, 5, 5), replicaset(2, HASH2, 119, 3, 3, welcome="VERSION V3")]
    return ro, rss, pods(HASH1, 5, 2, 41001) + pods(HASH2, 3, 120, 41011), T0 + timedelta(seconds=150)


def canary_aborted() -> State:
    """Aborted at step 3: all traffic back on stable, the canary scaled down."""
    weights = {
        "canary": {"weight": 0, "podTemplateHash": HASH2, "serviceName": "super-hello-canary"},
        "stable": {"weight": 100, "podTemplateHash": HASH1, "serviceName": "super-hello-stable"},
    }
    ro = canary_rollout(
        {
            "phase": "Degraded",
            "message": "RolloutAborted: Rollout aborted update to revision 2",
            "stableRS": HASH1,
            "currentPodHash": HASH2,
            "currentStepIndex": 0,
            "abort": True,
            "abortedAt": ts(140),
            "canary": {"weights": weights},
            **counts(5, 0, 5),
        },
        GATEWAY,
    )
    rss = [
        replicaset(1, HASH1, 1, 5, 5),
        replicaset(2, HASH2, 119, 0, 0, welcome="VERSION V3"),
    ]
    return ro, rss, pods(HASH1, 5, 2, 41001), T0 + timedelta(seconds=150)


def canary_completed() -> State:
    """Every step ran: revision 2 is stable, revision 1 scaled down."""
    ro = canary_rollout(
        {
            "phase": "Healthy",
            "stableRS": HASH2,
            "currentPodHash": HASH2,
            "currentStepIndex": 5,
            "canary": {},
            **counts(5, 5, 5),
        }
    )
    rss = [replicaset(1, HASH1, 1, 0, 0), replicaset(2, HASH2, 119, 5, 5, welcome="VERSION V3")]
    return ro, rss, pods(HASH2, 5, 120, 41011), T0 + timedelta(seconds=200)


CANARY_STATES = {
    "canary-paused": canary_paused,
    "canary-traffic": canary_traffic,
    "canary-aborted": canary_aborted,
    "canary-completed": canary_completed,
}
