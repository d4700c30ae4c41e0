"""The pod-template hash and semantic template equality (docs/argo-compat.md, "The pod-template hash").

Argo hashes Go's JSON encoding of the template, which Python cannot reproduce byte for byte, so our
hash is our own: SHA-256 over canonical JSON (sorted keys, no whitespace, ASCII only), written in
Kubernetes' "safe" alphabet (no vowels, no confusable digits) at Kubernetes' length of 10
characters. It is stable across runs, machines and Python versions because nothing in it depends
on dict order, float formatting or hash randomisation. A positive status.collisionCount is mixed in,
as Kubernetes and Argo do, so a Rollout whose ReplicaSet name is taken gets another one.

ReplicaSets that Argo created carry Argo's hash; ``templates_equal`` finds them by comparing the
templates themselves, ignoring what a controller or the API server adds: the hash label, ephemeral
(preview/active) metadata, the injected anti-affinity term and Kubernetes' defaulted fields.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from . import names

#: Kubernetes' safe alphabet (k8s.io/apimachinery rand.SafeEncodeString): 27 characters.
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
HASH_LENGTH = 10

# Fields the API server fills in on a stored pod template; a missing field and its default are the
# same template. Values are the defaults.
_POD_SPEC_DEFAULTS: dict[str, Any] = {
    "restartPolicy": "Always",
    "dnsPolicy": "ClusterFirst",
    "schedulerName": "default-scheduler",
    "securityContext": {},
    "terminationGracePeriodSeconds": 30,
    "enableServiceLinks": True,
}
_CONTAINER_DEFAULTS: dict[str, Any] = {
    "terminationMessagePath": "/dev/termination-log",
    "terminationMessagePolicy": "File",
    "resources": {},
}
_PROBE_DEFAULTS: dict[str, Any] = {
    "timeoutSeconds": 1,
    "periodSeconds": 10,
    "successThreshold": 1,
    "failureThreshold": 3,
}


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _without_hash_label(template: Mapping[str, Any] | None, *, deep: bool = False) -> dict[str, Any]:
    # Shallow copies down to the labels suffice for hashing (nothing else is modified); callers
    # that go on to edit the template ask for a deep copy.
    t: dict[str, Any] = copy.deepcopy(dict(template or {})) if deep else dict(template or {})
    meta = t.get("metadata")
    if isinstance(meta, dict):
        meta = dict(meta)
        t["metadata"] = meta
        labels = meta.get("labels")
        if isinstance(labels, dict):
            labels = {k: v for k, v in labels.items() if k != names.POD_TEMPLATE_HASH_LABEL}
            meta["labels"] = labels
            if not labels:
                meta.pop("labels")
        if not meta:
            t.pop("metadata")
    return t


def pod_template_hash(template: Mapping[str, Any] | None, collision_count: int | None = None) -> str:
    """The revision's hash for a pod template: 10 characters of Kubernetes' safe alphabet.

    The ``rollouts-pod-template-hash`` label is ignored, so a template restored from a ReplicaSet
    (``undo``) hashes to that ReplicaSet's hash. ``collision_count`` is the Rollout's
    status.collisionCount: None or 0 gives the plain template hash (unchanged since the first
    release: live ReplicaSet names depend on it); a positive count gives another hash for the same
    template, which is how a name already taken by a different ReplicaSet is stepped around.
    A negative count is a ValueError."""
    payload = _canonical(_without_hash_label(template)).encode("ascii")
    if collision_count is not None and collision_count < 0:
        raise ValueError(f"status.collisionCount must be 0 or more, not {collision_count}")
    if collision_count:
        # Canonical JSON never holds a raw NUL (json escapes control characters), so no template's
        # payload can end like this suffix: (template, count) -> bytes stays one-to-one.
        payload += b"\x00collisionCount=" + str(int(collision_count)).encode("ascii")
    digest = hashlib.sha256(payload).digest()
    n = int.from_bytes(digest, "big")
    out = []
    for _ in range(HASH_LENGTH):
        n, r = divmod(n, len(SAFE_ALPHABET))
        out.append(SAFE_ALPHABET[r])
    return "".join(out)


def _drop_defaults(obj: dict[str, Any], defaults: Mapping[str, Any]) -> None:
    for key, default in defaults.items():
        if key in obj and obj[key] == default:
            del obj[key]


def _image_pull_default(image: str) -> str:
    # Kubernetes: Always for ":latest" or no tag, else IfNotPresent (digests count as a tag).
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    if ":" not in last or last.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def _normalize_probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    _drop_defaults(probe, _PROBE_DEFAULTS)
    http = probe.get("httpGet")
    if isinstance(http, dict) and http.get("scheme") == "HTTP":
        del http["scheme"]


def _normalize_container(c: Any) -> None:
    if not isinstance(c, dict):
        return
    _drop_defaults(c, _CONTAINER_DEFAULTS)
    if "imagePullPolicy" in c and c["imagePullPolicy"] == _image_pull_default(str(c.get("image", ""))):
        del c["imagePullPolicy"]
    for port in c.get("ports") or []:
        if isinstance(port, dict) and port.get("protocol") == "TCP":
            del port["protocol"]
    for env in c.get("env") or []:
        field_ref = (env.get("valueFrom") or {}).get("fieldRef") if isinstance(env, dict) else None
        if isinstance(field_ref, dict) and field_ref.get("apiVersion") == "v1":
            del field_ref["apiVersion"]
    for key in ("readinessProbe", "livenessProbe", "startupProbe"):
        _normalize_probe(c.get(key))


def strip_injected_anti_affinity(spec: dict[str, Any]) -> None:
    """Remove, in place, the anti-affinity terms the controller injected into a pod spec."""
    # The injected term selects pods by the hash label; a user's own terms never do.
    affinity = spec.get("affinity")
    if not isinstance(affinity, dict):
        return
    anti = affinity.get("podAntiAffinity")
    if isinstance(anti, dict):
        for key in list(anti):
            terms = anti[key]
            if not isinstance(terms, list):
                continue
            kept = [t for t in terms if names.POD_TEMPLATE_HASH_LABEL not in _canonical(t)]
            if kept:
                anti[key] = kept
            else:
                del anti[key]
        if not anti:
            del affinity["podAntiAffinity"]
    if not affinity:
        del spec["affinity"]


def normalized_template(
    template: Mapping[str, Any] | None,
    *,
    ignore_labels: Iterable[str] = (),
    ignore_annotations: Iterable[str] = (),
) -> dict[str, Any]:
    """The template as compared by ``templates_equal``: without the hash label, the given
    (ephemeral) labels and annotations, the injected anti-affinity, and Kubernetes' defaults."""
    t = _without_hash_label(template, deep=True)
    meta = t.setdefault("metadata", {})
    meta.pop("creationTimestamp", None)
    for key, drop in (("labels", ignore_labels), ("annotations", ignore_annotations)):
        values = meta.get(key)
        if isinstance(values, dict):
            for k in drop:
                values.pop(k, None)
            if not values:
                del meta[key]
    if not meta:
        del t["metadata"]
    spec = t.get("spec")
    if isinstance(spec, dict):
        _drop_defaults(spec, _POD_SPEC_DEFAULTS)
        for key in ("containers", "initContainers"):
            for c in spec.get(key) or []:
                _normalize_container(c)
        strip_injected_anti_affinity(spec)
    return t


def ephemeral_keys(annotations: Mapping[str, str] | None) -> tuple[list[str], list[str]]:
    """The label and annotation keys a ReplicaSet's ephemeral-metadata annotation says were injected."""
    raw = (annotations or {}).get(names.EPHEMERAL_METADATA_ANNOTATION)
    if not raw:
        return [], []
    try:
        data = json.loads(raw)
    except ValueError:
        return [], []
    if not isinstance(data, dict):
        return [], []
    labels = data.get("labels") or {}
    anns = data.get("annotations") or {}
    return (list(labels) if isinstance(labels, dict) else []), (list(anns) if isinstance(anns, dict) else [])


def templates_equal(
    a: Mapping[str, Any] | None,
    b: Mapping[str, Any] | None,
    *,
    ignore_labels: Iterable[str] = (),
    ignore_annotations: Iterable[str] = (),
) -> bool:
    """True when two pod templates describe the same pods: equal once the hash label, the given
    ephemeral labels/annotations, injected anti-affinity and Kubernetes' defaults are set aside."""
    labels = list(ignore_labels)
    anns = list(ignore_annotations)
    na = normalized_template(a, ignore_labels=labels, ignore_annotations=anns)
    nb = normalized_template(b, ignore_labels=labels, ignore_annotations=anns)
    return _canonical(na) == _canonical(nb)
