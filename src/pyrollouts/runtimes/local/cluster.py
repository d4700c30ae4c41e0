"""``LocalCluster``: the ``Cluster`` protocol over the local store.

The store's calls are short SQLite transactions, so they run right in the event loop thread: that
keeps one writer thread and makes the watch order the commit order without extra machinery.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence

from ...model.cluster import Obj, WatchEvent
from .store import Store


class LocalCluster:
    """The local runtime's Cluster: objects in the SQLite store, changes from its in-process watch."""

    #: The local proxy routes every request, so it is the canary's traffic router (the split goes
    #: into the stable Service's annotation, controller/routers).
    proxy_routes_traffic = True

    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, kind: str, namespace: str, name: str) -> Obj:
        """The object; raises NotFound."""
        return self.store.get(kind, namespace, name)

    async def list(
        self, kind: str, namespace: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[Obj]:
        """Objects of a kind, optionally in one namespace and matching all the given labels."""
        return self.store.list(kind, namespace, labels)

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
        """``OwnerIndexedCluster.list_owned``: one Rollout's objects through the store's owner index
        (a reconcile reads what its Rollout has, not the namespace). Each read decodes fresh
        objects from SQLite, so ``readonly`` changes nothing here."""
        return self.store.list_owned(kind, namespace, owner_uids, also_named=also_named, labels=labels)

    async def get_readonly(self, kind: str, namespace: str, name: str) -> Obj:
        """``OwnerIndexedCluster.get_readonly``: ``get`` (the store's reads are fresh objects)."""
        return await self.get(kind, namespace, name)

    async def create(self, kind: str, obj: Obj) -> Obj:
        """Create; raises Conflict if the name is taken, Invalid if refused. Returns the stored object."""
        return self.store.create(kind, obj)

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
        """Apply a JSON merge patch; ``subresource="status"`` writes only status; with
        ``resource_version``, Conflict unless the object still has that version."""
        return self.store.patch(
            kind, namespace, name, patch, subresource=subresource, resource_version=resource_version
        )

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        """Delete (cascading to owned objects); raises NotFound."""
        self.store.delete(kind, namespace, name)

    def watch(self, kinds: Sequence[str], namespace: str | None = None) -> AsyncIterator[WatchEvent]:
        """Every change to objects of these kinds from the moment of this call, in commit order.

        Must be called from a running event loop; the subscription starts at the call (not at the
        first ``__anext__``), so nothing committed after the call is missed. ``close()`` ends it."""
        return self.store.subscribe(kinds, namespace)
