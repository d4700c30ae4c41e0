"""Services and Pods -> the proxy's routing table (pure; the format is in ``proxy/table.py``).

This is what the Kubernetes endpoints controller does for a cluster: a Service's endpoints are the
Pods in its namespace whose labels carry every key/value of ``spec.selector`` (so a selector that
includes ``rollouts-pod-template-hash`` picks one revision), that are not being deleted; an
endpoint is ready when the Pod's Ready condition is True. Each Service port's ``targetPort``
(a number, a port name, or absent = the port itself) is resolved to the Pod's host port through
the ``local.pyrollouts.io/ports`` annotation that the supervisor writes (container port numbers,
and port names; a name missing there is looked up in the Pod's containers' ``ports``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from ...model.names import POD_TEMPLATE_HASH_LABEL, PORTS_ANNOTATION
from ...model.traffic import TRAFFIC_SPLIT_ANNOTATION
from .trafficsplit import split_entry, traffic_split_of


def _pod_ports(pod: Mapping[str, Any]) -> dict[str, int]:
    raw = (pod.get("metadata", {}).get("annotations") or {}).get(PORTS_ANNOTATION)
    if not raw:
        return {}
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return {}  # not ours to repair here; the Pod simply has no reachable port
    if not isinstance(value, dict):
        return {}
    out = {str(k): int(v) for k, v in value.items() if isinstance(v, int) and not isinstance(v, bool)}
    # Port names may be missing from the annotation: resolve them through the containers' ports.
    for container in (pod.get("spec") or {}).get("containers") or []:
        for p in container.get("ports") or []:
            name, number = p.get("name"), p.get("containerPort")
            if name and name not in out and str(number) in out:
                out[name] = out[str(number)]
    return out


def _is_ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _resolve_target(port: Mapping[str, Any], pod_ports: Mapping[str, int]) -> int | None:
    target = port.get("targetPort")
    if target is None or target == "":
        target = port.get("port")
    return pod_ports.get(str(target))


def build_table(
    services: list[dict[str, Any]],
    pods: list[dict[str, Any]],
    version: int,
    bind: str,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The routing table for these Services (Kubernetes JSON) given these Pods.

    A Service without a selector gets no endpoints (as in Kubernetes, where someone else would
    manage them). UDP ports are left out: the proxy forwards TCP only. A Pod whose annotation does
    not name a Service port's target is not an endpoint for that port. A Service carrying a canary
    traffic split (``trafficsplit.py``) gets its ``split``; a split that cannot be applied is
    left out and told to ``warn``.
    """
    by_key = {(s["metadata"].get("namespace") or "default", s["metadata"]["name"]): s for s in services}
    by_namespace: dict[str, list[dict[str, Any]]] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        by_namespace.setdefault(meta.get("namespace") or "default", []).append(pod)

    out: list[dict[str, Any]] = []
    for svc in sorted(
        services, key=lambda s: (s["metadata"].get("namespace") or "default", s["metadata"]["name"])
    ):
        meta = svc["metadata"]
        namespace = meta.get("namespace") or "default"
        spec = svc.get("spec") or {}
        ports = [p for p in spec.get("ports") or [] if (p.get("protocol") or "TCP").upper() == "TCP"]
        selector = spec.get("selector") or {}
        pods_here = by_namespace.get(namespace, [])
        endpoints = endpoints_of(selector, pods_here, [(str(p["port"]), p) for p in ports])
        entry: dict[str, Any] = {
            "namespace": namespace,
            "name": meta["name"],
            "bind": bind,
            "ports": [
                {
                    "name": p.get("name") or "",
                    "port": int(p["port"]),
                    "appProtocol": "tcp" if (p.get("appProtocol") or "").lower() == "tcp" else None,
                }
                for p in ports
            ],
            "endpoints": endpoints,
        }
        split = _split(svc, ports, by_key, pods_here, warn or _ignore)
        if split is not None:
            entry["split"] = split
        out.append(entry)
    return {"version": version, "services": out}


def _ignore(message: str) -> None:
    pass


def _split(
    svc: dict[str, Any],
    ports: list[dict[str, Any]],
    services: Mapping[tuple[str, str], dict[str, Any]],
    pods: list[dict[str, Any]],
    warn: Callable[[str], None],
) -> dict[str, Any] | None:
    """The table's ``split`` of a stable Service: its annotation's split with the canary Service's
    endpoints resolved for the stable Service's ports (the canary port of the same name, else of
    the same number, else the canary Service's only port). None without a usable split."""
    split = traffic_split_of(svc, warn)
    if split is None:
        return None
    meta = svc["metadata"]
    namespace, name = meta.get("namespace") or "default", meta["name"]
    canary = services.get((namespace, split.canary_service))
    where = f"Service {namespace}/{name}, annotation {TRAFFIC_SPLIT_ANNOTATION}"
    if canary is None or split.canary_service == name:
        what = "is this Service itself" if canary is not None else "does not exist"
        warn(f"{where}: canaryService {split.canary_service!r} {what}; all traffic goes to {name}")
        return None
    cspec = canary.get("spec") or {}
    cports = [p for p in cspec.get("ports") or [] if (p.get("protocol") or "TCP").upper() == "TCP"]
    pairs = []
    for p in ports:
        same = [c for c in cports if p.get("name") and c.get("name") == p.get("name")]
        same = same or [c for c in cports if c.get("port") == p.get("port")]
        same = same or (cports if len(cports) == 1 else [])
        if same:
            pairs.append((str(p["port"]), same[0]))
    return split_entry(split, endpoints_of(cspec.get("selector") or {}, pods, pairs))


def endpoints_of(
    selector: Mapping[str, str], pods: list[dict[str, Any]], ports: list[tuple[str, Mapping[str, Any]]]
) -> list[dict[str, Any]]:
    """The table's endpoints of a selector among one namespace's Pods, sorted by Pod name:
    ``ports`` pairs each table port key with the Service port whose targetPort gives the Pod's
    host port for it (an empty selector selects nothing)."""
    endpoints: list[dict[str, Any]] = []
    if not selector:
        return endpoints
    for pod in pods:
        pmeta = pod.get("metadata") or {}
        labels = pmeta.get("labels") or {}
        if not _matches(selector, labels):
            continue
        pod_ports = _pod_ports(pod)
        resolved = {}
        for key, p in ports:
            host_port = _resolve_target(p, pod_ports)
            if host_port is not None:
                resolved[key] = host_port
        endpoints.append(
            {
                "pod": pmeta.get("name", ""),
                "revision": labels.get(POD_TEMPLATE_HASH_LABEL, ""),
                "host": (pod.get("status") or {}).get("podIP") or "127.0.0.1",
                "ports": resolved,
                "ready": _is_ready(pod),
            }
        )
    endpoints.sort(key=lambda e: e["pod"])
    return endpoints
