"""A stable Service's canary traffic split -> the ``split`` of its entry in the proxy's table.

The controller writes the Rollout's ``TrafficSplit`` (model/traffic.py) as JSON into the stable
Service's ``TRAFFIC_SPLIT_ANNOTATION``; the proxy process may not import the model, so the split
crosses to it as plain data (format in ``proxy/table.py``, behaviour in ``proxy/split.py``).
A malformed annotation is no split at all (all traffic to the stable Service, as before the
canary): it is told to ``warn`` here, before the proxy could refuse the whole table for it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ...model.traffic import TRAFFIC_SPLIT_ANNOTATION, StringMatch, TrafficSplit


def _string_match(m: StringMatch, path: str) -> dict[str, str]:
    found = m.to_json()
    if len(found) != 1:
        raise ValueError(f"{path}: set exactly one of exact, prefix, regex")
    if m.regex is not None:
        try:
            re.compile(m.regex)
        except re.error as exc:
            raise ValueError(f"{path}.regex: {m.regex!r} is not a regular expression: {exc}") from exc
    return found


def traffic_split_of(service: dict[str, Any], warn: Callable[[str], None]) -> TrafficSplit | None:
    """The split in a Service's annotation; None without one, or (told to ``warn``) when it is
    malformed."""
    meta = service.get("metadata") or {}
    raw = (meta.get("annotations") or {}).get(TRAFFIC_SPLIT_ANNOTATION)
    if not raw:
        return None
    try:
        split = TrafficSplit.loads(raw)
        split_entry(split, [])  # every match checked now, not in the proxy
    except ValueError as exc:
        where = f"Service {meta.get('namespace') or 'default'}/{meta.get('name')}"
        warn(
            f"{where}: annotation {TRAFFIC_SPLIT_ANNOTATION} ignored, all traffic goes to this Service: {exc}"
        )
        return None
    return split


def split_entry(split: TrafficSplit, canary_endpoints: list[dict[str, Any]]) -> dict[str, Any]:
    """The table's ``split`` for a TrafficSplit and its canary Service's endpoints. ValueError
    (naming the field) when a match or a percentage is not usable."""
    header_routes = []
    for i, route in enumerate(split.header_routes):
        p = f"headerRoutes[{i}]"
        if not route.matches:
            raise ValueError(f"{p}.match: a header route needs at least one header condition")
        header_routes.append(
            {
                "name": route.name,
                "match": [
                    {"header": m.header_name, **_string_match(m.value, f"{p}.match[{j}].headerValue")}
                    for j, m in enumerate(route.matches)
                ],
            }
        )
    mirrors = []
    for i, mirror in enumerate(split.mirror_routes):
        p = f"mirrorRoutes[{i}]"
        if not 0 <= mirror.percentage <= 100:
            raise ValueError(f"{p}.percentage: {mirror.percentage} is not between 0 and 100")
        matches = []
        for j, m in enumerate(mirror.matches):
            entry: dict[str, Any] = {}
            if m.method is not None:
                entry["method"] = _string_match(m.method, f"{p}.match[{j}].method")
            if m.path is not None:
                entry["path"] = _string_match(m.path, f"{p}.match[{j}].path")
            if m.headers:
                entry["headers"] = {
                    name: _string_match(v, f"{p}.match[{j}].headers.{name}") for name, v in m.headers
                }
            matches.append(entry)
        mirrors.append({"name": mirror.name, "percentage": mirror.percentage, "match": matches})
    return {
        "canaryService": split.canary_service,
        "weight": split.canary_weight,
        "canaryEndpoints": canary_endpoints,
        "headerRoutes": header_routes,
        "mirrors": mirrors,
    }
