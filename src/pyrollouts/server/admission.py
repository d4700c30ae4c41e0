"""One admission path for every client write (docs/api.md, issue 11).

:class:`AdmittedCluster` wraps the runtime's Cluster for everything a client reaches: the API's
create, apply and PATCH, the user verbs (``/api/rollouts/.../promote``...), the dashboard's
actions. Each create or patch is checked on the object it would store: the manifest checks of
``rollouts lint`` (types, limits, names, references within the object), the runtime's admission
(what one machine cannot run, replica caps, Service ports that collide), and what clients may not
write at all (annotations and status the runtime owns). A refusal raises :class:`AdmissionRefused`
(422, each problem with its field and fix) and nothing is written. A patch is written with the
resourceVersion it was checked against, so what is stored is exactly what was checked.

The controllers use the unwrapped Cluster: they write status and fields clients may not.
"""

from __future__ import annotations

import builtins
import copy
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Protocol

from ..model.cluster import Cluster, Conflict, Invalid, Obj, WatchEvent
from ..model.useractions import apply_merge_patch
from .apply import findings_for_objects

#: Kinds ``rollouts lint`` reads; other kinds are checked by the runtime's admission only.
LINTED_KINDS = {"Rollout", "Service", "Namespace"}
#: How often a patch is retried when the object changed between its check and its write.
PATCH_ATTEMPTS = 5


class AdmissionRefused(Invalid):
    """A client write refused as a whole; nothing was written. ``details``: lint findings (dicts
    with file, path, problem, fix) and runtime refusals (strings naming the object and field)."""

    def __init__(self, error: str, details: Sequence[Any]) -> None:
        super().__init__(error)
        self.error = error
        self.details = list(details)

    def __str__(self) -> str:
        lines = [d.get("text") or str(d) if isinstance(d, dict) else str(d) for d in self.details]
        return self.error + "".join(f"\n  {line}" for line in lines)


class RuntimeChecks(Protocol):
    """What the runtime decides about a client write (LocalRuntime provides all three)."""

    def admission(self, objects: Sequence[Mapping[str, Any]]) -> list[str]: ...

    def check_write(self, kind: str, live: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[str]: ...

    def status_owner(self, kind: str) -> str | None: ...


def _describe(kind: str, namespace: str, name: str) -> str:
    return f"{kind.lower()} '{name}'" + (f" in namespace '{namespace}'" if namespace else "")


class AdmittedCluster:
    """The Cluster clients write through (see the module doc); reads and watches pass through."""

    def __init__(
        self,
        cluster: Cluster,
        checks: RuntimeChecks,
        *,
        admission: Callable[[list[Obj]], list[str]] | None = None,
    ) -> None:
        self.inner = cluster
        self.checks = checks
        # The server's admission (the runtime's plus anything the server adds); the runtime's by default.
        self._admission = admission or (lambda objs: list(checks.admission(objs)))

    # -- reads --

    async def get(self, kind: str, namespace: str, name: str) -> Obj:
        return await self.inner.get(kind, namespace, name)

    async def list(
        self, kind: str, namespace: str | None = None, labels: Mapping[str, str] | None = None
    ) -> builtins.list[Obj]:
        return await self.inner.list(kind, namespace, labels)

    def watch(self, kinds: Sequence[str], namespace: str | None = None) -> AsyncIterator[WatchEvent]:
        return self.inner.watch(kinds, namespace)

    # -- writes --

    def problems(self, kind: str, live: Obj | None, new: Obj) -> builtins.list[Any]:
        """Everything wrong with a client turning ``live`` (None: a create) into ``new``."""
        meta = new.get("metadata") or {}
        ns = str(meta.get("namespace") or "default")
        details: builtins.list[Any] = []
        if kind in LINTED_KINDS:
            doc = copy.deepcopy(new)
            doc.pop("status", None)  # lint reads manifests; status is the controller's
            for key in ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields"):
                (doc.get("metadata") or {}).pop(key, None)
            details += [f for f in findings_for_objects([doc], ns) if f.get("severity") == "error"]
        details += self.checks.check_write(kind, live, new)
        details += self._admission([copy.deepcopy(new)])
        return details

    async def create(self, kind: str, obj: Obj) -> Obj:
        meta = obj.get("metadata") or {}
        problems = self.problems(kind, None, obj)
        if problems:
            what = _describe(kind, str(meta.get("namespace") or ""), str(meta.get("name") or ""))
            raise AdmissionRefused(f"creating {what} was refused; nothing was written", problems)
        return await self.inner.create(kind, obj)

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
        what = _describe(kind, namespace, name)
        if not isinstance(patch, dict):
            raise AdmissionRefused(f"patching {what} was refused", ["a merge patch must be a JSON object"])
        if subresource == "status":
            owner = self.checks.status_owner(kind)
            if owner is not None:
                raise AdmissionRefused(
                    f"patching the status of {what} was refused; nothing was written",
                    [
                        f"{kind} status is written by the local runtime ({owner}) only; change the "
                        "object's spec (or its owner's) instead"
                    ],
                )
        for attempt in range(PATCH_ATTEMPTS):
            live = await self.inner.get(kind, namespace, name)
            if subresource == "status":
                new = copy.deepcopy(live)
                if "status" in patch:
                    new["status"] = (
                        {}
                        if patch["status"] is None
                        else apply_merge_patch(live.get("status") or {}, patch["status"])
                    )
            elif subresource is None:
                new = apply_merge_patch(live, patch)
            else:
                return await self.inner.patch(kind, namespace, name, patch, subresource=subresource)
            problems = self.problems(kind, live, new)
            if problems:
                raise AdmissionRefused(f"patching {what} was refused; nothing was written", problems)
            checked = (
                resource_version or str((live.get("metadata") or {}).get("resourceVersion") or "") or None
            )
            try:
                return await self.inner.patch(
                    kind, namespace, name, patch, subresource=subresource, resource_version=checked
                )
            except Conflict:
                # Changed since the check: the caller's precondition is theirs to handle; ours
                # is checked again on the new object.
                if resource_version is not None or attempt == PATCH_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        await self.inner.delete(kind, namespace, name)
