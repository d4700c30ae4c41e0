"""A canary's traffic: the stable and canary Services' selectors, and with trafficRouting the
split the router is given (docs/canary.md "Traffic").

Without trafficRouting the share of traffic is the share of pods, and the Services only follow
the revisions (stableService the stable RS, canaryService the new one, back to stable on abort).
With trafficRouting the engine plans a ``TrafficSplit`` whenever the one wanted differs from the
one last given: the stable Service's split annotation (the controller records every split given
there, whatever the router), else, before any, status.canary.weights.
"""

from __future__ import annotations

from typing import Any

from ..model.rollout import CanaryStep, RolloutStatus
from ..model.traffic import (
    TRAFFIC_SPLIT_ANNOTATION,
    HeaderRoute,
    MirrorRoute,
    TrafficSplit,
)
from . import canaryscale, service
from .canarysteps import Steps
from .context import Ctx
from .pause import PauseContext
from .roles import Roles
from .types import SetTrafficSplit


def reconcile_services(ctx: Ctx, roles: Roles, pc: PauseContext) -> None:
    """stableService selects the stable RS; canaryService the new RS once it has an available
    pod (the stable RS on abort)."""
    canary = ctx.rollout.canary
    stable_rs = ctx.rs_by_hash(roles.stable)
    if canary.stable_service and stable_rs is not None and roles.stable:
        svc = canary.stable_service
        service.switch(ctx, svc, service.selected_hash(ctx, svc), roles.stable)
    if not canary.canary_service:
        return
    target = roles.stable if pc.abort else roles.new_hash
    target_rs = ctx.rs_by_hash(target)
    if target and target_rs is not None and (target_rs.available_replicas > 0 or target == roles.stable):
        svc = canary.canary_service
        service.switch(ctx, svc, service.selected_hash(ctx, svc), target)


def desired_weight(ctx: Ctx, roles: Roles, pc: PauseContext, steps: Steps, at_desired: bool) -> int:
    """The canary's share of traffic now (Argo's reconcileTrafficRouting): none once promoted, on
    abort or while the canary has no available pod; the previous setWeight until the canary has
    the pods for the current one; then the current one; all of it once the steps are done."""
    new_rs = roles.new_rs
    if roles.new_is_stable or pc.abort or new_rs is None or new_rs.available_replicas == 0:
        return 0
    if pc.promote_full:
        weights = ctx.status.canary.weights if ctx.status.canary is not None else None
        return weights.canary.weight if weights is not None else 0
    if not at_desired:
        return steps.weight_before(steps.index)
    return steps.set_weight(aborted=False)


def _routes(
    steps: Steps, roles: Roles, pc: PauseContext
) -> tuple[tuple[HeaderRoute, ...], tuple[MirrorRoute, ...]]:
    """The header and mirror routes the steps so far have set (a route set again replaces the
    earlier one; one set with no match is removed); none once promoted or aborted."""
    if roles.new_is_stable or pc.abort or steps.done:
        return (), ()
    headers: dict[str, HeaderRoute] = {}
    mirrors: dict[str, MirrorRoute] = {}
    for step in steps.steps[: steps.index + 1]:
        _collect(step, headers, mirrors)
    return tuple(headers.values()), tuple(mirrors.values())


def _collect(step: CanaryStep, headers: dict[str, HeaderRoute], mirrors: dict[str, MirrorRoute]) -> None:
    if step.set_header_route is not None:
        r = step.set_header_route.wire()
        headers.pop(r["name"], None)
        if r.get("match"):
            headers[r["name"]] = HeaderRoute.from_json(r)
    if step.set_mirror_route is not None:
        r = step.set_mirror_route.wire()
        mirrors.pop(r["name"], None)
        if r.get("match"):
            mirrors[r["name"]] = MirrorRoute.from_json(r)


def reconcile_split(
    ctx: Ctx, roles: Roles, pc: PauseContext, steps: Steps, at_desired: bool
) -> dict[str, Any] | None:
    """Plan the router's split when it changed; returns status.canary.weights (None without
    trafficRouting, as Argo)."""
    canary = ctx.rollout.canary
    routing = canary.traffic_routing
    if routing is None or not canary.stable_service or not canary.canary_service:
        return None
    weight = desired_weight(ctx, roles, pc, steps, at_desired)
    headers, mirrors = _routes(steps, roles, pc)
    stable = roles.stable or roles.new_hash
    split = TrafficSplit(
        stable_service=canary.stable_service,
        canary_service=canary.canary_service,
        stable_hash=stable,
        canary_hash=stable if pc.abort else roles.new_hash,
        canary_weight=weight,
        header_routes=headers,
        mirror_routes=mirrors,
        traffic_routing=routing.wire(),
    )
    if not _stable_can_take(ctx, split):
        return _weights_of(ctx.status)  # Argo: no new weight until the stable RS has the pods
    if canary.stable_service in ctx.observed.services and not _given(ctx, split):
        ctx.actions.append(SetTrafficSplit(split=split))
    return _weights(split)


def _stable_can_take(ctx: Ctx, split: TrafficSplit) -> bool:
    """The stable RS has the available pods its share of traffic needs (Argo's
    checkReplicasAvailable): a split is never given that sends the stable revision more than it
    can serve (after a dynamicStableScale shrink, on abort)."""
    stable_rs = ctx.rs_by_hash(split.stable_hash)
    need = canaryscale.weight_to_replicas(ctx.replicas, canaryscale.MAX_WEIGHT - split.canary_weight)
    return stable_rs is None or stable_rs.available_replicas >= need


def _given(ctx: Ctx, split: TrafficSplit) -> bool:
    """The router already has this split: the stable Service's annotation says so (local), or,
    where there is none, status.canary.weights does."""
    svc = ctx.observed.services[split.stable_service]
    written = svc.annotations.get(TRAFFIC_SPLIT_ANNOTATION)
    if written is not None:
        return written == split.dumps()
    return _weights_of(ctx.status) == _weights(split)


def _weights_of(status: RolloutStatus) -> dict[str, Any] | None:
    if status.canary is None or status.canary.weights is None:
        return None
    return status.canary.weights.wire()


def _weights(split: TrafficSplit) -> dict[str, Any]:
    """status.canary.weights for a split, as Argo writes them."""
    return {
        "canary": {
            "podTemplateHash": split.canary_hash,
            "serviceName": split.canary_service,
            "weight": split.canary_weight,
        },
        "stable": {
            "podTemplateHash": split.stable_hash,
            "serviceName": split.stable_service,
            "weight": 100 - split.canary_weight,
        },
    }
