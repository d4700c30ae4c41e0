"""The roles, the progress step and the status step."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from step_support import ACTIVE, NOW, NOW_S, PREVIEW, ctx, event_reasons, new_hash, rollout, rs, svc

from pyrollouts.engine import progress, status
from pyrollouts.engine.context import Ctx
from pyrollouts.engine.pause import PauseContext
from pyrollouts.engine.replicaset import NewReplicaSet
from pyrollouts.engine.roles import Roles
from pyrollouts.engine.timeutil import rfc3339
from pyrollouts.model import names
from pyrollouts.model.rollout import PauseCondition

OLD = "oldhash"
NEW = new_hash(rollout())


def _world(patch: dict[str, Any] | None = None, *, active: str = OLD, **st: Any) -> tuple[Ctx, Roles]:
    r = rollout(patch, {"stableRS": OLD, "currentPodHash": NEW, **st})
    c = ctx(r, [rs(OLD), rs(NEW, revision=2)], [svc(ACTIVE, active), svc(PREVIEW, NEW)])
    return c, Roles.assign(c, NewReplicaSet(NEW, c.rss[1], 2, False))


def test_roles_are_found_once_from_status_and_services() -> None:
    c, roles = _world()
    assert (roles.stable, roles.active, roles.preview, roles.initial) == (OLD, OLD, NEW, False)
    assert roles.in_flight and roles.referenced() == {OLD, NEW}
    assert roles.pod_roles(c) == {f"super-hello-{NEW}": "preview", f"super-hello-{OLD}": "active"}


def test_a_first_deploy_makes_the_new_rs_stable_at_once() -> None:
    r = rollout()
    c = ctx(r, [rs(NEW)], [svc(ACTIVE), svc(PREVIEW)])
    roles = Roles.assign(c, NewReplicaSet(NEW, c.rss[0], 1, False))
    assert roles.initial and roles.stable == NEW and roles.new_is_stable
    # A stable RS recorded, but the active Service never switched: still a first deploy.
    c = ctx(rollout(None, {"stableRS": OLD}), [rs(OLD), rs(NEW)], [svc(ACTIVE), svc(PREVIEW)])
    roles = Roles.assign(c, NewReplicaSet(NEW, c.rss[1], 2, False))
    assert roles.initial and roles.stable == NEW


def _progressing(last_update: str, reason: str = names.RS_UPDATED) -> dict[str, Any]:
    return {
        "type": names.COND_PROGRESSING,
        "status": "True",
        "reason": reason,
        "message": "m",
        "lastUpdateTime": last_update,
        "lastTransitionTime": last_update,
    }


def _counts(c: Ctx) -> dict[str, Any]:
    """The status counts as the world stands (no progress since then)."""
    out = status.counts(c, c.rss[1], c.rss[0])
    out["blueGreen"] = {"activeSelector": OLD, "previewSelector": NEW}
    return out


def test_the_progress_deadline_requeues_then_times_out_and_aborts_when_told() -> None:
    patch = {"spec": {"progressDeadlineAbort": True}}
    start = rfc3339(NOW - timedelta(seconds=100))
    c, roles = _world(patch, conditions=[_progressing(start)])
    c, roles = _world(patch, conditions=[_progressing(start)], **_counts(c))  # counts as they stand
    pc = PauseContext.read(c, roles)
    assert progress.reconcile(c, roles, pc) is False
    assert c.requeues == [float(names.DEFAULT_PROGRESS_DEADLINE_SECONDS - 100)] and not pc.abort
    late = rfc3339(NOW - timedelta(seconds=names.DEFAULT_PROGRESS_DEADLINE_SECONDS))
    c, roles = _world(patch, conditions=[_progressing(late)], **_counts(c))
    pc = PauseContext.read(c, roles)
    assert progress.reconcile(c, roles, pc) is True
    assert pc.abort and pc.aborted_at == NOW_S
    # as Argo v1.9-v1.10: no ProgressDeadlineExceeded event; two RolloutAborted, the timeout first
    assert event_reasons(c) == [names.ROLLOUT_ABORTED, names.ROLLOUT_ABORTED]


def test_no_deadline_while_paused() -> None:
    late = rfc3339(NOW - timedelta(days=1))
    c, roles = _world(
        None,
        conditions=[_progressing(late)],
        pauseConditions=[{"reason": names.PAUSE_BLUE_GREEN, "startTime": late}],
    )
    assert progress.reconcile(c, roles, PauseContext.read(c, roles)) is False


def _built(c: Ctx, roles: Roles, pc: PauseContext) -> dict[str, Any]:
    return status.build(c, status.Outcome(roles, pc, timed_out=False, restarted_at=None))


def _condition(s: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in s["conditions"] if c["type"] == type_)


def test_status_of_a_paused_update() -> None:
    c, roles = _world()
    pc = PauseContext.read(c, roles)
    pc.conditions = [PauseCondition(reason=names.PAUSE_BLUE_GREEN, start_time=NOW_S)]
    pc.controller_pause = True
    s = _built(c, roles, pc)
    assert (s["stableRS"], s["currentPodHash"], s["phase"]) == (OLD, NEW, names.PHASE_PAUSED)
    assert s["blueGreen"] == {"activeSelector": OLD, "previewSelector": NEW}
    assert s["controllerPause"] is True and "abort" not in s
    assert s["pauseConditions"] == [{"reason": names.PAUSE_BLUE_GREEN, "startTime": NOW_S}]
    assert _condition(s, names.COND_PROGRESSING)["reason"] == names.ROLLOUT_PAUSED
    assert _condition(s, names.COND_PAUSED)["status"] == "True"


def test_status_of_an_abort() -> None:
    c, roles = _world(abort=True)
    pc = PauseContext.read(c, roles)
    pc.aborted_at = NOW_S
    s = _built(c, roles, pc)
    assert (s["abort"], s["abortedAt"], s["phase"]) == (True, NOW_S, names.PHASE_DEGRADED)
    assert _condition(s, names.COND_PROGRESSING)["message"] == "Rollout aborted update to revision 2"
    # no Healthy condition was there before, and Argo writes it False only once it has been True
    assert names.COND_HEALTHY not in [c["type"] for c in s["conditions"]]


def test_status_of_a_completed_update() -> None:
    c, roles = _world(active=NEW)
    roles.stable = NEW
    s = _built(c, roles, PauseContext.read(c, roles))
    assert (s["stableRS"], s["phase"], s["availableReplicas"]) == (NEW, names.PHASE_HEALTHY, 3)
    assert _condition(s, names.COND_PROGRESSING)["reason"] == names.NEW_RS_AVAILABLE
    for t in (names.COND_AVAILABLE, names.COND_HEALTHY, names.COND_COMPLETED):
        assert _condition(s, t)["status"] == "True"
