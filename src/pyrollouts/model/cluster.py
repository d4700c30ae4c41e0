"""The one interface the rollout controller drives: a ``Cluster``.

Both runtimes implement it structurally (runtimes/local with SQLite and processes,
runtimes/kubernetes with the API server). Objects cross it in Kubernetes' JSON form (dicts with
apiVersion, kind, metadata, spec, status), so the same controller code runs on either.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

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
