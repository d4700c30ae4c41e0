"""A hypothesis state machine over a canary on the simulated cluster: random user verbs, new
templates, clock advances and pod failures, with the canary's invariants checked on every plan
(written independently of the engine): no plan asks for more than replicas + maxSurge pods or
takes available pods below replicas - maxUnavailable (without trafficRouting), and no split sends
the stable revision more traffic than its available pods can take (with trafficRouting)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from engine_support import manifest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from invariants import InvariantViolation

from harness.simcluster import SimCluster
from pyrollouts.engine import types as a
from pyrollouts.model import useractions as ua

CONFIGS = st.fixed_dictionaries(
    {
        "replicas": st.sampled_from([1, 3, 4]),
        "maxSurge": st.sampled_from([0, 1, "25%"]),
        "maxUnavailable": st.sampled_from([0, 1, "50%"]),
        "routed": st.booleans(),
        "dynamicStableScale": st.booleans(),
        "steps": st.sampled_from(
            [
                [{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {"duration": 10}}],
                [{"setWeight": 50}, {"pause": {"duration": 5}}],
                [{"pause": {}}, {"setWeight": 75}],
            ]
        ),
    }
)


def _percent(value: Any, total: int, up: bool) -> int:
    if isinstance(value, int):
        return value
    n = int(str(value).rstrip("%")) * total
    return -(-n // 100) if up else n // 100


def check_plan(rollout: dict[str, Any], observed: a.Observed, plan: a.Plan, now: datetime) -> None:
    canary = rollout["spec"]["strategy"]["canary"]
    replicas = int(rollout["spec"].get("replicas") or 1)
    surge = _percent(canary.get("maxSurge", "25%"), replicas, True)
    unavailable = _percent(canary.get("maxUnavailable", "25%"), replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    unavailable = min(unavailable, replicas)
    sizes = {rs.name: rs.replicas for rs in observed.replicasets}
    for act in plan.actions:
        if isinstance(act, a.ScaleReplicaSet):
            sizes[act.name] = act.replicas
    if "trafficRouting" not in canary:
        before = sum(rs.replicas for rs in observed.replicasets)
        if sum(sizes.values()) > max(before, replicas + surge):
            raise InvariantViolation(f"{sum(sizes.values())} pods requested > {replicas} + {surge}: {sizes}")
        avail_now = sum(rs.available_replicas for rs in observed.replicasets)
        avail_after = sum(min(rs.available_replicas, sizes[rs.name]) for rs in observed.replicasets)
        if avail_after < min(avail_now, replicas - unavailable):
            raise InvariantViolation(f"available {avail_now} -> {avail_after} < {replicas} - {unavailable}")
    by_hash = {rs.pod_template_hash: rs for rs in observed.replicasets}
    for act in plan.actions:
        if isinstance(act, a.SetTrafficSplit):
            split = act.split
            stable = by_hash.get(split.stable_hash)
            need = math.ceil((100 - split.canary_weight) * replicas / 100)
            if stable is not None and stable.available_replicas < need:
                raise InvariantViolation(
                    f"split gives stable {100 - split.canary_weight}% with {stable.available_replicas} "
                    f"available pods of {need} needed"
                )


class CanaryMachine(RuleBasedStateMachine):
    sim: SimCluster

    @initialize(config=CONFIGS)
    def deploy(self, config: dict[str, Any]) -> None:
        canary: dict[str, Any] = {
            "stableService": "super-hello-prod",
            "canaryService": "super-hello-preview",
            "maxSurge": config["maxSurge"],
            "maxUnavailable": config["maxUnavailable"],
            "steps": config["steps"],
        }
        if config["maxSurge"] == 0 and config["maxUnavailable"] == 0:
            canary["maxUnavailable"] = 1
        if config["routed"]:
            canary["trafficRouting"] = {"nginx": {"stableIngress": "super-hello"}}
            canary["dynamicStableScale"] = config["dynamicStableScale"]
        spec = {"replicas": config["replicas"], "strategy": {"blueGreen": None, "canary": canary}}
        self.sim = SimCluster(plan_hook=check_plan)
        self.sim.apply_objects(manifest({"spec": spec}))
        self.sim.settle()

    def _patch(self, patches: list[ua.Patch]) -> None:
        for p in patches:
            self.sim.patch_rollout(p.body, p.subresource)
        self.sim.settle()

    def _rollout(self) -> dict[str, Any]:
        assert self.sim.rollout is not None
        return self.sim.rollout

    @rule(welcome=st.sampled_from(["V1", "V2", "V3"]))
    def apply_template(self, welcome: str) -> None:
        self._patch(ua.set_env(self._rollout(), "*", "WELCOME", welcome))

    @rule(full=st.booleans())
    def promote(self, full: bool) -> None:
        try:
            self._patch(ua.promote(self._rollout(), full=full))
        except ua.ActionError:
            pass

    @rule()
    def abort(self) -> None:
        self._patch(ua.abort(self._rollout()))

    @rule()
    def retry(self) -> None:
        self._patch(ua.retry(self._rollout()))

    @rule(seconds=st.sampled_from([1, 6, 11, 31]))
    def advance(self, seconds: int) -> None:
        self.sim.advance(seconds)

    @rule(pick=st.integers(min_value=0, max_value=10), mode=st.sampled_from(["unready", "ready"]))
    def pods(self, pick: int, mode: str) -> None:
        hashes = sorted(self.sim.replicasets)
        if hashes:
            rs = self.sim.replicasets[hashes[pick % len(hashes)]]
            self.sim.set_pod_mode(rs["metadata"]["labels"]["rollouts-pod-template-hash"], mode)
            self.sim.settle()

    @invariant()
    def settled(self) -> None:
        last = self.sim.plans[-1]
        if last.actions:
            raise InvariantViolation(f"a settled world still plans {last.actions}")


MACHINE_SETTINGS = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)


def test_canary_invariants_hold() -> None:
    run_state_machine_as_test(CanaryMachine, settings=MACHINE_SETTINGS)
