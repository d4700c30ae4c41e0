"""The NGINX Ingress router: a canary's split as a canary Ingress with ingress-nginx's annotations.

Config: ``trafficRouting.nginx`` with ``stableIngress`` (or ``stableIngresses``),
``annotationPrefix`` (default ``nginx.ingress.kubernetes.io``), ``additionalIngressAnnotations``
(the prefix is added to keys without it) and ``canaryIngressAnnotations`` (written as they are).
As Argo Rollouts does, for each stable Ingress the router keeps a canary Ingress
``<rollout>-<stableIngress>-canary`` that the Rollout owns (controller reference):

- its spec is the stable Ingress's rules that send some path to the stable Service, those paths
  sent to the canary Service instead, plus the stable Ingress's TLS and ingressClassName (and its
  ``kubernetes.io/ingress.class`` annotation);
- its annotations are ``<prefix>/canary: "true"`` and ``<prefix>/canary-weight: "<w>"``, the
  configured ones, and annotations other writers added are kept;
- an existing Ingress of that name that the Rollout does not control is never written.

Header routing on NGINX is, as in Argo, configured with ``additionalIngressAnnotations``
(``canary-by-header``, ``canary-by-header-value``, ``canary-by-header-pattern``). Argo refuses
``setHeaderRoute`` steps with NGINX; this router maps a split's header route onto those
annotations when ingress-nginx can express it (one route, one header) and refuses others.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...model import kinds
from ...model.cluster import Cluster, Conflict, NotFound, Obj
from ...model.traffic import HeaderRoute, TrafficSplit
from .errors import TRAFFIC_ROUTING, TrafficRouterError

CONFIG_PATH = f"{TRAFFIC_ROUTING}.nginx"
DEFAULT_PREFIX = "nginx.ingress.kubernetes.io"
CANARY_SUFFIX = "-canary"
#: Kubernetes' limit on an object name.
MAX_NAME = 253
#: The annotations a header route sets, removed again when the route is gone (unless configured).
HEADER_KEYS = ("canary-by-header", "canary-by-header-value", "canary-by-header-pattern")
CLASS_ANNOTATION = "kubernetes.io/ingress.class"


@dataclass(frozen=True)
class NginxConfig:
    """``trafficRouting.nginx``, checked."""

    stable_ingresses: tuple[str, ...]
    prefix: str = DEFAULT_PREFIX
    additional: Mapping[str, str] = field(default_factory=dict)
    canary_annotations: Mapping[str, str] = field(default_factory=dict)


def parse_config(raw: Any) -> NginxConfig:
    """The config from ``trafficRouting.nginx``; a TrafficRouterError naming the field otherwise."""
    if not isinstance(raw, Mapping):
        raise TrafficRouterError(f"{CONFIG_PATH}: expected an object with stableIngress")
    ingresses = [raw["stableIngress"]] if raw.get("stableIngress") else list(raw.get("stableIngresses") or [])
    if not ingresses or not all(isinstance(i, str) and i for i in ingresses):
        raise TrafficRouterError(f"{CONFIG_PATH}.stableIngress: required (the name of the stable Ingress)")
    return NginxConfig(
        tuple(ingresses),
        str(raw.get("annotationPrefix") or DEFAULT_PREFIX),
        _string_map(raw, "additionalIngressAnnotations"),
        _string_map(raw, "canaryIngressAnnotations"),
    )


def _string_map(raw: Mapping[str, Any], key: str) -> dict[str, str]:
    value = raw.get(key) or {}
    if not isinstance(value, Mapping):
        raise TrafficRouterError(f"{CONFIG_PATH}.{key}: expected a map of strings")
    return {str(k): str(v) for k, v in value.items()}


def canary_ingress_name(rollout: str, stable_ingress: str) -> str:
    """``<rollout>-<stableIngress>-canary``, the stem cut to fit Kubernetes' 253 characters."""
    stem = f"{rollout}-{stable_ingress}"[: MAX_NAME - len(CANARY_SUFFIX)]
    return stem + CANARY_SUFFIX


def canary_rules(stable: Obj, split: TrafficSplit) -> list[Obj]:
    """The stable Ingress's rules that route a path to the stable Service, those paths sent to
    the canary Service; a TrafficRouterError if there is none."""
    out = []
    for rule in (stable.get("spec") or {}).get("rules") or []:
        rule = copy.deepcopy(rule)
        moved = False
        for path in (rule.get("http") or {}).get("paths") or []:
            service = (path.get("backend") or {}).get("service") or {}
            if service.get("name") == split.stable_service:
                service["name"] = split.canary_service
                moved = True
        if moved:
            out.append(rule)
    if not out:
        meta = stable.get("metadata") or {}
        raise TrafficRouterError(
            f"Ingress {meta.get('namespace')}/{meta.get('name')} has no rule with a path to the stable "
            f"Service {split.stable_service}"
        )
    return out


def header_annotations(routes: tuple[HeaderRoute, ...], prefix: str) -> dict[str, str]:
    """ingress-nginx's header annotations for the split's header routes (none: no annotations)."""
    if not routes:
        return {}
    if len(routes) > 1 or len(routes[0].matches) != 1:
        raise TrafficRouterError(
            f"{TRAFFIC_ROUTING}: an NGINX canary Ingress routes by one header only; use one setHeaderRoute "
            "with one match, or additionalIngressAnnotations canary-by-header"
        )
    match = routes[0].matches[0]
    out = {f"{prefix}/canary-by-header": match.header_name}
    value = match.value
    if value.exact is not None:
        out[f"{prefix}/canary-by-header-value"] = value.exact
    elif value.prefix is not None:
        out[f"{prefix}/canary-by-header-pattern"] = "^" + re.escape(value.prefix)
    elif value.regex is not None:
        out[f"{prefix}/canary-by-header-pattern"] = value.regex
    return out


def canary_annotations(stable: Obj, config: NginxConfig, split: TrafficSplit) -> dict[str, str]:
    """The canary Ingress's annotations: the ingress class, the configured ones, the header
    route's, then ``canary`` and ``canary-weight`` (which always win)."""
    out: dict[str, str] = {}
    stable_annotations = (stable.get("metadata") or {}).get("annotations") or {}
    if CLASS_ANNOTATION in stable_annotations:
        out[CLASS_ANNOTATION] = stable_annotations[CLASS_ANNOTATION]
    for key, value in config.additional.items():
        out[key if key.startswith(config.prefix) else f"{config.prefix}/{key}"] = value
    out.update(config.canary_annotations)
    out.update(header_annotations(split.header_routes, config.prefix))
    out[f"{config.prefix}/canary"] = "true"
    out[f"{config.prefix}/canary-weight"] = str(split.canary_weight)
    return out


def owner_reference(split: TrafficSplit) -> Obj:
    """The Rollout as the canary Ingress's controller."""
    if not split.rollout_name or not split.rollout_uid:
        raise TrafficRouterError("the NGINX router needs the Rollout's name and uid on the TrafficSplit")
    return {
        "apiVersion": kinds.ROLLOUT.api_version,
        "kind": "Rollout",
        "name": split.rollout_name,
        "uid": split.rollout_uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def canary_ingress(stable: Obj, config: NginxConfig, split: TrafficSplit, name: str) -> Obj:
    """The whole canary Ingress for the split (what a create writes)."""
    stable_spec = stable.get("spec") or {}
    spec: Obj = {"rules": canary_rules(stable, split)}
    for key in ("tls", "ingressClassName"):
        if stable_spec.get(key):
            spec[key] = copy.deepcopy(stable_spec[key])
    return {
        "apiVersion": kinds.INGRESS.api_version,
        "kind": "Ingress",
        "metadata": {
            "name": name,
            "namespace": (stable.get("metadata") or {}).get("namespace"),
            "annotations": canary_annotations(stable, config, split),
            "ownerReferences": [owner_reference(split)],
        },
        "spec": spec,
    }


def canary_patch(current: Obj, desired: Obj, prefix: str) -> Obj | None:
    """The merge patch bringing the existing canary Ingress to ``desired`` (None: it is there):
    desired annotations set, header annotations no longer wanted removed, others kept; the spec
    replaced key by key."""
    have = (current.get("metadata") or {}).get("annotations") or {}
    want = desired["metadata"]["annotations"]
    annotations: dict[str, str | None] = {k: v for k, v in want.items() if have.get(k) != v}
    for key in (f"{prefix}/{k}" for k in HEADER_KEYS):
        if key in have and key not in want:
            annotations[key] = None
    current_spec = current.get("spec") or {}
    spec: dict[str, Any] = {k: v for k, v in desired["spec"].items() if current_spec.get(k) != v}
    spec.update({k: None for k in current_spec if k not in desired["spec"]})
    patch: Obj = {}
    if annotations:
        patch["metadata"] = {"annotations": annotations}
    if spec:
        patch["spec"] = spec
    return patch or None


def controlled_by(obj: Obj, uid: str) -> bool:
    """True when the object's controller reference is the object with this uid."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("controller") and r.get("uid") == uid for r in refs)


async def apply(cluster: Cluster, namespace: str, split: TrafficSplit) -> None:
    """Create or bring up to date the canary Ingress of each stable Ingress."""
    config = parse_config(split.traffic_routing.get("nginx"))
    for stable_name in config.stable_ingresses:
        await _apply_ingress(cluster, namespace, config, stable_name, split)


async def _apply_ingress(
    cluster: Cluster, namespace: str, config: NginxConfig, stable_name: str, split: TrafficSplit
) -> None:
    try:
        stable = await cluster.get("Ingress", namespace, stable_name)
    except NotFound:
        raise TrafficRouterError(
            f"Ingress {namespace}/{stable_name} not found: create it, or name an existing one in "
            f"{CONFIG_PATH}.stableIngress"
        ) from None
    name = canary_ingress_name(split.rollout_name, stable_name)
    desired = canary_ingress(stable, config, split, name)
    current = await _create_or_get(cluster, namespace, desired)
    if current is None:
        return
    if not controlled_by(current, split.rollout_uid):
        raise TrafficRouterError(
            f"Ingress {namespace}/{name} exists and is not controlled by Rollout {split.rollout_name}: "
            "delete it or rename the Rollout"
        )
    patch = canary_patch(current, desired, config.prefix)
    if patch is not None:
        await cluster.patch("Ingress", namespace, name, patch)


async def _create_or_get(cluster: Cluster, namespace: str, desired: Obj) -> Obj | None:
    """The existing canary Ingress, or None once ``desired`` is created."""
    name = desired["metadata"]["name"]
    try:
        return await cluster.get("Ingress", namespace, name)
    except NotFound:
        pass
    try:
        await cluster.create("Ingress", desired)
        return None
    except Conflict:  # created meanwhile (another reconcile): read the winner
        return await cluster.get("Ingress", namespace, name)
