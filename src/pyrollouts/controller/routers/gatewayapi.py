"""The Gateway API router: a canary's split as HTTPRoute backendRef weights and header rules.

The config is that of Argo Rollouts' Gateway API plugin, ``trafficRouting.plugins
["argoproj-labs/gatewayAPI"]``: ``httpRoute`` (one route, header routes allowed) or ``httpRoutes``
(``[{name, useHeaderRoutes}]``), and ``namespace`` (default: the Rollout's). What it writes
follows the plugin's behaviour:

- weights: in every rule of the route that is not a header rule of ours, the backendRef to the
  canary Service gets the canary weight and the one to the stable Service the rest (100 - w);
  the route must reference both Services; other backendRefs and rules are left alone;
- header routes (``setHeaderRoute``), on routes with header routes allowed: for each rule that
  references both Services, a rule named after the route (``<name>``, then ``<name>-1``, ...)
  with that rule's matches and filters, the header conditions added to each match, and the
  canary Service alone as backend; a route no longer in the split (or the managed routes of
  ``trafficRouting.managedRoutes``) has its rules removed;
- while the canary weight is above 0 the HTTPRoute carries the plugin's in-progress label
  (``disableInProgressLabel``, ``inProgressLabelKey`` and ``inProgressLabelValue`` as in the plugin).

The plugin does not mirror (its setMirrorRoute does nothing): neither does this router. GRPCRoutes,
TCPRoutes, TLSRoutes and route selectors are refused with a message saying so.

The builders (config in, rules out) are pure; ``apply`` reads each HTTPRoute, builds its patch
and writes it with the read's resourceVersion, reading again after a conflict.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ...model.cluster import Cluster, Conflict, NotFound, Obj
from ...model.traffic import HeaderMatch, HeaderRoute, TrafficSplit
from .errors import TRAFFIC_ROUTING, TrafficRouterError

PLUGIN = "argoproj-labs/gatewayAPI"
CONFIG_PATH = f'{TRAFFIC_ROUTING}.plugins["{PLUGIN}"]'
#: The plugin's label on an HTTPRoute while a canary step sends it traffic.
IN_PROGRESS_LABEL = "rollouts.argoproj.io/gatewayapi-canary"
IN_PROGRESS_VALUE = "in-progress"
#: Config fields of the plugin this router does not implement.
UNSUPPORTED_FIELDS = (
    "grpcRoute",
    "grpcRoutes",
    "tcpRoute",
    "tcpRoutes",
    "tlsRoute",
    "tlsRoutes",
    "httpRouteSelector",
    "grpcRouteSelector",
    "tcpRouteSelector",
    "tlsRouteSelector",
)
#: How often a write that lost a race with another writer is retried from a fresh read.
CONFLICT_RETRIES = 5


@dataclass(frozen=True)
class RouteRef:
    """One HTTPRoute the plugin config names."""

    name: str
    use_header_routes: bool


@dataclass(frozen=True)
class GatewayConfig:
    """The plugin config, checked: where the routes are, which, and the in-progress label."""

    namespace: str
    routes: tuple[RouteRef, ...]
    label: tuple[str, str] | None  # (key, value); None when disabled


def parse_config(raw: Any, default_namespace: str) -> GatewayConfig:
    """The plugin config from ``trafficRouting.plugins["argoproj-labs/gatewayAPI"]``; a
    TrafficRouterError naming the field otherwise."""
    if not isinstance(raw, Mapping):
        raise TrafficRouterError(f"{CONFIG_PATH}: expected an object with httpRoute or httpRoutes")
    unsupported = [f for f in UNSUPPORTED_FIELDS if raw.get(f)]
    if unsupported:
        raise TrafficRouterError(
            f"{CONFIG_PATH}.{unsupported[0]}: not supported by pyrollouts' Gateway API router, "
            "which routes HTTPRoutes named by httpRoute or httpRoutes"
        )
    routes = _route_refs(raw)
    if not routes:
        raise TrafficRouterError(f"{CONFIG_PATH}: set httpRoute (a name) or httpRoutes ([{{name: ...}}])")
    label = None
    if not raw.get("disableInProgressLabel"):
        label = (
            str(raw.get("inProgressLabelKey") or IN_PROGRESS_LABEL),
            str(raw.get("inProgressLabelValue") or IN_PROGRESS_VALUE),
        )
    return GatewayConfig(str(raw.get("namespace") or default_namespace), routes, label)


def _route_refs(raw: Mapping[str, Any]) -> tuple[RouteRef, ...]:
    listed = raw.get("httpRoutes") or []
    if not isinstance(listed, list):
        raise TrafficRouterError(f"{CONFIG_PATH}.httpRoutes: expected a list of {{name, useHeaderRoutes}}")
    refs = []
    for i, item in enumerate(listed):
        if not isinstance(item, Mapping) or not item.get("name"):
            raise TrafficRouterError(f"{CONFIG_PATH}.httpRoutes[{i}].name: required")
        refs.append(RouteRef(str(item["name"]), bool(item.get("useHeaderRoutes"))))
    if raw.get("httpRoute"):
        # As the plugin: the single httpRoute allows header routes.
        refs.append(RouteRef(str(raw["httpRoute"]), True))
    return tuple(refs)


def managed_route_names(split: TrafficSplit) -> frozenset[str]:
    """The names of the header routes this router may have added: the Rollout's
    ``trafficRouting.managedRoutes`` and the split's own header routes."""
    declared = split.traffic_routing.get("managedRoutes") or []
    names = {str(m.get("name")) for m in declared if isinstance(m, Mapping) and m.get("name")}
    return frozenset(names | {r.name for r in split.header_routes})


def is_managed_rule(rule: Mapping[str, Any], managed: Iterable[str]) -> bool:
    """True for a header rule this router added: named after a managed route (``<name>``, or
    ``<name>-<n>`` for the rules after the first)."""
    name = rule.get("name")
    return bool(name) and any(name == m or re.fullmatch(re.escape(m) + r"-\d+", str(name)) for m in managed)


def _canary_only(rule: Mapping[str, Any], canary_service: str) -> bool:
    # A rule sending everything to the canary (a header rule the plugin's older versions left
    # unnamed, or the user's own): not a weighted rule. It is never removed for being unnamed.
    refs = rule.get("backendRefs") or []
    return len(refs) == 1 and refs[0].get("name") == canary_service


def weighted_rules(rules: list[Obj], split: TrafficSplit, managed: Iterable[str]) -> list[Obj]:
    """The rules with the canary and stable backendRefs weighted ``w`` and ``100 - w`` (header
    rules of ours, and rules to the canary alone, are left as they are); a TrafficRouterError if
    no rule references the canary Service or none the stable one."""
    managed = tuple(managed)
    weights = {split.canary_service: split.canary_weight, split.stable_service: 100 - split.canary_weight}
    found: set[str] = set()
    out = []
    for rule in rules:
        rule = copy.deepcopy(rule)
        if not (is_managed_rule(rule, managed) or _canary_only(rule, split.canary_service)):
            for ref in rule.get("backendRefs") or []:
                if ref.get("name") in weights:
                    ref["weight"] = weights[ref["name"]]
                    found.add(ref["name"])
        out.append(rule)
    missing = [s for s in (split.stable_service, split.canary_service) if s not in found]
    if missing:
        raise TrafficRouterError(f"no rule has a backendRef to the Service {missing[0]}")
    return out


def header_match(match: HeaderMatch) -> Obj:
    """One Gateway API header match for an Argo header match (a prefix becomes a regular
    expression, as in the plugin, with the prefix escaped)."""
    value = match.value
    if value.exact is not None:
        return {"name": match.header_name, "type": "Exact", "value": value.exact}
    if value.prefix is not None:
        return {
            "name": match.header_name,
            "type": "RegularExpression",
            "value": re.escape(value.prefix) + ".*",
        }
    if value.regex is not None:
        return {"name": match.header_name, "type": "RegularExpression", "value": value.regex}
    raise TrafficRouterError(
        f"header route match on {match.header_name!r}: set headerValue.exact, .prefix or .regex"
    )


def header_rules(rules: list[Obj], route: HeaderRoute, split: TrafficSplit) -> list[Obj]:
    """The rules a header route adds: one per rule referencing both Services, with that rule's
    matches (the header conditions added to each) and filters, to the canary Service alone."""
    headers = [header_match(m) for m in route.matches]
    sources = [
        r for r in rules if _references(r, split.stable_service) and _references(r, split.canary_service)
    ]
    if not sources:
        raise TrafficRouterError(
            f"header route {route.name!r}: no rule has backendRefs to both Services "
            f"{split.stable_service} and {split.canary_service}"
        )
    out = []
    for i, source in enumerate(sources):
        canary_ref = next(r for r in source["backendRefs"] if r.get("name") == split.canary_service)
        backend = {"group": "", "kind": "Service", "name": split.canary_service, "weight": 1}
        if "port" in canary_ref:
            backend["port"] = canary_ref["port"]
        rule: Obj = {
            "name": route.name if i == 0 else f"{route.name}-{i}",
            "matches": _with_headers(source.get("matches") or [], headers),
            "backendRefs": [backend],
        }
        if source.get("filters"):
            rule["filters"] = copy.deepcopy(source["filters"])
        out.append(rule)
    return out


def _references(rule: Mapping[str, Any], service: str) -> bool:
    return any(ref.get("name") == service for ref in rule.get("backendRefs") or [])


def _with_headers(matches: list[Obj], headers: list[Obj]) -> list[Obj]:
    if not matches:
        return [{"headers": list(headers)}]
    out = []
    for m in matches:
        merged = copy.deepcopy(m)
        merged["headers"] = [*(m.get("headers") or []), *headers]
        out.append(merged)
    return out


def route_rules(rules: list[Obj], split: TrafficSplit, use_header_routes: bool) -> list[Obj]:
    """The route's rules for the split: weights set, and with header routes allowed, our header
    rules replaced by those of the split's header routes."""
    managed = managed_route_names(split)
    weighted = weighted_rules(rules, split, managed)
    if not use_header_routes:
        return weighted
    kept = [r for r in weighted if not is_managed_rule(r, managed)]
    added = [rule for route in split.header_routes for rule in header_rules(kept, route, split)]
    return kept + added


def labels_patch(labels: Mapping[str, str], label: tuple[str, str] | None, weight: int) -> Obj:
    """The labels merge patch for the in-progress label (empty when nothing changes)."""
    if label is None:
        return {}
    key, value = label
    if weight > 0:
        return {} if labels.get(key) == value else {key: value}
    return {key: None} if key in labels else {}


def route_patch(route: Obj, split: TrafficSplit, ref: RouteRef, label: tuple[str, str] | None) -> Obj | None:
    """The merge patch bringing an HTTPRoute to the split, or None if it is there already."""
    meta = route.get("metadata") or {}
    rules = list((route.get("spec") or {}).get("rules") or [])
    try:
        new_rules = route_rules(rules, split, ref.use_header_routes)
    except TrafficRouterError as exc:
        raise TrafficRouterError(f"HTTPRoute {meta.get('namespace')}/{ref.name}: {exc}") from None
    patch: Obj = {}
    if new_rules != rules:
        patch["spec"] = {"rules": new_rules}
    labels = labels_patch(meta.get("labels") or {}, label, split.canary_weight)
    if labels:
        patch["metadata"] = {"labels": labels}
    return patch or None


async def apply(cluster: Cluster, namespace: str, split: TrafficSplit) -> None:
    """Bring every HTTPRoute of the plugin config to the split (in the config's order)."""
    config = parse_config((split.traffic_routing.get("plugins") or {}).get(PLUGIN), namespace)
    for ref in config.routes:
        await _apply_route(cluster, config, ref, split)


async def _apply_route(cluster: Cluster, config: GatewayConfig, ref: RouteRef, split: TrafficSplit) -> None:
    for _ in range(CONFLICT_RETRIES):
        try:
            route = await cluster.get("HTTPRoute", config.namespace, ref.name)
        except NotFound:
            raise TrafficRouterError(
                f"HTTPRoute {config.namespace}/{ref.name} not found: create it, or name an existing "
                f"one in {CONFIG_PATH}"
            ) from None
        patch = route_patch(route, split, ref, config.label)
        if patch is None:
            return
        try:
            await cluster.patch(
                "HTTPRoute",
                config.namespace,
                ref.name,
                patch,
                resource_version=route["metadata"].get("resourceVersion"),
            )
            return
        except Conflict:
            continue  # written meanwhile (by the gateway's controller, a user): read it again
    raise TrafficRouterError(
        f"HTTPRoute {config.namespace}/{ref.name}: still changing after {CONFLICT_RETRIES} tries"
    )
