"""The pure parts of the dashboard: which actions apply, the Argo shape, escaping, traffic rates,
and the stream's fallbacks for a runtime that cannot watch everything."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pyrollouts.model.cluster import Obj, WatchEvent
from pyrollouts.service.info import rollout_info
from pyrollouts.web import argo_info, available_actions, render
from pyrollouts.web.source import Source
from pyrollouts.web.traffic import TrafficSampler

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def rollout(phase: str, *, stable: str = "a", current: str = "b", **status: Any) -> Obj:
    return {
        "metadata": {"name": "demo", "namespace": "ns", "uid": "u1"},
        "spec": {"replicas": 1, "strategy": {"blueGreen": {"activeService": "p"}}},
        "status": {"phase": phase, "stableRS": stable, "currentPodHash": current, **status},
    }


def test_actions_follow_the_phase() -> None:
    healthy = rollout("Healthy", current="a")
    assert available_actions(healthy) == {
        "promote": False,
        "promoteFull": False,
        "abort": False,
        "retry": False,
        "restart": True,
    }
    paused = rollout("Paused", pauseConditions=[{"reason": "BlueGreenPause"}])
    assert available_actions(paused) == {
        "promote": True,
        "promoteFull": True,
        "abort": True,
        "retry": False,
        "restart": True,
    }
    progressing = rollout("Progressing")
    assert available_actions(progressing) == {
        "promote": False,
        "promoteFull": True,
        "abort": True,
        "retry": False,
        "restart": True,
    }
    aborted = rollout("Degraded", abort=True)
    assert available_actions(aborted) == {
        "promote": False,
        "promoteFull": False,
        "abort": False,
        "retry": True,
        "restart": False,
    }
    first = rollout("Progressing", stable="", current="")
    assert not available_actions(first)["restart"] and not available_actions(first)["abort"]


def test_argo_shape_from_the_info_view() -> None:
    ro = rollout(
        "Paused",
        stable="h1",
        current="h2",
        pauseConditions=[{"reason": "BlueGreenPause"}],
        blueGreen={"activeSelector": "h1", "previewSelector": "h2"},
    )
    ro["spec"]["template"] = {"spec": {"containers": [{"name": "app", "image": "img:2"}]}}

    def rs(hash_: str, rev: int, image: str) -> Obj:
        return {
            "metadata": {
                "name": f"demo-{hash_}",
                "uid": f"rs-{hash_}",
                "labels": {"rollouts-pod-template-hash": hash_},
                "annotations": {"rollout.argoproj.io/revision": str(rev)},
                "ownerReferences": [{"uid": "u1", "kind": "Rollout", "name": "demo"}],
            },
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "app", "image": image}]}}},
            "status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1},
        }

    pod = {
        "metadata": {"name": "demo-h2-x", "ownerReferences": [{"uid": "rs-h2", "kind": "ReplicaSet"}]},
        "spec": {"containers": [{"name": "app"}]},
        "status": {"phase": "Running", "containerStatuses": [{"ready": True, "restartCount": 2}]},
    }
    info = argo_info(rollout_info(ro, [rs("h1", 1, "img:1"), rs("h2", 2, "img:2")], [pod], NOW))
    assert info["objectMeta"]["name"] == "demo" and info["status"] == "Paused"
    assert [(r["revision"], r["stable"], r["active"], r["preview"]) for r in info["replicaSets"]] == [
        (2, False, False, True),
        (1, True, True, False),
    ]
    assert info["replicaSets"][0]["pods"][0] == {
        "objectMeta": {"name": "demo-h2-x", "namespace": "ns", "creationTimestamp": None},
        "status": "Running",
        "ready": "1/1",
        "allReady": True,
        "restarts": 2,
        "hostPort": None,
    }
    assert info["containers"] == [{"name": "app", "image": "img:2"}]
    assert info["actions"]["promote"]
    html = render.revisions(info)
    assert 'data-revision="2" data-roles="preview"' in html and 'id="btn-rollback-1"' in html
    assert "btn-rollback-2" not in html  # the newest revision has nothing to roll back to


def test_everything_from_a_manifest_is_escaped() -> None:
    info = argo_info(rollout_info(rollout("Degraded"), [], [], NOW))
    info["message"] = '<script>alert("x")</script>'
    info["objectMeta"]["name"] = 'a"><img src=x onerror=alert(1)>'
    page = render.rollout_page(
        info, [{"reason": "<b>r</b>", "message": "<i>m</i>", "type": "Warning"}], None, None
    )
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>r</b>" not in page
    assert "&lt;script&gt;" in page


def test_traffic_rates_per_revision() -> None:
    counts = {"requests": 0, "errors": 0}

    async def stats() -> Mapping[str, Any]:
        return {
            "services": {
                "ns/prod": {"revisions": {"h1": dict(counts)}},
                "ns/other": {"revisions": {"h1": {"requests": 999, "errors": 0}}},
            }
        }

    async def run() -> list[dict[str, Any]]:
        sampler = TrafficSampler(stats)
        await sampler.sample()
        counts.update(requests=10, errors=1)
        await asyncio.sleep(0.2)
        await sampler.sample()
        return sampler.for_services(["ns/prod"], {"h1": 1})

    [series] = asyncio.run(run())
    assert series["revision"] == 1 and series["hash"] == "h1"
    [point] = series["points"]
    assert 30 < point["rps"] < 60  # 10 requests in about 0.2 s
    assert point["errorRate"] == 0.1
    svg = render.traffic([series])
    assert "<polyline" in svg and 'data-revision="1"' in svg


class RefusingCluster:
    """A cluster whose watch refuses Events (as Kubernetes' caches do) and counts unsubscribes."""

    def __init__(self) -> None:
        self.watched: list[tuple[str, ...]] = []
        self.closed = 0

    def watch(self, kinds: Sequence[str], namespace: str | None = None) -> AsyncIterator[WatchEvent]:
        if "Event" in kinds:
            raise ValueError("cannot watch Event")
        self.watched.append(tuple(kinds))
        outer = self

        class Sub:
            def __aiter__(self) -> Sub:
                return self

            async def __anext__(self) -> WatchEvent:
                await asyncio.sleep(3600)
                raise StopAsyncIteration

            def close(self) -> None:
                outer.closed += 1

        return Sub()


def test_changes_watches_what_it_can_and_unsubscribes() -> None:
    cluster = RefusingCluster()
    source = Source(cluster, clock=type("C", (), {"now": lambda self: NOW})(), info=rollout_info)  # type: ignore[arg-type]

    async def run() -> int:
        n = 0
        state = {"alive": True}
        async for _ in source.changes("ns", lambda: state["alive"], every=0.05):
            n += 1
            if n == 3:
                state["alive"] = False
        return n

    assert asyncio.run(run()) == 3
    assert cluster.watched == [("Rollout", "ReplicaSet", "Pod", "Service")]
    assert cluster.closed == 1
