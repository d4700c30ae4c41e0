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
          ]
        }
      ]
    }

Only ready endpoints that have the service port in their ``ports`` receive traffic. A snapshot
(``Routing``) is never modified after it is built: the proxy replaces its reference in one
assignment, so a request reads either the old table or the new one, never a mix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
        for j, ep in enumerate(_req(svc, "endpoints", list, p)):
            ep_path = f"{p}.endpoints[{j}]"
            _req(ep, "host", str, ep_path)
            ports = _req(ep, "ports", dict, ep_path)
            for k, v in ports.items():
                _port_number(v, f"{ep_path}.ports[{k!r}]")
            if not isinstance(ep.get("ready", False), bool):
                raise TableError(f"{ep_path}.ready: expected true or false")
            for opt in ("pod", "revision"):
                if ep.get(opt) is not None and not isinstance(ep[opt], str):
                    raise TableError(f"{ep_path}.{opt}: expected a string")
    return table  # type: ignore[no-any-return]


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
            targets = tuple(
                Target(
                    host=ep["host"],
                    port=int(ep["ports"][key_str]),
                    pod=ep.get("pod") or "",
                    revision=ep.get("revision") or "",
                )
                for ep in svc["endpoints"]
                if ep.get("ready", False) and key_str in ep["ports"]
            )
            route = Route(
                namespace=svc["namespace"],
                service=svc["name"],
                port_name=port.get("name") or "",
                port=number,
                bind=bind,
                tcp=(port.get("appProtocol") or "").lower() == "tcp",
                targets=targets,
            )
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
