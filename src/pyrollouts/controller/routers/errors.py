"""What a traffic router raises when it cannot apply a split."""

from __future__ import annotations

#: Where a Rollout's router config lives, for messages that name the field to fix.
TRAFFIC_ROUTING = "spec.strategy.canary.trafficRouting"


class TrafficRouterError(Exception):
    """The split cannot be applied: a routed object is missing or does not reference the
    Rollout's Services, or the router config is wrong. The message names the object or field and
    what to do; nothing was written for the object at fault."""


class UnsupportedRouter(TrafficRouterError):
    """The Rollout's trafficRouting names a router this controller does not have."""
