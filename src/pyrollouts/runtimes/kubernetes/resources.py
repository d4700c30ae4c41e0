"""The API resources the Kubernetes runtime reads and writes, as lightkube resource classes.

Every kind is declared as a *generic* (dict-based) lightkube resource, so objects cross the
``Cluster`` boundary in their exact Kubernetes JSON form: no round trip through typed models that
could drop fields the API server added (or fields of a newer Kubernetes than the models know).
The classes are built here and deliberately not put in lightkube's global registry: the typed
ReplicaSet, Pod and Service classes live there already and must keep working for other code.
"""

from __future__ import annotations

from typing import Any

from lightkube.core import resource as res
from lightkube.generic_resource import (
    GenericGlobalResource,
    GenericNamespacedResource,
    GenericNamespacedStatus,
    create_api_info,
)

from ...model import kinds


def _namespaced(group: str, version: str, kind: str, plural: str) -> Any:
    info = create_api_info(group, version, kind, plural)

    class Status(GenericNamespacedStatus):
        _api_info = res.ApiInfo(
            resource=info.resource,
            parent=info.resource,
            plural=plural,
            verbs=["get", "patch", "put"],
            action="status",
        )

    Status.__name__ = Status.__qualname__ = f"{kind}Status"
    cls = type(kind, (GenericNamespacedResource,), {"_api_info": info, "Status": Status})
    return cls


def _global(group: str, version: str, kind: str, plural: str) -> Any:
    return type(kind, (GenericGlobalResource,), {"_api_info": create_api_info(group, version, kind, plural)})


#: kind name -> Kind, for every kind the Cluster protocol carries (model/kinds.py; a Deployment is
#: read, never written, for a Rollout's spec.workloadRef; HTTPRoutes and Ingresses are the traffic
#: routers').
KUBE_KINDS: dict[str, kinds.Kind] = {k.name: k for k in (*kinds.KINDS.values(), *kinds.TRAFFIC_KINDS)}

#: kind -> resource class (lightkube's), for the same kinds.
RESOURCES: dict[str, Any] = {
    name: (_namespaced if k.namespaced else _global)(k.group, k.version, k.name, k.plural)
    for name, k in KUBE_KINDS.items()
}

LEASE = _namespaced("coordination.k8s.io", "v1", "Lease", "leases")
CRD = _global("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions")

#: Kinds that live in a namespace.
NAMESPACED = kinds.NAMESPACED


def kind_of(kind: str) -> kinds.Kind:
    """The Kind of a kind's name; ValueError naming the known kinds otherwise."""
    try:
        return KUBE_KINDS[kind]
    except KeyError:
        known = ", ".join(sorted(KUBE_KINDS))
        raise ValueError(f"unknown kind {kind!r}: the Kubernetes runtime handles {known}") from None


def resource_of(kind: str) -> Any:
    """The resource class for a kind; ValueError naming the known kinds otherwise."""
    return RESOURCES[kind_of(kind).name]
