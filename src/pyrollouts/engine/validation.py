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
    bg = rollout.bg
    for field, svc_name in (("activeService", bg.active_service), ("previewService", bg.preview_service)):
        if svc_name:
            problem = _service_problem(rollout, observed, field, svc_name)
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
    if strategy.canary is not None and strategy.blue_green is None:
        return "The canary strategy is not supported yet; use spec.strategy.blueGreen"
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


def _service_problem(rollout: Rollout, observed: Observed, field: str, svc_name: str) -> str | None:
    """The Service exists, is not managed by another Rollout, and selects the template's labels."""
    name = rollout.metadata.name
    path = f"spec.strategy.blueGreen.{field}"
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
