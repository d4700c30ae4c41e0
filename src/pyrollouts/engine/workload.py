"""spec.workloadRef: a Rollout that takes its pod template from a Deployment (apps/v1).

The controller fetches the referenced Deployment into ``Observed.deployments``; ``resolve`` returns
a copy of the Rollout whose template (and selector, when the Rollout has none) come from it, so
every later step plans exactly as for a Rollout with an inline template. The Deployment itself is
never run: Argo expects it scaled to 0, and the local runtime only stores it.
"""

from __future__ import annotations

import copy

from ..model.rollout import LabelSelector, Rollout
from .types import Observed


def resolve(rollout: Rollout, observed: Observed) -> tuple[Rollout, str | None]:
    """The Rollout to plan with, and an InvalidSpec message when the reference cannot be used."""
    ref = rollout.spec.workload_ref
    if ref is None:
        return rollout, None
    if rollout.spec.template:
        return rollout, "template must be empty for a workload reference rollout"
    if (ref.api_version or "apps/v1") != "apps/v1" or ref.kind != "Deployment":
        return rollout, (
            f"workloadRef: {ref.api_version}/{ref.kind} is not supported; reference an apps/v1 Deployment"
        )
    if not ref.name:
        return rollout, "workloadRef: name is required"
    deployment = observed.deployments.get(ref.name)
    if deployment is None:
        return rollout, f"workloadRef: deployment '{ref.name}' not found"
    dspec = deployment.get("spec") or {}
    template = dspec.get("template")
    if not isinstance(template, dict) or not template:
        return rollout, f"workloadRef: deployment '{ref.name}' has no spec.template"
    selector = rollout.spec.selector
    if selector is None and isinstance(dspec.get("selector"), dict):
        selector = LabelSelector.model_validate(dspec["selector"])
    spec = rollout.spec.model_copy(update={"template": copy.deepcopy(template), "selector": selector})
    return rollout.model_copy(update={"spec": spec}), None
