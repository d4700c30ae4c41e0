"""A canary's traffic split: the one shape the engine decides and every traffic router applies.

The canary engine plans a ``TrafficSplit`` (what share of requests goes to the canary revision,
which requests go there by header, which are mirrored to it); the controller hands it to the
router the Rollout's ``trafficRouting`` and the runtime call for:

- the local runtime's proxy: the split is written, as JSON, into the ``TRAFFIC_SPLIT_ANNOTATION``
  of the stable Service; the proxy routes that Service's port per request (exact weights,
  header routes, mirrors) between the stable Service's pods and the canary Service's pods;
- on Kubernetes: the Gateway API HTTPRoute's backendRef weights and header matches
  (Argo's ``argoproj-labs/gatewayAPI`` plugin config) or NGINX Ingress canary annotations
  (``trafficRouting.nginx.stableIngress``).

The match shapes are Argo's (``setHeaderRoute.match``, ``setMirrorRoute.match``): a string match
is one of exact, prefix or regex. Pure data, JSON in and out, so it can cross the Cluster
protocol as an annotation and be compared for idempotence.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Ours: the stable Service's annotation holding the split the local proxy applies (JSON of
#: ``TrafficSplit.to_json``). Absent, or a weight of 0 with no routes: all traffic to stable.
TRAFFIC_SPLIT_ANNOTATION = "local.pyrollouts.io/traffic-split"


@dataclass(frozen=True)
class StringMatch:
    """Argo's StringMatch: exactly one of exact, prefix, regex is set."""

    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None

    def to_json(self) -> dict[str, str]:
        return {
            k: v
            for k, v in (("exact", self.exact), ("prefix", self.prefix), ("regex", self.regex))
            if v is not None
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> StringMatch:
        return cls(exact=obj.get("exact"), prefix=obj.get("prefix"), regex=obj.get("regex"))


@dataclass(frozen=True)
class HeaderMatch:
    """One header condition of a setHeaderRoute match: ``headerName`` and ``headerValue``."""

    header_name: str
    value: StringMatch

    def to_json(self) -> dict[str, Any]:
        return {"headerName": self.header_name, "headerValue": self.value.to_json()}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> HeaderMatch:
        return cls(str(obj["headerName"]), StringMatch.from_json(obj.get("headerValue") or {}))


@dataclass(frozen=True)
class HeaderRoute:
    """A named route sending the requests that match all of ``matches`` to the canary."""

    name: str
    matches: tuple[HeaderMatch, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "match": [m.to_json() for m in self.matches]}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> HeaderRoute:
        return cls(str(obj["name"]), tuple(HeaderMatch.from_json(m) for m in obj.get("match") or ()))


@dataclass(frozen=True)
class RequestMatch:
    """One setMirrorRoute match: method, path and headers (by name), each a StringMatch; all the
    given ones must hold."""

    method: StringMatch | None = None
    path: StringMatch | None = None
    headers: tuple[tuple[str, StringMatch], ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.method is not None:
            out["method"] = self.method.to_json()
        if self.path is not None:
            out["path"] = self.path.to_json()
        if self.headers:
            out["headers"] = {name: m.to_json() for name, m in self.headers}
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> RequestMatch:
        method = obj.get("method")
        path = obj.get("path")
        headers = obj.get("headers") or {}
        return cls(
            StringMatch.from_json(method) if method else None,
            StringMatch.from_json(path) if path else None,
            tuple((str(k), StringMatch.from_json(v)) for k, v in sorted(headers.items())),
        )


@dataclass(frozen=True)
class MirrorRoute:
    """A named mirror: ``percentage`` (0-100) of the requests matching any of ``matches`` are
    also sent to the canary, whose answers are dropped."""

    name: str
    percentage: int = 100
    matches: tuple[RequestMatch, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "percentage": self.percentage,
            "match": [m.to_json() for m in self.matches],
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> MirrorRoute:
        return cls(
            str(obj["name"]),
            int(obj.get("percentage", 100)),
            tuple(RequestMatch.from_json(m) for m in obj.get("match") or ()),
        )


@dataclass(frozen=True)
class TrafficSplit:
    """The split between the stable and the canary revision of one Rollout.

    ``canary_weight`` is the percentage (0-100) of ordinary requests sent to the canary Service's
    pods; the rest go to the stable Service's pods. ``header_routes`` send matching requests to
    the canary whatever the weight; ``mirror_routes`` copy matching requests to it.
    """

    stable_service: str
    canary_service: str
    stable_hash: str
    canary_hash: str
    canary_weight: int = 0
    header_routes: tuple[HeaderRoute, ...] = ()
    mirror_routes: tuple[MirrorRoute, ...] = ()
    # The router config of the Rollout's spec.strategy.canary.trafficRouting, as written (the
    # Kubernetes routers read their objects' names from it; the local proxy ignores it).
    traffic_routing: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    # The Rollout the split belongs to (its name and uid): the NGINX router names the canary
    # Ingress after it and makes the Rollout its owner. Not part of the annotation's JSON.
    rollout_name: str = field(default="", compare=False)
    rollout_uid: str = field(default="", compare=False)

    def to_json(self) -> dict[str, Any]:
        """The annotation's JSON (the router config is not part of it)."""
        return {
            "stableService": self.stable_service,
            "canaryService": self.canary_service,
            "stableHash": self.stable_hash,
            "canaryHash": self.canary_hash,
            "canaryWeight": self.canary_weight,
            "headerRoutes": [r.to_json() for r in self.header_routes],
            "mirrorRoutes": [r.to_json() for r in self.mirror_routes],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> TrafficSplit:
        weight = int(obj.get("canaryWeight", 0))
        if not 0 <= weight <= 100:
            raise ValueError(f"canaryWeight {weight} is not between 0 and 100")
        return cls(
            stable_service=str(obj["stableService"]),
            canary_service=str(obj["canaryService"]),
            stable_hash=str(obj.get("stableHash", "")),
            canary_hash=str(obj.get("canaryHash", "")),
            canary_weight=weight,
            header_routes=tuple(HeaderRoute.from_json(r) for r in obj.get("headerRoutes") or ()),
            mirror_routes=tuple(MirrorRoute.from_json(r) for r in obj.get("mirrorRoutes") or ()),
        )

    @classmethod
    def loads(cls, text: str) -> TrafficSplit:
        """Parse the annotation; ValueError (or KeyError/TypeError wrapped as ValueError) on a
        malformed one, which the proxy treats as no split."""
        try:
            obj = json.loads(text)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
            return cls.from_json(obj)
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"malformed traffic split: {exc}") from exc
