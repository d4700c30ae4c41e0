"""Per-revision request counters and latency histograms, exposed as Prometheus text and as JSON.

Counting happens on the request path, so it is a dict lookup and a few list increments on plain
objects; prometheus-client only renders them (through a custom collector) when /metrics is
scraped, which keeps its per-call label lookup and locking off the hot path. It is imported at
the first scrape, not at start-up: the proxy process starts faster without it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

#: Histogram bucket upper bounds, in seconds (+Inf is implicit).
BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
_CLASS_NAMES = tuple(f"{i}xx" for i in range(10))


class RevisionStats:
    """Counters for one (namespace, service, revision)."""

    __slots__ = ("bucket_counts", "classes", "latency_sum", "other_classes", "tcp_connections")

    def __init__(self) -> None:
        #: Answers per status class 1xx-5xx, indexed by status // 100 (0 and 6-9 stay 0).
        self.classes = [0] * 10
        #: Any other class ("0xx", "6xx", ...: statuses no endpoint should send), in order seen.
        self.other_classes: dict[str, int] = {}
        self.bucket_counts = [0] * (len(BUCKETS) + 1)
        self.latency_sum = 0.0
        self.tcp_connections = 0

    @property
    def by_class(self) -> dict[str, int]:
        """Answers per status class: 1xx-5xx always, any other class once it was seen."""
        return {_CLASS_NAMES[i]: self.classes[i] for i in range(1, 6)} | self.other_classes

    @property
    def requests(self) -> int:
        """All HTTP requests answered, whatever the status."""
        return sum(self.classes) + sum(self.other_classes.values())

    def quantile(self, q: float) -> float | None:
        """An upper-bound estimate of the q-quantile latency from the buckets (None if no data)."""
        total = sum(self.bucket_counts)
        if total == 0:
            return None
        rank = q * total
        seen = 0
        for i, n in enumerate(self.bucket_counts):
            seen += n
            if seen >= rank:
                return BUCKETS[i] if i < len(BUCKETS) else float("inf")
        return float("inf")


def _mirror_classes(slots: list[int]) -> dict[str, int]:
    """A mirror's answers by class: "none" (no answer) and every class seen."""
    out = {"none": slots[0]}
    out.update({_CLASS_NAMES[i]: n for i, n in enumerate(slots) if i and n})
    return out


def _finite(seconds: float | None) -> float | None:
    # A quantile past the last bucket is +Inf, which strict JSON cannot carry: null instead.
    return None if seconds is None or seconds == float("inf") else seconds


class ProxyMetrics:
    """All counters of one proxy process."""

    def __init__(self) -> None:
        self.revisions: dict[tuple[str, str, str], RevisionStats] = {}
        self.active_connections = 0
        #: Client connections turned away because max_connections were open.
        self.refused_connections = 0
        #: Mirrored copies by (namespace, service, revision): answers by ``status // 100`` (slot
        #: 0: no answer: refused, broken, timed out or abandoned). Never part of ``revisions``: a
        #: copy is not a request any client made.
        self.mirrored: dict[tuple[str, str, str], list[int]] = {}
        #: Copies not sent because too many were in flight, by (namespace, service).
        self.mirrors_dropped: dict[tuple[str, str], int] = {}

    def _get(self, namespace: str, service: str, revision: str) -> RevisionStats:
        key = (namespace, service, revision or "none")
        stats = self.revisions.get(key)
        if stats is None:
            stats = self.revisions[key] = RevisionStats()
        return stats

    def observe(self, namespace: str, service: str, revision: str, status: int, seconds: float) -> None:
        """Count one answered HTTP request; revision "" means no pod was chosen (e.g. a 503)."""
        stats = self.revisions.get((namespace, service, revision or "none"))
        if stats is None:
            stats = self._get(namespace, service, revision)
        if 100 <= status < 600:
            stats.classes[status // 100] += 1
        else:
            name = f"{status // 100}xx"
            stats.other_classes[name] = stats.other_classes.get(name, 0) + 1
        stats.bucket_counts[bisect_left(BUCKETS, seconds)] += 1
        stats.latency_sum += seconds

    def observe_mirror(self, namespace: str, service: str, revision: str, status: int) -> None:
        """Count one finished mirrored copy (status 0: it got no answer)."""
        key = (namespace, service, revision or "none")
        slots = self.mirrored.get(key)
        if slots is None:
            slots = self.mirrored[key] = [0] * 10
        slots[status // 100 if 100 <= status < 1000 else 0] += 1

    def mirror_dropped(self, namespace: str, service: str) -> None:
        """Count one copy not sent (too many in flight)."""
        self.mirrors_dropped[(namespace, service)] = self.mirrors_dropped.get((namespace, service), 0) + 1

    def observe_tcp(self, namespace: str, service: str, revision: str) -> None:
        """Count one L4 connection forwarded to a revision."""
        self._get(namespace, service, revision).tcp_connections += 1

    def as_json(self) -> dict[str, Any]:
        """The /stats payload: {"services": {"ns/name": {"revisions": {hash: {...}}}}}. A latency
        quantile is null without data or above the highest bucket (JSON has no Infinity).
        ``latencyBuckets`` are the histogram's counts per bucket (not cumulative; the last one is
        above the highest bound), whose bounds are ``latencyBucketBounds``: the server subtracts
        two readings of them for the latency of a time window (server/traffic.py)."""
        services: dict[str, Any] = {}
        for (ns, svc, rev), st in sorted(self.revisions.items()):
            n = st.requests
            entry = services.setdefault(f"{ns}/{svc}", {"namespace": ns, "name": svc, "revisions": {}})
            entry["revisions"][rev] = {
                "requests": n,
                "byClass": dict(st.by_class),
                "errors": st.classes[5],
                "latencyMeanSeconds": (st.latency_sum / n) if n else None,
                "latencySumSeconds": st.latency_sum,
                "latencyBuckets": list(st.bucket_counts),
                "latencyP50Seconds": _finite(st.quantile(0.5)),
                "latencyP90Seconds": _finite(st.quantile(0.9)),
                "latencyP99Seconds": _finite(st.quantile(0.99)),
                "tcpConnections": st.tcp_connections,
            }
        for (ns, svc, rev), slots in sorted(self.mirrored.items()):
            entry = services.setdefault(f"{ns}/{svc}", {"namespace": ns, "name": svc, "revisions": {}})
            entry.setdefault("mirrored", {})[rev] = _mirror_classes(slots)
        for (ns, svc), n in sorted(self.mirrors_dropped.items()):
            entry = services.setdefault(f"{ns}/{svc}", {"namespace": ns, "name": svc, "revisions": {}})
            entry["mirrorsDropped"] = n
        return {
            "activeConnections": self.active_connections,
            "refusedConnections": self.refused_connections,
            "latencyBucketBounds": list(BUCKETS),
            "services": services,
        }

    def counters_json(self) -> dict[str, Any]:
        """The /counters payload: the raw running totals, cheap to make (no quantiles, no routes),
        for the server's readings every second (runtimes/local/traffichistory.py). ``series`` is a
        list of ``[namespace, service, revision, classes, otherClasses, buckets, latencySum]``:
        ``classes`` counts answers by ``status // 100`` (10 slots, 1-5 used), ``buckets`` the
        latency histogram per bucket (not cumulative) with bounds ``latencyBucketBounds``."""
        return {
            "latencyBucketBounds": BUCKETS,
            "series": [
                [ns, svc, rev, st.classes, st.other_classes, st.bucket_counts, st.latency_sum]
                for (ns, svc, rev), st in self.revisions.items()
            ],
        }

    def prometheus_text(self) -> bytes:
        """The Prometheus text exposition of every counter."""
        # Imported here, at the first scrape: the proxy does not need it to start serving.
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.registry import Collector

        families = self._families

        class _Collector(Collector):
            def collect(self) -> Iterator[Any]:
                return families()

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector())
        return generate_latest(registry)

    def _families(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        labels = ["namespace", "service", "revision"]
        requests = CounterMetricFamily(
            "pyrollouts_proxy_requests",
            "HTTP requests answered by the proxy, per revision and status class",
            labels=[*labels, "code"],
        )
        latency = HistogramMetricFamily(
            "pyrollouts_proxy_request_duration_seconds",
            "Time from the request head to the end of the response, per revision",
            labels=labels,
        )
        tcp = CounterMetricFamily(
            "pyrollouts_proxy_tcp_connections",
            "L4 (appProtocol tcp) connections forwarded, per revision",
            labels=labels,
        )
        for (ns, svc, rev), st in sorted(self.revisions.items()):
            for cls, n in st.by_class.items():
                requests.add_metric([ns, svc, rev, cls], n)
            cumulative = 0
            buckets: list[tuple[str, float]] = []
            for bound, n in zip([*map(str, BUCKETS), "+Inf"], st.bucket_counts, strict=True):
                cumulative += n
                buckets.append((bound, cumulative))
            latency.add_metric([ns, svc, rev], buckets, st.latency_sum)
            tcp.add_metric([ns, svc, rev], st.tcp_connections)
        mirrored = CounterMetricFamily(
            "pyrollouts_proxy_mirrored_requests",
            "Copies of requests mirrored to a canary revision, by the class of its (dropped) answer "
            "(none: no answer)",
            labels=[*labels, "code"],
        )
        for (ns, svc, rev), slots in sorted(self.mirrored.items()):
            for cls, n in _mirror_classes(slots).items():
                mirrored.add_metric([ns, svc, rev, cls], n)
        dropped = CounterMetricFamily(
            "pyrollouts_proxy_mirrors_dropped",
            "Copies of requests not mirrored because too many were in flight",
            labels=["namespace", "service"],
        )
        for (ns, svc), n in sorted(self.mirrors_dropped.items()):
            dropped.add_metric([ns, svc], n)
        active = GaugeMetricFamily(
            "pyrollouts_proxy_active_connections", "Client connections open on the proxy's listeners"
        )
        active.add_metric([], self.active_connections)
        refused = CounterMetricFamily(
            "pyrollouts_proxy_refused_connections",
            "Client connections turned away because the proxy had its maximum open",
        )
        refused.add_metric([], self.refused_connections)
        yield requests
        yield latency
        yield tcp
        yield mirrored
        yield dropped
        yield active
        yield refused
