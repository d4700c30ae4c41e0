"""The preview and active Service steps."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from step_support import ACTIVE, NOW, PREVIEW, ctx, event_reasons, new_hash, rollout, rs, svc

from pyrollouts.engine import service
from pyrollouts.engine.context import Ctx
from pyrollouts.engine.pause import PauseContext
from pyrollouts.engine.replicaset import NewReplicaSet
from pyrollouts.engine.roles import Roles
from pyrollouts.engine.types import SetScaleDownDeadline, SwitchService
from pyrollouts.model import names

OLD = "oldhash"
NEW = new_hash(rollout())


def _update(
    patch: dict[str, Any] | None = None,
    *,
    available: int = 3,
    preview: str | None = OLD,
    created: bool = False,
) -> tuple[Ctx, Roles, PauseContext]:
    r = rollout(patch, {"stableRS": OLD, "currentPodHash": NEW})
    new_rs = rs(NEW, available=available, revision=2)
    c = ctx(r, [rs(OLD), new_rs], [svc(ACTIVE, OLD), svc(PREVIEW, preview)])
    roles = Roles.assign(c, NewReplicaSet(NEW, new_rs, 2, created))
    return c, roles, PauseContext.read(c, roles)


def _switches(c: Ctx) -> list[tuple[str, str]]:
    return [(a.service, a.pod_template_hash) for a in c.actions if isinstance(a, SwitchService)]


def test_the_preview_service_follows_the_new_rs() -> None:
    c, roles, _ = _update()
    service.reconcile_preview(c, roles)
    assert _switches(c) == [(PREVIEW, NEW)] and roles.preview == NEW
    assert event_reasons(c) == [names.SWITCH_SERVICE]


def test_the_preview_service_stays_while_spec_paused() -> None:
    c, roles, _ = _update({"spec": {"paused": True}})
    service.reconcile_preview(c, roles)
    assert c.actions == [] and roles.preview == OLD


def test_a_service_already_selecting_but_not_marked_gets_only_the_mark() -> None:
    c = ctx(rollout(), [], [svc(ACTIVE, NEW, managed=False)])
    service.switch(c, ACTIVE, NEW, NEW)
    assert _switches(c) == [(ACTIVE, NEW)] and event_reasons(c) == []
    c = ctx(rollout(), [], [svc(ACTIVE, NEW)])
    service.switch(c, ACTIVE, NEW, NEW)
    assert c.actions == []


def test_the_active_service_waits_for_the_promotion_and_for_saturation() -> None:
    c, roles, pc = _update()
    assert service.reconcile_active(c, roles, pc, promotion_ok=False) == {}
    c, roles, pc = _update(available=2)
    assert service.reconcile_active(c, roles, pc, promotion_ok=True) == {}
    c, roles, pc = _update(created=True)
    assert service.reconcile_active(c, roles, pc, promotion_ok=True) == {}
    assert c.actions == [] and roles.active == OLD


def test_the_cutover_switches_and_gives_the_old_active_rs_its_scale_down_deadline() -> None:
    c, roles, pc = _update()
    deadlines = service.reconcile_active(c, roles, pc, promotion_ok=True)
    assert _switches(c) == [(ACTIVE, NEW)] and roles.active == NEW
    delay = names.DEFAULT_SCALE_DOWN_DELAY_SECONDS
    assert deadlines == {f"super-hello-{OLD}": NOW + timedelta(seconds=delay)}
    assert not any(isinstance(a, SetScaleDownDeadline) for a in c.actions)  # the old-RS step writes it


def test_an_abort_sends_the_active_service_back_to_the_stable_rs() -> None:
    r = rollout(None, {"stableRS": OLD, "currentPodHash": NEW, "abort": True})
    new_rs = rs(NEW, revision=2)
    c = ctx(r, [rs(OLD), new_rs], [svc(ACTIVE, NEW), svc(PREVIEW, NEW)])
    roles = Roles.assign(c, NewReplicaSet(NEW, new_rs, 2, False))
    pc = PauseContext.read(c, roles)
    assert service.reconcile_active(c, roles, pc, promotion_ok=True) == {}
    assert _switches(c) == [(ACTIVE, OLD)] and roles.active == OLD
