"""A canary's steps: which one is current (status.currentStepIndex), when the steps start over
(a new template or new steps: status.currentStepHash), the weight in force, the pause steps, and
moving on once the current step is done (docs/canary.md "Steps")."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

from ..model import names
from ..model.canaryrules import pause_seconds
from ..model.rollout import CanaryStep, PauseCondition, SetCanaryScale
from . import timeutil
from .context import Ctx
from .pause import PauseContext
from .roles import Roles

#: Kubernetes' safe alphabet, as rand.SafeEncodeString uses it for Argo's step hash.
_SAFE = "bcdfghjklmnpqrstvwxz2456789"
_FNV_OFFSET, _FNV_PRIME = 0x811C9DC5, 0x01000193
#: The order of a step's fields in Argo's Go type, so the JSON hashed is the one Argo hashes.
_STEP_ORDER = (
    "setWeight",
    "pause",
    "experiment",
    "analysis",
    "setCanaryScale",
    "setHeaderRoute",
    "setMirrorRoute",
    "plugin",
)


def step_hash(steps: list[CanaryStep]) -> str:
    """status.currentStepHash: FNV-32a of the steps' JSON, its decimal digits in the safe
    alphabet, as Argo computes it (ComputeStepHash)."""
    wire = [step.wire() for step in steps]
    ordered = [{k: w[k] for k in _STEP_ORDER if k in w} for w in wire]
    data = json.dumps(ordered, separators=(",", ":")).encode()
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return "".join(_SAFE[ord(c) % len(_SAFE)] for c in str(h))


def describe(step: CanaryStep) -> str:
    """A step as Argo's events and plugin name it (``setWeight: 20``, ``pause: 30s``)."""
    if step.set_weight is not None:
        return f"setWeight: {step.set_weight}"
    if step.pause is not None:
        duration = step.pause.duration
        return "pause" if duration is None else f"pause: {_go_duration(duration)}"
    if step.analysis is not None:
        return "analysis"
    if step.set_canary_scale is not None:
        return _describe_scale(step.set_canary_scale)
    if step.set_header_route is not None:
        return f"setHeaderRoute: {step.set_header_route.name}"
    if step.set_mirror_route is not None:
        return f"setMirrorRoute: {step.set_mirror_route.name}"
    return "experiment" if step.experiment is not None else "invalid"


def _describe_scale(scs: SetCanaryScale) -> str:
    if scs.weight is not None:
        return f"setCanaryScale{{weight: {scs.weight}}}"
    if scs.match_traffic_weight:
        return "setCanaryScale{matchTrafficWeight: true}"
    return f"setCanaryScale{{replicas: {scs.replicas}}}"


def _go_duration(duration: int | str) -> str:
    """A pause duration as Go prints a time.Duration (``30s``, ``1m0s``, ``1h0m0s``)."""
    seconds = int(pause_seconds(duration) or 0)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m}m{s}s"
    return f"{m}m{s}s" if m else f"{s}s"


@dataclass
class Steps:
    """The steps and where the update is in them."""

    steps: list[CanaryStep]
    index: int
    hash: str
    reset: bool = False  # the steps started over in this reconcile

    @property
    def count(self) -> int:
        return len(self.steps)

    @property
    def done(self) -> bool:
        return self.index >= self.count

    @property
    def current(self) -> CanaryStep | None:
        return None if self.done else self.steps[self.index]

    def set_weight(self, aborted: bool) -> int:
        """The weight the steps call for now (Argo's GetCurrentSetWeight): 0 on abort, 100 once
        every step ran, else the last setWeight at or before the current step (0 if none)."""
        if aborted:
            return 0
        if self.done:
            return 100
        return self.weight_before(self.index + 1)

    def weight_before(self, end: int) -> int:
        """The last setWeight among the steps before ``end`` (0 if none)."""
        for step in reversed(self.steps[:end]):
            if step.set_weight is not None:
                return step.set_weight
        return 0

    @classmethod
    def read(cls, ctx: Ctx, roles: Roles, pc: PauseContext) -> Steps:
        """The step index as status says; a new template or new steps start over at step 0
        (their pause, abort and promoteFull dropped); a new RS that is the stable one has
        nothing to run (a first deploy, a rollback to stable, a switch from blueGreen)."""
        steps = ctx.rollout.canary_steps()
        h = step_hash(steps)
        st = ctx.status
        index = min(max(st.current_step_index or 0, 0), len(steps))
        steps_changed = bool(st.current_step_hash) and st.current_step_hash != h
        out = cls(steps, index, h)
        if roles.new_is_stable:
            if roles.template_changed and not roles.initial and steps:
                ctx.event(names.SKIP_STEPS, "Rollback to stable ReplicaSets")
            out.index = len(steps)
        elif roles.template_changed or steps_changed:
            out.index, out.reset = 0, True
            pc.conditions, pc.controller_pause = [], False
            pc.abort, pc.aborted_at, pc.promote_full = False, None, False
        return out


def pause_condition(pc: PauseContext) -> PauseCondition | None:
    return next((p for p in pc.conditions if p.reason == names.PAUSE_CANARY_STEP), None)


def remove_pause(pc: PauseContext) -> None:
    pc.conditions = [p for p in pc.conditions if p.reason != names.PAUSE_CANARY_STEP]


def reconcile_pause(ctx: Ctx, steps: Steps, pc: PauseContext) -> None:
    """At a pause step the controller adds CanaryPauseStep once (controllerPause remembers it, so
    a promote that removed it is not undone); a timed pause asks to be looked at when it ends."""
    step = steps.current
    if step is None or step.pause is None or ctx.rollout.spec.paused or pc.promote_full or pc.abort:
        return
    cond = pause_condition(pc)
    if cond is None:
        if not pc.controller_pause:
            pc.conditions.append(PauseCondition(reason=names.PAUSE_CANARY_STEP, start_time=ctx.now_s))
            pc.controller_pause = True
        return
    seconds = pause_seconds(step.pause.duration)
    if seconds is not None:
        start = timeutil.parse(cond.start_time) or ctx.now
        ctx.requeue_at(start + timedelta(seconds=seconds))


def pause_completed(ctx: Ctx, step: CanaryStep, pc: PauseContext) -> bool:
    """A pause step is over once its duration has passed since the pause began, or once the
    controller paused and the pause was lifted (promote)."""
    cond = pause_condition(pc)
    seconds = pause_seconds(step.pause.duration) if step.pause is not None else None
    if seconds is not None and cond is not None:
        start = timeutil.parse(cond.start_time) or ctx.now
        if ctx.now >= start + timedelta(seconds=seconds):
            return True
    return cond is None and pc.controller_pause


def advance(ctx: Ctx, steps: Steps, pc: PauseContext, *, completed: bool) -> None:
    """Move past the current step when it is done (one step per reconcile, as Argo), with the
    RolloutStepCompleted event; its pause condition goes with it."""
    step = steps.current
    if step is None or not completed:
        return
    steps.index += 1
    remove_pause(pc)
    pc.controller_pause = False
    message = f"Rollout step {steps.index}/{steps.count} completed ({describe(step)})"
    ctx.event(names.ROLLOUT_STEP_COMPLETED, message)
