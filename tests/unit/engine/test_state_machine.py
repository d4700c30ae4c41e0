"""A hypothesis state machine over the engine on the simulated cluster: random user verbs, clock
advances and pod failures, with DESIGN's invariants checked after every step; and a proof that it
catches an engine with one rule broken."""

from __future__ import annotations

from typing import Any

import pytest
from engine_support import manifest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from invariants import InvariantViolation, check_plan, check_settled

import pyrollouts.engine.replicaset as engine_replicaset
from harness.simcluster import SimCluster
from pyrollouts.model import useractions as ua

CONFIGS = st.fixed_dictionaries(
    {
        "autoPromotionEnabled": st.booleans(),
        "autoPromotionSeconds": st.sampled_from([0, 10]),
        "previewReplicaCount": st.sampled_from([None, 1]),
        "scaleDownDelaySeconds": st.sampled_from([0, 30]),
        "scaleDownDelayRevisionLimit": st.sampled_from([None, 0, 1]),
        "abortScaleDownDelaySeconds": st.sampled_from([0, 10]),
        "revisionHistoryLimit": st.sampled_from([1, 2, 3]),
        "progressDeadlineSeconds": st.sampled_from([20, 600]),
        "progressDeadlineAbort": st.booleans(),
        "rollbackWindow": st.sampled_from([None, 1]),
        "roleMetadata": st.booleans(),
    }
)


class EngineMachine(RuleBasedStateMachine):
    """Every user verb, the clock, and pods misbehaving; invariants after every step."""

    sim: SimCluster

    @initialize(config=CONFIGS)
    def deploy(self, config: dict[str, Any]) -> None:
        bg = {
            k: v
            for k, v in config.items()
            if k
            in (
                "autoPromotionEnabled",
                "autoPromotionSeconds",
                "previewReplicaCount",
                "scaleDownDelaySeconds",
                "scaleDownDelayRevisionLimit",
                "abortScaleDownDelaySeconds",
            )
            and v is not None
        }
        spec: dict[str, Any] = {
            "replicas": 2,
            "revisionHistoryLimit": config["revisionHistoryLimit"],
            "progressDeadlineSeconds": config["progressDeadlineSeconds"],
            "progressDeadlineAbort": config["progressDeadlineAbort"],
            "strategy": {"blueGreen": bg},
        }
        if config["roleMetadata"]:
            bg["previewMetadata"] = {"labels": {"role": "preview"}}
            bg["activeMetadata"] = {"labels": {"role": "active"}, "annotations": {"serving": "yes"}}
        if config["rollbackWindow"]:
            spec["rollbackWindow"] = {"revisions": config["rollbackWindow"]}
        self.sim = SimCluster(plan_hook=check_plan)
        objs = manifest({"spec": spec})
        self.sim.apply_objects(objs)
        self.sim.settle()

    def _patch(self, patches: list[ua.Patch]) -> None:
        for p in patches:
            self.sim.patch_rollout(p.body, p.subresource)
        self.sim.settle()

    def _rollout(self) -> dict[str, Any]:
        assert self.sim.rollout is not None
        return self.sim.rollout  # user actions only read it

    @rule(welcome=st.sampled_from(["V1", "V2", "V3", "V4"]))
    def apply_template(self, welcome: str) -> None:
        self._patch(ua.set_env(self._rollout(), "*", "WELCOME", welcome))

    @rule()
    def promote(self) -> None:
        try:
            self._patch(ua.promote(self._rollout()))
        except ua.ActionError:
            pass

    @rule()
    def promote_full(self) -> None:
        try:
            self._patch(ua.promote(self._rollout(), full=True))
        except ua.ActionError:
            pass

    @rule()
    def abort(self) -> None:
        self._patch(ua.abort(self._rollout()))

    @rule()
    def retry(self) -> None:
        self._patch(ua.retry(self._rollout()))

    @rule()
    def undo(self) -> None:
        try:
            self._patch(ua.undo(self._rollout(), list(self.sim.replicasets.values()), None))
        except ua.ActionError:
            pass

    @rule(replicas=st.integers(min_value=0, max_value=3))
    def scale(self, replicas: int) -> None:
        self._patch([ua.Patch({"spec": {"replicas": replicas}})])

    @rule()
    def pause(self) -> None:
        self._patch(ua.pause(self._rollout()))

    @rule()
    def resume(self) -> None:
        self._patch(ua.resume(self._rollout()))

    @rule(seconds=st.sampled_from([1, 5, 11, 21, 31]))
    def advance(self, seconds: int) -> None:
        self.sim.advance(seconds)

    @rule(pick=st.integers(min_value=0, max_value=10), mode=st.sampled_from(["unready", "crash", "ready"]))
    def pods(self, pick: int, mode: str) -> None:
        hashes = sorted(self.sim.replicasets)
        if not hashes:
            return
        rs = self.sim.replicasets[hashes[pick % len(hashes)]]
        self.sim.set_pod_mode(rs["metadata"]["labels"]["rollouts-pod-template-hash"], mode)
        self.sim.settle()

    @invariant()
    def settled_world_holds(self) -> None:
        check_settled(self.sim)
        # settle() stops only after a plan that wrote nothing: that last plan is the one to check.
        last = self.sim.plans[-1]
        if last.actions:
            raise InvariantViolation(f"a settled world still plans {last.actions}")


# No shrinking: a 50-step counterexample can take hypothesis many minutes to shrink, longer than
# the test timeout; the unshrunk steps are printed and are enough to reproduce a failure (add
# Phase.shrink locally to minimise one).
MACHINE_SETTINGS = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)


def test_engine_invariants_hold() -> None:
    run_state_machine_as_test(EngineMachine, settings=MACHINE_SETTINGS)


def test_the_invariants_catch_a_premature_cutover(monkeypatch: pytest.MonkeyPatch) -> None:
    """Break one rule (the cutover no longer waits for saturation) and the machine must notice."""
    monkeypatch.setattr(engine_replicaset, "is_saturated", lambda rs, replicas: rs is not None)
    with pytest.raises(InvariantViolation, match="not saturated"):
        run_state_machine_as_test(
            EngineMachine,
            settings=settings(MACHINE_SETTINGS, max_examples=100, derandomize=True),
        )


def test_the_invariants_catch_an_early_scale_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """Break another rule (old ReplicaSets ignore their scale-down deadline): caught too."""
    monkeypatch.setattr(engine_replicaset, "deadline_of", lambda rs: None)
    with pytest.raises(InvariantViolation, match="before its scale-down deadline"):
        run_state_machine_as_test(
            EngineMachine,
            settings=settings(MACHINE_SETTINGS, max_examples=100, derandomize=True),
        )
