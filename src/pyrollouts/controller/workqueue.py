"""A work queue of rollout keys ("namespace/name"), in the manner of client-go's.

A key is queued at most once; a key being worked on is never handed to a second worker, and a key
added meanwhile is queued again once the worker is done. Failures back off per key exponentially
(1 ms doubling to 10 s); ``add_after`` schedules timed work (scale-down deadlines, auto-promotion);
``add_soon`` queues a key once a coalescing window has passed, however many times it is called
meanwhile (the controller's watch events, issue 15).
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import itertools


class WorkQueue:
    def __init__(self, base_backoff: float = 0.001, max_backoff: float = 10.0, coalesce: float = 0.0) -> None:
        self._coalesce = coalesce
        self._soon: set[str] = set()
        self._queue: collections.deque[str] = collections.deque()  # popped from the left in O(1)
        self._queued: set[str] = set()
        self._processing: set[str] = set()
        self._dirty: set[str] = set()
        self._failures: dict[str, int] = {}
        self._timers: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._cond = asyncio.Condition()
        self._base = base_backoff
        self._max = max_backoff
        self._shutdown = False
        self._timer_task: asyncio.Task[None] | None = None
        self._timer_wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._queue)

    async def add(self, key: str) -> None:
        async with self._cond:
            self._add_locked(key)

    def _add_locked(self, key: str) -> None:
        if self._shutdown:
            return
        if key in self._processing:
            self._dirty.add(key)
            return
        if key not in self._queued:
            self._queued.add(key)
            self._queue.append(key)
            self._cond.notify()

    async def add_soon(self, key: str) -> None:
        """Queue the key once the coalescing window has passed (at once without one); the changes
        that arrive for it meanwhile make one reconcile, not one each."""
        if self._coalesce <= 0:
            await self.add(key)
            return
        if key in self._soon or key in self._queued:
            return
        self._soon.add(key)
        self.add_after(key, self._coalesce)

    def add_after(self, key: str, delay: float) -> None:
        """Queue the key after ``delay`` seconds (at once if delay <= 0)."""
        loop = asyncio.get_running_loop()
        heapq.heappush(self._timers, (loop.time() + max(0.0, delay), next(self._seq), key))
        if self._timer_task is None:
            self._timer_task = loop.create_task(self._run_timers())
        self._timer_wake.set()

    def add_rate_limited(self, key: str) -> float:
        """Queue the key again after its per-key backoff; returns the delay used."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        delay = min(self._max, self._base * (2**n))
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        """Reset the key's failure backoff (after a successful reconcile)."""
        self._failures.pop(key, None)

    def failures(self, key: str) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> str | None:
        """The next key to work on (None once shut down). Call done(key) afterwards."""
        async with self._cond:
            while not self._queue and not self._shutdown:
                await self._cond.wait()
            if self._shutdown:
                return None
            key = self._queue.popleft()
            self._queued.discard(key)
            self._processing.add(key)
            return key

    async def done(self, key: str) -> None:
        async with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self._add_locked(key)

    async def shutdown(self) -> None:
        async with self._cond:
            self._shutdown = True
            self._cond.notify_all()
        if self._timer_task is not None:
            self._timer_task.cancel()

    async def _run_timers(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._shutdown:
            self._timer_wake.clear()
            now = loop.time()
            while self._timers and self._timers[0][0] <= now:
                _, _, key = heapq.heappop(self._timers)
                self._soon.discard(key)
                await self.add(key)
            timeout = self._timers[0][0] - now if self._timers else None
            try:
                await asyncio.wait_for(self._timer_wake.wait(), timeout)
            except TimeoutError:
                pass
