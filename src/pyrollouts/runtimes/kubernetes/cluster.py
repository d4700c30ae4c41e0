"""``KubeCluster``: the ``Cluster`` protocol over the Kubernetes API (lightkube's async client).

Objects go in and out as Kubernetes JSON dicts. Single-object requests (get, create, patch, delete)
go through ``rest.RestClient`` over the client's own connection pool; lists and the caches' watches
through lightkube. Writes are JSON merge patches; a resourceVersion
precondition is sent inside the patch body (``metadata.resourceVersion``), which makes the API
server answer 409 when the object moved on, exactly like an update. Status is written only through
the ``/status`` subresource. The API server's refusals map onto the protocol's errors: 404
NotFound, 409 Conflict, 400/422 Invalid (carrying the server's own message, which names the field).

Reads of ReplicaSets, Services and Pods are served from the informers' caches once they have
synced. The Rollout is read from the API server, because its resourceVersion is the precondition of
our status write, except for the controller (``cached_rollout_reads``): there a GET at the start of
every reconcile was a sixth of its CPU at scale (docs/benchmarks.md), so it reads the cache's copy
whenever that copy is not older than the newest version this client has seen (from its own writes'
responses and its live reads); after a write of ours the cache has not received yet, or a lost race,
it reads live once. Argo's controller plans from its informer's copy alone.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from lightkube import AsyncClient, KubeConfig
from lightkube.config.client_adapter import user_auth, verify_cluster
from lightkube.config.kubeconfig import SingleConfig
from lightkube.core.exceptions import ApiError, ConfigError

from ...model.cluster import ClusterError, NotFound, Obj, WatchEvent
from ...model.owners import owned_by_uid
from .informer import InformerSet, json_copy, matches, name_stem
from .resources import NAMESPACED, kind_of, resource_of
from .rest import RestClient, error_for, path_of
from .transport import AiohttpTransport, user_agent

log = logging.getLogger("pyrollouts.kubernetes")

FIELD_MANAGER = "rollouts-controller"

#: The kinds the caches hold by default (the dashboard's).
CACHED_KINDS = ("Rollout", "ReplicaSet", "Service", "Pod")
#: The controller's: AnalysisRuns too (a run's phase moving requeues its Rollout), and Deployments
#: (a change to a spec.workloadRef Deployment is a new revision of the Rollouts that name it; Argo's
#: controller watches them too). Without them such a change waited for the next resync.
CONTROLLER_CACHED_KINDS = (*CACHED_KINDS, "AnalysisRun", "Deployment")
#: Read from the API server on every get, never from a cache: the objects a reconcile starts from
#: and then writes with their resourceVersion as a precondition (the Rollout from the cache where
#: ``cached_rollout_reads`` allows it, see the module's docstring).
FRESH_KINDS = frozenset({"Rollout", "AnalysisRun"})


class KubeConfigError(ClusterError):
    """The kubeconfig cannot be used (missing file, unknown context); the message says what to do."""


def load_config(kubeconfig: str | None = None, context: str | None = None) -> SingleConfig:
    """The client configuration, found as kubectl finds it: ``kubeconfig`` (else $KUBECONFIG, else
    ~/.kube/config, else the in-cluster service account), then ``context`` (else the current one)."""
    try:
        if kubeconfig:
            path = Path(kubeconfig).expanduser()
            if not path.is_file():
                raise KubeConfigError(f"--kubeconfig {kubeconfig}: no such file")
            conf = KubeConfig.from_file(path)
        else:
            conf = KubeConfig.from_env()
        single = conf.get(context)
    except ConfigError as exc:
        where = (
            f"--kubeconfig {kubeconfig}" if kubeconfig else "the kubeconfig ($KUBECONFIG or ~/.kube/config)"
        )
        raise KubeConfigError(f"{where}: {exc}; pass --kubeconfig FILE and --context NAME") from None
    if single is None:
        raise KubeConfigError("the kubeconfig has no current context; pass --context NAME")
    return single


class KubeClient(AsyncClient):
    """lightkube's async client (lists, watches, the CLI's and the leader election's calls) with
    ``rest``: the single-object requests ``KubeCluster`` sends, over the same connection pool."""

    def __init__(self, config: SingleConfig, *, field_manager: str, transport: AiohttpTransport) -> None:
        super().__init__(config, field_manager=field_manager, transport=transport)
        self.rest = RestClient(config.cluster.server, transport, user_auth(config.user), field_manager)


def make_client(
    kubeconfig: str | None = None, context: str | None = None, *, field_manager: str = FIELD_MANAGER
) -> KubeClient:
    """An async client for the kubeconfig and context (see ``load_config``), sending its requests
    over aiohttp (``transport.AiohttpTransport``: a third less CPU per request than httpx's own
    transport); the server's certificate is checked against the kubeconfig's CA as lightkube does."""
    config = load_config(kubeconfig, context)
    assert config.user is not None  # load_config's SingleConfig always has one
    ssl_context = verify_cluster(config.cluster, config.user, config.abs_file)
    transport = AiohttpTransport(ssl_context, user_agent())
    return KubeClient(config, field_manager=field_manager, transport=transport)


def translate(exc: ApiError, what: str) -> ClusterError:
    """The protocol's error for a lightkube API error, keeping the API server's message."""
    code = getattr(exc.status, "code", None)
    message = getattr(exc.status, "message", None) or str(exc)
    return error_for(code if isinstance(code, int) else 0, message, what)


def _plain(item: Any) -> Obj:
    return dict(item.to_dict() if hasattr(item, "to_dict") else item)


class KubeCluster:
    """The Kubernetes runtime's Cluster. ``start()`` the caches before handing it to a controller;
    without them every read goes to the API server (fine for the CLI)."""

    def __init__(
        self,
        client: KubeClient,
        *,
        namespace: str | None = None,
        cache: bool = True,
        on_event: Callable[[Obj], None] | None = None,
        cached_kinds: Sequence[str] = CACHED_KINDS,
        cached_rollout_reads: bool = False,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.cached_kinds = tuple(cached_kinds)
        self.cached_rollout_reads = cached_rollout_reads
        #: (namespace, name) -> the newest resourceVersion of that Rollout this client has seen ("":
        #: a write of ours lost a race, read it live next). A cached copy with another version is
        #: either behind our own write or ahead of it: both are read live once.
        self._rollout_seen: dict[tuple[str, str], str] = {}
        self.informers: InformerSet | None = (
            InformerSet(client, self.cached_kinds, namespace) if cache else None
        )
        #: Called with every Event this cluster created (the metrics count them).
        self.on_event = on_event
        #: The requests sent to the API server, as "verb Kind" (list, get, create, patch, delete);
        #: the caches' own list and watch are not counted. Tests read it.
        self.requests: collections.Counter[str] = collections.Counter()

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self, timeout: float | None = 60.0) -> None:
        """Start the caches and wait for their first list."""
        if self.informers is not None:
            self.informers.start()
            await self.informers.wait_synced(timeout)

    async def close(self) -> None:
        """Stop the caches and close the client."""
        if self.informers is not None:
            await self.informers.stop()
        await self.client.close()

    def _cache_for(self, kind: str, namespace: str | None) -> Any:
        if self.informers is None or kind == "Rollout":
            return None
        inf = self.informers.informers.get(kind)
        if inf is None or not inf.synced.is_set() or not inf.covers(namespace):
            return None
        return inf

    # -- the Cluster protocol ----------------------------------------------------------------
    async def get(self, kind: str, namespace: str, name: str) -> Obj:
        """The object; raises NotFound."""
        if kind == "Rollout" and self.cached_rollout_reads:
            cached = self._current_cached_rollout(namespace, name)
            if cached is not None:
                return cached
        cache = None if kind in FRESH_KINDS else self._cache_for(kind, namespace)
        if cache is not None:
            obj = cache.get(namespace, name)
            if obj is None:
                raise NotFound(f"{kind} {namespace}/{name} not found")
            return dict(obj)
        self.requests[f"get {kind}"] += 1
        try:
            out = await self.client.rest.request(
                "GET", path_of(kind, self._ns(kind, namespace), name), f"{kind} {namespace}/{name}"
            )
        except ClusterError:
            if kind == "Rollout":
                self._rollout_seen.pop((namespace, name), None)
            raise
        out = self._with_kind(kind, out)
        self._saw_rollout(kind, namespace, name, out)
        return out

    async def get_readonly(self, kind: str, namespace: str, name: str) -> Obj:
        """``OwnerIndexedCluster.get_readonly``: from the cache without a copy where ``get`` would
        read the cache; otherwise ``get``."""
        cache = None if kind in FRESH_KINDS or kind == "Rollout" else self._cache_for(kind, namespace)
        if cache is None:
            return await self.get(kind, namespace, name)
        obj = cache.get(namespace, name, copy=False)
        if obj is None:
            raise NotFound(f"{kind} {namespace}/{name} not found")
        return obj  # type: ignore[no-any-return]

    def _current_cached_rollout(self, namespace: str, name: str) -> Obj | None:
        """The cache's copy of a Rollout when it is the newest version this client has seen (see
        ``_rollout_seen``); None: read it from the API server."""
        inf = self.informers.informers.get("Rollout") if self.informers is not None else None
        if inf is None or not inf.synced.is_set() or not inf.covers(namespace):
            return None
        cached = inf.get(namespace, name, copy=False)
        if cached is None:
            return None
        seen = self._rollout_seen.get((namespace, name))
        if seen is not None and seen != cached.get("metadata", {}).get("resourceVersion"):
            return None  # (checked before the copy: a copy read live anyway is wasted)
        obj = json_copy(cached)
        obj.setdefault("kind", "Rollout")
        return obj

    def _saw_rollout(self, kind: str, namespace: str, name: str, obj: Obj) -> None:
        if kind == "Rollout" and self.cached_rollout_reads:
            self._rollout_seen[(namespace, name)] = str(obj.get("metadata", {}).get("resourceVersion", ""))

    async def list(
        self, kind: str, namespace: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[Obj]:
        """Objects of a kind, optionally in one namespace and matching all the given labels."""
        cache = self._cache_for(kind, namespace)
        if cache is not None:
            return list(cache.list(namespace, labels))
        ns: str | None = None
        if kind in NAMESPACED:
            ns = namespace if namespace is not None else (self.namespace or "*")
        self.requests[f"list {kind}"] += 1
        try:
            out = [
                self._with_kind(kind, _plain(i))
                async for i in self.client.list(resource_of(kind), namespace=ns, labels=dict(labels or {}))
            ]
        except ApiError as exc:
            raise translate(exc, f"list {kind}") from None
        return [o for o in out if matches(o, labels)]

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
        """The objects of one owner (``OwnerIndexedCluster``): from the cache's owner and name-stem
        indexes, so a reconcile reads only its Rollout's objects and makes no list call; without a
        synced cache, one list of the namespace filtered here. ``readonly``: the cached objects
        themselves, not copies."""
        cache = self._cache_for(kind, namespace)
        if cache is not None:
            return list(cache.owned(namespace, owner_uids, also_named, labels, copy=not readonly))
        return [
            o
            for o in await self.list(kind, namespace, labels)
            if any(owned_by_uid(o, uid) for uid in owner_uids)
            or (also_named and name_stem(str(o.get("metadata", {}).get("name", ""))) == also_named)
        ]

    async def create(self, kind: str, obj: Obj) -> Obj:
        """Create; raises Conflict if the name is taken, Invalid if refused. Returns the stored object."""
        body = dict(obj)
        meta = body.get("metadata") or {}
        body.setdefault("apiVersion", kind_of(kind).api_version)  # (ValueError for an unknown kind)
        path = path_of(kind, self._ns(kind, meta.get("namespace")))
        body.setdefault("kind", kind)
        self.requests[f"create {kind}"] += 1
        what = f"create {kind} {meta.get('namespace', '')}/{meta.get('name', '')}"
        out = self._with_kind(kind, await self.client.rest.request("POST", path, what, body=body))
        if kind == "Event" and self.on_event is not None:
            try:
                self.on_event(out)
            except Exception:  # counting must never fail a write
                log.exception("on_event hook failed")
        return out

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
        if subresource is not None and subresource != "status":
            raise ValueError(f"unsupported subresource {subresource!r}: only 'status'")
        body = dict(patch)
        if resource_version is not None:
            # The precondition rides in the body: the API server compares it like an update's.
            body["metadata"] = {**(body.get("metadata") or {}), "resourceVersion": resource_version}
        self.requests[f"patch {kind}"] += 1
        try:
            out = await self.client.rest.request(
                "PATCH",
                path_of(kind, self._ns(kind, namespace), name, subresource),
                f"patch {kind} {namespace}/{name}",
                body=body,
                content_type="application/merge-patch+json",
            )
        except ClusterError:
            if kind == "Rollout" and self.cached_rollout_reads:
                self._rollout_seen[(namespace, name)] = ""  # lost a race, or gone: read live next
            raise
        result = self._with_kind(kind, out)
        self._saw_rollout(kind, namespace, name, result)
        return result

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        """Delete (cascading to owned objects in the background); raises NotFound."""
        self.requests[f"delete {kind}"] += 1
        await self.client.rest.request(
            "DELETE",
            path_of(kind, self._ns(kind, namespace), name),
            f"delete {kind} {namespace}/{name}",
            params={"propagationPolicy": "Background"},
        )

    def watch(self, kinds: Sequence[str], namespace: str | None = None) -> AsyncIterator[WatchEvent]:
        """Every change to objects of these kinds from this call on, in order, from the caches.
        The caches must be started (``start()``); kinds they do not hold are refused."""
        if self.informers is None:
            raise ClusterError("watch needs the caches: create KubeCluster(cache=True) and start() it")
        unknown = set(kinds) - set(self.cached_kinds)
        if unknown:
            raise ValueError(
                f"cannot watch {sorted(unknown)}: the caches hold {', '.join(self.cached_kinds)}"
            )
        return self.informers.subscribe(kinds, namespace)

    # -- helpers -----------------------------------------------------------------------------
    def _ns(self, kind: str, namespace: str | None) -> str | None:
        if kind not in NAMESPACED:
            return None
        return namespace or self.namespace or "default"

    @staticmethod
    def _with_kind(kind: str, obj: Obj) -> Obj:
        # Single-object responses carry kind; list items do not: add it so both look the same.
        obj.setdefault("kind", kind)
        return obj
