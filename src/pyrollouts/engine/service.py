"""Services: which revision each one selects, and the preview and active Service steps.

The preview Service follows the newest ReplicaSet at once; the active Service moves to it only when
the promotion is allowed and the new ReplicaSet is saturated, and back to the stable one on abort
(docs/argo-compat.md "Services").
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ..model import names
from . import events, replicaset
from .context import Ctx
from .types import SwitchService

if TYPE_CHECKING:  # roles reads Services through this module; only the types go the other way
    from .pause import PauseContext
    from .roles import Roles


def selected_hash(ctx: Ctx, service: str | None) -> str | None:
    """The pod-template hash a Service's selector names (None: no Service, or no hash yet)."""
    if not service:
        return None
    svc = ctx.observed.services.get(service)
    if svc is None:
        return None
    return svc.selector.get(names.POD_TEMPLATE_HASH_LABEL) or None


def switch(ctx: Ctx, service: str, current: str | None, target: str) -> None:
    """Point a Service at a revision; a Service not yet marked as ours gets the managed-by mark."""
    svc = ctx.observed.services.get(service)
    marked = svc is not None and svc.annotations.get(names.MANAGED_BY_ANNOTATION) == ctx.name
    if current == target and marked:
        return
    ctx.actions.append(SwitchService(service=service, pod_template_hash=target, managed_by=ctx.name))
    if current != target:
        ctx.event(names.SWITCH_SERVICE, events.switch_service(service, current or "", target))


def reconcile_preview(ctx: Ctx, roles: Roles, *, halted: bool = False) -> None:
    """The preview Service (when there is one) selects the new ReplicaSet, unless ``halted``
    (spec.paused, or paused on an inconclusive analysis)."""
    preview = ctx.rollout.bg.preview_service
    if preview and roles.new_rs is not None and not (halted or ctx.rollout.spec.paused):
        switch(ctx, preview, roles.preview, roles.new_hash)
        roles.preview = roles.new_hash


def reconcile_active(
    ctx: Ctx, roles: Roles, pc: PauseContext, *, promotion_ok: bool, halted: bool = False
) -> dict[str, datetime]:
    """On abort, the active Service goes back to the stable RS; otherwise it moves to the new RS
    once ``promotion_ok`` and the new RS is saturated. Returns the scale-down deadlines that the
    cutover gives the RS it left (by name), for the old-ReplicaSets step to write."""
    if pc.abort:
        stable_rs = ctx.rs_by_hash(roles.stable)
        if stable_rs is not None and roles.stable is not None and roles.active != roles.stable:
            switch(ctx, ctx.rollout.bg.active_service, roles.active, roles.stable)
            roles.active = roles.stable
        return {}
    new_rs = roles.new_rs
    if new_rs is None or not roles.in_flight or halted or ctx.rollout.spec.paused or roles.new.created:
        return {}  # never switch to an RS that does not exist yet (spec.replicas 0 is "saturated")
    if not (promotion_ok and replicaset.is_saturated(new_rs, ctx.replicas)):
        return {}
    old_active = ctx.rs_by_hash(roles.active)
    switch(ctx, ctx.rollout.bg.active_service, roles.active, roles.new_hash)
    roles.active = roles.new_hash
    if replicaset.has_deadline(new_rs):
        replicaset.set_deadline(ctx, new_rs, None)
    delay = ctx.rollout.scale_down_delay_seconds()
    if old_active is None or old_active is new_rs or delay <= 0:
        return {}
    # Written by the old-ReplicaSets step, and only if this RS may wait (scaleDownDelayRevisionLimit).
    return {old_active.name: ctx.now + timedelta(seconds=delay)}
