"""The informer's relist on ``410 Gone``, against the real API server and etcd.

A real 410: the API server serves Events straight from etcd (their watch cache is off by default, see
kube-apiserver's DefaultWatchCacheSizes), so once etcd's history is compacted past the informer's
resume point, the resumed watch ends with a 410 "too old" error, exactly as after the API server's
own periodic compaction in a real cluster. (Kinds with a watch cache, e.g. Services, keep being
served from the cache's history after an etcd compaction: no 410 there within a test's time.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from lightkube.core.exceptions import ApiError

from harness.k8s_cluster import ControlPlane
from pyrollouts.model.cluster import WatchEvent
from pyrollouts.runtimes.kubernetes.cluster import KubeCluster, make_client
from pyrollouts.runtimes.kubernetes.informer import InformerSet
from pyrollouts.runtimes.kubernetes.resources import resource_of

_LOGGER = "pyrollouts.kubernetes.informer"


def _event(ns: str, name: str, message: str = "first") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": ns},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": ns},
        "reason": "Test",
        "type": "Normal",
        "message": message,
    }


def _drained(queue: asyncio.Queue[WatchEvent]) -> list[WatchEvent]:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


async def _until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)


async def _first_watch_error(cluster: KubeCluster, namespace: str, resource_version: str) -> ApiError:
    """The error a watch of Events from ``resource_version`` ends with (AssertionError if none)."""
    try:
        async for type_, item in cluster.client.watch(
            resource_of("Event"), namespace=namespace, resource_version=resource_version
        ):
            raise AssertionError(f"the watch from {resource_version} was served: {type_} {item}")
    except ApiError as exc:
        return exc
    raise AssertionError(f"the watch from {resource_version} ended without an error")


def test_gone_relists_and_replays_what_was_missed(
    control_plane: ControlPlane, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=_LOGGER)

    async def go() -> None:
        client = make_client(str(control_plane.kubeconfig))
        cluster = KubeCluster(client, namespace=namespace, cache=False)  # writes go straight to the API
        hub = InformerSet(client, ["Event"], namespace)
        inf = hub.informers["Event"]
        try:
            for name in ("untouched", "modified", "deleted"):
                await cluster.create("Event", _event(namespace, name))
            sub = hub.subscribe(["Event"], namespace)
            hub.start()
            await hub.wait_synced(20)
            first = _drained(sub.queue)
            assert sorted((e.type, e.obj["metadata"]["name"]) for e in first) == [
                ("ADDED", "deleted"),
                ("ADDED", "modified"),
                ("ADDED", "untouched"),
            ]
            assert inf.lists == 1

            # Blind: the watch is stopped; a restart resumes from the last resourceVersion seen.
            await hub.stop()
            stale = inf.resource_version
            assert stale is not None
            await cluster.create("Event", _event(namespace, "added"))
            await cluster.patch("Event", namespace, "modified", {"message": "second"})
            await cluster.delete("Event", namespace, "deleted")
            compacted = control_plane.compact_etcd()
            assert compacted > int(stale) + 1, (stale, compacted)
            # The API server itself now refuses the informer's resume point with 410.
            gone = await asyncio.wait_for(_first_watch_error(cluster, namespace, stale), 120)
            assert gone.status.code == 410, gone.status

            hub.start()
            await _until(lambda: inf.lists >= 2, 120, "the informer to relist")
            # The synthetic events are handed on inside the relist, before it returns.
            replayed = _drained(sub.queue)
            assert inf.lists == 2
            assert sorted((e.type, e.obj["metadata"]["name"]) for e in replayed) == [
                ("ADDED", "added"),
                ("DELETED", "deleted"),
                ("MODIFIED", "modified"),
            ]
            by_type = {e.type: e.obj for e in replayed}
            assert by_type["MODIFIED"]["message"] == "second"
            assert by_type["DELETED"]["message"] == "first"  # the last state the informer knew
            # It relisted because of the 410, and for no other reason.
            gone_logs = [r for r in caplog.records if r.name == _LOGGER and "is gone" in r.getMessage()]
            assert len(gone_logs) == 1 and stale in gone_logs[0].getMessage()
            assert not [r for r in caplog.records if r.name == _LOGGER and r.levelno >= logging.WARNING]
            assert inf.last_error is None

            # The cache equals a fresh list from the API server, but for managedFields, which the
            # cache does not keep (no reader uses them; every read of the cache copies what it keeps).
            fresh = {o["metadata"]["name"]: o for o in await cluster.list("Event", namespace)}
            assert all(o["metadata"].get("managedFields") for o in fresh.values())
            for o in fresh.values():
                del o["metadata"]["managedFields"]
            cached = {o["metadata"]["name"]: o for o in inf.list(namespace)}
            assert sorted(cached) == ["added", "modified", "untouched"]
            assert cached == fresh

            # And it watches on from the new list, without listing again.
            await cluster.create("Event", _event(namespace, "later"))
            ev = await asyncio.wait_for(sub.queue.get(), 120)
            assert (ev.type, ev.obj["metadata"]["name"]) == ("ADDED", "later")
            assert inf.lists == 2 and inf.get(namespace, "later") is not None
        finally:
            await hub.stop()
            await client.close()

    asyncio.run(go())
