"""The informer cache's indexes (issue 15): reads by namespace, label, owner uid and name stem
return what a scan of the whole cache would, and follow every add, change, delete and relist. No
cluster needed: the cache is filled through its own event path."""

from __future__ import annotations

from typing import Any

from pyrollouts.model.cluster import WatchEvent
from pyrollouts.runtimes.kubernetes.informer import Informer, json_copy, matches

Obj = dict[str, Any]


def rs(ns: str, name: str, owner: str = "", **labels: str) -> Obj:
    meta: Obj = {"namespace": ns, "name": name, "labels": labels, "resourceVersion": "1"}
    if owner:
        meta["ownerReferences"] = [{"kind": "Rollout", "name": "x", "uid": owner}]
    return {"kind": "ReplicaSet", "metadata": meta}


def informer() -> tuple[Informer, list[WatchEvent]]:
    seen: list[WatchEvent] = []
    return Informer(None, "ReplicaSet", None, seen.append), seen  # type: ignore[arg-type]


def names(objs: list[Obj]) -> list[str]:
    return [o["metadata"]["name"] for o in objs]


def test_indexed_reads_match_a_scan_and_follow_changes() -> None:
    inf, seen = informer()
    inf._apply("ADDED", rs("a", "app-1-h1", "u1", app="app-1"))
    inf._apply("ADDED", rs("a", "app-1-h2", "u1", app="app-1"))
    inf._apply("ADDED", rs("a", "app-1-x-h3", "u2", app="app-1-x"))
    inf._apply("ADDED", rs("a", "app-1-h9"))  # not owned, named like app-1's
    inf._apply("ADDED", rs("b", "app-1-h4", "u1", app="app-1"))
    assert len(seen) == 5
    assert names(inf.list("a")) == ["app-1-h1", "app-1-h2", "app-1-h9", "app-1-x-h3"]
    assert names(inf.list("a", {"app": "app-1"})) == ["app-1-h1", "app-1-h2"]
    assert names(inf.list("a", {"app": "app-1", "other": "y"})) == []
    assert names(inf.list(None, {"app": "app-1"})) == ["app-1-h1", "app-1-h2", "app-1-h4"]
    assert names(inf.owned("a", ["u1"])) == ["app-1-h1", "app-1-h2"]
    assert names(inf.owned("a", ["u1"], also_named="app-1")) == ["app-1-h1", "app-1-h2", "app-1-h9"]
    assert names(inf.owned("a", ["u1", "u2"], labels={"app": "app-1-x"})) == ["app-1-x-h3"]
    inf.reads = 0
    inf.owned("a", ["u2"])
    assert inf.reads == 1

    # A label and an owner change move the object in the indexes; a delete removes it.
    changed = rs("a", "app-1-h2", "u2", app="other")
    inf._apply("MODIFIED", changed)
    assert names(inf.list("a", {"app": "app-1"})) == ["app-1-h1"]
    assert names(inf.owned("a", ["u2"])) == ["app-1-h2", "app-1-x-h3"]
    inf._apply("DELETED", changed)
    inf._apply("DELETED", rs("a", "app-1-h9"))
    assert names(inf.owned("a", ["u1", "u2"], also_named="app-1")) == ["app-1-h1", "app-1-x-h3"]
    assert names(inf.list("a", {"app": "other"})) == []
    # Every read is still what a scan of the cache gives.
    for ns in ("a", "b"):
        scan = [o for (n, _), o in sorted(inf._objects.items()) if n == ns and matches(o, {"app": "app-1"})]
        assert inf.list(ns, {"app": "app-1"}) == scan
    # Empty index entries are dropped, so the indexes hold only what the cache holds.
    assert all(inf._index.by_label.values()) and all(inf._index.by_owner.values())
    assert ("a", "other") not in {(k[0], k[2]) for k in inf._index.by_label}


def test_reads_are_copies() -> None:
    inf, _ = informer()
    inf._apply("ADDED", rs("a", "app-1-h1", "u1", app="app-1"))
    got = inf.owned("a", ["u1"])[0]
    got["metadata"]["labels"]["app"] = "changed"
    assert names(inf.list("a", {"app": "app-1"})) == ["app-1-h1"]


def test_copies_are_exact_and_independent() -> None:
    """The cache copies through msgspec's JSON round trip: every JSON value comes back equal and
    of the same type, and nothing is shared."""
    inf, _ = informer()
    obj = rs("a", "app-1-h1", "u1", app="app-1")
    obj["spec"] = {"replicas": 3, "ratio": 0.25, "big": 2**70, "off": None, "on": True, "ports": [{"p": 80}]}
    inf._apply("ADDED", obj)
    got = inf.get("a", "app-1-h1")
    assert got == obj and [type(v) for v in got["spec"].values()] == [type(v) for v in obj["spec"].values()]
    got["spec"]["ports"][0]["p"] = 81
    assert inf.get("a", "app-1-h1")["spec"]["ports"][0]["p"] == 80  # type: ignore[index]
    assert json_copy({"s": "é\u2028\x00"}) == {"s": "é\u2028\x00"}
