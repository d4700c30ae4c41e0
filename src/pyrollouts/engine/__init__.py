"""The blue-green engine: pure decisions, ``plan(rollout, observed, now) -> Plan``.

Split by concern as Argo's rollout/ package is: ``sync`` (the entry point), ``validation``
(InvalidSpec), ``bluegreen`` (one reconcile as a list of named steps), and a module per step:
``replicaset`` (new RS, sizing, old RSs, history), ``roles`` (new/stable/active/preview, found
once), ``pause`` (the pause context: pause, abort, promoteFull), ``progress`` (deadline, retry),
``service`` (preview and active), ``ephemeral``, ``antiaffinity``, ``restart``, ``status`` (with
``conditions`` and ``phase``) and ``events``. Inputs and outputs are in ``types``; the order of the
steps and the Argo behaviour they follow are in docs/argo-compat.md.
"""

from __future__ import annotations

from .sync import plan
from .types import (
    Action,
    AnnotateReplicaSet,
    CreateReplicaSet,
    DeletePod,
    DeleteReplicaSet,
    EmitEvent,
    Observed,
    PatchPodMetadata,
    Plan,
    PodState,
    ReplicaSetState,
    ScaleReplicaSet,
    ServiceState,
    SetScaleDownDeadline,
    SwitchService,
    UpdateReplicaSetAffinity,
    UpdateRollout,
)

__all__ = [
    "Action",
    "AnnotateReplicaSet",
    "CreateReplicaSet",
    "DeletePod",
    "DeleteReplicaSet",
    "EmitEvent",
    "Observed",
    "PatchPodMetadata",
    "Plan",
    "PodState",
    "ReplicaSetState",
    "ScaleReplicaSet",
    "ServiceState",
    "SetScaleDownDeadline",
    "SwitchService",
    "UpdateReplicaSetAffinity",
    "UpdateRollout",
    "plan",
]
