"""What the dashboard's routes share, stored on the aiohttp application that serves them."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .source import ClockLike, Source
from .traffic import TrafficSampler


class WebContext:
    """The data source, the clock, the token (None on loopback) and, on the local runtime, the
    proxy's traffic sampler."""

    def __init__(
        self,
        source: Source,
        *,
        token: str | None = None,
        traffic: TrafficSampler | None = None,
        runtime: str = "local",
    ) -> None:
        self.source = source
        self.token = token
        self.traffic = traffic
        self.runtime = runtime

    @property
    def clock(self) -> ClockLike:
        return self.source.clock

    async def traffic_of(self, info: dict[str, Any]) -> list[dict[str, Any]]:
        """Per revision, rps and error rate through the rollout's active and preview Services (a
        canary's stable and canary Services)."""
        if self.traffic is None:
            return []
        self.traffic.touch()
        ns = info["objectMeta"]["namespace"]
        canary = info.get("canary")
        if canary:
            names = [canary.get("stableService"), canary.get("canaryService")]
        else:
            ro = await self.source.rollout(ns, info["objectMeta"]["name"])
            bg = ((ro.get("spec") or {}).get("strategy") or {}).get("blueGreen") or {}
            names = [bg.get("activeService"), bg.get("previewService")]
        services = [f"{ns}/{s}" for s in names if s]
        if canary and not services:
            services = self.traffic.services_in(ns)
        return self.traffic.for_services(services, _revision_of(info))

    def canary_split(self, info: dict[str, Any]) -> dict[str, Any] | None:
        """A canary's measured split: per revision, its share of the requests through the stable
        Service (every Service of the namespace when the Rollout names none) over the last
        SPLIT_WINDOW seconds, from the proxy's counters. None without them (Kubernetes) or for a
        Rollout that is no canary. Call after ``traffic_of``, which keeps the sampler running."""
        canary = info.get("canary")
        if self.traffic is None or not canary:
            return None
        ns = info["objectMeta"]["namespace"]
        stable = canary.get("stableService")
        services = [f"{ns}/{stable}"] if stable else self.traffic.services_in(ns)
        return self.traffic.shares(services, _revision_of(info), SPLIT_WINDOW)


#: The measured split of a canary's page covers this many seconds.
SPLIT_WINDOW = 10.0


def _revision_of(info: dict[str, Any]) -> dict[str, int]:
    return {rs["template"]: rs["revision"] for rs in info["replicaSets"] if rs["template"]}


WEB_KEY: web.AppKey[WebContext] = web.AppKey("pyrollouts_web", WebContext)
