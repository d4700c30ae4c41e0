"""Where the dashboard's data comes from: a ``Cluster``, a clock and the info builder.

Everything here works on either runtime (the local store or the Kubernetes API): it only lists and
gets objects and follows ``Cluster.watch``. Streams re-read the objects after every change (a burst
of changes is coalesced) and also once a second, so a change missed between a watch and a read
can never leave a page stale; an unchanged view is not sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any, Protocol

from ..model import owners
from ..model.cluster import Cluster, ClusterError, Obj, WatchEvent
from ..service.verbs import VerbError, get_rollout
from .rolloutinfo import InfoBuilder, argo_info

log = logging.getLogger("pyrollouts.web")

#: Kinds whose changes may change a Rollout's tree or its event log.
WATCHED_KINDS = ("Rollout", "ReplicaSet", "Pod", "Service", "AnalysisRun", "Event")
#: What every runtime's watch carries (Kubernetes' caches hold the controller's kinds only; the
#: once-a-second re-read picks the others up there).
CORE_KINDS = ("Rollout", "ReplicaSet", "Pod", "Service")

#: How many of a rollout's events the log keeps (newest last).
EVENT_LIMIT = 50


class ClockLike(Protocol):
    def now(self) -> datetime: ...


def _event_time(ev: Obj) -> str:
    return str(
        ev.get("lastTimestamp")
        or ev.get("eventTime")
        or ev.get("firstTimestamp")
        or ev.get("metadata", {}).get("creationTimestamp")
        or ""
    )


class Source:
    """Reads RolloutInfo, events and namespaces from a Cluster.

    ``scoped``: serve ``namespace`` only (a dashboard whose credentials reach that namespace alone):
    no Namespace list is made, and a read of another namespace is a VerbError 403 before the cluster
    is asked, so it never turns into a refused API call."""

    def __init__(
        self,
        cluster: Cluster,
        clock: ClockLike,
        info: InfoBuilder,
        *,
        namespace: str = "default",
        scoped: bool = False,
    ) -> None:
        self.cluster = cluster
        self.clock = clock
        self.info_builder = info
        self.default_namespace = namespace
        self.scoped = scoped
        self.closed = False
        #: namespaces whose AnalysisRuns could not be listed (logged once each)
        self.runs_unlisted: set[str] = set()

    def check_namespace(self, ns: str) -> None:
        """VerbError 403 when this source is scoped to another namespace than ``ns``."""
        if self.scoped and ns != self.default_namespace:
            raise VerbError(
                403,
                f"namespace '{ns}' is not served: this dashboard serves namespace "
                f"'{self.default_namespace}' only (started with --namespace {self.default_namespace})",
            )

    async def rollout(self, ns: str, name: str) -> Obj:
        """The Rollout object; VerbError 404 naming it when it does not exist (403 outside the scope)."""
        self.check_namespace(ns)
        return await get_rollout(self.cluster, ns, name)

    async def info(self, ns: str, name: str) -> Obj:
        """RolloutInfo of one Rollout."""
        ro = await self.rollout(ns, name)
        rss = await self.cluster.list("ReplicaSet", ns)
        pods = await self.cluster.list("Pod", ns)
        runs = await self.analysis_runs(ns)
        return argo_info(self.info_builder(ro, rss, pods, self.clock.now(), runs))

    async def analysis_runs(self, ns: str) -> list[Obj]:
        """The namespace's AnalysisRuns; none when this dashboard may not read them (a cluster
        without the CRD, or credentials without the right): the tree is shown without them."""
        try:
            runs = await self.cluster.list("AnalysisRun", ns)
        except ClusterError as exc:
            if ns not in self.runs_unlisted:  # once: the views are re-read every second
                self.runs_unlisted.add(ns)
                log.warning("AnalysisRuns of namespace %s are not shown: %s", ns, exc)
            return []
        self.runs_unlisted.discard(ns)
        return runs

    async def analysis_run(self, ns: str, rollout: str, name: str) -> Obj:
        """The AnalysisRun ``name`` of the Rollout ``rollout`` (listed, not got: the dashboard's
        role grants ``list`` on runs). VerbError 404 naming what is missing: the rollout, or a run
        of that name it owns; 403 when this dashboard may not read runs at all."""
        ro = await self.rollout(ns, rollout)
        try:
            runs = await self.cluster.list("AnalysisRun", ns)
        except ClusterError as exc:
            raise VerbError(403, f"AnalysisRuns of namespace '{ns}' cannot be read here: {exc}") from exc
        for run in owners.owned(runs, {"kind": "Rollout", **ro}):
            if (run.get("metadata") or {}).get("name") == name:
                return dict(run)
        raise VerbError(404, f"analysisrun '{name}' of rollout '{rollout}' not found in namespace '{ns}'")

    async def infos(self, ns: str) -> list[Obj]:
        """RolloutInfo of every Rollout in a namespace, by name."""
        self.check_namespace(ns)
        ros = await self.cluster.list("Rollout", ns)
        rss = await self.cluster.list("ReplicaSet", ns)
        pods = await self.cluster.list("Pod", ns)
        runs = await self.analysis_runs(ns)
        now = self.clock.now()
        out = [argo_info(self.info_builder(ro, rss, pods, now, runs)) for ro in ros]
        return sorted(out, key=lambda i: str(i["objectMeta"]["name"]))

    async def events(self, ns: str, name: str) -> list[Obj]:
        """The Rollout's events, oldest first, at most EVENT_LIMIT."""
        self.check_namespace(ns)
        out = []
        for ev in await self.cluster.list("Event", ns):
            inv = ev.get("involvedObject") or {}
            if inv.get("kind") == "Rollout" and inv.get("name") == name:
                out.append(
                    {
                        "time": _event_time(ev),
                        "type": ev.get("type", "Normal"),
                        "reason": ev.get("reason", ""),
                        "message": ev.get("message", ""),
                        "count": int(ev.get("count") or 1),
                    }
                )
        out.sort(key=lambda e: e["time"])
        return out[-EVENT_LIMIT:]

    async def namespaces(self) -> list[str]:
        """Namespaces that exist (plus those holding Rollouts, for runtimes without Namespace objects);
        a scoped source's own namespace alone, without asking the cluster."""
        if self.scoped:
            return [self.default_namespace]
        found: set[str] = set()
        with contextlib.suppress(Exception):
            found |= {n["metadata"]["name"] for n in await self.cluster.list("Namespace")}
        found |= {r["metadata"].get("namespace", "default") for r in await self.cluster.list("Rollout")}
        found.add(self.default_namespace)
        return sorted(found)

    def close(self) -> None:
        """End every stream (the server is shutting down)."""
        self.closed = True

    async def changes(
        self, ns: str, alive: Callable[[], bool] = lambda: True, every: float = 1.0
    ) -> AsyncIterator[None]:
        """Yield once at the start, then after each (coalesced) change in the namespace, and at
        least every ``every`` seconds. Ends when ``alive()`` turns false (the client went away:
        checked each time, so a stream that has nothing to send still notices within ``every``
        seconds) or the source is closed, or when the caller stops iterating. Outside a scoped
        source's namespace: VerbError 403 (callers check first, before starting a response)."""
        self.check_namespace(ns)
        flag = asyncio.Event()
        # Subscribe now (not in the task) so that nothing between this call and the first read is
        # missed. A runtime that cannot watch Events (Kubernetes' caches hold only the controller's
        # kinds) is watched without them; the once-a-second re-read still picks new events up.
        try:
            stream: AsyncIterator[WatchEvent] | None = self.cluster.watch(WATCHED_KINDS, ns)
        except ValueError:
            stream = self.cluster.watch(CORE_KINDS, ns)
        except ClusterError as exc:
            log.info("no watch on this cluster (%s): re-reading every %.0f s", exc, every)
            stream = None

        async def follow() -> None:
            if stream is not None:
                async for _ in stream:
                    flag.set()

        follower = asyncio.create_task(follow())
        try:
            yield None
            while alive() and not self.closed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(flag.wait(), every)
                flag.clear()
                await asyncio.sleep(0.05)  # coalesce a burst of changes into one read
                if alive() and not self.closed:
                    yield None
        finally:
            follower.cancel()
            with contextlib.suppress(BaseException):
                await follower
            await _end(stream)


async def _end(stream: Any) -> None:
    """Unsubscribe: a watch left open keeps receiving (and queueing) every change of the store."""
    if stream is None:
        return
    close = getattr(stream, "close", None)
    if callable(close):
        close()
        return
    aclose = getattr(stream, "aclose", None)
    if callable(aclose):
        with contextlib.suppress(Exception):
            await aclose()


def fingerprint(data: Any) -> str:
    """A stable key of a view without its timestamp, to skip sending an unchanged view."""
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k != "now"}
    return json.dumps(data, sort_keys=True, default=str)
