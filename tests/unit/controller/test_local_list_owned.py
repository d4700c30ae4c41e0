"""The local runtime reads one Rollout's objects through the store's owner index (issue 15): the
same answer as one list of the namespace filtered by owner and name stem, without reading the
namespace."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pyrollouts.model.cluster import OwnerIndexedCluster, list_owned
from pyrollouts.runtimes.local.cluster import LocalCluster
from pyrollouts.runtimes.local.store import Store

Obj = dict[str, Any]


def rs(name: str, owner: Obj | None, labels: dict[str, str] | None = None, ns: str = "app") -> Obj:
    meta: Obj = {"name": name, "namespace": ns, "labels": labels or {}}
    if owner is not None:
        meta["ownerReferences"] = [
            {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": owner["metadata"]["name"],
             "uid": owner["metadata"]["uid"], "controller": True}
        ]  # fmt: skip
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta,
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "x"}},
                     "template": {"metadata": {"labels": {"app": "x"}},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}}}}  # fmt: skip


def rollout(name: str, ns: str = "app") -> Obj:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}},
                     "strategy": {"blueGreen": {"activeService": f"{name}-prod"}}}}  # fmt: skip


class Unindexed:
    """The same store without ``list_owned``: ``model.cluster.list_owned`` falls back to a list."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.list = cluster.list


def test_list_owned_matches_the_filtered_list(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    cluster = LocalCluster(store)
    assert isinstance(cluster, OwnerIndexedCluster)
    a = store.create("Rollout", rollout("a"))
    b = store.create("Rollout", rollout("a-b"))
    other_ns = store.create("Rollout", rollout("a", ns="other"))
    store.create("ReplicaSet", rs("a-1111", a, {"tier": "x"}))
    store.create("ReplicaSet", rs("a-2222", a))
    store.create("ReplicaSet", rs("a-3333", None, {"tier": "x"}))  # named like a's, not owned
    store.create("ReplicaSet", rs("a-b-4444", b))  # stem "a-b": not a's
    store.create("ReplicaSet", rs("zz", a))  # owned by a, any name
    store.create("ReplicaSet", rs("a-5555", other_ns, ns="other"))

    def both(uids: list[str], **kw: Any) -> list[str]:
        got = asyncio.run(list_owned(cluster, "ReplicaSet", "app", uids, **kw))
        want = asyncio.run(list_owned(Unindexed(cluster), "ReplicaSet", "app", uids, **kw))  # type: ignore[arg-type]
        names = [o["metadata"]["name"] for o in got]
        assert sorted(names) == sorted(o["metadata"]["name"] for o in want), (names, want)
        return names

    uid_a, uid_b = a["metadata"]["uid"], b["metadata"]["uid"]
    assert both([uid_a]) == ["a-1111", "a-2222", "zz"]
    assert both([uid_a], also_named="a") == ["a-1111", "a-2222", "a-3333", "zz"]
    assert both([uid_a], also_named="a", labels={"tier": "x"}) == ["a-1111", "a-3333"]
    assert both([uid_b], also_named="a-b") == ["a-b-4444"]
    assert both([uid_a, uid_b]) == ["a-1111", "a-2222", "a-b-4444", "zz"]
    assert both([], also_named="nothing") == []
