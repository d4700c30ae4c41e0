"""The traffic history's windows, from readings of the proxy's /stats payload (the shape
``ProxyMetrics.as_json`` makes, built here by the real ProxyMetrics) on a clock the test moves.

The end-to-end tests (test_traffic_metrics.py) read real proxies; here the time is the test's, so
the window rules are checked exactly: a fresh burst of errors shows in a short window, old traffic
leaves it, a restarted proxy starts from zero, and a window longer than the history says so.
"""

from __future__ import annotations

import json
from typing import Any

from pyrollouts.runtimes.local.proxy.metrics import ProxyMetrics
from pyrollouts.runtimes.local.traffichistory import TrafficHistory, quantile
from pyrollouts.server.traffic import service_traffic, window_seconds


class Proxy:
    """A proxy's counters (the real ProxyMetrics) and its /stats payload at a moment."""

    def __init__(self, pid: int = 1000, uptime: float = 0.0) -> None:
        self.metrics = ProxyMetrics()
        self.pid = pid
        self.uptime = uptime

    def serve(self, revision: str, ok: int = 0, errors: int = 0, seconds: float = 0.002) -> None:
        for _ in range(ok):
            self.metrics.observe("ns", "svc", revision, 200, seconds)
        for _ in range(errors):
            self.metrics.observe("ns", "svc", revision, 500, seconds)

    async def stats(self) -> dict[str, Any]:
        """The /counters payload (what the server reads), through JSON as over the socket."""
        body = {"pid": self.pid, "uptimeSeconds": self.uptime, **self.metrics.counters_json()}
        return dict(json.loads(json.dumps(body)))

    async def old_stats(self) -> dict[str, Any]:
        """The /stats payload, which a proxy older than /counters is read through."""
        body = {"pid": self.pid, "uptimeSeconds": self.uptime, **self.metrics.as_json()}
        return dict(json.loads(json.dumps(body)))


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def history(proxy: Proxy, clock: Clock) -> TrafficHistory:
    return TrafficHistory(proxy.stats, interval=1.0, keep=600.0, clock=clock)


async def advance(h: TrafficHistory, proxy: Proxy, clock: Clock, seconds: int) -> None:
    """Let ``seconds`` pass with a reading every second, as the server's loop takes them."""
    for _ in range(seconds):
        clock.t += 1.0
        proxy.uptime += 1.0
        await h.sample()


async def test_a_fresh_burst_shows_and_old_traffic_leaves_the_window() -> None:
    proxy, clock = Proxy(uptime=5.0), Clock()
    h = history(proxy, clock)
    await h.sample()
    proxy.serve("good", ok=1000)
    await advance(h, proxy, clock, 60)
    proxy.serve("good", ok=10, errors=10)  # the burst
    now = await h.sample()
    short = h.window("ns", "svc", "good", 30, now)
    assert (short.counts.requests, short.counts.errors5xx, short.seconds) == (20, 10, 30)
    # Over a long window the thousand old answers dilute the burst; the totals are since the start.
    long = h.window("ns", "svc", "good", 120, now)
    assert (long.counts.requests, long.counts.errors5xx) == (1020, 10)
    assert (short.totals.requests, short.totals.errors5xx) == (1020, 10)
    # Thirty quiet seconds later the burst has left the 30 s window.
    await advance(h, proxy, clock, 31)
    later = h.window("ns", "svc", "good", 30, clock.t)
    assert (later.counts.requests, later.counts.errors5xx) == (0, 0)


async def test_older_readings_are_kept_every_ten_seconds() -> None:
    # One request a second for five minutes: every reading changes the series.
    proxy, clock = Proxy(uptime=3600.0), Clock()
    h = history(proxy, clock)
    await h.sample()
    for _ in range(300):
        proxy.serve("r", ok=1)
        await advance(h, proxy, clock, 1)
    readings = h._series[("ns", "svc", "r")]
    assert len(readings.fine) <= 122 and len(readings.coarse) <= 32
    # Within two minutes, to the second; beyond, the window may start up to 10 s early.
    assert h.window("ns", "svc", "r", 60, clock.t).counts.requests == 60
    assert h.window("ns", "svc", "r", 119, clock.t).counts.requests == 119
    assert 200 <= h.window("ns", "svc", "r", 200, clock.t).counts.requests <= 210
    assert h.window("ns", "svc", "r", 300, clock.t).counts.requests == 300


async def test_the_api_body_flat_and_per_revision() -> None:
    proxy, clock = Proxy(uptime=1.0), Clock()
    h = history(proxy, clock)
    await h.sample()
    proxy.serve("aaa", ok=9, errors=1, seconds=0.003)
    proxy.serve("bbb", ok=3, errors=1, seconds=0.2)
    await advance(h, proxy, clock, 1)
    flat = await service_traffic(h, "ns", "svc", "30s", "bbb")
    assert flat == {
        "namespace": "ns",
        "service": "svc",
        "window": "30s",
        "windowSeconds": 30.0,
        "hash": "bbb",
        "requests": 4,
        "errors5xx": 1,
        "errorRate": 0.25,
        "byClass": {"1xx": 0, "2xx": 3, "3xx": 0, "4xx": 0, "5xx": 1},
        "latencyP50Seconds": 0.25,
        "latencyP95Seconds": 0.25,
        "latencyP99Seconds": 0.25,
        "requestsTotal": 4,
        "errors5xxTotal": 1,
    }
    every = await service_traffic(h, "ns", "svc", "30s", None)
    assert [r["hash"] for r in every["revisions"]] == ["aaa", "bbb"]
    assert (every["requests"], every["errors5xx"], every["errorRate"]) == (14, 2, 2 / 14)
    assert every["latencyP50Seconds"] == 0.005 and every["latencyP99Seconds"] == 0.25
    # A revision the proxy never counted: zeros, and no error rate (no traffic is no evidence).
    quiet = await service_traffic(h, "ns", "svc", "30s", "ccc")
    assert (quiet["requests"], quiet["errorRate"], quiet["latencyP50Seconds"]) == (0, None, None)


async def test_a_revision_that_appears_later_starts_from_zero() -> None:
    # The proxy ran long before the server's first reading, so old series cannot be windowed
    # further back than the history; a series first seen later was zero at the reading before.
    proxy, clock = Proxy(uptime=3600.0), Clock()
    proxy.serve("old", ok=500)
    h = history(proxy, clock)
    await h.sample()
    await advance(h, proxy, clock, 10)
    proxy.serve("old", ok=5)
    proxy.serve("new", ok=7, errors=3)
    await advance(h, proxy, clock, 1)
    old = h.window("ns", "svc", "old", 60, clock.t)
    assert (old.counts.requests, old.seconds) == (5, 11.0)  # only what the history covers
    new = h.window("ns", "svc", "new", 60, clock.t)
    assert (new.counts.requests, new.counts.errors5xx, new.seconds) == (10, 3, 60)


async def test_a_restarted_proxy_starts_the_history_again() -> None:
    proxy, clock = Proxy(pid=1000, uptime=100.0), Clock()
    h = history(proxy, clock)
    proxy.serve("r", ok=50, errors=50)
    await h.sample()
    await advance(h, proxy, clock, 5)
    # kill -9 and a new proxy: counters from zero, a new pid.
    restarted = Proxy(pid=2000, uptime=1.0)
    h._stats = restarted.stats
    restarted.serve("r", ok=4)
    clock.t += 2.0
    now = await h.sample()
    w = h.window("ns", "svc", "r", 60, now)
    # Its counters began when it started, inside the window: no negative or stale numbers.
    assert (w.counts.requests, w.counts.errors5xx, w.totals.requests, w.seconds) == (4, 0, 4, 60)


async def test_a_proxy_older_than_counters_is_read_through_stats_alike() -> None:
    proxy, clock = Proxy(uptime=1.0), Clock()
    proxy.serve("r", ok=30, errors=10, seconds=0.02)
    proxy.metrics.observe("ns", "svc", "r", 999, 0.02)  # a status class outside 1xx-5xx
    new, old = history(proxy, clock), TrafficHistory(proxy.old_stats, clock=clock)
    await new.sample()
    await old.sample()
    assert new.bounds == old.bounds and new.bounds[0] == 0.0005
    assert new.window("ns", "svc", "r", 30, clock.t) == old.window("ns", "svc", "r", 30, clock.t)
    w = new.window("ns", "svc", "r", 30, clock.t)
    assert (w.counts.requests, w.counts.errors5xx, dict(w.counts.by_class)["9xx"]) == (41, 10, 1)


def test_windows_are_go_durations_within_the_history() -> None:
    assert window_seconds("30s", 900) == 30 and window_seconds("1m30s", 900) == 90
    for bad, says in (
        ("30", "expected a Go duration such as 30s"),
        ("soon", "expected a Go duration such as 30s"),
        ("0s", "must be longer than 0s"),
        ("1h", "at most 900s; the server keeps 900s of counter history"),
    ):
        try:
            window_seconds(bad, 900)
        except ValueError as exc:
            assert says in str(exc) and repr(bad) in str(exc)
        else:
            raise AssertionError(f"{bad} was accepted")


def test_quantiles_are_bucket_upper_bounds() -> None:
    bounds = (0.1, 0.5, 1.0)
    assert quantile([0, 0, 0, 0], bounds, 0.5) is None
    assert quantile([50, 45, 5, 0], bounds, 0.5) == 0.1
    assert quantile([50, 45, 5, 0], bounds, 0.95) == 0.5
    assert quantile([50, 45, 4, 1], bounds, 0.99) == 1.0
    assert quantile([50, 45, 3, 2], bounds, 0.99) is None  # above the highest bound
