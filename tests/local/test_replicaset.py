"""The local ReplicaSet controller: Pods per ReplicaSet, status as kube-controller-manager computes
it (minReadySeconds, observedGeneration), and the scale-down ranking."""

from __future__ import annotations

import time
from typing import Any

from pyrollouts.runtimes.local.replicaset import compute_status, deletion_order
from pyrollouts.runtimes.local.runtime import LocalRuntime
from pyrollouts.runtimes.local.supervisor import parse_time, precise_now

IMAGE = "ghcr.io/gbaeke/super:1.0.2"


def replicaset(name: str, replicas: int, min_ready: int = 0) -> dict[str, Any]:
    container = {
        "name": "app",
        "image": IMAGE,
        "ports": [{"containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "minReadySeconds": min_ready,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, "rollouts-pod-template-hash": "abc"}},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [container]},
            },
        },
    }


def status(rt: LocalRuntime, name: str) -> dict[str, Any]:
    return rt.store.get("ReplicaSet", "default", name).get("status") or {}


async def test_status_counts_available_after_min_ready_seconds(runtime: LocalRuntime, wait_for: Any) -> None:
    await runtime.cluster.create("ReplicaSet", replicaset("web", 2, min_ready=2))
    pods = await wait_for(
        lambda: len(runtime.store.list("Pod")) == 2 and runtime.store.list("Pod"), timeout=2
    )
    assert all(p["metadata"]["name"].startswith("web-") and len(p["metadata"]["name"]) == 9 for p in pods)
    assert all(p["metadata"]["labels"] == {"app": "web", "rollouts-pod-template-hash": "abc"} for p in pods)
    owner = pods[0]["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "ReplicaSet" and owner["name"] == "web" and owner["controller"] is True
    assert status(runtime, "web")["replicas"] == 2
    await wait_for(lambda: status(runtime, "web").get("readyReplicas") == 2, timeout=6)
    assert status(runtime, "web")["availableReplicas"] < 2  # the second has only just become ready
    # Nothing else changes after that: only the controller's own timer can make them available.
    await wait_for(lambda: status(runtime, "web").get("availableReplicas") == 2, timeout=5, interval=0.02)
    seen = time.time()
    ready_since = [
        parse_time(c["lastTransitionTime"])
        for p in runtime.store.list("Pod")
        for c in p["status"]["conditions"]
        if c["type"] == "Ready"
    ]
    assert seen - max(t for t in ready_since if t is not None) >= 1.99  # ready for minReadySeconds
    st = status(runtime, "web")
    assert st == {
        "replicas": 2,
        "fullyLabeledReplicas": 2,
        "readyReplicas": 2,
        "availableReplicas": 2,
        "observedGeneration": 1,
    }


async def test_scaling_and_observed_generation(runtime: LocalRuntime, wait_for: Any) -> None:
    await runtime.cluster.create("ReplicaSet", replicaset("web", 1))
    await wait_for(lambda: status(runtime, "web").get("availableReplicas") == 1, timeout=6)
    rs = await runtime.cluster.patch("ReplicaSet", "default", "web", {"spec": {"replicas": 3}})
    assert rs["metadata"]["generation"] == 2
    await wait_for(lambda: status(runtime, "web").get("availableReplicas") == 3, timeout=6)
    assert status(runtime, "web")["observedGeneration"] == 2
    ports = {LocalRuntime.pod_ports(p)[8080] for p in runtime.store.list("Pod")}
    assert len(ports) == 3  # every replica has its own host port
    await runtime.cluster.patch("ReplicaSet", "default", "web", {"spec": {"replicas": 1}})
    # Terminating Pods stop counting at once, before their processes are gone.
    await wait_for(lambda: status(runtime, "web").get("replicas") == 1, timeout=2)
    await wait_for(lambda: len(runtime.store.list("Pod")) == 1, timeout=5)
    assert status(runtime, "web")["availableReplicas"] == 1


async def test_a_deleted_pod_is_replaced(runtime: LocalRuntime, wait_for: Any) -> None:
    await runtime.cluster.create("ReplicaSet", replicaset("web", 1))
    await wait_for(lambda: status(runtime, "web").get("readyReplicas") == 1, timeout=6)
    old = runtime.store.list("Pod")[0]["metadata"]["name"]
    await runtime.cluster.delete("Pod", "default", old)
    await wait_for(
        lambda: [p["metadata"]["name"] for p in runtime.store.list("Pod")] not in ([], [old]), timeout=3
    )
    await wait_for(lambda: status(runtime, "web").get("readyReplicas") == 1, timeout=6)


def pod(name: str, phase: str, ready_since: float | None, restarts: int = 0) -> dict[str, Any]:
    cond = {"type": "Ready", "status": "False"}
    if ready_since is not None:
        cond = {
            "type": "Ready",
            "status": "True",
            "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ready_since)),
        }
    return {
        "metadata": {"name": name, "labels": {"app": "x"}},
        "status": {"phase": phase, "conditions": [cond], "containerStatuses": [{"restartCount": restarts}]},
    }


def test_deletion_order_ranks_like_kubernetes() -> None:
    now = time.time()
    pods = [
        pod("old-ready", "Running", now - 100),
        pod("pending", "Pending", None),
        pod("new-ready", "Running", now - 10),
        pod("running-unready", "Running", None),
        pod("restarty", "Running", now - 100, restarts=4),
        pod("newest-unready", "Running", None),
    ]
    order = [p["metadata"]["name"] for p in deletion_order(pods)]
    assert order == ["pending", "newest-unready", "running-unready", "new-ready", "restarty", "old-ready"]


def test_compute_status_and_when_it_changes_next() -> None:
    rs = {
        "metadata": {"generation": 4},
        "spec": {"minReadySeconds": 30, "template": {"metadata": {"labels": {"app": "x"}}}},
    }
    now = time.time()
    pods = [pod("a", "Running", now - 100), pod("b", "Running", now - 5), pod("c", "Pending", None)]
    pods[2]["metadata"]["labels"] = {"app": "y"}
    st, nxt = compute_status(rs, pods, now)
    assert st == {
        "replicas": 3,
        "fullyLabeledReplicas": 2,
        "readyReplicas": 2,
        "availableReplicas": 1,
        "observedGeneration": 4,
    }
    assert nxt is not None and 24 <= nxt - now <= 26
    assert precise_now().endswith("Z")
