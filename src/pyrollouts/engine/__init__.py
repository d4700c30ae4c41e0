"""The blue-green engine: pure decisions, ``plan(rollout, observed, now) -> Plan``.

Split by concern as Argo's rollout/ package is: ``bluegreen`` (the order of one reconcile),
``replicaset`` (find/create/scale/clean up), ``service`` (selector switches), ``pause``,
``restart``, ``conditions``, ``phase``, ``status``, ``events``, ``validation`` (InvalidSpec) and
``sync`` (the entry point). Inputs and outputs are in ``types``.
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
