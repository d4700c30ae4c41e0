"""The rules Argo enforces on ``spec.strategy.canary`` (its ValidateRolloutStrategyCanary), as
findings with the field and the fix. Works on the JSON form, so ill-typed input gives findings,
never exceptions; the types themselves are checked by the schema walk."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .analysisargs import ArgsError, duration_seconds
from .findings import ERROR, WARNING, Severity
from .rollout import int_or_percent
from .yamlsafe import FieldPath

Report = Callable[[FieldPath, str, str, Severity], None]

#: The step kinds Argo knows; exactly one is set in each step.
STEP_KINDS = (
    "setWeight",
    "pause",
    "setCanaryScale",
    "analysis",
    "setHeaderRoute",
    "setMirrorRoute",
    "experiment",
    "plugin",
)
#: Routers Argo drives that pyrollouts does not (docs/canary.md "Routers").
UNSUPPORTED_ROUTERS = ("istio", "alb", "smi", "ambassador", "appMesh", "traefik", "apisix")
#: Routers that can route by header (setHeaderRoute), as Argo allows it.
_HEADER_ROUTERS = ("istio", "alb", "apisix", "plugins")
#: Routers that can mirror (setMirrorRoute), as Argo allows it.
_MIRROR_ROUTERS = ("istio", "plugins")


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def canary_rules(canary: Mapping[str, Any], path: FieldPath, rhl: int, report: Report) -> None:
    """Every rule on spec.strategy.canary that one manifest can show."""
    _fencepost_rules(canary, path, report)
    _service_rules(canary, path, report)
    _routing_rules(canary, path, report)
    steps = canary.get("steps")
    if isinstance(steps, list):
        routing = canary.get("trafficRouting")
        for i, step in enumerate(steps):
            if isinstance(step, Mapping):
                _step_rules(
                    step, (*path, "steps", i), routing if isinstance(routing, Mapping) else None, report
                )
    background = canary.get("analysis")
    start = _int(background.get("startingStep")) if isinstance(background, Mapping) else None
    if start is not None and isinstance(steps, list) and start > len(steps):
        report(
            (*path, "analysis", "startingStep"),
            f"startingStep {start} is beyond the last step ({len(steps)} steps)",
            f"use a step index from 0 to {len(steps)}",
            ERROR,
        )
    limit = _int(canary.get("scaleDownDelayRevisionLimit"))
    if limit is not None and limit > rhl:
        report(
            (*path, "scaleDownDelayRevisionLimit"),
            f"scaleDownDelayRevisionLimit ({limit}) is larger than revisionHistoryLimit ({rhl})",
            "lower scaleDownDelayRevisionLimit or raise revisionHistoryLimit",
            ERROR,
        )


def _fencepost_rules(canary: Mapping[str, Any], path: FieldPath, report: Report) -> None:
    for key in ("maxSurge", "maxUnavailable"):
        value = canary.get(key)
        if isinstance(value, str) and not _is_int_or_percent(value):
            report(
                (*path, key),
                f"{key} {value!r} is neither a number nor a percentage",
                f"write {key} as a number of pods (1) or a percentage of spec.replicas ('25%')",
                ERROR,
            )
    surge, unavailable = canary.get("maxSurge"), canary.get("maxUnavailable")
    if surge is not None and unavailable is not None and _zero(surge) and _zero(unavailable):
        report(
            (*path, "maxSurge"),
            "MaxSurge and MaxUnavailable both can not be zero",
            "allow at least one extra pod (maxSurge) or one unavailable pod (maxUnavailable)",
            ERROR,
        )


def _is_int_or_percent(text: str) -> bool:
    body = text[:-1] if text.endswith("%") else text
    return body.isdigit()


def _zero(value: Any) -> bool:
    if isinstance(value, int | str) and not isinstance(value, bool):
        return int_or_percent(value, 100, round_up=True) == 0
    return False


def _service_rules(canary: Mapping[str, Any], path: FieldPath, report: Report) -> None:
    canary_svc, stable_svc = canary.get("canaryService"), canary.get("stableService")
    if canary_svc and canary_svc == stable_svc:
        report(
            (*path, "stableService"),
            "This rollout uses the same service for the stable and canary services, but two "
            "different services are required.",
            "use two different Services",
            ERROR,
        )
    if canary.get("trafficRouting") is None:
        return
    for key, value in (("stableService", stable_svc), ("canaryService", canary_svc)):
        if not value:
            report(
                (*path, key),
                "Canary service and Stable service must to be set to use Traffic Routing",
                f"name the {key[:-7]} Service in {key}",
                ERROR,
            )


def _routing_rules(canary: Mapping[str, Any], path: FieldPath, report: Report) -> None:
    routing = canary.get("trafficRouting")
    if routing is None:
        for key in ("scaleDownDelaySeconds", "dynamicStableScale"):
            if canary.get(key) not in (None, False):
                report(
                    (*path, key),
                    f"Canary {key} can only be used with traffic routing",
                    f"remove {key}, or add trafficRouting",
                    ERROR,
                )
        return
    if not isinstance(routing, Mapping):
        return
    if canary.get("scaleDownDelaySeconds") is not None and canary.get("dynamicStableScale"):
        report(
            (*path, "dynamicStableScale"),
            "Canary dynamicStableScale cannot be used with scaleDownDelaySeconds",
            "remove one of them",
            ERROR,
        )
    if routing.get("maxTrafficWeight") is not None and not (routing.get("nginx") or routing.get("plugins")):
        report(
            (*path, "trafficRouting", "maxTrafficWeight"),
            "Canary maxTrafficWeight in traffic routing only supported in Nginx and Plugins",
            "remove maxTrafficWeight",
            ERROR,
        )
    for router in UNSUPPORTED_ROUTERS:
        if routing.get(router) is not None:
            report(
                (*path, "trafficRouting", router),
                f"pyrollouts does not drive the {router} traffic router (on Kubernetes it drives the "
                "Gateway API plugin and NGINX; on the local runtime its proxy routes every split)",
                "use trafficRouting.plugins.argoproj-labs/gatewayAPI or trafficRouting.nginx",
                WARNING,
            )


def _step_rules(
    step: Mapping[str, Any], path: FieldPath, routing: Mapping[str, Any] | None, report: Report
) -> None:
    kinds = [k for k in STEP_KINDS if step.get(k) is not None]
    if len(kinds) != 1:
        problem = (
            "Step must have one of the following set: experiment, setWeight, setCanaryScale, plugin or pause"
            if not kinds
            else f"Multiple Steps detected: {', '.join(kinds)}"
        )
        report(path, problem, "give each step exactly one of " + ", ".join(STEP_KINDS), ERROR)
        return
    kind = kinds[0]
    weight = _int(step.get("setWeight"))
    max_weight = _int((routing or {}).get("maxTrafficWeight")) or 100
    if weight is not None and not 0 <= weight <= max_weight:
        report(
            (*path, "setWeight"),
            f"SetWeight needs to be between 0 and {max_weight}",
            f"set a weight from 0 to {max_weight}",
            ERROR,
        )
    if kind in ("experiment", "plugin"):
        report(
            (*path, kind),
            f"{kind} steps are not supported by pyrollouts",
            "remove the step, or use setWeight, pause and analysis steps",
            ERROR,
        )
    elif kind == "pause":
        _pause_rule(step["pause"], (*path, "pause"), report)
    elif kind == "setCanaryScale" and routing is None:
        report((*path, kind), "SetCanaryScale requires TrafficRouting to be set", "add trafficRouting", ERROR)
    elif kind in ("setHeaderRoute", "setMirrorRoute"):
        _route_rules(step[kind], kind, path, routing, report)


def _pause_rule(pause: Any, path: FieldPath, report: Report) -> None:
    duration = pause.get("duration") if isinstance(pause, Mapping) else None
    seconds: float | None
    if isinstance(duration, int) and not isinstance(duration, bool):
        seconds = float(duration)
    elif isinstance(duration, str):
        seconds = pause_seconds(duration)
    else:
        return
    if seconds is None:
        report(
            (*path, "duration"),
            f"pause duration {duration!r} is not a duration",
            "write seconds (30) or a duration with a unit (30s, 5m, 1h)",
            ERROR,
        )
    elif seconds < 0:
        report(
            (*path, "duration"), "Duration needs to be greater than 0", "use a duration of 0 or more", ERROR
        )


def pause_seconds(duration: int | str | None) -> float | None:
    """A pause's duration in seconds (a number, a numeric string, or a Go duration such as
    ``1h30m``); None when there is none or it does not parse."""
    if duration is None:
        return None
    if isinstance(duration, int):
        return float(duration)
    text = duration.strip()
    if text.lstrip("-").isdigit():
        return float(int(text))
    try:
        return duration_seconds(text)
    except ArgsError:
        return None


def _route_rules(
    route: Any, kind: str, path: FieldPath, routing: Mapping[str, Any] | None, report: Report
) -> None:
    routers = _HEADER_ROUTERS if kind == "setHeaderRoute" else _MIRROR_ROUTERS
    if routing is None or not any(routing.get(r) for r in routers):
        what = "Istio and ALB and Apisix" if kind == "setHeaderRoute" else "Istio and Plugins"
        report(
            (*path, kind),
            f"{kind[0].upper()}{kind[1:]} requires TrafficRouting, supports {what}",
            "add trafficRouting.plugins (the Gateway API plugin) with managedRoutes",
            ERROR,
        )
        return
    managed = routing.get("managedRoutes")
    name = route.get("name") if isinstance(route, Mapping) else None
    if not isinstance(managed, list):
        report(
            (*path, kind),
            "Rollout has missing field 'spec.strategy.canary.trafficRouting.managedRoutes'",
            f"list the route {name!r} in trafficRouting.managedRoutes",
            ERROR,
        )
    elif name not in {m.get("name") for m in managed if isinstance(m, Mapping)}:
        report(
            (*path, kind, "name"),
            "Steps define a route that does not exist in spec.strategy.canary.trafficRouting.managedRoutes",
            f"add {{name: {name}}} to trafficRouting.managedRoutes",
            ERROR,
        )
    for j, match in enumerate(route.get("match") or [] if isinstance(route, Mapping) else []):
        if isinstance(match, Mapping):
            _match_rules(match, kind, (*path, kind, "match", j), report)


def _match_rules(match: Mapping[str, Any], kind: str, path: FieldPath, report: Report) -> None:
    values: list[tuple[FieldPath, Any]]
    if kind == "setHeaderRoute":
        values = [((*path, "headerValue"), match.get("headerValue"))]
    else:
        values = [((*path, k), match.get(k)) for k in ("method", "path") if match.get(k) is not None]
        headers = match.get("headers")
        if isinstance(headers, Mapping):
            values += [((*path, "headers", str(h)), v) for h, v in headers.items()]
    for where, value in values:
        set_ = [k for k in ("exact", "prefix", "regex") if isinstance(value, Mapping) and value.get(k)]
        if len(set_) != 1:
            problem = (
                "StringMatch value missed, match value must have one of the following: exact, regex, prefix"
                if not set_
                else "StringMatch match value must have exactly one of the following: exact, regex, prefix"
            )
            report(where, problem, "give exactly one of exact, prefix or regex", ERROR)
