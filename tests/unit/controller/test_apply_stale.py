"""A scale-down deadline is written only on the ReplicaSet the plan saw (its resourceVersion).

After an API-server outage a cache can lag behind a deadline written just before it; a plan made
from that view would give the old ReplicaSet a fresh deadline, later than the real one (the flake
of tests/k8s/test_apiserver_faults.py). The write carries the version the plan saw: a stale view
makes it a StaleReplicaSet (the controller plans again after the per-key backoff) and the deadline
already there stays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.simcluster import SimCluster
from pyrollouts.controller.apply import StaleReplicaSet, apply_plan
from pyrollouts.engine import types as a
from pyrollouts.model import names
from pyrollouts.model.rollout import RolloutStatus

MANIFEST = Path(__file__).resolve().parents[2] / "scenarios" / "manifests" / "super-hello.yaml"
NS = "my-app"
FIRST = "2026-12-07T01:18:07Z"
LATER = "2026-12-07T01:29:07Z"


async def _world() -> tuple[SimCluster, dict[str, Any], dict[str, Any]]:
    sim = SimCluster()
    sim.apply_objects(d for d in yaml.safe_load_all(MANIFEST.read_text()) if d)
    sim.settle()
    rollout = await sim.get("Rollout", NS, "super-hello")
    (rs,) = await sim.list("ReplicaSet", NS)
    return sim, rollout, rs


def _plan(rollout: dict[str, Any], *actions: a.Action) -> a.Plan:
    return a.Plan(actions=actions, status=RolloutStatus.model_validate(rollout.get("status") or {}))


def _deadline(rs: dict[str, Any]) -> str | None:
    return (rs["metadata"].get("annotations") or {}).get(names.SCALE_DOWN_DEADLINE_ANNOTATION)


async def _written_first(sim: SimCluster, rs: dict[str, Any]) -> None:
    """The deadline written just before the outage, which the lagging view does not show."""
    patch = {"metadata": {"annotations": {names.SCALE_DOWN_DEADLINE_ANNOTATION: FIRST}}}
    await sim.patch("ReplicaSet", NS, rs["metadata"]["name"], patch)


async def test_a_plan_from_a_stale_view_does_not_replace_the_deadline() -> None:
    sim, rollout, rs = await _world()
    name, seen_rv = rs["metadata"]["name"], rs["metadata"]["resourceVersion"]
    await _written_first(sim, rs)
    plan = _plan(rollout, a.SetScaleDownDeadline(name=name, deadline=LATER, resource_version=seen_rv))
    with pytest.raises(StaleReplicaSet):
        await apply_plan(sim, rollout, plan, sim.clock)
    assert _deadline(await sim.get("ReplicaSet", NS, name)) == FIRST


async def test_a_plan_from_the_current_view_writes_it() -> None:
    sim, rollout, rs = await _world()
    name = rs["metadata"]["name"]
    plan = _plan(rollout, a.SetScaleDownDeadline(name, LATER, rs["metadata"]["resourceVersion"]))
    assert await apply_plan(sim, rollout, plan, sim.clock)
    assert _deadline(await sim.get("ReplicaSet", NS, name)) == LATER


async def test_an_earlier_write_of_the_same_plan_is_not_a_stale_view() -> None:
    sim, rollout, rs = await _world()
    name, seen_rv = rs["metadata"]["name"], rs["metadata"]["resourceVersion"]
    replicas = rs["spec"]["replicas"]
    plan = _plan(
        rollout,
        a.ScaleReplicaSet(name=name, replicas=replicas, desired_replicas=replicas + 1),
        a.SetScaleDownDeadline(name=name, deadline=LATER, resource_version=seen_rv),
    )
    assert await apply_plan(sim, rollout, plan, sim.clock)
    assert _deadline(await sim.get("ReplicaSet", NS, name)) == LATER
