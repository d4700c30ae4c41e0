"""Requests per second and error rate per revision, from the local proxy's counters.

The proxy keeps cumulative counters per (Service, pod-template hash) (``ProxyManager.stats()``).
A sampler reads them once a second while a page is watching and turns the differences into rates,
keeping the last minute per series; a rollout's chart sums its active and preview Services.
Kubernetes has no such counters here, so there the sampler is absent and the chart is not shown.
A canary's page also shows the split those counters measure: each revision's share of the
requests through the stable Service over the last few seconds (``shares``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("pyrollouts.web.traffic")

StatsFn = Callable[[], Awaitable[Mapping[str, Any]]]


@dataclass
class _Series:
    requests: int = 0
    errors: int = 0
    # (time, requests per second, error rate, requests counted in this interval)
    points: deque[tuple[float, float, float, int]] = field(default_factory=lambda: deque(maxlen=60))


class TrafficSampler:
    """Samples ``stats()`` every ``interval`` seconds while anyone uses it (``touch``)."""

    def __init__(self, stats: StatsFn, interval: float = 1.0, idle_after: float = 30.0) -> None:
        self._stats = stats
        self.interval = interval
        self.idle_after = idle_after
        self._series: dict[tuple[str, str], _Series] = {}
        self._task: asyncio.Task[None] | None = None
        self._last_use = 0.0
        self._last_sample: float | None = None

    def touch(self) -> None:
        """Note a reader; starts sampling if it is not running (it stops after ``idle_after``)."""
        self._last_use = time.monotonic()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Stop sampling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    async def _run(self) -> None:
        while time.monotonic() - self._last_use < self.idle_after:
            try:
                await self.sample()
            except Exception as exc:  # the proxy restarting must not end the dashboard's stream
                log.debug("proxy stats unavailable: %s", exc)
            await asyncio.sleep(self.interval)

    async def sample(self) -> None:
        """Read the counters once and append a rate point to every series."""
        data = await self._stats()
        now = time.monotonic()
        elapsed = (now - self._last_sample) if self._last_sample is not None else None
        self._last_sample = now
        for key, svc in (data.get("services") or {}).items():
            for rev, counters in (svc.get("revisions") or {}).items():
                requests = int(counters.get("requests") or 0)
                errors = int(counters.get("errors") or 0)
                series = self._series.get((key, rev))
                if series is None and elapsed is None:
                    # the first reading: what was counted before it is not a rate
                    self._series[(key, rev)] = _Series(requests, errors)
                    continue
                if series is None:
                    # a series the proxy started counting since the last reading: from zero, so
                    # a new revision's first requests are not lost
                    series = self._series[(key, rev)] = _Series()
                d_req = max(0, requests - series.requests)
                d_err = max(0, errors - series.errors)
                series.requests, series.errors = requests, errors
                if elapsed:
                    err = (d_err / d_req) if d_req else 0.0
                    series.points.append((time.time(), d_req / elapsed, err, d_req))

    def for_services(self, services: list[str], revision_of: Mapping[str, int]) -> list[dict[str, Any]]:
        """Per revision (newest first): the summed rps and the error rate over the given Services
        ("ns/name"); ``revision_of`` maps a pod-template hash to its revision number."""
        merged: dict[str, dict[float, list[float]]] = {}
        for (key, rev), series in self._series.items():
            if key not in services or rev not in revision_of:
                continue
            per_t = merged.setdefault(rev, {})
            for t, rps, err, _ in series.points:
                slot = per_t.setdefault(round(t), [0.0, 0.0])
                slot[0] += rps
                slot[1] += rps * err  # errors per second, divided back below
        out: list[dict[str, Any]] = []
        for rev, per_t in merged.items():
            points = [
                {"t": t, "rps": round(v[0], 3), "errorRate": round(v[1] / v[0], 4) if v[0] else 0.0}
                for t, v in sorted(per_t.items())
            ]
            out.append({"hash": rev, "revision": revision_of[rev], "points": points})
        out.sort(key=lambda s: -int(s["revision"]))
        return out

    def shares(self, services: list[str], revision_of: Mapping[str, int], window: float) -> dict[str, Any]:
        """The requests through the given Services ("ns/name") over the last ``window`` seconds,
        per revision (newest first) with its share of them: {"window", "requests", "revisions":
        [{hash, revision, requests, share}]}; ``share`` is a fraction, 0 when nothing came."""
        since = time.time() - window
        counted: dict[str, int] = {}
        for (key, rev), series in self._series.items():
            if key in services and rev in revision_of:
                n = sum(d for t, _, _, d in series.points if t >= since)
                counted[rev] = counted.get(rev, 0) + n
        total = sum(counted.values())
        rows = [
            {"hash": h, "revision": revision_of[h], "requests": n, "share": (n / total) if total else 0.0}
            for h, n in counted.items()
        ]
        rows.sort(key=lambda r: -int(r["revision"]))
        return {"window": window, "requests": total, "revisions": rows}

    def services_in(self, namespace: str) -> list[str]:
        """Every Service ("ns/name") of ``namespace`` the proxy has counted requests for."""
        return sorted({key for key, _ in self._series if key.startswith(namespace + "/")})
