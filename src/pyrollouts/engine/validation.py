"""The first step of a reconcile: are the spec and what it references usable? (the InvalidSpec
condition, docs/argo-compat.md "InvalidSpec"). Checks run in order; the first problem is reported."""

from __future__ import annotations

from ..model import names
from ..model.rollout import BlueGreenStrategy, Rollout
from .types import Observed


def invalid(name: str, path: str, value: str, why: str) -> str:
    """Argo's field.Invalid message for the Rollout."""
    return f'The Rollout "{name}" is invalid: {path}: Invalid value: "{value}": {why}'


def invalid_spec(rollout: Rollout, observed: Observed) -> str | None:
    """The InvalidSpec message for the first problem found, or None when the Rollout can proceed."""
    problem = _selector_problem(rollout) or _strategy_problem(rollout)
    if problem is not None:
        return problem
    if rollout.is_canary:
        canary = rollout.canary
        strategy, refs = (
            "canary",
            (("stableService", canary.stable_service), ("canaryService", canary.canary_service)),
        )
    else:
        bg = rollout.bg
        strategy, refs = (
            "blueGreen",
            (("activeService", bg.active_service), ("previewService", bg.preview_service)),
        )
    for field, svc_name in refs:
        if svc_name:
            problem = _service_problem(rollout, observed, f"spec.strategy.{strategy}.{field}", svc_name)
            if problem is not None:
                return problem
    return None


def _template_labels(rollout: Rollout) -> dict[str, str]:
    return dict(((rollout.spec.template or {}).get("metadata") or {}).get("labels") or {})


def _selector_problem(rollout: Rollout) -> str | None:
    """spec.selector is set, not empty, and matches the template's labels; spec.template is set."""
    spec = rollout.spec
    sel = spec.selector
    if sel is None:
        return "Rollout has missing field '.spec.selector'"
    if not sel.match_labels and not sel.match_expressions:
        return "This rollout is selecting all pods. A non-empty selector is required."
    if spec.template is None:
        return "Rollout has missing field '.spec.template'"
    labels = _template_labels(rollout)
    for k, v in (sel.match_labels or {}).items():
        if labels.get(k) != v:
            why = "`selector` does not match template `labels`"
            return invalid(rollout.metadata.name, "spec.selector", f"{k}={v}", why)
    return None


def _strategy_problem(rollout: Rollout) -> str | None:
    """A blueGreen strategy with an active Service (distinct from the preview one) and sane limits."""
    strategy = rollout.spec.strategy
    if strategy.canary is not None and strategy.blue_green is not None:
        return "Multiple Strategies can not be listed"
    if rollout.is_canary:
        return _canary_problem(rollout)
    bg = strategy.blue_green
    if bg is None:
        return "Rollout has missing field '.spec.strategy.blueGreen'"
    if not bg.active_service:
        return "Rollout has missing field '.spec.strategy.blueGreen.activeService'"
    if bg.active_service == bg.preview_service:
        return (
            "This rollout uses the same service for the active and preview services, "
            "but two different services are required."
        )
    return _limits_problem(rollout, bg)


def _canary_problem(rollout: Rollout) -> str | None:
    """What Argo refuses in a canary strategy that the engine would trip on (the linter reports
    the rest with the file and field): the steps it cannot run, two roles on one Service, and
    trafficRouting without both Services."""
    canary, name = rollout.canary, rollout.metadata.name
    path = "spec.strategy.canary"
    if canary.canary_service and canary.canary_service == canary.stable_service:
        return (
            "This rollout uses the same service for the stable and canary services, "
            "but two different services are required."
        )
    if canary.traffic_routing is not None and not (canary.stable_service and canary.canary_service):
        why = "Canary service and Stable service must to be set to use Traffic Routing"
        return invalid(name, f"{path}.stableService", canary.stable_service or "", why)
    for i, step in enumerate(canary.steps or []):
        if step.experiment is not None or step.plugin is not None:
            return invalid(
                name, f"{path}.steps[{i}]", "experiment", "experiment and plugin steps are not supported"
            )
    if rollout.progress_deadline_seconds() <= rollout.min_ready_seconds():
        return invalid(
            name,
            "spec.progressDeadlineSeconds",
            str(rollout.progress_deadline_seconds()),
            "progressDeadlineSeconds must be greater than minReadySeconds",
        )
    return None


def _limits_problem(rollout: Rollout, bg: BlueGreenStrategy) -> str | None:
    name = rollout.metadata.name
    if rollout.progress_deadline_seconds() <= rollout.min_ready_seconds():
        return invalid(
            name,
            "spec.progressDeadlineSeconds",
            str(rollout.progress_deadline_seconds()),
            "progressDeadlineSeconds must be greater than minReadySeconds",
        )
    limit = bg.scale_down_delay_revision_limit
    if limit is not None and limit < 0:
        return invalid(
            name, "spec.strategy.blueGreen.scaleDownDelayRevisionLimit", str(limit), "must be >= 0"
        )
    return None


def _service_problem(rollout: Rollout, observed: Observed, path: str, svc_name: str) -> str | None:
    """The Service exists, is not managed by another Rollout, and selects the template's labels."""
    name = rollout.metadata.name
    svc = observed.services.get(svc_name)
    if svc is None:
        return invalid(name, path, svc_name, f'service "{svc_name}" not found')
    owner = svc.annotations.get(names.MANAGED_BY_ANNOTATION)
    if owner and owner != name:
        return f'Service "{svc_name}" is managed by another Rollout'
    labels = _template_labels(rollout)
    for k, v in svc.selector.items():
        if k != names.POD_TEMPLATE_HASH_LABEL and labels.get(k) != v:
            why = f"the Service selector {k}={v} does not match the pod template labels"
            return invalid(name, path, svc_name, why)
    return None
