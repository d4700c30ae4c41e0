"""Hash collisions on the local runtime: a ReplicaSet already holds the name ``<rollout>-<hash>``.

The real server (store, ReplicaSet controller, supervisor, proxy, rollout controller) must step
around it with status.collisionCount, run the Rollout under another name, and never touch the RS
it does not own. The second test races a create against a gather on the real SQLite store.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.localdriver import LocalDriver
from harness.support import free_port
from pyrollouts import engine
from pyrollouts.controller.apply import ReplicaSetNameTaken, apply_plan
from pyrollouts.controller.clock import Clock
from pyrollouts.controller.observe import gather
from pyrollouts.model import names
from pyrollouts.model.cluster import NotFound
from pyrollouts.model.hash import pod_template_hash
from pyrollouts.model.rollout import Rollout
from pyrollouts.runtimes.local.runtime import LocalRuntime
from pyrollouts.server.apply import apply_objects

MANIFEST = Path(__file__).resolve().parents[1] / "scenarios" / "manifests" / "super-hello.yaml"
TIMEOUT = 30.0


def _manifest() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]


def _squatter(rollout: dict[str, Any], pod_hash: str) -> dict[str, Any]:
    """A ReplicaSet with the name the Rollout's RS would get, not owned by it, another template."""
    template = copy.deepcopy(rollout["spec"]["template"])
    template["spec"]["containers"][0]["env"] = [{"name": "WELCOME", "value": "SOMEONE ELSE"}]
    template["metadata"]["labels"][names.POD_TEMPLATE_HASH_LABEL] = pod_hash
    labels = {"app": "super-hello", names.POD_TEMPLATE_HASH_LABEL: pod_hash}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": f"super-hello-{pod_hash}", "namespace": "my-app", "labels": labels},
        "spec": {"replicas": 0, "selector": {"matchLabels": labels}, "template": template},
    }


async def test_a_taken_name_is_stepped_around_and_the_rollout_turns_healthy() -> None:
    objs = _manifest()
    driver = LocalDriver()
    try:
        await driver.start(objs)
        assert driver.server is not None
        server = driver.server
        cluster, store = server.runtime.cluster, server.runtime.store
        mapped = driver.map_objects(objs)
        rollout = next(o for o in mapped if o["kind"] == "Rollout")
        h0 = pod_template_hash(rollout["spec"]["template"])
        h1 = pod_template_hash(rollout["spec"]["template"], 1)
        squatter = await cluster.create("ReplicaSet", _squatter(rollout, h0))

        await apply_objects(cluster, server.admission, mapped, "my-app", create_only=False)

        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        status: dict[str, Any] = {}
        while loop.time() < deadline:
            status = store.get("Rollout", "my-app", "super-hello").get("status") or {}
            if status.get("phase") == "Healthy":
                break
            await asyncio.sleep(0.05)
        assert status.get("phase") == "Healthy", status
        assert status["collisionCount"] == 1
        assert status["currentPodHash"] == h1 and status["stableRS"] == h1
        assert status["availableReplicas"] == 3

        uid = store.get("Rollout", "my-app", "super-hello")["metadata"]["uid"]
        owned = [rs["metadata"]["name"] for rs in store.owned_by(uid, "ReplicaSet")]
        assert owned == [f"super-hello-{h1}"]
        prod = store.get("Service", "my-app", "super-hello-prod")
        assert prod["spec"]["selector"][names.POD_TEMPLATE_HASH_LABEL] == h1

        # The RS that held the name is exactly as it was: not adopted, not scaled, not annotated.
        now = store.get("ReplicaSet", "my-app", f"super-hello-{h0}")
        assert now["metadata"].get("ownerReferences") in (None, [])
        assert now["metadata"].get("annotations") == squatter["metadata"].get("annotations")
        assert now["spec"] == squatter["spec"]
    finally:
        await driver.close()


async def _stored_seed(cluster: Any) -> dict[str, Any]:
    """The seed's objects written straight to the store (no controller runs); the stored Rollout."""
    for obj in _manifest():
        if obj["kind"] == "Service":
            obj["spec"]["ports"][0]["port"] = free_port()
        await cluster.create(obj["kind"], obj)
    return dict(await cluster.get("Rollout", "my-app", "super-hello"))


async def test_a_create_that_finds_the_name_taken_stops_the_plan(tmp_path: Path) -> None:
    """A gather that missed the RS holding the name (created a moment later): the create's Conflict
    stops the plan before anything touches that RS, and the next plan bumps collisionCount."""
    runtime = LocalRuntime(tmp_path / "state")  # the store only: no pod is ever started here
    cluster = runtime.cluster
    try:
        rollout = await _stored_seed(cluster)
        h0 = pod_template_hash(rollout["spec"]["template"])
        squatter = await cluster.create("ReplicaSet", _squatter(rollout, h0))
        clock = Clock()

        seen = await gather(cluster, rollout, first_seen=True)
        assert [rs.name for rs in seen.foreign_replicasets] == [f"super-hello-{h0}"]
        raced = dataclasses.replace(seen, foreign_replicasets=())  # as if gathered just before
        stale = engine.plan(Rollout.from_wire(rollout), raced, clock.now())
        assert any(isinstance(a, engine.CreateReplicaSet) for a in stale.actions)
        assert any(isinstance(a, engine.ScaleReplicaSet) for a in stale.actions)

        with pytest.raises(ReplicaSetNameTaken):
            await apply_plan(cluster, rollout, stale, clock)
        held = await cluster.get("ReplicaSet", "my-app", f"super-hello-{h0}")
        assert held["spec"] == squatter["spec"] and held["metadata"] == squatter["metadata"]
        after = await cluster.get("Rollout", "my-app", "super-hello")
        assert not after.get("status"), "a stopped plan writes no status"

        fresh = engine.plan(Rollout.from_wire(after), await gather(cluster, after), clock.now())
        assert fresh.status.collision_count == 1
        assert not any(isinstance(a, engine.CreateReplicaSet) for a in fresh.actions)
        assert await apply_plan(cluster, after, fresh, clock) is True
        after = await cluster.get("Rollout", "my-app", "super-hello")
        nxt = engine.plan(Rollout.from_wire(after), await gather(cluster, after), clock.now())
        creates = [a for a in nxt.actions if isinstance(a, engine.CreateReplicaSet)]
        h1 = pod_template_hash(after["spec"]["template"], 1)
        assert [c.name for c in creates] == [f"super-hello-{h1}"]
    finally:
        await runtime.stop()


class _LaggingCache:
    """The local cluster seen through a cache that has not caught up with one ReplicaSet yet (as the
    Kubernetes runtime's informer can be, just after our own create): its reads miss that RS, while
    creates go to the real store and still find the name taken."""

    def __init__(self, inner: Any, hidden: str) -> None:
        self._inner = inner
        self._hidden = hidden

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._inner, attr)

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        if kind == "ReplicaSet" and name == self._hidden:
            raise NotFound(f"{kind} {namespace}/{name} not found")
        return dict(await self._inner.get(kind, namespace, name))


async def test_a_taken_name_not_yet_in_the_cache_is_not_called_a_collision(tmp_path: Path) -> None:
    """Our own RS, created by the last reconcile, not in the cache yet: the repeated create meets the
    name, the holder cannot be seen, so the plan stops without calling it someone else's (held is
    False: the controller replans quietly) and the next plan, with the RS visible, bumps nothing."""
    runtime = LocalRuntime(tmp_path / "state")  # the store only: no pod is ever started here
    cluster = runtime.cluster
    try:
        rollout = await _stored_seed(cluster)
        clock = Clock()
        seen = await gather(cluster, rollout, first_seen=True)
        first = engine.plan(Rollout.from_wire(rollout), seen, clock.now())
        created = [x.name for x in first.actions if isinstance(x, engine.CreateReplicaSet)]
        assert len(created) == 1
        await apply_plan(cluster, rollout, first, clock)

        lagging = _LaggingCache(cluster, created[0])
        with pytest.raises(ReplicaSetNameTaken) as caught:
            await apply_plan(lagging, rollout, first, clock)  # the same plan again, from a stale gather
        assert caught.value.held is False

        after = await cluster.get("Rollout", "my-app", "super-hello")
        fresh = engine.plan(Rollout.from_wire(after), await gather(cluster, after), clock.now())
        assert fresh.status.collision_count in (None, 0)
        assert not any(isinstance(x, engine.CreateReplicaSet) for x in fresh.actions)
    finally:
        await runtime.stop()
