"""The ``web`` metric provider, as Argo's: one HTTP request per measurement.

``url``, ``method`` (GET by default), ``headers``, ``body`` or ``jsonBody`` (POST and PUT only;
``jsonBody`` sends ``Content-Type: application/json``), ``timeoutSeconds`` (10 by default),
``insecure`` (no TLS verification). A response outside 2xx is an Error measurement (``received non
2xx response code: 500``). A JSON response is searched with ``jsonPath`` (``model.jsonpath``; the
whole document when there is none) and the first value found is the condition's ``result`` and the
measurement's ``value`` (as compact JSON); a response that is not JSON is ``result`` as text. The
phase is ``engine.measurement.assess``'s.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import aiohttp

from ...model.jsonpath import JSONPathError, compile_path
from .common import MeasurementError, http, take, utc_now

DEFAULT_TIMEOUT_SECONDS = 10
_BODY_METHODS = ("POST", "PUT")


async def measure(
    metric: Mapping[str, Any],
    *,
    session: aiohttp.ClientSession | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> dict[str, Any]:
    """One measurement of a metric whose provider is ``web``: a Measurement dict (``phase``,
    ``value``, ``message``, ``startedAt``, ``finishedAt``). Errors of the request, the response or
    the conditions are the measurement's Error phase, with a message; nothing is raised."""
    return await take(metric, _measured(metric.get("provider", {}).get("web") or {}, session), clock)


async def _measured(
    web: Mapping[str, Any], session: aiohttp.ClientSession | None
) -> tuple[Any, str, dict[str, str]]:
    result, value = await _fetch(web, session)
    return result, value, {}


async def _fetch(web: Mapping[str, Any], session: aiohttp.ClientSession | None) -> tuple[Any, str]:
    """The condition's ``result`` and the measurement's ``value`` from the web metric's response."""
    try:
        path = compile_path(web.get("jsonPath"))
    except JSONPathError as e:
        raise MeasurementError(str(e)) from e
    method = str(web.get("method") or "GET").upper()
    data, headers = _body(web, method)
    for header in web.get("headers") or []:
        headers[str(header.get("key"))] = str(header.get("value"))
    status, text = await _request(web, method, data, headers, session)
    if not 200 <= status < 300:
        raise MeasurementError(f"received non 2xx response code: {status}")
    try:
        document = json.loads(text)
    except ValueError:
        return text, text
    try:
        found = path.find(document)
    except JSONPathError as e:
        raise MeasurementError(f"Could not find JSONPath in body: {e}") from e
    if not found:
        raise MeasurementError("result of web metric produced no value")
    return found[0], json.dumps(found[0], separators=(",", ":"))


def _body(web: Mapping[str, Any], method: str) -> tuple[bytes | None, dict[str, str]]:
    body, json_body = web.get("body") or "", web.get("jsonBody")
    if body and json_body is not None:
        raise MeasurementError("use either Body or JSONBody; both cannot exists for WebMetric payload")
    if (body or json_body is not None) and method not in _BODY_METHODS:
        raise MeasurementError("Body/JSONBody can only be used with POST or PUT WebMetric Method types")
    if json_body is not None:
        return json.dumps(json_body).encode(), {"Content-Type": "application/json"}
    return (body.encode() if body else None), {}


async def _request(
    web: Mapping[str, Any],
    method: str,
    data: bytes | None,
    headers: dict[str, str],
    session: aiohttp.ClientSession | None,
) -> tuple[int, str]:
    if (web.get("authentication") or {}).get("oauth2"):
        raise MeasurementError("web metric authentication (oauth2) is not supported by pyrollouts yet")
    url = str(web.get("url") or "")
    seconds = int(web.get("timeoutSeconds") or 0)
    timeout = float(seconds if seconds > 0 else DEFAULT_TIMEOUT_SECONDS)
    return await http(
        method,
        url,
        data=data,
        headers=headers,
        timeout=timeout,
        insecure=bool(web.get("insecure")),
        session=session,
    )


__all__ = ["DEFAULT_TIMEOUT_SECONDS", "measure"]
