"""The pause context and the BlueGreenPause step, one decision at a time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from step_support import ACTIVE, NOW, NOW_S, PREVIEW, ctx, event_reasons, new_hash, rollout, rs, svc

from pyrollouts.engine import pause
from pyrollouts.engine.context import Ctx
from pyrollouts.engine.pause import PauseContext
from pyrollouts.engine.replicaset import NewReplicaSet
from pyrollouts.engine.roles import Roles
from pyrollouts.model import names
from pyrollouts.model.rollout import PauseCondition

OLD = "oldhash"
BG_PAUSE = {"reason": names.PAUSE_BLUE_GREEN, "startTime": "2026-01-01T11:59:00Z"}


NEW = new_hash(rollout())


def _update(
    status: dict[str, Any], patch: dict[str, Any] | None = None, *, available: int = 3
) -> tuple[Ctx, Roles]:
    """A Rollout updating from OLD (stable, active) to NEW (3 pods, ``available`` of them up, in
    preview); status.currentPodHash is NEW unless ``status`` says otherwise."""
    r = rollout(patch, {"stableRS": OLD, "currentPodHash": NEW, **status})
    new_rs = rs(NEW, available=available, revision=2)
    c = ctx(r, [rs(OLD), new_rs], [svc(ACTIVE, OLD), svc(PREVIEW, NEW)])
    return c, Roles.assign(c, NewReplicaSet(NEW, new_rs, 2, False))


def _wire(conditions: list[PauseCondition]) -> list[dict[str, Any]]:
    return [p.wire() for p in conditions]


def _current(patch: dict[str, Any] | None = None, **status: Any) -> tuple[Ctx, Roles]:
    return _update(status, patch)


def test_read_takes_abort_promote_full_and_checkpoint_from_status() -> None:
    c, roles = _current(
        pauseConditions=[BG_PAUSE],
        controllerPause=True,
        promoteFull=True,
        blueGreen={"scaleUpPreviewCheckPoint": True},
    )
    pc = PauseContext.read(c, roles)
    assert _wire(pc.conditions) == [BG_PAUSE] and pc.controller_pause
    assert pc.promote_full and pc.checkpoint and not pc.abort and not pc.retrying


def test_a_new_template_in_flight_starts_over() -> None:
    c, roles = _update(
        {
            "currentPodHash": "an-earlier-update",
            "pauseConditions": [BG_PAUSE],
            "controllerPause": True,
            "abort": True,
            "abortedAt": "2026-01-01T11:00:00Z",
            "promoteFull": True,
        }
    )
    assert roles.template_changed
    pc = PauseContext.read(c, roles)
    assert (pc.conditions, pc.controller_pause, pc.abort, pc.aborted_at, pc.promote_full) == (
        [],
        False,
        False,
        None,
        False,
    )
    assert _wire(pc.before) == [BG_PAUSE]  # the pause as read still decides the RolloutResumed event


def test_retry_is_an_abort_cleared_with_its_time_left() -> None:
    c, roles = _current(abortedAt="2026-01-01T11:00:00Z")
    assert PauseContext.read(c, roles).retrying


def test_nothing_to_abort_once_the_new_rs_is_stable() -> None:
    r = rollout(None, {"abort": True, "abortedAt": NOW_S, "stableRS": NEW, "currentPodHash": NEW})
    c = ctx(r, [rs(NEW)], [svc(ACTIVE, NEW), svc(PREVIEW, NEW)])
    pc = PauseContext.read(c, Roles.assign(c, NewReplicaSet(NEW, c.rss[0], 1, False)))
    assert not pc.abort and pc.aborted_at is None


def test_the_pause_is_added_once_the_new_rs_is_ready_and_blocks_the_cutover() -> None:
    c, roles = _current()
    pc = PauseContext.read(c, roles)
    assert pause.reconcile(c, roles, pc, fast=False) is False
    assert _wire(pc.conditions) == [{"reason": names.PAUSE_BLUE_GREEN, "startTime": NOW_S}]
    assert pc.controller_pause and event_reasons(c) == [names.ROLLOUT_PAUSED]


def test_no_pause_before_the_preview_is_ready() -> None:
    c, roles = _update({}, available=1)
    pc = PauseContext.read(c, roles)
    assert pause.reconcile(c, roles, pc, fast=False) is False
    assert pc.conditions == [] and not pc.controller_pause and c.actions == []


def test_a_promote_completes_the_pause_without_a_resumed_event() -> None:
    """The promote cleared status.pauseConditions itself, so (as Argo's controller, which compares
    the pause conditions it read with those it writes) no RolloutResumed event."""
    c, roles = _current(
        controllerPause=True,
        conditions=[
            {"type": names.COND_PAUSED, "status": "True", "reason": names.ROLLOUT_PAUSED, "message": "m"}
        ],
    )
    pc = PauseContext.read(c, roles)
    assert pc.completed and pc.was_paused
    assert pause.reconcile(c, roles, pc, fast=False) is True
    assert pc.conditions == [] and event_reasons(c) == []


def test_auto_promotion_seconds_lift_the_pause_when_due_and_requeue_before() -> None:
    patch = {"spec": {"strategy": {"blueGreen": {"autoPromotionEnabled": None, "autoPromotionSeconds": 120}}}}
    c, roles = _current(patch, pauseConditions=[BG_PAUSE], controllerPause=True)
    pc = PauseContext.read(c, roles)
    assert pause.reconcile(c, roles, pc, fast=False) is False  # started 60 s ago
    assert _wire(pc.conditions) == [BG_PAUSE] and c.requeues == [60.0]
    later = ctx(c.rollout, c.rss, c.observed.services.values(), now=NOW + timedelta(seconds=60))
    pc = PauseContext.read(later, roles)
    assert pause.reconcile(later, roles, pc, fast=False) is True
    assert pc.conditions == [] and event_reasons(later) == [names.ROLLOUT_RESUMED]


def test_a_fast_tracked_update_skips_the_pause() -> None:
    c, roles = _current(pauseConditions=[BG_PAUSE], controllerPause=True)
    pc = PauseContext.read(c, roles)
    assert pause.reconcile(c, roles, pc, fast=True) is True
    assert pc.conditions == []


def test_the_preview_checkpoint_is_reached_with_the_promotion() -> None:
    patch = {"spec": {"strategy": {"blueGreen": {"previewReplicaCount": 1}}}}
    c, roles = _current(patch, controllerPause=True)
    pc = PauseContext.read(c, roles)
    assert not pc.checkpoint
    pause.reconcile(c, roles, pc, fast=False)
    assert pc.checkpoint  # promoted: the preview RS may now grow to full size


def test_start_abort_and_finish() -> None:
    c, roles = _current(pauseConditions=[BG_PAUSE], controllerPause=True, promoteFull=True)
    pc = PauseContext.read(c, roles)
    pc.abort = True
    pc.start_abort(c, 2)
    assert (pc.aborted_at, pc.conditions, pc.controller_pause, pc.promote_full) == (NOW_S, [], False, False)
    assert event_reasons(c) == [names.ROLLOUT_ABORTED]
    pc.checkpoint = True
    pc.finish()
    assert (pc.abort, pc.aborted_at, pc.checkpoint) == (False, None, False)
