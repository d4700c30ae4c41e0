"""Traffic routers: how a canary's ``TrafficSplit`` (model/traffic.py) reaches the data plane.

``apply_split(cluster, namespace, split)`` is the one entry the controller calls (for the
engine's SetTrafficSplit action). It picks the router:

- a runtime whose own proxy routes traffic (the local runtime; the simulated cluster of the
  tests) says so with ``proxy_routes_traffic = True`` on its Cluster: the split is written, as
  JSON, into the stable Service's ``TRAFFIC_SPLIT_ANNOTATION``, whatever trafficRouting the
  Rollout names (an Argo manifest written for NGINX or the Gateway API runs unchanged, with exact
  per-request weights);
- otherwise the routers named by ``spec.strategy.canary.trafficRouting``, each in turn: the
  Gateway API (``plugins["argoproj-labs/gatewayAPI"]``, routers/gatewayapi.py) and NGINX
  (``nginx``, routers/nginx.py). A router Argo has and this controller does not (Istio, SMI, ALB,
  another plugin, ...) is an ``UnsupportedRouter`` error naming it, and nothing is written.

Routers raise ``TrafficRouterError`` (a missing HTTPRoute or Ingress, a route without the
Rollout's Services, a bad config), with a message naming the object or field to fix.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ...model.cluster import Cluster
from ...model.traffic import TRAFFIC_SPLIT_ANNOTATION, TrafficSplit
from . import gatewayapi, nginx
from .errors import TRAFFIC_ROUTING, TrafficRouterError, UnsupportedRouter

__all__ = [
    "TrafficRouterError",
    "UnsupportedRouter",
    "annotate_stable_service",
    "apply_split",
    "kubernetes_routers",
    "routes_in_proxy",
]

Router = Callable[[Cluster, str, TrafficSplit], Awaitable[None]]

#: trafficRouting keys that configure the routers, not name one.
_NOT_ROUTERS = frozenset({"managedRoutes", "maxTrafficWeight"})


def routes_in_proxy(cluster: Cluster) -> bool:
    """True when the runtime's own proxy applies splits (the Service annotation)."""
    return bool(getattr(cluster, "proxy_routes_traffic", False))


async def apply_split(cluster: Cluster, namespace: str, split: TrafficSplit) -> None:
    """Bring the data plane to the split: the runtime's proxy, else each router of the Rollout's
    trafficRouting (UnsupportedRouter, before any write, for one this controller does not have)."""
    if routes_in_proxy(cluster):
        await annotate_stable_service(cluster, namespace, split)
        return
    for router in kubernetes_routers(split.traffic_routing):
        await router(cluster, namespace, split)


def kubernetes_routers(traffic_routing: Mapping[str, Any]) -> list[Router]:
    """The routers a trafficRouting names, in a fixed order; UnsupportedRouter for any other."""
    routers: list[Router] = []
    plugins = traffic_routing.get("plugins") or {}
    unknown = [f"plugins.{p}" for p in plugins if p != gatewayapi.PLUGIN]
    unknown += [k for k in traffic_routing if k not in _NOT_ROUTERS | {"plugins", "nginx"}]
    if unknown:
        raise UnsupportedRouter(
            f"{TRAFFIC_ROUTING}.{unknown[0]}: pyrollouts routes traffic with the Gateway API "
            f'(plugins["{gatewayapi.PLUGIN}"]) and NGINX (nginx) only; see docs/canary.md'
        )
    if gatewayapi.PLUGIN in plugins:
        routers.append(gatewayapi.apply)
    if "nginx" in traffic_routing:
        routers.append(nginx.apply)
    if not routers:
        raise UnsupportedRouter(f"{TRAFFIC_ROUTING}: names no traffic router")
    return routers


async def annotate_stable_service(cluster: Cluster, namespace: str, split: TrafficSplit) -> None:
    """The local proxy's router: the split as JSON on the stable Service (one merge patch)."""
    await cluster.patch(
        "Service",
        namespace,
        split.stable_service,
        {"metadata": {"annotations": {TRAFFIC_SPLIT_ANNOTATION: split.dumps()}}},
    )
