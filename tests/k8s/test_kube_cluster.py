"""``KubeCluster`` honours the Cluster protocol on the real API server: errors, preconditions, the
status subresource, caches and their watch."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import kube_helpers
import pytest
import yaml
from kube_helpers import REPO

from pyrollouts.model.cluster import Conflict, Invalid, NotFound
from pyrollouts.runtimes.kubernetes.cluster import KubeCluster, make_client
from pyrollouts.testing.k8s_cluster import ControlPlane

_crds = pytest.fixture(name="crds")(kube_helpers.crds_fixture)


def _rollout(ns: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((REPO / "examples" / "super-hello.yaml").read_text()) if d]
    ro = copy.deepcopy(next(d for d in docs if d["kind"] == "Rollout"))
    ro["metadata"]["namespace"] = ns
    return ro


def test_cluster_protocol(control_plane: ControlPlane, namespace: str, crds: None) -> None:
    async def go() -> None:
        cluster = KubeCluster(make_client(str(control_plane.kubeconfig)), namespace=namespace)
        await cluster.start(timeout=30)
        try:
            sub = cluster.watch(["Rollout", "ReplicaSet"], namespace)
            created = await cluster.create("Rollout", _rollout(namespace))
            assert created["kind"] == "Rollout" and created["metadata"]["uid"]
            with pytest.raises(Conflict):
                await cluster.create("Rollout", _rollout(namespace))
            with pytest.raises(NotFound):
                await cluster.get("Rollout", namespace, "nope")
            with pytest.raises(NotFound):
                await cluster.get("ReplicaSet", namespace, "nope")  # from the cache
            rv = created["metadata"]["resourceVersion"]
            # status only through the subresource; a stale resourceVersion is a Conflict
            out = await cluster.patch(
                "Rollout",
                namespace,
                "super-hello",
                {"status": {"abort": True}},
                subresource="status",
                resource_version=rv,
            )
            assert out["status"]["abort"] is True
            with pytest.raises(Conflict):
                await cluster.patch(
                    "Rollout",
                    namespace,
                    "super-hello",
                    {"status": {"abort": False}},
                    subresource="status",
                    resource_version=rv,
                )
            assert (await cluster.get("Rollout", namespace, "super-hello"))["status"]["abort"] is True
            # the API server's refusal, with its own message
            bad = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {"name": "bad", "namespace": namespace, "labels": {"a": "b"}},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"a": "b"}},
                    "template": {
                        "metadata": {"labels": {"a": "b"}},
                        "spec": {
                            "containers": [
                                {
                                    "name": "c",
                                    "image": "x",
                                    "readinessProbe": {"httpGet": {"path": "/", "port": "8080"}},
                                }
                            ]
                        },
                    },
                },
            }
            with pytest.raises(Invalid, match="8080"):
                await cluster.create("ReplicaSet", bad)
            good = copy.deepcopy(bad)
            good["metadata"]["name"] = "good"
            good["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = 8080
            await cluster.create("ReplicaSet", good)
            seen: list[tuple[str, str, str]] = []

            async def collect() -> None:
                async for ev in sub:
                    seen.append((ev.type, ev.kind, ev.obj["metadata"]["name"]))
                    if ("ADDED", "ReplicaSet", "good") in seen:
                        return

            await asyncio.wait_for(collect(), 10)
            assert ("ADDED", "Rollout", "super-hello") in seen
            # the cache serves it once the watch delivered it
            assert (await cluster.get("ReplicaSet", namespace, "good"))["metadata"]["name"] == "good"
            assert [
                r["metadata"]["name"] for r in await cluster.list("ReplicaSet", namespace, {"a": "b"})
            ] == ["good"]
            await cluster.delete("ReplicaSet", namespace, "good")
            with pytest.raises(NotFound):
                await cluster.delete("ReplicaSet", namespace, "good")
        finally:
            await cluster.close()

    asyncio.run(go())
