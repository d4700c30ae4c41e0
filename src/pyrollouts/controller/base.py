"""What the rollout and AnalysisRun controllers share: one kind's keys, Argo's sharding rule, a
work queue with workers, and the watch-then-list start that misses no change."""

from __future__ import annotations

import asyncio

from ..model import names
from ..model.cluster import Cluster, Obj
from .clock import Clock
from .workqueue import WorkQueue


def key_of(obj: Obj) -> str:
    """``namespace/name`` of an object (its work-queue key)."""
    meta = obj.get("metadata", {})
    return f"{meta.get('namespace', 'default')}/{meta.get('name', '')}"


class QueueController:
    """A controller of one ``kind``: subclasses give ``_watch_loop`` (route changes to keys) and
    ``_worker`` (take keys off ``queue`` until it shuts down). ``run()`` until cancelled."""

    kind = ""

    def __init__(
        self,
        cluster: Cluster,
        clock: Clock | None,
        *,
        namespace: str | None,
        instance_id: str | None,
        workers: int,
        coalesce: float = 0.0,
    ) -> None:
        self.cluster = cluster
        self.clock = clock or Clock()
        self.namespace = namespace
        self.instance_id = instance_id or None
        self.workers = max(1, workers)
        self.queue = WorkQueue(coalesce=coalesce)
        self._keys: set[str] = set()  # every object of the kind known to be in scope
        self._ready = asyncio.Event()

    def in_scope(self, obj: Obj) -> bool:
        """Argo's sharding: objects labelled with an instance id belong to that controller only."""
        labels = obj.get("metadata", {}).get("labels") or {}
        if self.instance_id:
            return labels.get(names.INSTANCE_ID_LABEL) == self.instance_id
        return names.INSTANCE_ID_LABEL not in labels

    @property
    def ready(self) -> asyncio.Event:
        """Set once the initial list has been queued."""
        return self._ready

    async def requeue_all(self) -> None:
        """Queue every known object (after the clock moved, or on a periodic resync)."""
        for key in list(self._keys):
            await self.queue.add(key)

    async def _watch_loop(self) -> None:
        raise NotImplementedError

    async def _worker(self) -> None:
        raise NotImplementedError

    async def run(self) -> None:
        """Watch, list, and work until cancelled."""
        watch_task = asyncio.create_task(self._watch_loop())
        await asyncio.sleep(0)  # let the watch subscribe before listing, so no change is missed
        for obj in await self.cluster.list(self.kind, self.namespace):
            key = key_of(obj)
            self._keys.add(key)
            await self.queue.add(key)
        self._ready.set()
        workers = [asyncio.create_task(self._worker()) for _ in range(self.workers)]
        try:
            await asyncio.gather(watch_task, *workers)
        finally:
            await self.queue.shutdown()
            for t in [watch_task, *workers]:
                t.cancel()
            await asyncio.gather(watch_task, *workers, return_exceptions=True)
