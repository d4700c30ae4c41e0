"""Host ports for Pods: every container port a Pod needs gets a free port of its own on 127.0.0.1.

On one machine all replicas share the host's network, so container port 8080 of each replica maps to
a different host port. The mapping is chosen when the Pod is created, kept for the Pod's life (a
restarted process gets the same port, so the proxy's endpoints stay valid) and recorded on the Pod
as the annotation ``local.pyrollouts.io/ports`` (JSON: container port -> host port).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable, Mapping
from typing import Any

from ...model.names import POD_TEMPLATE_HASH_LABEL, PORTS_ANNOTATION

POD_IP = "127.0.0.1"
#: The hash label is left out when deciding whether a Service will select a Pod: the rollout
#: controller points the Service's hash at a ReplicaSet only later.
_HASH_LABEL = POD_TEMPLATE_HASH_LABEL

_PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


def _containers(pod_spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(pod_spec.get("containers") or [])


def port_names(pod_spec: Mapping[str, Any]) -> dict[str, int]:
    """Named container ports of the pod spec: name -> containerPort."""
    out: dict[str, int] = {}
    for c in _containers(pod_spec):
        for p in c.get("ports") or []:
            if p.get("name") and isinstance(p.get("containerPort"), int):
                out.setdefault(str(p["name"]), int(p["containerPort"]))
    return out


def declared_ports(container: Mapping[str, Any]) -> list[int]:
    """The container's declared containerPorts, in order."""
    return [
        int(p["containerPort"])
        for p in container.get("ports") or []
        if isinstance(p.get("containerPort"), int)
    ]


def _resolve(port: Any, names: Mapping[str, int]) -> int | None:
    if isinstance(port, bool):
        return None
    if isinstance(port, int):
        return port
    if isinstance(port, str):
        if port.isdigit():
            return int(port)
        return names.get(port)
    return None


def selects(service: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """True when the Service's selector (ignoring the pod-template-hash) matches these labels."""
    selector = (service.get("spec") or {}).get("selector") or {}
    if not selector:
        return False
    return all(labels.get(k) == v for k, v in selector.items() if k != _HASH_LABEL)


def wanted_ports(
    pod_spec: Mapping[str, Any],
    labels: Mapping[str, str] | None = None,
    services: Iterable[Mapping[str, Any]] = (),
) -> list[int]:
    """Every container port the Pod needs a host port for, without duplicates, in this order:
    declared containerPorts, ports probes name, targetPorts of Services that would select it."""
    names = port_names(pod_spec)
    out: list[int] = []

    def add(port: Any) -> None:
        n = _resolve(port, names)
        if n is not None and 0 < n < 65536 and n not in out:
            out.append(n)

    for c in _containers(pod_spec):
        for n in declared_ports(c):
            add(n)
    for c in _containers(pod_spec):
        for probe in _PROBES:
            spec = c.get(probe) or {}
            for handler in ("httpGet", "tcpSocket", "grpc"):
                if isinstance(spec.get(handler), dict) and "port" in spec[handler]:
                    add(spec[handler]["port"])
    for svc in services:
        if labels is not None and selects(svc, labels):
            for p in (svc.get("spec") or {}).get("ports") or []:
                add(p.get("targetPort", p.get("port")))
    return out


def free_port(taken: set[int]) -> int:
    """A port on 127.0.0.1 that nothing listens on now and that is not in ``taken``."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((POD_IP, 0))
            port = int(s.getsockname()[1])
        if port not in taken:
            return port
    raise OSError("no free port on 127.0.0.1 after 100 tries")


def allocate(wanted: Iterable[int], taken: set[int]) -> dict[int, int]:
    """Container port -> a fresh host port for each wanted port (``taken`` is updated)."""
    out: dict[int, int] = {}
    for n in wanted:
        port = free_port(taken)
        taken.add(port)
        out[n] = port
    return out


def recorded_ports(pod: Mapping[str, Any]) -> dict[int, int]:
    """The Pod's container port -> host port mapping from its annotation ({} if none)."""
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(PORTS_ANNOTATION)
    if not raw:
        return {}
    try:
        return {int(k): int(v) for k, v in json.loads(raw).items()}
    except (ValueError, TypeError, AttributeError):
        return {}


def encode_ports(ports: Mapping[int, int]) -> str:
    """The annotation value for a port mapping."""
    return json.dumps({str(k): v for k, v in ports.items()}, separators=(",", ":"))


def pod_ports(pod: Mapping[str, Any]) -> dict[int | str, int]:
    """Host ports of a Pod by container port number AND by port name (for the proxy's endpoints:
    a Service targetPort may be either)."""
    numbers = recorded_ports(pod)
    out: dict[int | str, int] = {k: v for k, v in numbers.items()}
    for name, n in port_names(pod.get("spec") or {}).items():
        if n in numbers:
            out[name] = numbers[n]
    return out


def used_host_ports(pods: Iterable[Mapping[str, Any]]) -> set[int]:
    """Host ports recorded on these Pods."""
    used: set[int] = set()
    for pod in pods:
        used.update(recorded_ports(pod).values())
    return used


def port_env(
    pod_spec: Mapping[str, Any], container: Mapping[str, Any], ports: Mapping[int, int]
) -> dict[str, str]:
    """``PORT`` (the container's first declared port; for a container that declares none, the
    Pod's first port if it is the first container) and ``PORT_<containerPort>`` for every port."""
    env = {f"PORT_{n}": str(h) for n, h in ports.items()}
    declared = [n for n in declared_ports(container) if n in ports]
    first_container = bool(_containers(pod_spec)) and _containers(pod_spec)[0].get("name") == container.get(
        "name"
    )
    if declared:
        env["PORT"] = str(ports[declared[0]])
    elif first_container and ports:
        env["PORT"] = str(next(iter(ports.values())))
    return env
