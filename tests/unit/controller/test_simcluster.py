"""The simulated cluster is a Cluster: the controller's own code runs over it unchanged."""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from harness.simcluster import SimCluster
from pyrollouts.controller.controller import RolloutController
from pyrollouts.model import names
from pyrollouts.model.cluster import Cluster, WatchEvent

MANIFEST = Path(__file__).resolve().parents[2] / "scenarios" / "manifests" / "super-hello.yaml"
NS = "my-app"


def _settled() -> SimCluster:
    sim = SimCluster()
    sim.apply_objects(d for d in yaml.safe_load_all(MANIFEST.read_text()) if d)
    sim.settle()
    return sim


def test_it_implements_the_protocol() -> None:
    assert isinstance(SimCluster(), Cluster)


async def test_a_new_rollout_controller_finds_a_settled_world_settled() -> None:
    sim = _settled()
    before = sim.objects()
    assert before[0]["status"]["phase"] == names.PHASE_HEALTHY
    ctl = RolloutController(sim, sim.clock)
    again = await ctl.reconcile(f"{NS}/super-hello")
    assert again is None or again > 0
    rollout, rss, services, events = sim.objects()
    assert (rollout, rss, services) == before[:3]  # planned from the same state: nothing to change
    # A controller that starts says it has seen the Rollout, as Argo's does; nothing else.
    assert [e["reason"] for e in events[len(before[3]) :]] == ["RolloutAddedToInformer"]


async def test_a_watch_sees_the_controller_writes_and_the_simulated_pods() -> None:
    sim = SimCluster()
    stream = sim.watch(("Rollout", "ReplicaSet", "Pod"), NS)
    sim.apply_objects(d for d in yaml.safe_load_all(MANIFEST.read_text()) if d)
    sim.settle()
    seen: list[WatchEvent] = []

    async def drain() -> None:
        while not any(e.kind == "Pod" and e.type == "MODIFIED" for e in seen):
            seen.append(await anext(stream))

    await asyncio.wait_for(drain(), 10)
    assert (seen[0].type, seen[0].kind) == ("ADDED", "Rollout")
    assert ("ADDED", "ReplicaSet") in {(e.type, e.kind) for e in seen}
    assert ("ADDED", "Pod") in {(e.type, e.kind) for e in seen}
