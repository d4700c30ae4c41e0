"""The one interface the rollout controller drives: a ``Cluster``.

Both runtimes implement it structurally (runtimes/local with SQLite and processes,
runtimes/kubernetes with the API server). Objects cross it in Kubernetes' JSON form (dicts with
apiVersion, kind, metadata, spec, status), so the same controller code runs on either.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from .owners import owned_by_uid

Obj = dict[str, Any]


class ClusterError(Exception):
    """Base of the errors a Cluster raises."""


class NotFound(ClusterError):
    """The object does not exist."""


class Conflict(ClusterError):
    """A create of an existing name, or a write carrying a stale resourceVersion."""


class Invalid(ClusterError):
    """The object was refused by validation (the API server's 422, or the local store's checks)."""


@dataclass(frozen=True)
class WatchEvent:
    """One change: type is ADDED, MODIFIED or DELETED; obj is the object after the change."""

    type: str
    kind: str
    obj: Obj


@runtime_checkable
class Cluster(Protocol):
    """What the controller needs from a runtime. All writes are single-object and atomic."""

    async def get(self, kind: str, namespace: str, name: str) -> Obj:
        """The object; raises NotFound."""
        ...

    async def list(
        self, kind: str, namespace: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[Obj]:
        """Objects of a kind, optionally in one namespace and matching all the given labels."""
        ...

    async def create(self, kind: str, obj: Obj) -> Obj:
        """Create; raises Conflict if the name is taken, Invalid if refused. Returns the stored object."""
        ...

    async def patch(
        self,
        kind: str,
        namespace: str,
        name: str,
        patch: Obj,
        *,
        subresource: str | None = None,
        resource_version: str | None = None,
    ) -> Obj:
        """Apply a JSON merge patch (RFC 7386). ``subresource="status"`` writes only status.
        With ``resource_version``, raise Conflict unless the object still has that version."""
        ...

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        """Delete (cascading to owned objects); raises NotFound."""
        ...

    def watch(self, kinds: Sequence[str], namespace: str | None = None) -> AsyncIterator[WatchEvent]:
        """Every change to objects of these kinds from now on, in order, forever."""
        ...


@runtime_checkable
class OwnerIndexedCluster(Cluster, Protocol):
    """A Cluster that can read the objects of one owner without reading the namespace (the
    Kubernetes runtime, from its indexed caches). The controller calls it through ``list_owned``,
    which falls back to ``list`` on a Cluster without it (the local runtime, the simulated one)."""

    async def list_owned(
        self,
        kind: str,
        namespace: str,
        owner_uids: Collection[str],
        *,
        also_named: str | None = None,
        labels: Mapping[str, str] | None = None,
        readonly: bool = False,
    ) -> list[Obj]:
        """The objects of a kind in ``namespace`` that one of ``owner_uids`` owns (an
        ownerReference with that uid) and, with ``also_named``, those named
        ``<also_named>-<suffix>`` (a suffix without a dash), owned or not; with ``labels``, only
        those carrying all of them; by name. With ``readonly`` the caller promises to neither
        change the objects nor keep them past its own use, and the runtime may hand out the very
        objects of its cache instead of copies."""
        ...

    async def get_readonly(self, kind: str, namespace: str, name: str) -> Obj:
        """``get``, for a caller that neither changes the object nor keeps it (see ``list_owned``'s
        ``readonly``); raises NotFound."""
        ...


# isinstance() against a runtime_checkable Protocol walks every one of its members on each call (1.5 %
# of the operator's CPU at 300 Rollouts, issue 15): the answer is kept per class.
_INDEXED: dict[type, bool] = {}


def _indexed(cluster: Cluster) -> bool:
    cls = type(cluster)
    known = _INDEXED.get(cls)
    if known is None:
        known = _INDEXED[cls] = isinstance(cluster, OwnerIndexedCluster)
    return known


async def list_owned(
    cluster: Cluster,
    kind: str,
    namespace: str,
    owner_uids: Collection[str],
    *,
    also_named: str | None = None,
    labels: Mapping[str, str] | None = None,
    readonly: bool = False,
) -> list[Obj]:
    """``OwnerIndexedCluster.list_owned`` on any Cluster: the runtime's own index when it has one,
    else one ``list`` of the namespace, filtered here. ``readonly``: as ``list_owned``'s."""
    if _indexed(cluster):
        indexed: OwnerIndexedCluster = cluster  # type: ignore[assignment]
        return await indexed.list_owned(
            kind, namespace, owner_uids, also_named=also_named, labels=labels, readonly=readonly
        )
    return [
        obj
        for obj in await cluster.list(kind, namespace, labels)
        if any(owned_by_uid(obj, uid) for uid in owner_uids) or (also_named and _stem(obj) == also_named)
    ]


async def get_readonly(cluster: Cluster, kind: str, namespace: str, name: str) -> Obj:
    """``OwnerIndexedCluster.get_readonly`` on any Cluster (``get`` on one without it); raises
    NotFound."""
    if _indexed(cluster):
        indexed: OwnerIndexedCluster = cluster  # type: ignore[assignment]
        return await indexed.get_readonly(kind, namespace, name)
    return await cluster.get(kind, namespace, name)


def _stem(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "").rpartition("-")[0]
