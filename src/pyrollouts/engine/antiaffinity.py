"""spec.strategy.blueGreen.antiAffinity: keep the new pods off the stable pods' nodes.

As Argo does, the term goes into the *new ReplicaSet's* pod template, never into the Rollout's (so
the pod-template hash, computed on the Rollout's template, does not move), and only while a stable
ReplicaSet other than the new one exists. It selects the stable pods by their
``rollouts-pod-template-hash`` (operator In, the stable hash) per node (``kubernetes.io/hostname``),
appended to the user's own podAntiAffinity terms. ``model.hash.templates_equal`` ignores it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from ..model import names
from ..model.useractions import merge_patch_to
from .context import Ctx
from .types import ReplicaSetState, UpdateReplicaSetAffinity

TOPOLOGY_KEY = "kubernetes.io/hostname"
_PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"
_REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"


def stable_to_avoid(ctx: Ctx, stable: str | None, cur: str) -> str | None:
    """The stable hash the new RS must avoid: set, not the new RS's own, and its RS still exists."""
    if ctx.rollout.anti_affinity() is None or not stable or stable == cur:
        return None
    return stable if ctx.rs_by_hash(stable) is not None else None


def desired_affinity(ctx: Ctx, stable: str | None) -> dict[str, Any] | None:
    """The new RS's spec.template.spec.affinity: the user's, plus the injected term when ``stable``
    (from ``stable_to_avoid``) is set. None when there is no affinity at all."""
    tspec = (ctx.rollout.spec.template or {}).get("spec") or {}
    affinity: dict[str, Any] = copy.deepcopy(dict(tspec.get("affinity") or {}))
    strategy = ctx.rollout.anti_affinity()
    if strategy is not None and stable:
        term = {
            "labelSelector": {
                "matchExpressions": [
                    {"key": names.POD_TEMPLATE_HASH_LABEL, "operator": "In", "values": [stable]}
                ]
            },
            "topologyKey": TOPOLOGY_KEY,
        }
        anti = affinity.setdefault("podAntiAffinity", {})
        preferred = strategy.preferred_during_scheduling_ignored_during_execution
        if preferred is not None:
            weighted = {"weight": preferred.weight, "podAffinityTerm": term}
            anti[_PREFERRED] = [*(anti.get(_PREFERRED) or []), weighted]
        elif strategy.required_during_scheduling_ignored_during_execution is not None:
            anti[_REQUIRED] = [*(anti.get(_REQUIRED) or []), term]
    return affinity or None


def reconcile(ctx: Ctx, new_rs: ReplicaSetState, stable: str | None) -> None:
    """Bring an existing new RS's injected term in line with the current stable RS (Argo updates it
    when the stable RS changes, e.g. removes it once the new RS is itself stable). Pods that run
    keep what they were scheduled with; only pods created later see the change. Without
    antiAffinity in the spec, RS templates are left as they are (a term Argo left behind is
    harmless and ignored by template comparison; taking over from Argo must write nothing)."""
    if ctx.rollout.anti_affinity() is None:
        return
    want = desired_affinity(ctx, stable_to_avoid(ctx, stable, new_rs.pod_template_hash))
    have = ((new_rs.template.get("spec") or {}) if isinstance(new_rs.template, Mapping) else {}).get(
        "affinity"
    )
    if (have or None) == want:
        return
    patch = None if want is None else merge_patch_to(have or {}, want)
    ctx.actions.append(UpdateReplicaSetAffinity(name=new_rs.name, affinity=patch))
