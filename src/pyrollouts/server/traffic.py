"""The built-in traffic metrics of the local runtime (docs/analysis.md, "Built-in traffic metrics").

- ``GET /metrics``: the proxy's counters in Prometheus text format, read from the proxy when
  scraped: ``pyrollouts_proxy_requests_total{namespace,service,revision,code}`` (code is the
  status class: 2xx, 5xx...), the latency histogram
  ``pyrollouts_proxy_request_duration_seconds_bucket{namespace,service,revision,le}`` (with
  ``_sum`` and ``_count``), and the proxy's connection counts.
- ``GET /api/services/{namespace}/{name}/traffic?window=30s[&revision=HASH]``: a Service's
  traffic over the last ``window`` per revision (pod-template hash), as JSON: ``requests``,
  ``errors5xx``, ``errorRate``, latency quantiles. With ``revision`` the answer is that revision's
  fields at the top level, so a stock Argo ``web`` metric reads ``{$.errorRate}``.

The routes are ``api.traffic`` and ``api.metrics``; this module computes their answers. Both sit
behind the server's usual checks (loopback Host and user, or the bearer token when the server has
one: see ``api._auth_middleware``).
"""

from __future__ import annotations

from typing import Any

from ..model.analysisargs import ArgsError, duration_seconds
from ..runtimes.local.traffichistory import Counters, TrafficHistory, Window, quantile

#: The window when the request names none.
DEFAULT_WINDOW = "1m"
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
QUANTILES = (("latencyP50Seconds", 0.5), ("latencyP95Seconds", 0.95), ("latencyP99Seconds", 0.99))


class TrafficUnavailable(Exception):
    """The proxy's counters cannot be read (the message says why)."""


def window_seconds(text: str, longest: float) -> float:
    """Seconds in a ``window`` query value (a Go duration, e.g. ``30s``, ``5m``); ValueError with
    a message naming the fix when it is not one, is not positive or is longer than ``longest``."""
    try:
        seconds = duration_seconds(text)
    except ArgsError:
        raise ValueError(f"window={text!r}: expected a Go duration such as 30s, 2m or 1m30s") from None
    if seconds <= 0:
        raise ValueError(f"window={text!r}: the window must be longer than 0s (e.g. 30s)")
    if seconds > longest:
        raise ValueError(
            f"window={text!r}: at most {longest:g}s; the server keeps {longest:g}s of counter history"
        )
    return seconds


def revision_fields(hash_: str, w: Window, bounds: tuple[float, ...]) -> dict[str, Any]:
    """One revision's traffic over a window, as the API answers it."""
    return {"hash": hash_, **_fields(w.counts, bounds), **_totals(w.totals)}


def _fields(c: Counters, bounds: tuple[float, ...]) -> dict[str, Any]:
    errors = c.errors5xx
    out: dict[str, Any] = {
        "requests": c.requests,
        "errors5xx": errors,
        # null, not 0, without requests: no traffic is no evidence that a version is good.
        "errorRate": (errors / c.requests) if c.requests else None,
        "byClass": dict(c.by_class),
    }
    for name, q in QUANTILES:
        out[name] = quantile(c.buckets, bounds, q)
    return out


def _totals(c: Counters) -> dict[str, Any]:
    return {"requestsTotal": c.requests, "errors5xxTotal": c.errors5xx}


def _sum(counters: list[Counters]) -> Counters:
    total = Counters()
    for c in counters:
        classes = dict(total.by_class)
        for k, n in c.by_class:
            classes[k] = classes.get(k, 0) + n
        buckets = total.buckets or tuple(0 for _ in c.buckets)
        if len(buckets) == len(c.buckets):
            buckets = tuple(a + b for a, b in zip(buckets, c.buckets, strict=True))
        total = Counters(
            total.requests + c.requests,
            tuple(sorted(classes.items())),
            buckets,
            total.latency_sum + c.latency_sum,
        )
    return total


async def service_traffic(
    history: TrafficHistory, namespace: str, service: str, window: str, revision: str | None
) -> dict[str, Any]:
    """The body of ``GET /api/services/{namespace}/{service}/traffic``: every revision the proxy
    counted for the Service (``revisions``, sorted by hash) with the sums over them at the top
    level; or, with ``revision``, that revision's fields at the top level (zeros and a null
    ``errorRate`` when it had no traffic). Raises ValueError for a bad
    window and TrafficUnavailable when the proxy cannot be read."""
    seconds = window_seconds(window, history.keep)
    try:
        now = await history.fresh()
    except Exception as exc:
        raise TrafficUnavailable(f"cannot read the proxy's counters: {exc}") from exc
    head = {"namespace": namespace, "service": service, "window": window}
    bounds = history.bounds
    if revision is not None:
        w = history.window(namespace, service, revision, seconds, now)
        return {**head, "windowSeconds": w.seconds, **revision_fields(revision, w, bounds)}
    windows = {
        rev: history.window(namespace, service, rev, seconds, now)
        for rev in history.series(namespace, service)
    }
    covered = min((w.seconds for w in windows.values()), default=seconds)
    return {
        **head,
        "windowSeconds": covered,
        **_fields(_sum([w.counts for w in windows.values()]), bounds),
        **_totals(_sum([w.totals for w in windows.values()])),
        "revisions": [revision_fields(rev, w, bounds) for rev, w in windows.items()],
    }
