"""Services: which revision each one selects, and switching its selector."""

from __future__ import annotations

from ..model import names
from . import events
from .context import Ctx
from .types import SwitchService


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
