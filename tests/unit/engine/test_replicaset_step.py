"""The ReplicaSet steps: the new RS (hash, collision, revision, create), sizing, old RSs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from step_support import ACTIVE, NOW, PREVIEW, ctx, event_reasons, new_hash, rollout, rs, svc

from pyrollouts.engine import replicaset
from pyrollouts.engine.context import Ctx
from pyrollouts.engine.pause import PauseContext
from pyrollouts.engine.replicaset import COLLISION_REQUEUE_SECONDS, NewReplicaSet
from pyrollouts.engine.roles import Roles
from pyrollouts.engine.timeutil import rfc3339
from pyrollouts.engine.types import (
    AnnotateReplicaSet,
    CreateReplicaSet,
    ScaleReplicaSet,
    SetScaleDownDeadline,
    UpdateRollout,
)
from pyrollouts.model import names

OLD = "oldhash"
NEW = new_hash(rollout())


def test_the_current_template_is_found_by_its_hash_or_is_yet_to_be_created() -> None:
    assert replicaset.find_current(ctx(rollout(), [rs(OLD)])) == (NEW, None)
    new_rs = rs(NEW, revision=2)
    assert replicaset.find_current(ctx(rollout(), [rs(OLD), new_rs])) == (NEW, new_rs)


def test_a_name_held_by_a_foreign_rs_is_a_collision_that_bumps_the_count() -> None:
    c = ctx(rollout(None, {"collisionCount": 0}), [rs(OLD)], foreign=[rs(NEW)])
    assert replicaset.find_current(c) is None
    assert replicaset.hash_collision(c)["collisionCount"] == 1
    assert c.requeues == [COLLISION_REQUEUE_SECONDS] and c.actions == []


def test_a_new_template_gets_the_next_revision_and_a_created_rs() -> None:
    c = ctx(rollout(None, {"stableRS": OLD, "currentPodHash": OLD}), [rs(OLD, revision=4)])
    new = replicaset.reconcile_new(c, NEW, None)
    assert (new.revision, new.created, new.rs is not None) == (5, True, True)
    update, create = c.actions[0], c.actions[2]
    assert update == UpdateRollout(annotations={names.REVISION_ANNOTATION: "5"})
    assert isinstance(create, CreateReplicaSet) and create.name == f"super-hello-{NEW}"
    # RolloutNotCompleted comes from the Completed condition turning False (bluegreen.not_completed)
    assert event_reasons(c) == [names.ROLLOUT_UPDATED, names.NEW_RS_CREATED]


def test_an_older_rs_that_is_new_again_is_renumbered_with_its_history() -> None:
    older = rs(NEW, revision=1)
    c = ctx(rollout(None, {"stableRS": OLD, "currentPodHash": OLD}), [older, rs(OLD, revision=2)])
    new = replicaset.reconcile_new(c, NEW, older)
    assert (new.revision, new.created) == (3, False)
    assert c.actions[0] == AnnotateReplicaSet(
        name=older.name,
        annotations={names.REVISION_ANNOTATION: "3", names.REVISION_HISTORY_ANNOTATION: "1"},
    )


def test_spec_paused_still_creates_the_new_rs() -> None:
    # As Argo: spec.paused holds the Services and the pause, not the new RS.
    c = ctx(rollout({"spec": {"paused": True}}, {"stableRS": OLD, "currentPodHash": OLD}), [rs(OLD)])
    new = replicaset.reconcile_new(c, NEW, None)
    assert (new.pod_hash, new.revision, new.created, new.rs is not None) == (NEW, 2, True, True)
    assert any(isinstance(a, CreateReplicaSet) for a in c.actions)


def _sized(patch: dict[str, Any] | None = None, **status: Any) -> tuple[Ctx, Roles, PauseContext]:
    r = rollout(patch, {"stableRS": OLD, "currentPodHash": NEW, **status})
    new_rs = rs(NEW, replicas=0, desired=None, revision=2)
    c = ctx(r, [rs(OLD), new_rs], [svc(ACTIVE, OLD), svc(PREVIEW, NEW)])
    roles = Roles.assign(c, NewReplicaSet(NEW, new_rs, 2, False))
    return c, roles, PauseContext.read(c, roles)


def _scales(c: Ctx) -> list[tuple[str, int]]:
    return [(a.name, a.replicas) for a in c.actions if isinstance(a, ScaleReplicaSet)]


def test_the_new_rs_runs_at_preview_size_until_the_checkpoint() -> None:
    patch = {"spec": {"strategy": {"blueGreen": {"previewReplicaCount": 1}}}}
    c, roles, pc = _sized(patch)
    replicaset.scale_new_and_stable(c, roles, pc)
    assert _scales(c) == [(f"super-hello-{NEW}", 1)]  # the stable RS is at full size already
    c, roles, pc = _sized(patch, blueGreen={"scaleUpPreviewCheckPoint": True})
    replicaset.scale_new_and_stable(c, roles, pc)
    assert _scales(c) == [(f"super-hello-{NEW}", 3)]


def test_old_rss_wait_for_their_deadline_within_the_revision_limit() -> None:
    later = rfc3339(NOW + timedelta(seconds=20))
    waiting = rs("a", revision=1, annotations={names.SCALE_DOWN_DEADLINE_ANNOTATION: later})
    due = rs("b", revision=2, annotations={names.SCALE_DOWN_DEADLINE_ANNOTATION: rfc3339(NOW)})
    c = ctx(rollout(), [waiting, due])
    replicaset.scale_down_old(c, [waiting, due], {})
    assert _scales(c) == [("super-hello-b", 0)] and c.requeues == [20.0]
    assert SetScaleDownDeadline(name="super-hello-b", deadline=None) in c.actions
    limited = rollout({"spec": {"strategy": {"blueGreen": {"scaleDownDelayRevisionLimit": 0}}}})
    c = ctx(limited, [waiting])
    replicaset.scale_down_old(c, [waiting], {})
    assert _scales(c) == [("super-hello-a", 0)]


def test_a_switch_planned_again_keeps_the_deadline_the_old_rs_has() -> None:
    """A switch planned again from a Service cache that missed the first one (after an API outage)
    gives the old RS a new deadline; the one it has (written by the first switch) stays."""
    first = NOW + timedelta(seconds=30)
    old = rs("a", revision=1, annotations={names.SCALE_DOWN_DEADLINE_ANNOTATION: rfc3339(first)})
    c = ctx(rollout(), [old])
    replicaset.scale_down_old(c, [old], {old.name: NOW + timedelta(seconds=600)})
    assert not [x for x in c.actions if isinstance(x, SetScaleDownDeadline)] and c.requeues == [30.0]
    fresh = rs("b", revision=1)
    c = ctx(rollout(), [fresh])
    replicaset.scale_down_old(c, [fresh], {fresh.name: NOW + timedelta(seconds=600)})
    at = rfc3339(NOW + timedelta(seconds=600))
    written = [(x.name, x.deadline) for x in c.actions if isinstance(x, SetScaleDownDeadline)]
    assert written == [(fresh.name, at)]


def test_an_aborted_new_rs_gets_its_deadline_once_the_stable_rs_is_back() -> None:
    c = ctx(rollout(), [rs(OLD), rs(NEW)])
    replicaset.abort_scale_down(c, c.rss[1], c.rss[0], active_is_stable=True)
    at = NOW + timedelta(seconds=rollout().abort_scale_down_delay_seconds())
    assert c.actions == [SetScaleDownDeadline(name=f"super-hello-{NEW}", deadline=rfc3339(at))]
    c = ctx(rollout(), [rs(OLD), rs(NEW)])
    replicaset.abort_scale_down(c, c.rss[1], c.rss[0], active_is_stable=False)
    assert c.actions == []


def test_the_rollback_window_counts_the_rss_between() -> None:
    patch = {"spec": {"rollbackWindow": {"revisions": 1}}}
    older = rs(NEW, created="2026-01-01T10:00:00Z")
    between = rs("mid", created="2026-01-01T10:30:00Z")
    stable = rs(OLD, created="2026-01-01T11:00:00Z")
    for rss, within in (([older, stable], True), ([older, between, stable], False)):
        c = ctx(rollout(patch, {"stableRS": OLD}), rss, [svc(ACTIVE, OLD)])
        roles = Roles.assign(c, NewReplicaSet(NEW, older, 1, False))
        assert replicaset.rollback_within_window(c, roles) is within


def test_a_rollback_to_an_rs_created_in_the_same_second_is_still_a_rollback() -> None:
    """creationTimestamp has whole seconds: two RSs made in one second tie, and the revision (as
    observed before the renumbering) says which came first. Without it an undo inside the
    scale-down delay paused now and then (the CI flake of fast-rollback-within-delay)."""
    same = "2026-01-01T11:00:00Z"
    older = rs(
        NEW,
        revision=1,
        created=same,
        annotations={names.SCALE_DOWN_DEADLINE_ANNOTATION: rfc3339(NOW + timedelta(seconds=20))},
    )
    stable = rs(OLD, revision=2, created=same)
    c = ctx(rollout(None, {"stableRS": OLD}), [older, stable], [svc(ACTIVE, OLD)])
    roles = Roles.assign(c, NewReplicaSet(NEW, older, 3, False))
    assert replicaset.is_rollback(c, roles)
    # The other way round (an RS abandoned as preview, applied again) is not a rollback.
    newer = rs(NEW, revision=2, created=same)
    stable1 = rs(OLD, revision=1, created=same)
    c = ctx(rollout(None, {"stableRS": OLD}), [newer, stable1], [svc(ACTIVE, OLD)])
    roles = Roles.assign(c, NewReplicaSet(NEW, newer, 3, False))
    assert not replicaset.is_rollback(c, roles)
