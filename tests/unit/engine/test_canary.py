"""The canary's replica arithmetic against Argo's documented figures, its step hash and
descriptions, and the maxSurge/maxUnavailable bounds at every reconcile of the canary scenarios."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.scenarios import load_scenario, run_scenario
from harness.simcluster import SimDriver
from pyrollouts.engine import canaryscale
from pyrollouts.engine import types as a
from pyrollouts.engine.canarysteps import describe, step_hash
from pyrollouts.model.rollout import CanaryStep, Rollout

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

# (replicas, weight, maxSurge) -> (canary, stable): the figures Argo's own tests document for its
# approximation of a weight by pod counts (a total of replicas, or replicas + 1 with surge).
APPROXIMATIONS = [
    ((0, 50, 1), (0, 0)),
    ((1, 1, 0), (0, 1)),
    ((1, 50, 0), (1, 0)),
    ((1, 49, 1), (1, 1)),
    ((1, 100, 1), (1, 0)),
    ((2, 1, 0), (1, 1)),
    ((2, 1, 1), (1, 2)),
    ((2, 99, 1), (2, 1)),
    ((3, 10, 0), (1, 2)),
    ((3, 50, 0), (2, 1)),
    ((3, 25, 1), (1, 3)),
    ((3, 33, 1), (1, 2)),
    ((3, 49, 1), (2, 2)),
    ((10, 0, 1), (0, 10)),
    ((10, 1, 0), (1, 9)),
    ((10, 14, 0), (1, 9)),
    ((10, 15, 0), (2, 8)),
]


@pytest.mark.parametrize(("args", "want"), APPROXIMATIONS, ids=[str(x[0]) for x in APPROXIMATIONS])
def test_approximate_matches_argo(args: tuple[int, int, int], want: tuple[int, int]) -> None:
    replicas, weight, surge = args
    assert canaryscale.approximate(replicas, weight, surge) == want


def _rs(name: str, replicas: int, available: int | None = None) -> a.ReplicaSetState:
    avail = replicas if available is None else available
    return a.ReplicaSetState(
        name=name,
        uid="",
        pod_template_hash=name,
        template={},
        replicas=replicas,
        status_replicas=replicas,
        ready_replicas=avail,
        available_replicas=avail,
        annotations={},
        labels={},
        creation_timestamp="",
    )


def test_basic_moves_within_surge_then_unavailable() -> None:
    """10 replicas, maxSurge 1, maxUnavailable 0, setWeight 50: one extra pod at a time, and the
    stable RS gives one up only once the canary's new pod is available."""
    f = canaryscale.Fenceposts(replicas=10, surge=1, unavailable=0)
    stable, new = _rs("stable", 10), _rs("new", 0)
    assert canaryscale.basic(f, 50, new, stable, []) == (1, 10)
    assert canaryscale.basic(f, 50, _rs("new", 1, 0), stable, []) == (1, 10)  # not available yet
    assert canaryscale.basic(f, 50, _rs("new", 1), stable, []) == (1, 9)
    assert canaryscale.basic(f, 50, _rs("new", 1), _rs("stable", 9), []) == (2, 9)
    assert canaryscale.basic(f, 50, _rs("new", 5), _rs("stable", 5), []) == (5, 5)  # arrived


def test_basic_old_replicasets_go_first() -> None:
    f = canaryscale.Fenceposts(replicas=4, surge=1, unavailable=1)
    assert canaryscale.basic(f, 50, _rs("new", 0), _rs("stable", 4), [_rs("old", 1)]) == (0, 4)


def test_routed_sizes() -> None:
    r = canaryscale.Routed(replicas=10, scale_replicas=None, min_pods=None, dynamic=False)
    assert canaryscale.routed(r, 25) == (3, 10)  # the stable RS keeps every pod
    dyn = canaryscale.Routed(replicas=10, scale_replicas=None, min_pods=None, dynamic=True, stable_weight=100)
    assert canaryscale.routed(dyn, 25) == (3, 10)  # until the router moved the traffic
    moved = canaryscale.Routed(
        replicas=10, scale_replicas=None, min_pods=None, dynamic=True, stable_weight=75
    )
    assert canaryscale.routed(moved, 25) == (3, 8)
    fixed = canaryscale.Routed(replicas=10, scale_replicas=2, min_pods=None, dynamic=False)
    assert canaryscale.routed(fixed, 50) == (2, 10)  # setCanaryScale.replicas
    min_pods = canaryscale.Routed(replicas=10, scale_replicas=None, min_pods=2, dynamic=False)
    assert canaryscale.routed(min_pods, 5) == (2, 10)


def test_fenceposts_defaults_are_25_percent() -> None:
    r = Rollout.from_wire({"spec": {"replicas": 10, "strategy": {"canary": {}}}})
    assert (r.max_surge(), r.max_unavailable()) == (3, 2)  # surge rounds up, unavailable down
    zero = Rollout.from_wire(
        {"spec": {"replicas": 1, "strategy": {"canary": {"maxSurge": 0, "maxUnavailable": "10%"}}}}
    )
    assert zero.max_unavailable() == 1  # both resolve to 0: one pod may be unavailable


def test_step_hash_and_descriptions() -> None:
    steps = [
        CanaryStep.model_validate(s)
        for s in ({"setWeight": 20}, {"pause": {"duration": "1m"}}, {"pause": {}})
    ]
    assert step_hash(steps) == step_hash(list(steps))
    assert step_hash(steps) != step_hash(steps[:2])
    assert [describe(s) for s in steps] == ["setWeight: 20", "pause: 1m0s", "pause"]


CANARY_FILES = sorted(SCENARIOS.glob("canary-*.yaml")) + sorted(SCENARIOS.glob("proxy-routed/canary-*.yaml"))


@pytest.mark.parametrize("path", CANARY_FILES, ids=[p.stem for p in CANARY_FILES])
async def test_surge_and_unavailable_hold_at_every_reconcile(path: Path) -> None:
    """No plan asks for more than replicas + maxSurge pods, and none takes available pods below
    replicas - maxUnavailable (a canary without trafficRouting; with it the stable RS keeps its
    pods and the canary's pods are on top, as in Argo)."""
    problems: list[str] = []

    def check(rollout: dict[str, Any], observed: a.Observed, plan: a.Plan, now: Any) -> None:
        r = Rollout.from_wire(rollout)
        if (
            not r.is_canary
            or r.canary.traffic_routing is not None
            or (rollout.get("status") or {}).get("abort")
        ):
            return
        sizes = {rs.name: rs.replicas for rs in observed.replicasets}
        for act in plan.actions:
            if isinstance(act, a.ScaleReplicaSet):
                sizes[act.name] = act.replicas
        requested = sum(sizes.values())
        available_after = sum(min(rs.available_replicas, sizes[rs.name]) for rs in observed.replicasets)
        available_now = sum(rs.available_replicas for rs in observed.replicasets)
        floor = r.effective_replicas() - r.max_unavailable()
        before = sum(rs.replicas for rs in observed.replicasets)
        if requested > max(before, r.effective_replicas() + r.max_surge()):
            problems.append(f"{now}: {requested} pods requested ({sizes})")
        if available_after < min(available_now, floor):
            problems.append(f"{now}: available {available_now} -> {available_after} ({sizes})")

    driver = SimDriver(plan_hook=check)
    try:
        await run_scenario(load_scenario(path), driver, poll_timeout=0)
    finally:
        await driver.close()
    assert not problems, problems
