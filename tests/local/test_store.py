"""The local store: identity, generation, resourceVersion, ownerReferences, cascade, merge patch,
preconditions, watch order and crash safety, on a real SQLite file."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pyrollouts.model.cluster import Cluster, Conflict, Invalid, NotFound
from pyrollouts.runtimes.local.cluster import LocalCluster
from pyrollouts.runtimes.local.store import Store


def rs(name: str, replicas: int = 1, owner: dict[str, Any] | None = None, **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "shop", "labels": labels}
    if owner is not None:
        meta["ownerReferences"] = [
            {
                "apiVersion": owner["apiVersion"],
                "kind": owner["kind"],
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
                "controller": True,
            }
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": meta,
        "spec": {"replicas": replicas, "template": {"metadata": {"labels": {"app": name}}}},
    }


def pod(name: str, owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": owner["metadata"]["name"],
                    "uid": owner["metadata"]["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": {"containers": []},
    }


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = Store(tmp_path / "state.db")
    yield s
    s.close()


def test_create_assigns_identity_and_namespace(store: Store) -> None:
    obj = store.create("ReplicaSet", rs("web"))
    meta = obj["metadata"]
    assert len(meta["uid"]) == 36 and meta["generation"] == 1
    assert meta["creationTimestamp"].endswith("Z")
    assert int(meta["resourceVersion"]) > 0
    assert store.get("ReplicaSet", "shop", "web") == obj
    ns = store.get("Namespace", "", "shop")
    assert ns["status"]["phase"] == "Active"
    assert int(ns["metadata"]["resourceVersion"]) < int(meta["resourceVersion"])
    with pytest.raises(Conflict, match="already exists"):
        store.create("ReplicaSet", rs("web"))
    with pytest.raises(Invalid, match=r"metadata\.name"):
        store.create("ReplicaSet", rs("Bad_Name"))
    with pytest.raises(NotFound):
        store.get("ReplicaSet", "shop", "nope")


def test_create_drops_status_and_generates_names(store: Store) -> None:
    body = rs("web")
    body["status"] = {"replicas": 9}
    assert "status" not in store.create("ReplicaSet", body)
    gen = store.create(
        "Pod", {"kind": "Pod", "metadata": {"generateName": "web-", "namespace": "shop"}, "spec": {}}
    )
    assert gen["metadata"]["name"].startswith("web-") and len(gen["metadata"]["name"]) == 9


def test_generation_resource_version_and_subresources(store: Store) -> None:
    obj = store.create("ReplicaSet", rs("web"))
    rv0 = int(obj["metadata"]["resourceVersion"])
    # A metadata-only write: new resourceVersion, same generation.
    obj = store.patch("ReplicaSet", "shop", "web", {"metadata": {"annotations": {"a": "1"}}})
    assert obj["metadata"]["generation"] == 1 and int(obj["metadata"]["resourceVersion"]) > rv0
    # A spec change bumps generation.
    obj = store.patch("ReplicaSet", "shop", "web", {"spec": {"replicas": 3}})
    assert obj["metadata"]["generation"] == 2 and obj["spec"]["replicas"] == 3
    # A status write never changes spec or generation, even if the patch carries them.
    obj = store.patch(
        "ReplicaSet",
        "shop",
        "web",
        {"status": {"replicas": 3}, "spec": {"replicas": 7}},
        subresource="status",
    )
    assert obj["status"] == {"replicas": 3} and obj["spec"]["replicas"] == 3
    assert obj["metadata"]["generation"] == 2
    # An object write never changes status.
    obj = store.patch("ReplicaSet", "shop", "web", {"status": {"replicas": 0}, "spec": {"replicas": 4}})
    assert obj["status"] == {"replicas": 3} and obj["metadata"]["generation"] == 3
    # Identity cannot be patched; a no-op write gets no new resourceVersion.
    rv = obj["metadata"]["resourceVersion"]
    same = store.patch("ReplicaSet", "shop", "web", {"metadata": {"uid": "x", "generation": 99}})
    assert same["metadata"]["uid"] == obj["metadata"]["uid"] and same["metadata"]["resourceVersion"] == rv
    assert same["metadata"]["generation"] == 3


def test_merge_patch_and_precondition(store: Store) -> None:
    obj = store.create("ReplicaSet", rs("web", tier="a", keep="y"))
    obj = store.patch("ReplicaSet", "shop", "web", {"metadata": {"labels": {"tier": None, "new": "z"}}})
    assert obj["metadata"]["labels"] == {"keep": "y", "new": "z"}
    stale = obj["metadata"]["resourceVersion"]
    store.patch("ReplicaSet", "shop", "web", {"spec": {"replicas": 2}}, resource_version=stale)
    with pytest.raises(Conflict, match="modified"):
        store.patch("ReplicaSet", "shop", "web", {"spec": {"replicas": 5}}, resource_version=stale)
    assert store.get("ReplicaSet", "shop", "web")["spec"]["replicas"] == 2
    with pytest.raises(NotFound):
        store.patch("ReplicaSet", "shop", "gone", {"spec": {}})


def test_list_filters_by_namespace_and_labels(store: Store) -> None:
    store.create("ReplicaSet", rs("a", app="x", tier="1"))
    store.create("ReplicaSet", rs("b", app="x", tier="2"))
    other = rs("c", app="x")
    other["metadata"]["namespace"] = "other"
    store.create("ReplicaSet", other)
    assert [o["metadata"]["name"] for o in store.list("ReplicaSet", "shop", {"app": "x"})] == ["a", "b"]
    assert [o["metadata"]["name"] for o in store.list("ReplicaSet", None, {"tier": "2"})] == ["b"]
    assert len(store.list("ReplicaSet")) == 3
    assert {n["metadata"]["name"] for n in store.list("Namespace")} == {"shop", "other"}


def test_cascading_delete_is_recursive_and_atomic(store: Store) -> None:
    ro = store.create(
        "Rollout",
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {},
        },
    )
    r1 = store.create("ReplicaSet", rs("web-1", owner=ro))
    r2 = store.create("ReplicaSet", rs("web-2", owner=ro))
    unrelated = store.create("ReplicaSet", rs("other"))
    store.create("Pod", pod("web-1-aaaaa", r1))
    store.create("Pod", pod("web-2-bbbbb", r2))
    store.create("Pod", pod("other-ccccc", unrelated))
    deleted = store.delete("Rollout", "shop", "web")
    assert [(o["kind"], o["metadata"]["name"]) for o in deleted] == [
        ("Rollout", "web"),
        ("ReplicaSet", "web-1"),
        ("Pod", "web-1-aaaaa"),
        ("ReplicaSet", "web-2"),
        ("Pod", "web-2-bbbbb"),
    ]
    assert [p["metadata"]["name"] for p in store.list("Pod")] == ["other-ccccc"]
    assert [r["metadata"]["name"] for r in store.list("ReplicaSet")] == ["other"]
    with pytest.raises(NotFound):
        store.delete("Rollout", "shop", "web")
    store.delete("Namespace", "", "shop")
    assert store.list("Pod") == [] and store.list("ReplicaSet") == []


def test_event_cap_keeps_the_newest(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db", event_cap=5)
    for i in range(8):
        store.create(
            "Event", {"metadata": {"name": f"e{i}", "namespace": "shop"}, "reason": "R", "message": str(i)}
        )
    assert [e["metadata"]["name"] for e in store.list("Event", "shop")] == ["e3", "e4", "e5", "e6", "e7"]
    store.close()


def test_reopen_keeps_everything(tmp_path: Path) -> None:
    s1 = Store(tmp_path / "state.db")
    obj = s1.create("ReplicaSet", rs("web"))
    s1.close()
    s2 = Store(tmp_path / "state.db")
    assert s2.get("ReplicaSet", "shop", "web") == obj
    nxt = s2.create("ReplicaSet", rs("web2"))
    assert int(nxt["metadata"]["resourceVersion"]) > int(obj["metadata"]["resourceVersion"])
    s2.close()


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "state.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(Invalid, match=r"state\.db.*--state-dir"):
        Store(bad)


async def test_watch_sees_every_commit_in_order(store: Store) -> None:
    cluster = LocalCluster(store)
    assert isinstance(cluster, Cluster)
    rs_watch = cluster.watch(["ReplicaSet", "Pod"], namespace="shop")
    all_watch = cluster.watch(["ReplicaSet", "Pod", "Namespace"])
    loop = asyncio.get_running_loop()
    owner = await cluster.create("ReplicaSet", rs("web"))
    # Writes from a worker thread and from the loop thread interleave; order must follow commits.
    for i in range(20):
        if i % 2:
            await loop.run_in_executor(
                None, store.patch, "ReplicaSet", "shop", "web", {"spec": {"replicas": i + 10}}
            )
        else:
            await cluster.patch(
                "ReplicaSet", "shop", "web", {"status": {"replicas": i}}, subresource="status"
            )
    await cluster.create("Pod", pod("web-xxxxx", owner))
    await cluster.delete("ReplicaSet", "shop", "web")
    events = []
    for _ in range(24):
        events.append(await asyncio.wait_for(rs_watch.__anext__(), 2))
    rvs = [int(e.obj["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and len(set(rvs)) == len(rvs)
    assert [e.type for e in events][:2] == ["ADDED", "MODIFIED"]
    assert [(e.type, e.kind) for e in events[-3:]] == [
        ("ADDED", "Pod"),
        ("DELETED", "ReplicaSet"),
        ("DELETED", "Pod"),
    ]
    first = await asyncio.wait_for(all_watch.__anext__(), 2)
    assert (first.type, first.kind) == ("ADDED", "Namespace")
    rs_watch.close()  # type: ignore[attr-defined]
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(rs_watch.__anext__(), 2)
    all_watch.close()  # type: ignore[attr-defined]


def test_a_killed_writer_loses_nothing_acknowledged(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    writer = textwrap.dedent(f"""
        import sys
        from pyrollouts.runtimes.local.store import Store
        s = Store({str(db)!r})
        i = 0
        while True:
            s.create("ReplicaSet", {{"metadata": {{"name": f"rs-{{i}}", "namespace": "crash"}},
                                    "spec": {{"replicas": i, "pad": "x" * 2000}}}})
            s.patch("ReplicaSet", "crash", f"rs-{{i}}", {{"spec": {{"replicas": i + 1}}}})
            print(i, flush=True)
            i += 1
    """)
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    acked = []
    try:
        for line in proc.stdout:
            acked.append(int(line))
            if len(acked) >= 150:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    more = [int(x) for x in proc.stdout.read().split()]
    acked += more
    assert len(acked) >= 150
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = Store(db)
    for i in acked:
        assert store.get("ReplicaSet", "crash", f"rs-{i}")["spec"]["replicas"] == i + 1
    # Nothing half-written: every stored object is whole and the counter is past all of them.
    stored = store.list("ReplicaSet", "crash")
    assert all(o["spec"]["pad"] == "x" * 2000 for o in stored)
    assert store.resource_version() >= max(int(o["metadata"]["resourceVersion"]) for o in stored)
    store.close()


async def test_a_dropped_watch_is_released(store: Store) -> None:
    import gc

    watch = store.subscribe(["ReplicaSet"])
    assert len(store._subs) == 1
    del watch
    gc.collect()
    assert len(store._subs) == 0
    store.create("ReplicaSet", rs("web"))  # nobody listening: nothing queued anywhere
