"""Kubernetes object types used by both runtimes, from Kubernetes' own schema (lightkube-models).

The Rollout is ours (``model.rollout``); ReplicaSet, Pod, Service, Namespace and Event are the
generated Kubernetes models, so their fields are exactly Kubernetes' and never hand-written.
"""

from __future__ import annotations

from lightkube.models.core_v1 import Container, PodTemplateSpec, Probe, ServicePort
from lightkube.resources.apps_v1 import ReplicaSet
from lightkube.resources.core_v1 import Event, Namespace, Pod, Service

from . import kinds
from .rollout import Rollout

__all__ = [
    "KINDS",
    "Container",
    "Event",
    "Namespace",
    "Pod",
    "PodTemplateSpec",
    "Probe",
    "ReplicaSet",
    "Rollout",
    "Service",
    "ServicePort",
    "api_version_of",
]

#: kind -> apiVersion, for every kind the object model knows (model/kinds.py).
KINDS: dict[str, str] = {k.name: k.api_version for k in kinds.KINDS.values()}

#: Kinds that live in a namespace.
NAMESPACED = kinds.NAMESPACED


def api_version_of(kind: str) -> str:
    """The apiVersion for a kind of the object model; KeyError for an unknown kind."""
    return KINDS[kind]
