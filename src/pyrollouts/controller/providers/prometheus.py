"""The ``prometheus`` metric provider, as Argo's: one instant query per measurement.

``address`` (else ``$ARGO_ROLLOUTS_PROMETHEUS_ADDRESS``), ``query`` (its ``{{args.x}}`` already
substituted by the caller), ``timeout`` in seconds (30 by default, and when 0), ``headers`` (key/value),
``insecure`` (no TLS verification), ``authentication.basicAuth``. The query goes to Prometheus'
HTTP API (``POST <address>/api/v1/query``, form-encoded, as Prometheus' Go client sends it).

What the condition sees, as in Argo: a ``vector`` (or a ``matrix``: every sample of every series)
is a list of floats, ``result[0]`` being the first sample; a ``scalar`` is a float. The
measurement's ``value`` is Go's rendering of the numbers: ``[0.01]``, ``[1,2.5]``, ``[]`` for a
vector with no samples (a condition indexing it is then an Error that says no data came back),
``NaN``, ``+Inf``. A ``string`` result, a refused query (``bad_data: ...``), an unreachable server
or a timeout is an Error measurement with the reason. Prometheus' warnings are kept in the
measurement's ``metadata.warnings``.
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from .common import MeasurementError, http, take, utc_now

DEFAULT_TIMEOUT_SECONDS = 30
#: The metric result's metadata key for the query as sent (Argo's).
RESOLVED_QUERY_KEY = "ResolvedPrometheusQuery"
#: Argo's fallback for a metric without ``address``.
ENV_ADDRESS = "ARGO_ROLLOUTS_PROMETHEUS_ADDRESS"


async def measure(
    metric: Mapping[str, Any],
    *,
    session: aiohttp.ClientSession | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> dict[str, Any]:
    """One measurement of a metric whose provider is ``prometheus``: a Measurement dict (``phase``,
    ``value``, ``message``, ``startedAt``, ``finishedAt``, ``metadata`` for warnings). Errors of the
    query, the server or the conditions are the measurement's Error phase, with a message; nothing
    is raised."""
    return await take(metric, _measured(metric.get("provider", {}).get("prometheus") or {}, session), clock)


async def _measured(
    prom: Mapping[str, Any], session: aiohttp.ClientSession | None
) -> tuple[Any, str, dict[str, str]]:
    data, warnings = await _query(prom, session)
    result, value = _result(data)
    return result, value, ({"warnings": ", ".join(f'"{w}"' for w in warnings)} if warnings else {})


def go_float(x: float) -> str:
    """A float as Go's ``strconv.FormatFloat(x, 'f', -1, 64)`` writes it (Prometheus' SampleValue):
    the shortest digits that read back exactly, never an exponent: ``0.01``, ``1``, ``NaN``, ``+Inf``."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    text = format(Decimal(repr(x)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _address(prom: Mapping[str, Any]) -> str:
    address = str(prom.get("address") or "") or os.environ.get(ENV_ADDRESS, "")
    if not address:
        raise MeasurementError(
            f"prometheus address is not configured: set provider.prometheus.address or ${ENV_ADDRESS}"
        )
    parts = urlsplit(address)
    if not parts.scheme or not parts.netloc:
        raise MeasurementError(f"prometheus address is not in url format: {address!r}")
    return address.rstrip("/")


def _timeout(prom: Mapping[str, Any]) -> float:
    raw = prom.get("timeout")
    try:
        seconds = int(raw or 0)
    except (TypeError, ValueError):
        raise MeasurementError(f"prometheus timeout must be a number of seconds, not {raw!r}") from None
    if seconds < 0:
        raise MeasurementError("prometheus timeout should not be negative")
    # 0 is the default too (Argo would give the query no time at all).
    return float(seconds or DEFAULT_TIMEOUT_SECONDS)


def _basic_auth(prom: Mapping[str, Any]) -> str | None:
    """The Authorization header for ``authentication.basicAuth``, None without it."""
    auth = prom.get("authentication") or {}
    unsupported = sorted(k for k, v in auth.items() if v and k != "basicAuth")
    if unsupported:
        raise MeasurementError(
            f"prometheus authentication {', '.join(unsupported)} is not supported by pyrollouts yet "
            "(basicAuth is; or send a token in headers)"
        )
    basic = auth.get("basicAuth") or {}
    user, password = basic.get("username") or "", basic.get("password") or ""
    if not user and not password:
        return None
    if not user:
        raise MeasurementError("missing mandatory parameter in metric for basic auth setup: username")
    if not password:
        raise MeasurementError("missing mandatory parameter in metric for basic auth setup: password")
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def _query(
    prom: Mapping[str, Any], session: aiohttp.ClientSession | None
) -> tuple[Mapping[str, Any], list[str]]:
    """The ``data`` of Prometheus' answer to the metric's query, and its warnings."""
    if prom.get("rangeQuery"):
        raise MeasurementError(
            "prometheus rangeQuery is not supported by pyrollouts yet: use an instant query"
        )
    status, text = await _post(prom, session)
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if not isinstance(body, Mapping):
        raise MeasurementError(f"prometheus answered HTTP {status} without a JSON body: {text[:200]!r}")
    if body.get("status") != "success":
        raise MeasurementError(
            f"{body.get('errorType') or f'HTTP {status}'}: {body.get('error') or text[:200]}"
        )
    data = body.get("data")
    if not isinstance(data, Mapping):
        raise MeasurementError("prometheus answered success without data")
    return data, [str(w) for w in body.get("warnings") or []]


async def _post(prom: Mapping[str, Any], session: aiohttp.ClientSession | None) -> tuple[int, str]:
    """The status and body of Prometheus' answer to the query (the Go client's form POST)."""
    url = f"{_address(prom)}/api/v1/query"
    timeout = _timeout(prom)
    headers = {str(h.get("key")): str(h.get("value")) for h in prom.get("headers") or []}
    form = {
        "query": str(prom.get("query") or ""),
        "time": f"{datetime.now(UTC).timestamp():.3f}",
        "timeout": f"{timeout:g}s",
    }
    auth = _basic_auth(prom)
    if auth:
        headers["Authorization"] = auth
    return await http(
        "POST",
        url,
        data=form,
        headers=headers,
        timeout=timeout,
        insecure=bool(prom.get("insecure")),
        session=session,
    )


def _sample(pair: Any) -> float:
    try:
        return float(pair[1])
    except (TypeError, ValueError, IndexError) as e:
        raise MeasurementError(f"prometheus answered a sample that is not [time, value]: {pair!r}") from e


def _result(data: Mapping[str, Any]) -> tuple[Any, str]:
    """The condition's ``result`` and the measurement's ``value`` for a query's answer."""
    kind, raw = data.get("resultType"), data.get("result")
    if kind == "scalar":
        number = _sample(raw)
        return number, go_float(number)
    if kind == "vector":
        samples = [_sample(s.get("value")) for s in raw or [] if s is not None]
    elif kind == "matrix":
        samples = [
            _sample(v) for series in raw or [] if series is not None for v in series.get("values") or []
        ]
    else:
        raise MeasurementError(f"Prometheus metric type not supported: {kind}")
    return samples, "[" + ",".join(go_float(x) for x in samples) + "]"


__all__ = ["DEFAULT_TIMEOUT_SECONDS", "ENV_ADDRESS", "RESOLVED_QUERY_KEY", "go_float", "measure"]
