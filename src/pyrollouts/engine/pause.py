"""The BlueGreenPause: when the controller pauses before the cutover, and when that pause is over.

``controllerPause`` remembers that the controller paused this revision, so once a user removes the
pause condition (promote) or autoPromotionSeconds has passed, the pause counts as completed and is
not added again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..model import names
from . import events, timeutil
from .context import Ctx


@dataclass
class PauseState:
    conditions: list[dict[str, Any]]
    controller_pause: bool

    def blue_green(self) -> dict[str, Any] | None:
        return next((p for p in self.conditions if p.get("reason") == names.PAUSE_BLUE_GREEN), None)

    def remove_blue_green(self) -> None:
        self.conditions = [p for p in self.conditions if p.get("reason") != names.PAUSE_BLUE_GREEN]

    @property
    def completed(self) -> bool:
        """The controller paused and the pause has since been lifted (promote or auto-promotion)."""
        return self.controller_pause and self.blue_green() is None


def needs_pause(ctx: Ctx) -> bool:
    """A pause before the cutover: autoPromotionEnabled false, or autoPromotionSeconds > 0."""
    seconds = ctx.rollout.bg.auto_promotion_seconds or 0
    return not ctx.rollout.auto_promotion_enabled() or seconds > 0


def reconcile(ctx: Ctx, pause: PauseState, *, skip: bool, ready: bool) -> None:
    """Add the pause once the new RS is ready (unless ``skip``: fast-tracked or not needed), and
    lift it when autoPromotionSeconds has passed since it started."""
    cond = pause.blue_green()
    if skip:
        if cond is not None:
            pause.remove_blue_green()
        return
    if cond is None:
        if not pause.controller_pause and ready:
            pause.conditions.append({"reason": names.PAUSE_BLUE_GREEN, "startTime": ctx.now_s})
            pause.controller_pause = True
        return
    seconds = ctx.rollout.bg.auto_promotion_seconds or 0
    if ctx.rollout.auto_promotion_enabled() and seconds > 0:
        start = timeutil.parse(str(cond.get("startTime", ""))) or ctx.now
        due = start + timedelta(seconds=seconds)
        if ctx.now >= due:
            pause.remove_blue_green()
        else:
            ctx.requeue_at(due)


def emit_transition(
    ctx: Ctx, before: list[dict[str, Any]], after: list[dict[str, Any]], aborted: bool
) -> None:
    """RolloutPaused / RolloutResumed events when status.pauseConditions goes from empty to not (or
    back), as Argo does; an abort also clears the pause conditions, but that is not a resume."""
    if after and not before:
        ctx.event(names.ROLLOUT_PAUSED, events.paused(str(after[0].get("reason", ""))))
    elif before and not after and not aborted:
        ctx.event(names.ROLLOUT_RESUMED, events.RESUMED)
