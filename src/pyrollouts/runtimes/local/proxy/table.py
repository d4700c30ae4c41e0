"""The routing table the server pushes to the proxy, and the immutable snapshot built from it.

Wire format (``PUT /table`` body, ``GET /table`` answer, ``<state-dir>/proxy-table.json``)::

    {
      "version": 17,                       # any int; informational, echoed in /healthz and /stats
      "services": [
        {
          "namespace": "my-app",
          "name": "super-hello-prod",
          "bind": "127.0.0.1",             # optional; the proxy's --bind when absent
          "ports": [
            {"name": "http", "port": 8088, "appProtocol": null}   # "tcp" = proxied at L4
          ],
          "endpoints": [
            {
              "pod": "super-hello-7d9f-abcde",
              "revision": "7d9f",          # the pod-template hash; metrics are kept per revision
              "host": "127.0.0.1",
              "ports": {"8088": 41234},    # service port (as a string) -> the pod's host port,
                                           # already resolved through targetPort
              "ready": true
            }
          ],
          "split": {                       # optional: a canary split of this (the stable) Service
            "canaryService": "super-hello-canary",
            "weight": 20,                  # 0-100: the share of ordinary requests for the canary
            "canaryEndpoints": [...],      # as "endpoints", resolved for THIS Service's ports
            "headerRoutes": [              # requests matching every condition go to the canary
              {"name": "beta", "match": [{"header": "x-canary", "exact": "yes"}]}
            ],
            "mirrors": [                   # percentage of matching requests also go to the canary
              {"name": "m", "percentage": 50,
               "match": [{"method": {"exact": "GET"}, "path": {"prefix": "/api"},
                          "headers": {"x-user": {"regex": "a.*"}}}]}
            ]
          }
        }
      ]
    }

A string match is an object with exactly one of ``exact``, ``prefix``, ``regex`` (whole value).
How a split routes is in ``split.py``.

Only ready endpoints that have the service port in their ``ports`` receive traffic. A snapshot
(``Routing``) is never modified after it is built: the proxy replaces its reference in one
assignment, so a request reads either the old table or the new one, never a mix.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .split import Split, SplitError, parse_split


class TableError(ValueError):
    """The table is malformed; the message names the field path and what is expected."""


@dataclass(frozen=True)
class Target:
    """One ready endpoint for one service port."""

    host: str
    port: int
    pod: str
    revision: str


@dataclass(frozen=True)
class Route:
    """What one listener (bind address, port) forwards to."""

    namespace: str
    service: str
    port_name: str
    port: int
    bind: str
    tcp: bool
    targets: tuple[Target, ...]
    #: The round-robin counter this route's requests use (the listener key; its canary side has
    #: its own, so that neither side's spread depends on the other's share).
    balance: tuple[Any, ...] = ()
    #: A canary split of this listener, or None (all requests to ``targets``, as without canary).
    split: Split | None = None

    @property
    def service_key(self) -> str:
        """``namespace/name``, as used in messages and metrics."""
        return f"{self.namespace}/{self.service}"


@dataclass(frozen=True)
class Routing:
    """An immutable routing snapshot: listener key (bind, port) -> Route."""

    version: int
    routes: dict[tuple[str, int], Route] = field(default_factory=dict)
    #: Services whose port could not be placed in this table (e.g. two services claim one port).
    conflicts: tuple[dict[str, Any], ...] = ()


EMPTY_TABLE: dict[str, Any] = {"version": 0, "services": []}

# Stands in for the canary route while a split is only being validated.
_NO_ROUTE = Route(namespace="", service="", port_name="", port=0, bind="", tcp=False, targets=())


def _req(obj: Any, key: str, kind: type | tuple[type, ...], path: str) -> Any:
    if not isinstance(obj, dict):
        raise TableError(f"{path}: expected an object, got {type(obj).__name__}")
    if key not in obj:
        raise TableError(f"{path}.{key}: missing (see the table format in proxy/table.py)")
    value = obj[key]
    # bool is an int subclass; a port of `true` is a mistake worth naming.
    if isinstance(value, bool) and kind is int:
        raise TableError(f"{path}.{key}: expected int, got bool")
    if not isinstance(value, kind):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise TableError(f"{path}.{key}: expected {name}, got {type(value).__name__}")
    return value


def _port_number(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise TableError(f"{path}: expected a port number 1-65535, got {value!r}")
    return value


def validate_table(table: Any) -> dict[str, Any]:
    """Check a table against the wire format; returns it unchanged, raises TableError naming the field."""
    _req(table, "version", int, "table")
    services = _req(table, "services", list, "table")
    for i, svc in enumerate(services):
        p = f"table.services[{i}]"
        _req(svc, "namespace", str, p)
        _req(svc, "name", str, p)
        if svc.get("bind") is not None and not isinstance(svc["bind"], str):
            raise TableError(f"{p}.bind: expected a string address such as 127.0.0.1")
        for j, port in enumerate(_req(svc, "ports", list, p)):
            pp = f"{p}.ports[{j}]"
            _port_number(_req(port, "port", int, pp), f"{pp}.port")
            if port.get("name") is not None and not isinstance(port["name"], str):
                raise TableError(f"{pp}.name: expected a string")
            ap = port.get("appProtocol")
            if ap is not None and not isinstance(ap, str):
                raise TableError(f"{pp}.appProtocol: expected null or a string such as 'tcp'")
        _validate_endpoints(_req(svc, "endpoints", list, p), f"{p}.endpoints")
        split = svc.get("split")
        if split is not None:
            _validate_endpoints(
                _req(split, "canaryEndpoints", list, f"{p}.split"), f"{p}.split.canaryEndpoints"
            )
            try:
                parse_split(split, f"{p}.split", _NO_ROUTE)
            except SplitError as exc:
                raise TableError(str(exc)) from exc
    return table  # type: ignore[no-any-return]


def _validate_endpoints(endpoints: list[Any], path: str) -> None:
    for j, ep in enumerate(endpoints):
        ep_path = f"{path}[{j}]"
        _req(ep, "host", str, ep_path)
        ports = _req(ep, "ports", dict, ep_path)
        for k, v in ports.items():
            _port_number(v, f"{ep_path}.ports[{k!r}]")
        if not isinstance(ep.get("ready", False), bool):
            raise TableError(f"{ep_path}.ready: expected true or false")
        for opt in ("pod", "revision"):
            if ep.get(opt) is not None and not isinstance(ep[opt], str):
                raise TableError(f"{ep_path}.{opt}: expected a string")


def _targets(endpoints: list[dict[str, Any]], port: str) -> tuple[Target, ...]:
    """The ready endpoints that serve a Service port."""
    return tuple(
        Target(
            host=ep["host"],
            port=int(ep["ports"][port]),
            pod=ep.get("pod") or "",
            revision=ep.get("revision") or "",
        )
        for ep in endpoints
        if ep.get("ready", False) and port in ep["ports"]
    )


def _split(svc: dict[str, Any], stable: Route, path: str) -> Split | None:
    """The split of a validated Service entry for one of its routes, or None when it has none or
    it would change nothing (weight 0 and no header route and no mirror)."""
    raw = svc.get("split")
    if raw is None:
        return None
    key = str(stable.port)
    targets = _targets(raw["canaryEndpoints"], key)
    canary = replace(stable, targets=targets, balance=(*stable.balance, "canary"))
    split = parse_split(raw, path, canary)
    if split.weight == 0 and not split.header_routes and not split.mirrors:
        return None
    return split


def build_routing(table: dict[str, Any], default_bind: str) -> Routing:
    """The immutable snapshot for a validated table. A port claimed twice on one address keeps its
    first claimant; the others are listed in ``conflicts``."""
    routes: dict[tuple[str, int], Route] = {}
    conflicts: list[dict[str, Any]] = []
    for svc in table["services"]:
        bind = svc.get("bind") or default_bind
        for port in svc["ports"]:
            number = int(port["port"])
            key_str = str(number)
            targets = _targets(svc["endpoints"], key_str)
            route = Route(
                namespace=svc["namespace"],
                service=svc["name"],
                port_name=port.get("name") or "",
                port=number,
                bind=bind,
                tcp=(port.get("appProtocol") or "").lower() == "tcp",
                targets=targets,
                balance=(bind, number),
            )
            split = _split(svc, route, f"services[{svc['namespace']}/{svc['name']}].split")
            if split is not None:
                route = replace(route, split=split)
            key = (bind, number)
            if key in routes:
                other = routes[key]
                conflicts.append(
                    {
                        "namespace": svc["namespace"],
                        "name": svc["name"],
                        "bind": bind,
                        "port": number,
                        "error": f"port {number} on {bind} is already used by service "
                        f"{other.service_key}; give this service another port",
                    }
                )
                continue
            routes[key] = route
    return Routing(version=int(table["version"]), routes=routes, conflicts=tuple(conflicts))
