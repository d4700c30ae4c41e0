"""A canary split of one listener: which side a request goes to, and which requests are mirrored.

The server sends it as the ``split`` of a Service in the table (format in ``table.py``), already
reduced from the Rollout's TrafficSplit to plain data (``runtimes/local/trafficsplit.py``). Per
request, in this order:

1. no ready canary endpoint: stable; no ready stable endpoint: canary;
2. a header route whose every condition holds: canary, whatever the weight;
3. otherwise the weight, exactly: a credit counter per listener gains ``weight`` per ordinary
   request and pays 100 for each one sent to the canary, so over any N requests at one weight the
   canary gets N*weight/100 of them, give or take one (smooth weighted choice, no randomness).

Independently of the side chosen, the first mirror whose match holds sends ``percentage`` of the
requests it matches (the same kind of credit counter) to the canary as well (``mirror.py``).

The credits live in the proxy's state, outside the snapshot, so a table switch that keeps the
weight does not restart the count.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .table import Route

# A compiled StringMatch: True when a value (bytes) matches.
Matcher = Callable[[bytes], bool]


class SplitError(ValueError):
    """A split entry of the table is malformed (the message names the field)."""


def compile_string_match(obj: Any, path: str) -> Matcher:
    """``{"exact" | "prefix" | "regex": str}`` (exactly one) -> a matcher on bytes. A regex must
    match the whole value (as Envoy's, under Istio and the Gateway API)."""
    if not isinstance(obj, dict) or len(obj) != 1:
        raise SplitError(f"{path}: expected exactly one of exact, prefix, regex")
    ((kind, value),) = obj.items()
    if not isinstance(value, str):
        raise SplitError(f"{path}.{kind}: expected a string")
    raw = value.encode()
    if kind == "exact":
        return raw.__eq__
    if kind == "prefix":
        return lambda v: v.startswith(raw)
    if kind == "regex":
        try:
            pattern = re.compile(raw)
        except re.error as exc:
            raise SplitError(f"{path}.regex: not a regular expression: {exc}") from exc
        return lambda v: pattern.fullmatch(v) is not None
    raise SplitError(f"{path}: {kind!r} is not one of exact, prefix, regex")


@dataclass(frozen=True)
class HeaderCondition:
    """A header (lower-cased name) with a value that matches."""

    name: bytes
    match: Matcher


@dataclass(frozen=True)
class RequestCondition:
    """A mirror's match: method, path (without the query) and headers; the given ones must hold."""

    method: Matcher | None
    path: Matcher | None
    headers: tuple[HeaderCondition, ...]


@dataclass(frozen=True)
class MirrorRule:
    """``percentage`` of the requests matching any of ``matches`` (all when there are none)."""

    name: str
    percentage: int
    matches: tuple[RequestCondition, ...]


@dataclass(frozen=True)
class Split:
    """The canary side of one listener: ``canary`` is a Route to the canary Service's ready
    endpoints (same namespace, Service and port as the stable route, so its answers are counted
    under the Service's name, by the revision that answered)."""

    canary_service: str
    weight: int
    canary: Route
    header_routes: tuple[tuple[str, tuple[HeaderCondition, ...]], ...]
    mirrors: tuple[MirrorRule, ...]
    #: The (lower-cased) header names any rule looks at; empty: none does, and the request's
    #: headers are not looked at.
    header_names: frozenset[bytes]


def _int(obj: dict[str, Any], key: str, path: str, default: int) -> int:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise SplitError(f"{path}.{key}: expected a whole number 0-100, got {value!r}")
    return value


def _headers(obj: Any, path: str) -> tuple[HeaderCondition, ...]:
    if not isinstance(obj, dict):
        raise SplitError(f"{path}: expected an object of header name -> match")
    out = []
    for name, match in obj.items():
        out.append(
            HeaderCondition(str(name).lower().encode(), compile_string_match(match, f"{path}[{name!r}]"))
        )
    return tuple(out)


def parse_split(obj: Any, path: str, canary: Route) -> Split:
    """A validated ``split`` entry (see table.py) with its canary route; SplitError if malformed."""
    if not isinstance(obj, dict):
        raise SplitError(f"{path}: expected an object")
    service = obj.get("canaryService")
    if not isinstance(service, str):
        raise SplitError(f"{path}.canaryService: expected a string")
    weight = _int(obj, "weight", path, 0)
    routes = []
    for i, route in enumerate(obj.get("headerRoutes") or []):
        rp = f"{path}.headerRoutes[{i}]"
        if not isinstance(route, dict) or not isinstance(route.get("match"), list) or not route["match"]:
            raise SplitError(f"{rp}: expected {{name, match: [{{header, exact|prefix|regex}}, ...]}}")
        conds = []
        for j, m in enumerate(route["match"]):
            if not isinstance(m, dict) or not isinstance(m.get("header"), str):
                raise SplitError(f"{rp}.match[{j}].header: expected a header name")
            rest = {k: v for k, v in m.items() if k != "header"}
            conds.append(
                HeaderCondition(m["header"].lower().encode(), compile_string_match(rest, f"{rp}.match[{j}]"))
            )
        routes.append((str(route.get("name", "")), tuple(conds)))
    mirrors = []
    for i, mirror in enumerate(obj.get("mirrors") or []):
        mp = f"{path}.mirrors[{i}]"
        if not isinstance(mirror, dict):
            raise SplitError(f"{mp}: expected {{name, percentage, match}}")
        matches = []
        for j, m in enumerate(mirror.get("match") or []):
            jp = f"{mp}.match[{j}]"
            if not isinstance(m, dict):
                raise SplitError(f"{jp}: expected {{method, path, headers}}")
            method = compile_string_match(m["method"], f"{jp}.method") if m.get("method") else None
            url = compile_string_match(m["path"], f"{jp}.path") if m.get("path") else None
            matches.append(RequestCondition(method, url, _headers(m.get("headers") or {}, f"{jp}.headers")))
        mirrors.append(
            MirrorRule(str(mirror.get("name", "")), _int(mirror, "percentage", mp, 100), tuple(matches))
        )
    names = {c.name for _, conds in routes for c in conds}
    names.update(h.name for m in mirrors for c in m.matches for h in c.headers)
    return Split(service, weight, canary, tuple(routes), tuple(mirrors), frozenset(names))


def header_dict(headers: list[tuple[bytes, bytes]], names: frozenset[bytes]) -> dict[bytes, list[bytes]]:
    """The request's headers that are among ``names``, by lower-cased name (a header may come
    more than once)."""
    out: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        low = name.lower()
        if low in names:
            if low in out:
                out[low].append(value)
            else:
                out[low] = [value]
    return out


def _holds(conds: tuple[HeaderCondition, ...], headers: dict[bytes, list[bytes]]) -> bool:
    """Whether every condition holds for some value of its header."""
    for c in conds:
        values = headers.get(c.name)
        if values is None:
            return False
        for v in values:
            if c.match(v):
                break
        else:
            return False
    return True


def choose(
    split: Split, stable: Route, headers: dict[bytes, list[bytes]] | None, credits: dict[Any, int]
) -> Route:
    """The route (``stable`` or ``split.canary``) one request goes to (``headers`` None: header
    routes are not looked at, as for a new L4 connection)."""
    canary = split.canary
    if not canary.targets:
        return stable
    if not stable.targets:
        return canary
    if headers is not None:
        for _, conds in split.header_routes:
            if _holds(conds, headers):
                return canary
    weight = split.weight
    if weight <= 0:
        return stable
    if weight >= 100:
        return canary
    key = stable.balance
    credit = credits.get(key, 0) + weight
    if credit >= 100:
        credits[key] = credit - 100
        return canary
    credits[key] = credit
    return stable


def mirror_of(
    split: Split,
    stable: Route,
    method: bytes,
    url: bytes,
    headers: dict[bytes, list[bytes]] | None,
    credits: dict[Any, int],
) -> bool:
    """Whether this request is also to be sent to the canary (the first matching mirror decides)."""
    if not split.canary.targets:
        return False
    path = url.split(b"?", 1)[0]
    for i, rule in enumerate(split.mirrors):
        if rule.matches and not any(_request_holds(c, method, path, headers) for c in rule.matches):
            continue
        if rule.percentage >= 100:
            return True
        key = (stable.balance, "mirror", i)
        credit = credits.get(key, 0) + rule.percentage
        if credit >= 100:
            credits[key] = credit - 100
            return True
        credits[key] = credit
        return False
    return False


def _request_holds(
    c: RequestCondition, method: bytes, path: bytes, headers: dict[bytes, list[bytes]] | None
) -> bool:
    if c.method is not None and not c.method(method):
        return False
    if c.path is not None and not c.path(path):
        return False
    return not c.headers or (headers is not None and _holds(c.headers, headers))
