"""The steps that are blue-green's own: the fast track past the pause, and marking stable."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from step_support import ACTIVE, NOW, PREVIEW, ctx, new_hash, rollout, rs, svc

from pyrollouts.engine import bluegreen
from pyrollouts.engine.context import Ctx
from pyrollouts.engine.pause import PauseContext
from pyrollouts.engine.replicaset import NewReplicaSet
from pyrollouts.engine.roles import Roles
from pyrollouts.engine.timeutil import rfc3339
from pyrollouts.model import names

OLD = "oldhash"
NEW = new_hash(rollout())


def _world(
    *,
    active: str | None = OLD,
    new_annotations: dict[str, str] | None = None,
    new_created: str = "2026-01-01T11:00:00Z",
    **status: Any,
) -> tuple[Ctx, Roles, PauseContext]:
    r = rollout(None, {"stableRS": OLD, "currentPodHash": NEW, **status})
    new_rs = rs(NEW, revision=2, annotations=new_annotations, created=new_created)
    c = ctx(r, [rs(OLD), new_rs], [svc(ACTIVE, active), svc(PREVIEW, NEW)])
    roles = Roles.assign(c, NewReplicaSet(NEW, new_rs, 2, False))
    return c, roles, PauseContext.read(c, roles)


def test_an_ordinary_update_is_not_fast_tracked() -> None:
    assert bluegreen.fast_tracked(*_world()) is False


def test_promote_full_and_a_recent_active_rs_are_fast_tracked() -> None:
    assert bluegreen.fast_tracked(*_world(promoteFull=True)) is True
    deadline = {names.SCALE_DOWN_DEADLINE_ANNOTATION: rfc3339(NOW + timedelta(seconds=10))}
    earlier = "2026-01-01T10:00:00Z"  # created before the stable RS: a rollback
    assert bluegreen.fast_tracked(*_world(new_annotations=deadline, new_created=earlier)) is True
    past = {names.SCALE_DOWN_DEADLINE_ANNOTATION: rfc3339(NOW - timedelta(seconds=10))}
    assert bluegreen.fast_tracked(*_world(new_annotations=past, new_created=earlier)) is False


def test_an_abandoned_preview_rs_inside_its_delay_is_not_a_rollback() -> None:
    # Created after the stable RS (it was only ever preview): as Argo's isRollback, no fast track.
    deadline = {names.SCALE_DOWN_DEADLINE_ANNOTATION: rfc3339(NOW + timedelta(seconds=10))}
    later = "2026-01-01T12:00:00Z"
    assert bluegreen.fast_tracked(*_world(new_annotations=deadline, new_created=later)) is False


def test_the_new_rs_becomes_stable_behind_the_active_service_and_ends_the_update() -> None:
    c, roles, pc = _world(active=NEW, controllerPause=True, promoteFull=True)
    assert bluegreen.mark_stable(c, roles, pc) == "Completed blue-green update"
    assert roles.stable == NEW and not pc.controller_pause and not pc.promote_full


def test_no_stable_mark_before_the_cutover_or_during_an_abort() -> None:
    c, roles, pc = _world()
    assert bluegreen.mark_stable(c, roles, pc) is None and roles.stable == OLD
    c, roles, pc = _world(active=NEW, abort=True)
    assert bluegreen.mark_stable(c, roles, pc) is None and roles.stable == OLD and pc.abort


def test_the_completion_detail_says_why_in_argos_words_and_order() -> None:
    assert bluegreen.completion_detail(*_world()) == "Completed blue-green update"
    # promote --full comes first, even for a rollback (Argo checks it before the fast rollback)
    deadline = {names.SCALE_DOWN_DEADLINE_ANNOTATION: rfc3339(NOW + timedelta(seconds=10))}
    earlier = "2026-01-01T10:00:00Z"
    world = _world(new_annotations=deadline, new_created=earlier)
    assert bluegreen.completion_detail(*world) == "Fast rollback"
    world = _world(new_annotations=deadline, new_created=earlier, promoteFull=True)
    assert bluegreen.completion_detail(*world) == "Full promotion requested"
    c, roles, pc = _world(active=NEW, promoteFull=True)
    assert bluegreen.mark_stable(c, roles, pc, detail=bluegreen.completion_detail(c, roles, pc)) == (
        "Full promotion requested"
    )
