"""The local runtime's object store: Kubernetes-shaped JSON objects in one SQLite file.

Objects are keyed by (kind, namespace, name) and carry what the API server would give them: a uid,
a creationTimestamp, a resourceVersion (one global counter), a generation bumped only when the spec
changes, and ownerReferences that make deleting an owner delete what it owns in the same
transaction. The file is in WAL mode with ``synchronous=FULL``: a write that returned is on disk, so
a crash (even kill -9 of the server) loses nothing that was acknowledged.

The server process is the only writer, so the watch is in-process: every committed change is handed
to the subscribers in commit order.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import re
import secrets
import sqlite3
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ...model.cluster import Conflict, Invalid, NotFound, Obj, WatchEvent
from ...model.kinds import CLUSTER_SCOPED  # stored with namespace ""
from ...model.objects import KINDS
from ...model.timefmt import rfc3339
from ...model.useractions import apply_merge_patch

#: Kinds whose status is a subresource: object writes never change it, status writes change only it.
STATUS_KINDS = frozenset({"Rollout", "ReplicaSet", "Pod", "Service", "Namespace", "AnalysisRun", "Job"})
#: How many Events each namespace keeps (the oldest go first).
DEFAULT_EVENT_CAP = 1000

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_SUFFIX_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' generateName alphabet: no vowels, no 0/1/3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    uid TEXT NOT NULL UNIQUE, rv INTEGER NOT NULL, created_rv INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (kind, namespace, name)
);
CREATE INDEX IF NOT EXISTS objects_ns ON objects (namespace);
CREATE TABLE IF NOT EXISTS owners (
    owner_uid TEXT NOT NULL, kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS owners_uid ON owners (owner_uid);
CREATE INDEX IF NOT EXISTS owners_obj ON owners (kind, namespace, name);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def utc_now() -> datetime:
    """The real UTC clock (a Store's default clock)."""
    return datetime.now(UTC)


def now_rfc3339(clock: Callable[[], datetime] = utc_now) -> str:
    """The time as the API server writes timestamps (RFC 3339, seconds, UTC)."""
    return rfc3339(clock())


def random_suffix(n: int = 5) -> str:
    """Random lowercase characters for generated names (as ``generateName`` does)."""
    return "".join(secrets.choice(_SUFFIX_CHARS) for _ in range(n))


def labels_match(obj: Mapping[str, Any], labels: Mapping[str, str] | None) -> bool:
    """True when the object carries every given label with the given value."""
    if not labels:
        return True
    have = (obj.get("metadata") or {}).get("labels") or {}
    return all(have.get(k) == v for k, v in labels.items())


_Events = list[tuple[str, str, str, str]]  # (kind, namespace, type, body) per change
_Objs = list[Obj]


class Subscription:
    """An async iterator of WatchEvents; events flow from the moment it was created."""

    def __init__(
        self,
        store: Store,
        kinds: Iterable[str] | None,
        namespace: str | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._store = store
        self._kinds = frozenset(kinds) if kinds is not None else None
        self._namespace = namespace
        self._loop = loop
        self._queue: asyncio.Queue[WatchEvent | None] = asyncio.Queue()
        self._closed = False

    def _offer(self, kind: str, namespace: str, type_: str, body: str) -> None:
        # Called under the store lock right after a commit; call_soon_threadsafe keeps FIFO order
        # whichever thread wrote, so subscribers see commits in commit order.
        if self._closed:
            return
        if self._kinds is not None and kind not in self._kinds:
            return
        if self._namespace is not None and namespace != self._namespace:
            return
        event = WatchEvent(type_, kind, json.loads(body))
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)
        except RuntimeError:  # the subscriber's loop is closed: nobody is listening any more
            self._closed = True

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> WatchEvent:
        if self._closed and self._queue.empty():
            raise StopAsyncIteration
        event = await self._queue.get()
        if event is None:
            raise StopAsyncIteration
        return event

    def close(self) -> None:
        """Stop receiving events; a pending ``__anext__`` ends the iteration."""
        if not self._closed:
            self._closed = True
            self._store._unsubscribe(self)
            try:
                self._loop.call_soon_threadsafe(self._queue.put_nowait, None)
            except RuntimeError:
                pass

    async def aclose(self) -> None:
        """Async-generator style close (so ``contextlib.aclosing`` works)."""
        self.close()


class Store:
    """Kubernetes-shaped objects in one SQLite file (WAL, synchronous=FULL). Thread-safe."""

    def __init__(self, path: str | Path, *, event_cap: int = DEFAULT_EVENT_CAP) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.event_cap = event_cap
        #: The clock of creationTimestamps and Events. The server sets its controller's clock here,
        #: so that a test clock moved forward (POST /api/debug/clock) moves them too: a restartAt
        #: taken from that clock must not find every new pod "created before" it.
        self.clock: Callable[[], datetime] = utc_now
        self._lock = threading.RLock()
        # Weak: a watch its consumer dropped (a cancelled task) stops receiving and is freed.
        self._subs: weakref.WeakSet[Subscription] = weakref.WeakSet()
        # Owner-only: the objects hold env values. SQLite gives the WAL and shared-memory files
        # the database file's mode.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        try:
            self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise Invalid(
                f"{self.path}: not a usable pyrollouts state database ({e}); "
                "move it away or pass another --state-dir"
            ) from e

    def close(self) -> None:
        """Close the database (subscriptions end)."""
        with self._lock:
            for sub in list(self._subs):
                sub.close()
            self._db.close()

    # ---- reads -------------------------------------------------------------------------------

    def get(self, kind: str, namespace: str, name: str) -> Obj:
        """The stored object; raises NotFound."""
        ns = self._ns(kind, namespace)
        with self._lock:
            return self._get_locked(kind, ns, name)

    def list(self, kind: str, namespace: str | None = None, labels: Mapping[str, str] | None = None) -> _Objs:
        """Objects of a kind (optionally in one namespace, carrying all the labels), oldest first."""
        with self._lock:
            if namespace is None or kind in CLUSTER_SCOPED:
                rows = self._db.execute(
                    "SELECT body FROM objects WHERE kind=? ORDER BY created_rv", (kind,)
                ).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT body FROM objects WHERE kind=? AND namespace=? ORDER BY created_rv",
                    (kind, namespace),
                ).fetchall()
        objs = [json.loads(r[0]) for r in rows]
        return [o for o in objs if labels_match(o, labels)]

    def list_owned(
        self,
        kind: str,
        namespace: str,
        owner_uids: Iterable[str],
        *,
        also_named: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> _Objs:
        """The objects of a kind in ``namespace`` that one of ``owner_uids`` owns and, with
        ``also_named``, those named ``<also_named>-<suffix>`` (no dash in the suffix); with
        ``labels``, only those carrying all of them; by name. Reads the owner index and a range of
        names: what these objects are, never every object of the namespace."""
        with self._lock:
            rows = []
            for uid in owner_uids:
                rows += self._db.execute(
                    "SELECT o.name, o.body FROM owners w JOIN objects o "
                    "ON o.kind=w.kind AND o.namespace=w.namespace AND o.name=w.name "
                    "WHERE w.owner_uid=? AND w.kind=? AND w.namespace=?",
                    (uid, kind, namespace),
                ).fetchall()
            if also_named:
                # Names from "<stem>-" up to (not including) "<stem>." ('.' follows '-' in code order).
                named = self._db.execute(
                    "SELECT name, body FROM objects WHERE kind=? AND namespace=? AND name>=? AND name<?",
                    (kind, namespace, also_named + "-", also_named + "."),
                ).fetchall()
                rows += [(n, b) for n, b in named if n.rpartition("-")[0] == also_named]
        by_name = dict(rows)
        objs = [json.loads(by_name[n]) for n in sorted(by_name)]
        return [o for o in objs if labels_match(o, labels)]

    def owned_by(self, uid: str, kind: str | None = None) -> _Objs:
        """Objects whose ownerReferences name this uid (optionally of one kind), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT o.body FROM owners w JOIN objects o "
                "ON o.kind=w.kind AND o.namespace=w.namespace AND o.name=w.name "
                "WHERE w.owner_uid=? ORDER BY o.created_rv",
                (uid,),
            ).fetchall()
        objs = [json.loads(r[0]) for r in rows]
        return [o for o in objs if kind is None or o.get("kind") == kind]

    def resource_version(self) -> int:
        """The last resourceVersion handed out."""
        with self._lock:
            return self._rv_now()

    # ---- writes ------------------------------------------------------------------------------

    def create(self, kind: str, obj: Obj, *, keep_status: bool = False) -> Obj:
        """Store a new object and return it as stored; Conflict if the name is taken.

        As the API server does, status is dropped for kinds with a status subresource unless
        ``keep_status`` (the local controllers use it to create a Pod with its first status)."""
        if not isinstance(obj, dict):
            raise Invalid(f"{kind}: the object must be a mapping, got {type(obj).__name__}")
        new = copy.deepcopy(obj)
        meta = new.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise Invalid(f"{kind}: metadata must be a mapping")
        if new.get("kind", kind) != kind:
            raise Invalid(f"{kind}: the object says kind {new.get('kind')!r}")
        new["kind"] = kind
        new.setdefault("apiVersion", KINDS.get(kind, "v1"))
        if kind in CLUSTER_SCOPED:
            meta.pop("namespace", None)
            ns = ""
        else:
            ns = meta.get("namespace") or "default"
            meta["namespace"] = ns
            self._check_name(kind, "metadata.namespace", ns)
        with self._lock, self._tx() as events:
            if not meta.get("name"):
                prefix = meta.get("generateName")
                if not prefix:
                    raise Invalid(f"{kind}: metadata.name is required (or metadata.generateName)")
                for _ in range(20):
                    candidate = f"{prefix}{random_suffix()}"
                    if not self._exists(kind, ns, candidate):
                        meta["name"] = candidate
                        break
                else:
                    raise Conflict(f"{kind}: could not generate a free name from {prefix!r}")
            self._check_name(kind, "metadata.name", meta["name"])
            if self._exists(kind, ns, meta["name"]):
                raise Conflict(self._describe(kind, ns, meta["name"]) + " already exists")
            if ns:
                self._ensure_namespace(ns, events)
            if kind in STATUS_KINDS and not keep_status:
                new.pop("status", None)
            self._insert(kind, ns, new, events)
            if kind == "Event":
                self._trim_events(ns, events)
        return new

    def patch(
        self,
        kind: str,
        namespace: str,
        name: str,
        patch: Obj,
        *,
        subresource: str | None = None,
        resource_version: str | None = None,
    ) -> Obj:
        """Apply a JSON merge patch (RFC 7386) to the object or, with ``subresource="status"``, to
        its status only. With ``resource_version``: Conflict unless the object still has it."""
        if not isinstance(patch, dict):
            raise Invalid(f"{kind} {name}: a merge patch must be a mapping")
        ns = self._ns(kind, namespace)
        with self._lock, self._tx() as events:
            old = self._get_locked(kind, ns, name)
            self._precondition(old, resource_version)
            if subresource == "status":
                if "status" not in patch:
                    status = old.get("status") or {}
                elif patch["status"] is None:
                    status = {}
                else:
                    status = apply_merge_patch(old.get("status") or {}, patch["status"])
                new = copy.deepcopy(old)
                new["status"] = status
            elif subresource is None:
                new = apply_merge_patch(old, patch)
            else:
                raise Invalid(f"{kind} {name}: unknown subresource {subresource!r}")
            return self._write(kind, ns, old, new, subresource, events)

    def update(
        self, kind: str, obj: Obj, *, subresource: str | None = None, resource_version: str | None = None
    ) -> Obj:
        """Replace an object (or only its status, with ``subresource="status"``), as a PUT does."""
        meta = obj.get("metadata") or {}
        ns = self._ns(kind, meta.get("namespace") or "default")
        name = meta.get("name") or ""
        with self._lock, self._tx() as events:
            old = self._get_locked(kind, ns, name)
            self._precondition(old, resource_version)
            if subresource == "status":
                new = copy.deepcopy(old)
                new["status"] = copy.deepcopy(obj.get("status") or {})
            else:
                new = copy.deepcopy(obj)
            return self._write(kind, ns, old, new, subresource, events)

    def delete(self, kind: str, namespace: str, name: str) -> _Objs:
        """Delete an object and, recursively, everything it owns (and, for a Namespace, everything
        in it), in one transaction. Returns the deleted objects; raises NotFound."""
        ns = self._ns(kind, namespace)
        with self._lock, self._tx() as events:
            root = self._get_locked(kind, ns, name)
            deleted: _Objs = []
            self._delete_tree(root, deleted, events)
        return deleted

    # ---- watch -------------------------------------------------------------------------------

    def subscribe(self, kinds: Iterable[str] | None = None, namespace: str | None = None) -> Subscription:
        """Every change committed from now on to objects of these kinds (all kinds if None), in
        commit order, delivered on the calling event loop."""
        loop = asyncio.get_running_loop()
        sub = Subscription(self, kinds, namespace, loop)
        with self._lock:
            self._subs.add(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    # ---- internals ---------------------------------------------------------------------------

    class _Tx:
        def __init__(self, store: Store) -> None:
            self.store = store
            self.events: _Events = []

        def __enter__(self) -> _Events:
            self.store._db.execute("BEGIN IMMEDIATE")
            return self.events

        def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
            if exc_type is not None:
                self.store._db.execute("ROLLBACK")
                return
            self.store._db.execute("COMMIT")
            # Only committed changes are announced, and in the order they were made.
            for kind, ns, type_, body in self.events:
                for sub in list(self.store._subs):
                    sub._offer(kind, ns, type_, body)

    def _tx(self) -> Store._Tx:
        return Store._Tx(self)

    @staticmethod
    def _ns(kind: str, namespace: str | None) -> str:
        return "" if kind in CLUSTER_SCOPED else (namespace or "default")

    @staticmethod
    def _describe(kind: str, ns: str, name: str) -> str:
        return f"{kind} {ns}/{name}" if ns else f"{kind} {name}"

    @staticmethod
    def _check_name(kind: str, field: str, value: Any) -> None:
        if not isinstance(value, str) or len(value) > 253 or not _NAME_RE.match(value):
            raise Invalid(
                f"{kind}: {field} {value!r} is not a valid name: use lowercase letters, digits, '-' "
                "and '.', starting and ending with a letter or digit (at most 253 characters)"
            )

    def _exists(self, kind: str, ns: str, name: str) -> bool:
        return (
            self._db.execute(
                "SELECT 1 FROM objects WHERE kind=? AND namespace=? AND name=?", (kind, ns, name)
            ).fetchone()
            is not None
        )

    def _get_locked(self, kind: str, ns: str, name: str) -> Obj:
        row = self._db.execute(
            "SELECT body FROM objects WHERE kind=? AND namespace=? AND name=?", (kind, ns, name)
        ).fetchone()
        if row is None:
            raise NotFound(self._describe(kind, ns, name) + " not found")
        return json.loads(row[0])  # type: ignore[no-any-return]

    def _precondition(self, old: Obj, resource_version: str | None) -> None:
        if resource_version is None:
            return
        have = old["metadata"].get("resourceVersion")
        if str(resource_version) != have:
            raise Conflict(
                f"{old['kind']} {old['metadata']['name']}: the object has been modified "
                f"(resourceVersion {have}, expected {resource_version}); read it again and retry"
            )

    def _rv_now(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key='rv'").fetchone()
        return int(row[0]) if row else 0

    def _next_rv(self) -> int:
        rv = self._rv_now() + 1
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('rv', ?)", (rv,))
        return rv

    def _ensure_namespace(self, ns: str, events: _Events) -> None:
        if not self._exists("Namespace", "", ns):
            self._insert(
                "Namespace",
                "",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}, "spec": {}},
                events,
                status={"phase": "Active"},
            )

    def _insert(self, kind: str, ns: str, obj: Obj, events: _Events, status: Obj | None = None) -> None:
        meta = obj["metadata"]
        rv = self._next_rv()
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339(self.clock)
        meta["resourceVersion"] = str(rv)
        for k in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(k, None)
        if "spec" in obj or kind in STATUS_KINDS:
            meta["generation"] = 1
        if status is not None:
            obj["status"] = status
        body = json.dumps(obj, separators=(",", ":"))
        self._db.execute(
            "INSERT INTO objects (kind, namespace, name, uid, rv, created_rv, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (kind, ns, meta["name"], meta["uid"], rv, rv, body),
        )
        self._set_owners(kind, ns, meta["name"], meta.get("ownerReferences"))
        events.append((kind, ns, "ADDED", body))

    def _write(
        self,
        kind: str,
        ns: str,
        old: Obj,
        new: Obj,
        subresource: str | None,
        events: _Events,
    ) -> Obj:
        if not isinstance(new.get("metadata"), dict):
            raise Invalid(f"{kind} {old['metadata']['name']}: metadata must be a mapping")
        meta = new["metadata"]
        old_meta = old["metadata"]
        # Identity and bookkeeping belong to the store, whatever the writer sent.
        for k in ("name", "namespace", "uid", "creationTimestamp", "generation"):
            if k in old_meta:
                meta[k] = old_meta[k]
            else:
                meta.pop(k, None)
        new["kind"] = kind
        new["apiVersion"] = new.get("apiVersion") or old.get("apiVersion")
        if kind in STATUS_KINDS:
            if subresource == "status":
                # A status write changes status only: spec and metadata stay as they were.
                kept = copy.deepcopy(old)
                kept["status"] = new.get("status") or {}
                new = kept
                meta = new["metadata"]
            else:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
        if subresource != "status" and "generation" in meta and old.get("spec") != new.get("spec"):
            meta["generation"] = int(old_meta.get("generation") or 1) + 1
        new_cmp = {k: v for k, v in new.items()}
        new_cmp["metadata"] = {k: v for k, v in meta.items() if k != "resourceVersion"}
        old_cmp = {k: v for k, v in old.items()}
        old_cmp["metadata"] = {k: v for k, v in old_meta.items() if k != "resourceVersion"}
        if new_cmp == old_cmp:
            # Nothing changed: like the API server, no new resourceVersion and no watch event.
            return old
        rv = self._next_rv()
        meta["resourceVersion"] = str(rv)
        body = json.dumps(new, separators=(",", ":"))
        self._db.execute(
            "UPDATE objects SET rv=?, body=? WHERE kind=? AND namespace=? AND name=?",
            (rv, body, kind, ns, meta["name"]),
        )
        if old_meta.get("ownerReferences") != meta.get("ownerReferences"):
            self._set_owners(kind, ns, meta["name"], meta.get("ownerReferences"))
        events.append((kind, ns, "MODIFIED", body))
        return new

    def _set_owners(self, kind: str, ns: str, name: str, refs: Any) -> None:
        self._db.execute("DELETE FROM owners WHERE kind=? AND namespace=? AND name=?", (kind, ns, name))
        for ref in refs or []:
            uid = ref.get("uid") if isinstance(ref, dict) else None
            if uid:
                self._db.execute(
                    "INSERT INTO owners (owner_uid, kind, namespace, name) VALUES (?, ?, ?, ?)",
                    (uid, kind, ns, name),
                )

    def _delete_tree(self, obj: Obj, deleted: _Objs, events: _Events) -> None:
        kind = obj["kind"]
        meta = obj["metadata"]
        ns = self._ns(kind, meta.get("namespace"))
        name = meta["name"]
        cur = self._db.execute(
            "DELETE FROM objects WHERE kind=? AND namespace=? AND name=?", (kind, ns, name)
        )
        if cur.rowcount == 0:
            return  # already deleted through another owner in this transaction
        self._db.execute("DELETE FROM owners WHERE kind=? AND namespace=? AND name=?", (kind, ns, name))
        rv = self._next_rv()
        meta["resourceVersion"] = str(rv)
        deleted.append(obj)
        events.append((kind, ns, "DELETED", json.dumps(obj, separators=(",", ":"))))
        children = [
            json.loads(r[0])
            for r in self._db.execute(
                "SELECT o.body FROM owners w JOIN objects o "
                "ON o.kind=w.kind AND o.namespace=w.namespace AND o.name=w.name "
                "WHERE w.owner_uid=? ORDER BY o.created_rv",
                (meta["uid"],),
            ).fetchall()
        ]
        if kind == "Namespace":
            children += [
                json.loads(r[0])
                for r in self._db.execute(
                    "SELECT body FROM objects WHERE namespace=? ORDER BY created_rv", (name,)
                ).fetchall()
            ]
        for child in children:
            self._delete_tree(child, deleted, events)

    def _trim_events(self, ns: str, events: _Events) -> None:
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM objects WHERE kind='Event' AND namespace=?", (ns,)
        ).fetchone()
        excess = int(count) - self.event_cap
        if excess <= 0:
            return
        rows = self._db.execute(
            "SELECT body FROM objects WHERE kind='Event' AND namespace=? ORDER BY created_rv LIMIT ?",
            (ns, excess),
        ).fetchall()
        for (body,) in rows:
            self._delete_tree(json.loads(body), [], events)


__all__ = [
    "CLUSTER_SCOPED",
    "STATUS_KINDS",
    "Store",
    "Subscription",
    "labels_match",
    "now_rfc3339",
    "random_suffix",
]
