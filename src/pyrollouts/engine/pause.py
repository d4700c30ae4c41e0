"""The pause context and the BlueGreenPause step: when the controller pauses before the cutover,
when that pause is over, and the user's abort and promote --full that travel with it.

``controllerPause`` remembers that the controller paused this revision, so once a user removes the
pause condition (promote) or autoPromotionSeconds has passed, the pause counts as completed and is
not added again (docs/argo-compat.md "Pause and promote").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from ..model import names
from ..model.rollout import PauseCondition
from . import conditions, events, replicaset, timeutil
from .context import Ctx
from .roles import Roles


@dataclass
class PauseContext:
    """Everything of status about pausing and aborting, read once and changed only through here.

    ``conditions`` is status.pauseConditions; ``checkpoint`` is blueGreen.scaleUpPreviewCheckPoint
    (the preview RS may grow to full size); ``retrying`` means the user retried an aborted update
    (abort cleared, abortedAt still set); ``was_paused`` and ``before`` describe the pause as read,
    for the Progressing condition and the RolloutPaused/RolloutResumed events."""

    conditions: list[PauseCondition]
    controller_pause: bool
    abort: bool = False
    aborted_at: str | None = None
    promote_full: bool = False
    checkpoint: bool = False
    retrying: bool = False
    was_paused: bool = False
    before: list[PauseCondition] = field(default_factory=list)
    # Why the controller aborts in this reconcile (an analysis that failed), for the condition
    # and the event; "" for a user's abort.
    abort_message: str = ""

    @classmethod
    def read(cls, ctx: Ctx, roles: Roles) -> PauseContext:
        """The context as status says. A new template while an update was in flight starts over
        (no pause, abort, promoteFull or checkpoint), and there is nothing to abort once the new RS
        is the stable one."""
        st = ctx.status
        paused_condition = conditions.find(st, names.COND_PAUSED)
        was_paused = paused_condition is not None and paused_condition.status == "True"
        # What status.pauseConditions held as read. A promote clears them before we look, so it
        # yields no RolloutResumed event: Argo's controller compares the same two lists (side by
        # side with Argo's controller, tests/k8s/argo_stories/seed.yaml); a pause the controller
        # lifts itself (autoPromotionSeconds, promote --full, a new template) does yield one.
        before = [p.model_copy() for p in st.pause_conditions or []]
        if roles.template_changed:
            pc = cls([], False, was_paused=was_paused, before=before)
        else:
            pc = cls(
                [p.model_copy() for p in st.pause_conditions or []],
                bool(st.controller_pause),
                abort=bool(st.abort),
                aborted_at=st.aborted_at,
                promote_full=bool(st.promote_full),
                checkpoint=bool(st.blue_green is not None and st.blue_green.scale_up_preview_check_point),
                was_paused=was_paused,
                before=before,
            )
        pc.retrying = not pc.abort and pc.aborted_at is not None
        if pc.abort and roles.new_hash == roles.stable:
            pc.abort, pc.aborted_at = False, None
        return pc

    def blue_green(self) -> PauseCondition | None:
        return next((p for p in self.conditions if p.reason == names.PAUSE_BLUE_GREEN), None)

    def remove_blue_green(self) -> None:
        self.conditions = [p for p in self.conditions if p.reason != names.PAUSE_BLUE_GREEN]

    @property
    def completed(self) -> bool:
        """The controller paused and the pause has since been lifted (promote or auto-promotion)."""
        return self.controller_pause and self.blue_green() is None

    def paused(self, ctx: Ctx) -> bool:
        """Paused now: a pause condition remains, or spec.paused."""
        return bool(self.conditions) or bool(ctx.rollout.spec.paused)

    def request_abort(self, message: str = "") -> None:
        """Abort as if the user had (progressDeadlineAbort, a failed analysis: ``message`` says
        which); ``start_abort`` then stamps it."""
        self.abort = True
        self.abort_message = message

    def end_retry(self) -> None:
        """A retried update goes on: abortedAt, kept to recognise the retry, is dropped."""
        self.aborted_at = None

    def start_abort(self, ctx: Ctx, revision: int) -> None:
        """The abort takes effect now: stamp abortedAt, drop the BlueGreenPause and promoteFull."""
        self.aborted_at = ctx.now_s
        self.remove_blue_green()
        self.controller_pause = False
        self.promote_full = False
        ctx.event(names.ROLLOUT_ABORTED, events.aborted(revision, self.abort_message), "Warning")

    def finish(self) -> None:
        """The new RS is stable: the update is over, and with it its pause, abort and promoteFull."""
        self.remove_blue_green()
        self.controller_pause = False
        self.promote_full = False
        self.checkpoint = False
        self.abort, self.aborted_at = False, None


def needs_pause(ctx: Ctx) -> bool:
    """A pause before the cutover: autoPromotionEnabled false, or autoPromotionSeconds > 0."""
    seconds = ctx.rollout.bg.auto_promotion_seconds or 0
    return not ctx.rollout.auto_promotion_enabled() or seconds > 0


def reconcile(
    ctx: Ctx, roles: Roles, pc: PauseContext, *, fast: bool, pre_done: bool = True, halted: bool = False
) -> bool:
    """The pause step: add or lift the BlueGreenPause, emit pause/resume events, move the preview
    checkpoint. Returns whether the cutover may go ahead as far as pausing is concerned (``fast``:
    the update skips the pause, e.g. promote --full or a rollback within the window). The pause
    waits for the pre-promotion analysis (``pre_done``); ``halted``: spec.paused or an
    inconclusive analysis, nothing moves."""
    bg = ctx.rollout.bg
    needs = needs_pause(ctx)
    preview_size = bg.preview_replica_count if bg.preview_replica_count is not None else ctx.replicas
    ready = replicaset.is_available_at(roles.new_rs, ctx.replicas if pc.checkpoint else preview_size)
    if roles.in_flight and not pc.abort and not halted and (pre_done or fast or pc.checkpoint):
        update_blue_green_pause(ctx, pc, skip=fast or not needs, ready=ready)
    emit_transition(ctx, pc.before, pc.conditions, pc.abort)
    promotion_ok = fast or ((pc.completed if needs else ready) and (pre_done or pc.checkpoint))
    if bg.preview_replica_count is None or not roles.in_flight:
        pc.checkpoint = False
    elif not pc.abort:
        pc.checkpoint = pc.checkpoint or promotion_ok
    return promotion_ok


def update_blue_green_pause(ctx: Ctx, pc: PauseContext, *, skip: bool, ready: bool) -> None:
    """Add the pause once the new RS is ready (unless ``skip``: fast-tracked or not needed), and
    lift it when autoPromotionSeconds has passed since it started."""
    cond = pc.blue_green()
    if skip:
        if cond is not None:
            pc.remove_blue_green()
        return
    if cond is None:
        if not pc.controller_pause and ready:
            pc.conditions.append(PauseCondition(reason=names.PAUSE_BLUE_GREEN, start_time=ctx.now_s))
            pc.controller_pause = True
        return
    seconds = ctx.rollout.bg.auto_promotion_seconds or 0
    if ctx.rollout.auto_promotion_enabled() and seconds > 0:
        start = timeutil.parse(cond.start_time) or ctx.now
        due = start + timedelta(seconds=seconds)
        if ctx.now >= due:
            pc.remove_blue_green()
        else:
            ctx.requeue_at(due)


def emit_transition(
    ctx: Ctx, before: list[PauseCondition], after: list[PauseCondition], aborted: bool
) -> None:
    """RolloutPaused / RolloutResumed events when status.pauseConditions goes from empty to not (or
    back), as Argo does; an abort also clears the pause conditions, but that is not a resume."""
    if after and not before:
        ctx.event(names.ROLLOUT_PAUSED, events.paused(after[0].reason))
    elif before and not after and not aborted:
        ctx.event(names.ROLLOUT_RESUMED, events.RESUMED)
