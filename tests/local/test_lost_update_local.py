"""Two writers on one Rollout, on the real SQLite store: the controller's write of the default
``spec.replicas`` (Argo writes 1 back into a spec that has none) must not land on a user's write
made between the controller's read and its write (issue 11, "two writers lose no update").

The race is staged deterministically: the controller reads the Rollout (no replicas) and plans;
the user sets spec.replicas; the controller applies its plan. Before the fix the default went out
as a plain merge patch and overwrote the user's 5 with 1 (and the status write then passed its
precondition, on the version the controller had just written). Now it carries the
resourceVersion it planned from: the write is refused, nothing of the stale plan is applied, and
the controller plans again from the user's version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pyrollouts import engine
from pyrollouts.controller.apply import apply_plan
from pyrollouts.controller.clock import Clock
from pyrollouts.controller.observe import gather
from pyrollouts.engine.types import UpdateRollout
from pyrollouts.model.rollout import Rollout
from pyrollouts.runtimes.local.runtime import LocalRuntime

MANIFEST = Path(__file__).resolve().parents[1] / "scenarios" / "manifests" / "super-hello.yaml"


def _rollout_without_replicas() -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
    ro = next(d for d in docs if d["kind"] == "Rollout")
    ro["metadata"]["namespace"] = "lost-update"
    del ro["spec"]["replicas"]
    return dict(ro)


async def test_default_replicas_never_overwrites_a_users_write(runtime: LocalRuntime) -> None:
    cluster = runtime.cluster
    clock = Clock()
    await cluster.create("Rollout", _rollout_without_replicas())
    read = await cluster.get("Rollout", "lost-update", "super-hello")
    plan = engine.plan(Rollout.from_wire(read), await gather(cluster, read, first_seen=True), clock.now())
    assert UpdateRollout(replicas=1) in plan.actions, plan.actions

    # The user's write lands between the controller's read and its write.
    await cluster.patch("Rollout", "lost-update", "super-hello", {"spec": {"replicas": 5}})

    ok = await apply_plan(cluster, read, plan, clock)
    now = await cluster.get("Rollout", "lost-update", "super-hello")
    assert now["spec"]["replicas"] == 5, "the controller's default overwrote the user's replicas"
    assert ok is False, "a plan that lost the race must be planned again"
    assert await cluster.list("ReplicaSet", "lost-update") == [], "nothing of the stale plan applied"
    assert not now.get("status"), now.get("status")

    # Planned again from the user's version: no default to write, the user's 5 stands.
    plan = engine.plan(Rollout.from_wire(now), await gather(cluster, now, first_seen=False), clock.now())
    assert not [x for x in plan.actions if isinstance(x, UpdateRollout) and x.replicas is not None]
    assert await apply_plan(cluster, now, plan, clock) is True
    assert (await cluster.get("Rollout", "lost-update", "super-hello"))["spec"]["replicas"] == 5
