"""RolloutController over a real Cluster (the local runtime's SQLite store, no processes).

The store runs no ReplicaSet controller, so pods appear only when a test creates them: what is
checked is the controller's own work (list, watch, route, reconcile, retry), not a converged
rollout. Real asyncio; every wait is on a condition with a generous limit.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import support
from harness.support import wait_until_async
from pyrollouts.controller.controller import WATCHED_KINDS, RolloutController
from pyrollouts.model import names
from pyrollouts.model.cluster import ClusterError, Invalid, Obj, WatchEvent
from pyrollouts.model.useractions import apply_merge_patch
from pyrollouts.runtimes.kubernetes.cluster import CONTROLLER_CACHED_KINDS
from pyrollouts.runtimes.local.cluster import LocalCluster
from pyrollouts.runtimes.local.store import Store

MANIFEST = Path(__file__).resolve().parents[2] / "scenarios" / "manifests" / "super-hello.yaml"
NS = "my-app"
KEY = f"{NS}/super-hello"
LIMIT = 30.0  # seconds: generous, a condition that holds returns long before


def manifest(rollout_patch: dict[str, Any] | None = None) -> list[Obj]:
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
    if rollout_patch:
        docs = [apply_merge_patch(d, rollout_patch) if d["kind"] == "Rollout" else d for d in docs]
    return docs


async def create_all(cluster: LocalCluster, objs: list[Obj]) -> None:
    for obj in objs:
        await cluster.create(obj["kind"], copy.deepcopy(obj))


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    await wait_until_async(check, LIMIT, what, interval=0.01)


async def owned_replicasets(cluster: LocalCluster, rollout: Obj) -> list[Obj]:
    return support.owned_replicasets(rollout, await cluster.list("ReplicaSet", NS))


class Reconciles:
    """Records on_reconcile calls: (key, error) in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Exception | None]] = []

    def __call__(self, info: Obj, seconds: float, err: Exception | None) -> None:
        assert seconds >= 0
        self.calls.append((str(info["key"]), err))

    def reconciled(self) -> list[str]:
        return [k for k, _ in self.calls]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    store = Store(tmp_path / "state.db")
    yield LocalCluster(store)
    store.close()


@asynccontextmanager
async def running(ctl: RolloutController) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(ctl.run())
    try:
        await asyncio.wait_for(ctl.ready.wait(), LIMIT)
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _reconciled(cluster: LocalCluster) -> bool:
    rollout = await cluster.get("Rollout", NS, "super-hello")
    rss = await owned_replicasets(cluster, rollout)
    return bool((rollout.get("status") or {}).get("phase")) and [rs["spec"]["replicas"] for rs in rss] == [3]


async def test_a_rollout_listed_at_start_gets_its_replicaset_and_status(cluster: LocalCluster) -> None:
    await create_all(cluster, manifest())
    seen = Reconciles()
    async with running(RolloutController(cluster, on_reconcile=seen)):
        await until(lambda: _reconciled(cluster), "the new ReplicaSet at 3 replicas and a status phase")
    rollout = await cluster.get("Rollout", NS, "super-hello")
    (rs,) = await owned_replicasets(cluster, rollout)
    assert rs["metadata"]["labels"][names.POD_TEMPLATE_HASH_LABEL] == rollout["status"]["currentPodHash"]
    assert rollout["status"]["phase"] == names.PHASE_PROGRESSING  # no pods run in a bare store
    assert KEY in seen.reconciled()
    assert all(err is None for _, err in seen.calls)


async def test_a_rollout_created_later_is_reconciled_from_the_watch(cluster: LocalCluster) -> None:
    ctl = RolloutController(cluster)
    async with running(ctl):
        await create_all(cluster, manifest())
        await until(lambda: _reconciled(cluster), "the Rollout created after start reconciled")


async def test_its_replicasets_status_change_requeues_the_rollout(cluster: LocalCluster) -> None:
    """What the plan waits for in pods (ready, available) reaches it as its ReplicaSet's status."""
    await create_all(cluster, manifest())
    seen = Reconciles()
    async with running(RolloutController(cluster, on_reconcile=seen)):
        await until(lambda: _reconciled(cluster), "the first reconcile")
        rollout = await cluster.get("Rollout", NS, "super-hello")
        (rs,) = await owned_replicasets(cluster, rollout)
        before = len(seen.calls)
        await cluster.patch(
            "ReplicaSet",
            NS,
            rs["metadata"]["name"],
            {"status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}},
            subresource="status",
        )

        async def requeued() -> bool:
            return KEY in seen.reconciled()[before:]

        await until(requeued, "a reconcile of the Rollout after its ReplicaSet's status changed")


async def test_a_pod_change_is_not_routed_but_its_replicasets_is(cluster: LocalCluster) -> None:
    """As Argo's rollout controller: a Pod's change queues nothing (its ReplicaSet's status change
    follows it); a ReplicaSet's change queues the Rollout that owns it. Pods are still read from the
    caches by each reconcile, so the operator keeps caching them."""
    ctl = RolloutController(cluster)
    rs = {
        "kind": "ReplicaSet",
        "metadata": {
            "namespace": NS,
            "name": "super-hello-abc",
            "ownerReferences": [{"kind": "Rollout", "name": "super-hello", "uid": "u1"}],
        },
    }
    pod = {
        "kind": "Pod",
        "metadata": {
            "namespace": NS,
            "name": "super-hello-abc-x1",
            "ownerReferences": [{"kind": "ReplicaSet", "name": "super-hello-abc", "uid": "u2"}],
        },
    }
    await ctl._route(WatchEvent("MODIFIED", "ReplicaSet", rs))
    assert len(ctl.queue) == 1 and await ctl.queue.get() == KEY
    await ctl.queue.done(KEY)
    await ctl._route(WatchEvent("MODIFIED", "Pod", pod))
    assert len(ctl.queue) == 0
    assert "Pod" not in WATCHED_KINDS and "Pod" in CONTROLLER_CACHED_KINDS


async def test_a_service_change_requeues_the_rollouts_of_its_namespace(cluster: LocalCluster) -> None:
    await create_all(cluster, manifest())
    seen = Reconciles()
    async with running(RolloutController(cluster, on_reconcile=seen)):
        await until(lambda: _reconciled(cluster), "the first reconcile")
        before = len(seen.calls)
        await cluster.patch("Service", NS, "super-hello-preview", {"metadata": {"labels": {"x": "y"}}})

        async def requeued() -> bool:
            return KEY in seen.reconciled()[before:]

        await until(requeued, "a reconcile of the Rollout after its Service changed")


async def test_an_instance_id_limits_the_rollouts_reconciled(cluster: LocalCluster) -> None:
    objs = manifest()
    await create_all(cluster, objs)
    other = copy.deepcopy(next(o for o in objs if o["kind"] == "Rollout"))
    other["metadata"]["name"] = "sharded"
    other["metadata"]["labels"] = {names.INSTANCE_ID_LABEL: "shard-a"}
    await cluster.create("Rollout", other)
    seen = Reconciles()
    async with running(RolloutController(cluster, instance_id="shard-a", on_reconcile=seen)):

        async def both_looked_at() -> bool:
            sharded = await cluster.get("Rollout", NS, "sharded")
            return bool((sharded.get("status") or {}).get("phase")) and KEY in seen.reconciled()

        await until(both_looked_at, "the sharded Rollout reconciled and the other one looked at")
    plain = await cluster.get("Rollout", NS, "super-hello")
    assert not plain.get("status")
    assert await owned_replicasets(cluster, plain) == []


async def test_an_unparseable_rollout_is_degraded_with_the_field_named(cluster: LocalCluster) -> None:
    await create_all(cluster, manifest({"spec": {"replicas": "three"}}))
    async with running(RolloutController(cluster)):

        async def degraded() -> bool:
            status = (await cluster.get("Rollout", NS, "super-hello")).get("status") or {}
            return status.get("phase") == names.PHASE_DEGRADED

        await until(degraded, "phase Degraded")
    status = (await cluster.get("Rollout", NS, "super-hello"))["status"]
    assert status["message"].startswith("InvalidSpec: spec.replicas: ")


async def test_a_missing_rollout_is_nothing_to_do(cluster: LocalCluster) -> None:
    assert await RolloutController(cluster).reconcile(f"{NS}/nowhere") is None


class FailingCreates(LocalCluster):
    """The store, except that the first ``n`` ReplicaSet creates fail (a cluster that is down)."""

    def __init__(self, store: Store, n: int) -> None:
        super().__init__(store)
        self.left = n

    async def create(self, kind: str, obj: Obj) -> Obj:
        if kind == "ReplicaSet" and self.left > 0:
            self.left -= 1
            raise ClusterError("the cluster is down")
        return await super().create(kind, obj)


async def test_a_failed_reconcile_is_reported_and_retried_with_backoff(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    try:
        cluster = FailingCreates(store, n=3)
        await create_all(cluster, manifest())
        seen = Reconciles()
        ctl = RolloutController(cluster, on_reconcile=seen)
        async with running(ctl):
            await until(lambda: _reconciled(cluster), "the reconcile that follows three failures")
        errors = [err for key, err in seen.calls if key == KEY and err is not None]
        assert len(errors) == 3
        assert all(isinstance(e, ClusterError) for e in errors)
        assert ctl.queue.failures(KEY) == 0  # a success resets the backoff
    finally:
        store.close()


class RefusingReplicaSets(LocalCluster):
    """The store, except that it refuses every ReplicaSet (as an API server refuses a bad template)."""

    async def create(self, kind: str, obj: Obj) -> Obj:
        if kind == "ReplicaSet":
            raise Invalid("spec.template.spec.containers[0].ports[0].containerPort: Invalid value")
        return await super().create(kind, obj)


async def test_a_refused_replicaset_is_an_invalid_spec_condition_and_one_warning(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    try:
        cluster = RefusingReplicaSets(store)
        await create_all(cluster, manifest())
        ctl = RolloutController(cluster)
        assert await ctl.reconcile(KEY) == names.INVALID_SPEC_RETRY_SECONDS
        assert await ctl.reconcile(KEY) == names.INVALID_SPEC_RETRY_SECONDS
        status = (await cluster.get("Rollout", NS, "super-hello"))["status"]
        assert status["phase"] == names.PHASE_DEGRADED
        (cond,) = [c for c in status["conditions"] if c["type"] == names.COND_INVALID_SPEC]
        assert "containerPort: Invalid value" in cond["message"]
        warnings = [e for e in await cluster.list("Event", NS) if e.get("type") == "Warning"]
        assert [e["reason"] for e in warnings] == [names.INVALID_SPEC_REASON]  # once, not per retry
    finally:
        store.close()
