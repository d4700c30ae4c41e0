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
from lightkube.types import PatchType

from harness.k8s_cluster import ControlPlane
from pyrollouts.model.cluster import Conflict, Invalid, NotFound
from pyrollouts.runtimes.kubernetes.cluster import KubeCluster, make_client
from pyrollouts.runtimes.kubernetes.resources import RESOURCES

_crds = pytest.fixture(name="crds")(kube_helpers.crds_fixture)


def _rollout(ns: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((REPO / "examples" / "super-hello.yaml").read_text()) if d]
    ro = copy.deepcopy(next(d for d in docs if d["kind"] == "Rollout"))
    ro["metadata"]["namespace"] = ns
    return ro


def test_cluster_protocol(control_plane: ControlPlane, namespace: str, crds: None) -> None:
    async def go() -> None:
        cluster = KubeCluster(make_client(str(control_plane.kubeconfig)), namespace=namespace)
        await cluster.start(timeout=120)
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
            out = await _set_abort(cluster, namespace, True, rv)
            assert out["status"]["abort"] is True
            with pytest.raises(Conflict):
                await _set_abort(cluster, namespace, False, rv)
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

            await asyncio.wait_for(collect(), 120)
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


def test_readonly_reads_hand_out_the_cached_objects_without_managed_fields(
    control_plane: ControlPlane, namespace: str, crds: None
) -> None:
    """A caller that only reads (the controller's gather of Pods and Services) gets the cache's own
    objects, not copies; every other read still gets a copy of its own. The cache keeps no
    managedFields, which a live read of the same object has (issue 15)."""

    async def go() -> None:
        cluster = KubeCluster(make_client(str(control_plane.kubeconfig)), namespace=namespace)
        await cluster.start(timeout=120)
        try:
            svc = {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "web-prod", "namespace": namespace, "annotations": {"a": "b"}},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
            }
            rs = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {"name": "web-1", "namespace": namespace, "labels": {"app": "web"}},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "c", "image": "x"}]},
                    },
                },
            }
            await cluster.create("Service", svc)
            await cluster.create("ReplicaSet", rs)
            for _ in range(600):  # until the watch has put both in the caches
                try:
                    await cluster.get_readonly("Service", namespace, "web-prod")
                    if await cluster.list_owned("ReplicaSet", namespace, (), also_named="web"):
                        break
                except NotFound:
                    pass
                await asyncio.sleep(0.2)
            view = await cluster.get_readonly("Service", namespace, "web-prod")
            assert view is await cluster.get_readonly("Service", namespace, "web-prod")
            copied = await cluster.get("Service", namespace, "web-prod")
            assert copied == view and copied is not view
            copied["metadata"]["annotations"]["a"] = "changed"  # a copy's change stays in the copy
            assert view["metadata"]["annotations"] == {"a": "b"}

            def owned(readonly: bool) -> Any:
                return cluster.list_owned("ReplicaSet", namespace, (), also_named="web", readonly=readonly)

            [rs_view], [rs_again], [rs_copy] = await owned(True), await owned(True), await owned(False)
            assert rs_view is rs_again and rs_copy == rs_view and rs_copy is not rs_view

            live = await cluster.client.get(RESOURCES["Service"], "web-prod", namespace=namespace)
            assert live["metadata"].get("managedFields")
            assert "managedFields" not in view["metadata"] and "managedFields" not in rs_view["metadata"]
            with pytest.raises(NotFound):
                await cluster.get_readonly("Service", namespace, "nope")
        finally:
            await cluster.close()

    asyncio.run(go())


def test_controller_reads_the_rollout_from_its_cache_unless_older_than_it_knows(
    control_plane: ControlPlane, namespace: str, crds: None
) -> None:
    """``cached_rollout_reads`` (the operator's): a Rollout is read from the watch cache, with no
    request, whenever the cached copy is the newest version this client has seen; after its own
    write, until the cache has it, and after a lost race, it is read live, never older."""

    async def go() -> None:
        cluster = KubeCluster(
            make_client(str(control_plane.kubeconfig)), namespace=namespace, cached_rollout_reads=True
        )
        await cluster.start(timeout=120)
        assert cluster.informers is not None
        cache = cluster.informers.informers["Rollout"]

        def cached_version() -> str | None:
            obj = cache.get(namespace, "super-hello")
            return obj["metadata"]["resourceVersion"] if obj else None

        async def until_cached(rv: str) -> None:
            async with asyncio.timeout(120):
                while cached_version() != rv:
                    await asyncio.sleep(0.02)

        async def read() -> tuple[str, int]:
            """The version a get returns, and how many live GETs it cost."""
            cluster.requests.clear()
            got = await cluster.get("Rollout", namespace, "super-hello")
            assert got["kind"] == "Rollout"
            return got["metadata"]["resourceVersion"], cluster.requests["get Rollout"]

        try:
            rv0 = (await cluster.create("Rollout", _rollout(namespace)))["metadata"]["resourceVersion"]
            await until_cached(rv0)
            assert await read() == (rv0, 0), "served from the cache"

            # Our own write: until the cache has it, a read is live and returns it (never rv0).
            out = await _set_abort(cluster, namespace, True, rv0)
            rv1 = out["metadata"]["resourceVersion"]
            in_cache_already = cached_version() == rv1
            assert await read() == (rv1, 0 if in_cache_already else 1)
            await until_cached(rv1)
            assert await read() == (rv1, 0)

            # A lost race (a stale precondition): the next read is live, the one after cached.
            with pytest.raises(Conflict):
                await _set_abort(cluster, namespace, False, rv0)
            assert await read() == (rv1, 1)
            assert await read() == (rv1, 0), "the live read told it the cache is current again"

            # Someone else's write the client has not seen: the cache's newer copy is read live once.
            await cluster.client.patch(
                RESOURCES["Rollout"],
                "super-hello",
                {"metadata": {"labels": {"x": "y"}}},
                namespace=namespace,
                patch_type=PatchType.MERGE,
            )
            rv2 = str(
                (
                    await cluster.client.get(RESOURCES["Rollout"], "super-hello", namespace=namespace)
                ).to_dict()["metadata"]["resourceVersion"]
            )
            await until_cached(rv2)
            assert await read() == (rv2, 1)
            assert await read() == (rv2, 0)
        finally:
            await cluster.close()

    asyncio.run(go())


async def _set_abort(cluster: KubeCluster, namespace: str, value: bool, rv: str) -> dict[str, Any]:
    """Write status.abort with ``rv`` as the precondition, as the controller writes status."""
    return await cluster.patch(
        "Rollout",
        namespace,
        "super-hello",
        {"status": {"abort": value}},
        subresource="status",
        resource_version=rv,
    )


def _rs(ns: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": ns, "labels": {"a": name}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"a": name}},
            "template": {
                "metadata": {"labels": {"a": name}},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
        },
    }


def test_informer_resumes_and_relists_on_gone(control_plane: ControlPlane, namespace: str) -> None:
    from pyrollouts.model.cluster import WatchEvent
    from pyrollouts.runtimes.kubernetes.informer import Informer

    async def go() -> None:
        client = make_client(str(control_plane.kubeconfig))
        events: list[WatchEvent] = []
        inf = Informer(client, "ReplicaSet", namespace, events.append)
        cluster = KubeCluster(client, namespace=namespace, cache=False)

        async def until(name: str) -> None:
            while not any(e.type == "ADDED" and e.obj["metadata"]["name"] == name for e in events):
                await asyncio.sleep(0.05)

        try:
            task = asyncio.create_task(inf.run())
            await asyncio.wait_for(inf.synced.wait(), 120)
            # stopped meanwhile: a restarted informer resumes the watch from its resourceVersion
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await cluster.create("ReplicaSet", _rs(namespace, "one"))
            task = asyncio.create_task(inf.run())
            await asyncio.wait_for(until("one"), 120)
            assert inf.lists == 1
            # After a 410 Gone the informer relists: what changed while it was blind comes out as
            # events. (ReplicaSets are served from the API server's watch cache, which keeps minutes
            # of history, so this test stages the 410 by hand; test_informer_relist.py provokes a
            # real one on Events, whose watches go to etcd, by compacting etcd.)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await cluster.create("ReplicaSet", _rs(namespace, "two"))
            await cluster.delete("ReplicaSet", namespace, "one")
            events.clear()
            await inf._relist()
            assert inf.lists == 2
            assert ("ADDED", "two") in [(e.type, e.obj["metadata"]["name"]) for e in events]
            assert ("DELETED", "one") in [(e.type, e.obj["metadata"]["name"]) for e in events]
            assert [o["metadata"]["name"] for o in inf.list(namespace)] == ["two"]
            task = asyncio.create_task(inf.run())  # and watches on from the new list
            await cluster.create("ReplicaSet", _rs(namespace, "three"))
            await asyncio.wait_for(until("three"), 120)
            assert inf.lists == 2
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        finally:
            await client.close()

    asyncio.run(go())
