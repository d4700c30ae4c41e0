"""The proxy's per-revision counters over time, so that traffic can be asked for over a window.

The proxy counts every answered request per (namespace, Service, revision) on its hot path and
keeps only running totals (``proxy/metrics.py``). This history lives in the server: it reads
those totals over the control socket (``ProxyManager.counters``) every ``interval`` seconds and
again when asked, and keeps a reading per series only when it changed: all of them for the last
two minutes, one every 10 s before that, for ``keep`` seconds (so a window longer than two
minutes may start up to 10 s early). The
traffic of the last N seconds is then the latest reading minus the reading at or before N seconds
ago, so a fresh burst of errors shows at once and older traffic does not dilute it. The proxy does
no extra work per request for any of this.

Counters restart at zero when the proxy does (another pid, or a shorter uptime): the history
starts again, and the proxy's start is a known zero for every series.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("pyrollouts.runtimes.local.traffichistory")

StatsFn = Callable[[], Awaitable[Mapping[str, Any]]]

#: Readings are taken this often (seconds) whether or not anyone asks.
SAMPLE_INTERVAL = 1.0
#: The time between readings is at least this many times what the last reading took.
READ_SHARE = 50
#: The longest window that can be asked for (seconds); older readings are dropped.
KEEP_SECONDS = 900.0
#: Every reading that changed a series is kept this long (seconds); older ones only every
#: ``COARSE_STEP`` seconds, so a busy series holds about 200 readings, not 900.
FINE_SECONDS = 120.0
COARSE_STEP = 10.0
#: Status class names, shared by every reading.
_CLASS_NAMES = {f"{i}xx": f"{i}xx" for i in range(10)}


@dataclass(frozen=True)
class Counters:
    """Running totals of one series at one reading."""

    requests: int = 0
    by_class: tuple[tuple[str, int], ...] = ()
    buckets: tuple[int, ...] = ()
    latency_sum: float = 0.0

    @property
    def errors5xx(self) -> int:
        return dict(self.by_class).get("5xx", 0)

    def minus(self, earlier: Counters) -> Counters:
        """What was counted between ``earlier`` and this reading."""
        before = dict(earlier.by_class)
        buckets = self.buckets
        if earlier.buckets and len(earlier.buckets) == len(buckets):
            buckets = tuple(a - b for a, b in zip(buckets, earlier.buckets, strict=True))
        return Counters(
            self.requests - earlier.requests,
            tuple((k, n - before.get(k, 0)) for k, n in self.by_class),
            buckets,
            self.latency_sum - earlier.latency_sum,
        )


ZERO = Counters()


@dataclass(frozen=True)
class Window:
    """The traffic of one series over a window: ``counts`` (differences of totals), ``totals``
    since the proxy started, and ``seconds``, the span the counts really cover (shorter than asked
    only when the server has not read the proxy for that long and the proxy is older)."""

    counts: Counters
    totals: Counters
    seconds: float


def _counters(raw: Mapping[str, Any]) -> Counters:
    # One revision of the proxy's /stats payload (a proxy older than /counters).
    by_class = raw.get("byClass") or {}
    return Counters(
        int(raw.get("requests") or 0),
        tuple(sorted((str(k), int(v)) for k, v in by_class.items())),
        tuple(int(n) for n in raw.get("latencyBuckets") or ()),
        float(raw.get("latencySumSeconds") or 0.0),
    )


def _readings(data: Mapping[str, Any]) -> Iterator[tuple[tuple[str, str, str], Counters]]:
    """Every series of a /counters payload (or of a /stats one) with its totals."""
    if "series" in data:
        for ns, svc, rev, classes, others, buckets, latency_sum in data["series"]:
            by_class = {_CLASS_NAMES[f"{i}xx"]: int(classes[i]) for i in range(1, 6)} | {
                _CLASS_NAMES.get(k, str(k)): int(v) for k, v in others.items()
            }
            counters = Counters(
                sum(by_class.values()),
                tuple(sorted(by_class.items())),
                tuple(int(n) for n in buckets),
                float(latency_sum),
            )
            yield (str(ns), str(svc), str(rev)), counters
        return
    for svc in (data.get("services") or {}).values():
        ns, name = str(svc.get("namespace", "")), str(svc.get("name", ""))
        for rev, raw in (svc.get("revisions") or {}).items():
            yield (ns, name, str(rev)), _counters(raw)


class _Readings:
    """One series' readings: ``fine`` has every change of the last FINE_SECONDS (and the reading
    before them), ``coarse`` a changed reading every COARSE_STEP seconds up to the history's
    length (and the one before). Both start with the series' first reading."""

    __slots__ = ("coarse", "fine")

    def __init__(self) -> None:
        self.fine: deque[tuple[float, Counters]] = deque()
        self.coarse: deque[tuple[float, Counters]] = deque()

    def add(self, t: float, counters: Counters, *, coarse: bool) -> None:
        if not self.fine or self.fine[-1][1] != counters:
            self.fine.append((t, counters))
        if not self.coarse or (coarse and self.coarse[-1][1] != counters):
            self.coarse.append((t, counters))

    def prune(self, fine_cutoff: float, coarse_cutoff: float) -> None:
        # Keep the newest reading older than a cutoff: it is the start of the longest window.
        while len(self.fine) > 1 and self.fine[1][0] <= fine_cutoff:
            self.fine.popleft()
        while len(self.coarse) > 1 and self.coarse[1][0] <= coarse_cutoff:
            self.coarse.popleft()


class TrafficHistory:
    """Readings of the proxy's counters; ``window`` answers for any series and window."""

    def __init__(
        self,
        stats: StatsFn,
        *,
        interval: float = SAMPLE_INTERVAL,
        keep: float = KEEP_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stats = stats
        self.interval = interval
        self.keep = keep
        self._clock = clock
        self._lock = asyncio.Lock()
        # (namespace, service, revision) -> readings (monotonic time, totals), oldest first: every
        # change in the last FINE_SECONDS, and one every COARSE_STEP seconds up to ``keep``.
        self._series: dict[tuple[str, str, str], _Readings] = {}
        self._last_coarse = float("-inf")
        self._incarnation: tuple[Any, ...] | None = None
        self._last_uptime = 0.0
        #: When the first reading of this proxy's life was taken, and when the proxy started.
        self._history_start = 0.0
        self._proxy_start = 0.0
        self._last_sample: float | None = None
        #: Histogram bucket bounds (seconds) of the proxy's latency histogram.
        self.bounds: tuple[float, ...] = ()

    async def run(self) -> None:
        """Read the proxy every ``interval`` seconds until cancelled (a proxy that does not answer
        is skipped: the next reading catches up)."""
        while True:
            started = time.perf_counter()
            try:
                await self.sample()
            except Exception as exc:
                log.debug("proxy counters unavailable: %s", exc)
            # A reading holds the proxy's event loop while it is made (about 6 ms per thousand
            # series): with very many series, read less often, so it stays near 2% of its time.
            took = time.perf_counter() - started
            await asyncio.sleep(max(self.interval, took * READ_SHARE))

    async def sample(self) -> float:
        """Read the proxy's counters once and record what changed; returns the reading's time.
        Raises what ``stats`` raises when the proxy cannot be read."""
        async with self._lock:
            data = await self._stats()
            now = self._clock()
            self._record(data, now)
            self._last_sample = now
            return now

    async def fresh(self) -> float:
        """A reading taken now, so that a question sees every request answered before it (one
        control call; analysis asks every few seconds at most); returns its time."""
        return await self.sample()

    def _record(self, data: Mapping[str, Any], now: float) -> None:
        uptime = float(data.get("uptimeSeconds") or 0.0)
        incarnation = (data.get("pid"),)
        first = incarnation != self._incarnation or uptime < self._last_uptime
        if first:
            # A new proxy (or the first reading): its counters began at zero when it started.
            self._series.clear()
            self._incarnation = incarnation
            self._history_start = now
            self._proxy_start = now - uptime
        self._last_uptime = uptime
        bounds = data.get("latencyBucketBounds")
        if isinstance(bounds, list):
            self.bounds = tuple(float(b) for b in bounds)
        previous = self._last_sample if not first else None
        coarse_due = first or now - self._last_coarse >= COARSE_STEP
        if coarse_due:
            self._last_coarse = now
        for key, counters in _readings(data):
            readings = self._series.get(key)
            if readings is None:
                readings = self._series[key] = _Readings()
                if previous is not None:
                    # Absent from the reading before: it was zero then.
                    readings.add(previous, ZERO, coarse=True)
            readings.add(now, counters, coarse=coarse_due)
            readings.prune(now - FINE_SECONDS, now - self.keep)

    def series(self, namespace: str, service: str) -> list[str]:
        """The revisions of a Service that the proxy has counted (sorted)."""
        return sorted(rev for ns, svc, rev in self._series if ns == namespace and svc == service)

    def window(self, namespace: str, service: str, revision: str, seconds: float, now: float) -> Window:
        """The traffic of one revision of a Service in the ``seconds`` before ``now`` (a reading's
        time from ``sample``/``fresh``)."""
        series = self._series.get((namespace, service, revision))
        if series is None:
            return Window(ZERO, ZERO, min(seconds, self._covered(now)))
        latest = series.fine[-1][1]
        start = now - seconds
        # Every change since fine[0] is in ``fine``; before that, ``coarse`` is up to
        # COARSE_STEP seconds early (the window then holds a few seconds more).
        readings = series.fine if series.fine[0][0] <= start else series.coarse
        baseline: Counters | None = None
        for t, counters in reversed(readings):
            if t <= start:
                baseline = counters
                break
        if baseline is not None:
            return Window(latest.minus(baseline), latest, seconds)
        if self._proxy_start >= start:
            # The proxy started inside the window: everything it counted is in it.
            return Window(latest, latest, seconds)
        first_t, first = series.coarse[0]
        if first == ZERO:
            return Window(latest, latest, seconds)  # zero at its first reading, so zero before it
        # Counted before the server's first reading, which is newer than the window's start: the
        # window is as long as the history.
        return Window(latest.minus(first), latest, now - first_t)

    def _covered(self, now: float) -> float:
        return now - min(self._history_start, self._proxy_start)


def quantile(buckets: Sequence[int], bounds: Sequence[float], q: float) -> float | None:
    """The q-quantile latency (seconds) of a histogram, as the upper bound of the bucket it falls in
    (as the proxy's own /stats does; never an underestimate). None without data, or when it falls
    above the highest bound (JSON has no Infinity)."""
    total = sum(buckets)
    if total <= 0 or len(buckets) != len(bounds) + 1:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(buckets):
        seen += n
        if seen >= rank:
            return bounds[i] if i < len(bounds) else None
    return None


async def stop(task: asyncio.Task[Any] | None) -> None:
    """Cancel a ``run`` task and wait for its end."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
