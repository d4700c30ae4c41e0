"""Traffic routers: how a canary's ``TrafficSplit`` (model/traffic.py) reaches the data plane.

``apply_split(cluster, namespace, split)`` is the one entry the controller calls (for the
engine's SetTrafficSplit action). It picks the router:

- a runtime whose own proxy routes traffic (the local runtime; the simulated cluster of the
  tests) says so with ``proxy_routes_traffic = True`` on its Cluster: the split is written, as
  JSON, into the stable Service's ``TRAFFIC_SPLIT_ANNOTATION``, whatever trafficRouting the
  Rollout names (an Argo manifest written for NGINX or the Gateway API runs unchanged, with exact
  per-request weights);
- otherwise the router named by ``spec.strategy.canary.trafficRouting``.
"""

from __future__ import annotations

from ...model.cluster import Cluster
from ...model.traffic import TRAFFIC_SPLIT_ANNOTATION, TrafficSplit


class UnsupportedRouter(Exception):
    """The Rollout's trafficRouting names a router this controller does not have."""


def routes_in_proxy(cluster: Cluster) -> bool:
    """True when the runtime's own proxy applies splits (the Service annotation)."""
    return bool(getattr(cluster, "proxy_routes_traffic", False))


async def apply_split(cluster: Cluster, namespace: str, split: TrafficSplit) -> None:
    if routes_in_proxy(cluster):
        await annotate_stable_service(cluster, namespace, split)
        return
    raise UnsupportedRouter(f"no traffic router for trafficRouting {sorted(split.traffic_routing)}")


async def annotate_stable_service(cluster: Cluster, namespace: str, split: TrafficSplit) -> None:
    """The local proxy's router: the split as JSON on the stable Service (one merge patch)."""
    await cluster.patch(
        "Service",
        namespace,
        split.stable_service,
        {"metadata": {"annotations": {TRAFFIC_SPLIT_ANNOTATION: split.dumps()}}},
    )
