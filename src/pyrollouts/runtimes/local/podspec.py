"""What a Pod template can and cannot do on one machine, checked at apply.

Each container becomes a process, so what needs a cluster is refused with a message that says what
to do instead (Secret/ConfigMap references, volumes other than emptyDir, hostNetwork, an image the
local runtime cannot run). What is accepted but not enforced (resource limits, ...) is reported as
a warning. Field paths are relative to the template (``spec.containers[0]...``); callers prefix the
path of the template in their object (e.g. ``spec.template.``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from .imagemap import ImageMap

DOCS = "docs/local-runtime.md"
_SUPPORTED_FIELD_REFS = (
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "status.podIP",
    "status.hostIP",
    "spec.nodeName",
    "spec.serviceAccountName",
)


def _field_ref_ok(path: str) -> bool:
    if path in _SUPPORTED_FIELD_REFS:
        return True
    return (
        path.startswith("metadata.labels['") or path.startswith("metadata.annotations['")
    ) and path.endswith("']")


def _check_env(c: Mapping[str, Any], where: str, errors: list[str]) -> None:
    for i, e in enumerate(c.get("env") or []):
        vf = e.get("valueFrom")
        if not vf:
            continue
        here = f"{where}.env[{i}].valueFrom"
        name = e.get("name", "?")
        if "secretKeyRef" in vf:
            errors.append(
                f"{here}.secretKeyRef: Secrets do not exist on the local runtime; give {name} "
                "its value with `value:` (or set it in the server's environment and map it)"
            )
        elif "configMapKeyRef" in vf:
            errors.append(
                f"{here}.configMapKeyRef: ConfigMaps do not exist on the local runtime; "
                f"give {name} its value with `value:`"
            )
        elif "resourceFieldRef" in vf:
            errors.append(
                f"{here}.resourceFieldRef: resources are not enforced on the local runtime; "
                f"give {name} its value with `value:`"
            )
        elif "fieldRef" in vf:
            path = str((vf.get("fieldRef") or {}).get("fieldPath", ""))
            if not _field_ref_ok(path):
                errors.append(
                    f"{here}.fieldRef.fieldPath: {path!r} is not available on the local runtime; "
                    f"use one of {', '.join(_SUPPORTED_FIELD_REFS)}, metadata.labels['k'] "
                    "or metadata.annotations['k']"
                )
    for i, src in enumerate(c.get("envFrom") or []):
        what = "Secret" if "secretRef" in src else "ConfigMap"
        errors.append(
            f"{where}.envFrom[{i}]: {what}s do not exist on the local runtime; "
            "list the variables under `env:` with `value:`"
        )


def check_template(template: Mapping[str, Any], imagemap: ImageMap) -> list[str]:
    """Errors that stop this Pod template from running on the local runtime (empty: it can run)."""
    errors: list[str] = []
    spec = template.get("spec") or {}
    if spec.get("hostNetwork"):
        errors.append(
            "spec.hostNetwork: every local replica already uses the host's network with ports "
            "assigned by pyrollouts; remove hostNetwork"
        )
    for field in ("hostPID", "hostIPC"):
        if spec.get(field):
            errors.append(f"spec.{field}: not available on the local runtime; remove it")
    for i, vol in enumerate(spec.get("volumes") or []):
        kinds = [k for k in vol if k != "name"]
        if kinds != ["emptyDir"]:
            errors.append(
                f"spec.volumes[{i}] ({vol.get('name', '?')}): only emptyDir volumes exist on the "
                f"local runtime, not {', '.join(kinds) or 'this kind'}; use an emptyDir or have "
                f"the app read files from a path in its env (see {DOCS})"
            )
    containers = spec.get("containers") or []
    if not containers:
        errors.append("spec.containers: a Pod needs at least one container")
    seen_ports: dict[int, str] = {}
    for key in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(key) or []):
            where = f"spec.{key}[{i}]"
            if imagemap.argv(c) is None:
                image = c.get("image") or "(no image)"
                errors.append(
                    f"{where}: image {image} has no command: add `command:` to the container or "
                    f"map the image in {imagemap.where_to_map()} (see {DOCS})"
                )
            _check_env(c, where, errors)
            for j, p in enumerate(c.get("ports") or []):
                n = p.get("containerPort")
                if not isinstance(n, int) or not 0 < n < 65536:
                    errors.append(f"{where}.ports[{j}].containerPort: expected a port number 1-65535")
                    continue
                if p.get("hostPort"):
                    errors.append(
                        f"{where}.ports[{j}].hostPort: host ports are assigned by pyrollouts on "
                        "the local runtime; remove hostPort and expose the port with a Service"
                    )
                if n in seen_ports and key == "containers":
                    errors.append(
                        f"{where}.ports[{j}].containerPort: {n} is also declared by "
                        f"{seen_ports[n]}; each port belongs to one container"
                    )
                seen_ports.setdefault(n, where)
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if isinstance(c.get(probe), dict) and "grpc" in c[probe]:
                    errors.append(
                        f"{where}.{probe}.grpc: gRPC probes are not available on the local "
                        "runtime; use httpGet, tcpSocket or exec"
                    )
            for j, vm in enumerate(c.get("volumeMounts") or []):
                names = {v.get("name") for v in spec.get("volumes") or []}
                if vm.get("name") not in names:
                    errors.append(f"{where}.volumeMounts[{j}]: no volume named {vm.get('name')!r}")
    return errors


def template_warnings(template: Mapping[str, Any]) -> list[str]:
    """What the template asks for that the local runtime records but does not enforce."""
    warnings: list[str] = []
    spec = template.get("spec") or {}
    for key in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(key) or []):
            where = f"spec.{key}[{i}]"
            res = c.get("resources") or {}
            if res.get("limits") or res.get("requests"):
                warnings.append(f"{where}.resources: recorded but not enforced on the local runtime")
            if c.get("securityContext"):
                warnings.append(
                    f"{where}.securityContext: not enforced; the process runs as the server's user"
                )
            if c.get("lifecycle"):
                warnings.append(f"{where}.lifecycle: hooks are not run on the local runtime")
            if c.get("volumeMounts"):
                warnings.append(
                    f"{where}.volumeMounts: emptyDir volumes are directories under the state "
                    "dir given to the process as $VOLUME_<NAME>; mountPath is not mounted"
                )
    for field in ("affinity", "nodeSelector", "tolerations", "topologySpreadConstraints"):
        if spec.get(field):
            warnings.append(f"spec.{field}: ignored on the local runtime (one machine)")
    return warnings


def can_bind(port: int) -> bool:
    """Whether this process may listen on the port (ports below the unprivileged start need root
    or CAP_NET_BIND_SERVICE)."""
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start", encoding="ascii") as f:
            start = int(f.read().strip())
    except (OSError, ValueError):
        start = 1024
    if port >= start or os.geteuid() == 0:
        return True
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) & (1 << 10))  # CAP_NET_BIND_SERVICE
    except (OSError, ValueError):
        pass
    return False


def check_service_ports(
    service: Mapping[str, Any],
    other_services: Iterable[Mapping[str, Any]],
    *,
    may_bind: Any = None,
    reserved: Mapping[int, str] | None = None,
) -> list[str]:
    """Errors for Service ports the local proxy cannot listen on: a port another Service (any
    namespace: they share the host) already holds, one in ``reserved`` (port -> its holder: the
    server's API port, a replica's host port), or one this process has no right to bind.
    ``may_bind(port) -> bool`` defaults to :func:`can_bind`."""
    check = may_bind or can_bind
    meta = service.get("metadata") or {}
    me = (meta.get("namespace") or "default", meta.get("name"))
    held: dict[int, str] = {}
    for other in other_services:
        om = other.get("metadata") or {}
        key = (om.get("namespace") or "default", om.get("name"))
        if key == me:
            continue
        for p in (other.get("spec") or {}).get("ports") or []:
            if isinstance(p.get("port"), int):
                held.setdefault(p["port"], f"Service {key[0]}/{key[1]}")
    errors: list[str] = []
    for i, p in enumerate((service.get("spec") or {}).get("ports") or []):
        port = p.get("port")
        where = f"spec.ports[{i}].port"
        if not isinstance(port, int) or not 0 < port < 65536:
            errors.append(f"{where}: expected a port number 1-65535")
            continue
        if port in held:
            errors.append(
                f"{where}: {port} is already held by {held[port]}; on the local runtime every "
                "Service port is a listener on this machine, so pick another port"
            )
        elif reserved and port in reserved:
            errors.append(
                f"{where}: port {port} is {reserved[port]}; on the local runtime every Service "
                "port is a listener on this machine, so pick another port"
            )
        elif not check(port):
            errors.append(
                f"{where}: {port} is below 1024 and this server may not bind it; use a port "
                "of 1024 or more, or run the server with CAP_NET_BIND_SERVICE"
            )
    return errors
