"""Step 1 of a reconcile: is the spec and what it references usable? (the InvalidSpec condition)."""

from __future__ import annotations

from ..model import names
from ..model.rollout import Rollout
from .types import Observed


def _invalid(name: str, path: str, value: str, why: str) -> str:
    return f'The Rollout "{name}" is invalid: {path}: Invalid value: "{value}": {why}'


def invalid_spec(rollout: Rollout, observed: Observed) -> str | None:
    """The InvalidSpec message for the first problem found, or None when the Rollout can proceed."""
    spec = rollout.spec
    name = rollout.metadata.name
    sel = spec.selector
    if sel is None:
        return "Rollout has missing field '.spec.selector'"
    if not sel.match_labels and not sel.match_expressions:
        return "This rollout is selecting all pods. A non-empty selector is required."
    if spec.template is None:
        return "Rollout has missing field '.spec.template'"
    tmpl_labels: dict[str, str] = dict((spec.template.get("metadata") or {}).get("labels") or {})
    for k, v in (sel.match_labels or {}).items():
        if tmpl_labels.get(k) != v:
            return _invalid(name, "spec.selector", f"{k}={v}", "`selector` does not match template `labels`")
    if spec.strategy.canary is not None and spec.strategy.blue_green is None:
        return "The canary strategy is not supported yet; use spec.strategy.blueGreen"
    bg = spec.strategy.blue_green
    if bg is None:
        return "Rollout has missing field '.spec.strategy.blueGreen'"
    if not bg.active_service:
        return "Rollout has missing field '.spec.strategy.blueGreen.activeService'"
    if bg.active_service == bg.preview_service:
        return (
            "This rollout uses the same service for the active and preview services, "
            "but two different services are required."
        )
    if rollout.progress_deadline_seconds() <= rollout.min_ready_seconds():
        return _invalid(
            name,
            "spec.progressDeadlineSeconds",
            str(rollout.progress_deadline_seconds()),
            "progressDeadlineSeconds must be greater than minReadySeconds",
        )
    limit = bg.scale_down_delay_revision_limit
    if limit is not None and limit < 0:
        return _invalid(
            name, "spec.strategy.blueGreen.scaleDownDelayRevisionLimit", str(limit), "must be >= 0"
        )
    for field, svc_name in (("activeService", bg.active_service), ("previewService", bg.preview_service)):
        if not svc_name:
            continue
        path = f"spec.strategy.blueGreen.{field}"
        svc = observed.services.get(svc_name)
        if svc is None:
            return _invalid(name, path, svc_name, f'service "{svc_name}" not found')
        owner = svc.annotations.get(names.MANAGED_BY_ANNOTATION)
        if owner and owner != name:
            return f'Service "{svc_name}" is managed by another Rollout'
        for k, v in svc.selector.items():
            if k == names.POD_TEMPLATE_HASH_LABEL:
                continue
            if tmpl_labels.get(k) != v:
                return _invalid(
                    name,
                    path,
                    svc_name,
                    f"the Service selector {k}={v} does not match the pod template labels",
                )
    return None
