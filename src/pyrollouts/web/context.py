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
        """Per revision, rps and error rate through the rollout's active and preview Services."""
        if self.traffic is None:
            return []
        self.traffic.touch()
        ro = await self.source.rollout(info["objectMeta"]["namespace"], info["objectMeta"]["name"])
        ns = info["objectMeta"]["namespace"]
        bg = ((ro.get("spec") or {}).get("strategy") or {}).get("blueGreen") or {}
        services = [f"{ns}/{s}" for s in (bg.get("activeService"), bg.get("previewService")) if s]
        revision_of = {rs["template"]: rs["revision"] for rs in info["replicaSets"] if rs["template"]}
        return self.traffic.for_services(services, revision_of)


WEB_KEY: web.AppKey[WebContext] = web.AppKey("pyrollouts_web", WebContext)
