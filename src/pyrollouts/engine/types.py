"""The engine's inputs and outputs: Observed state in, a Plan of small frozen actions out.

Everything here is data. ``engine.plan(rollout, observed, now)`` reads an Observed and returns a
Plan; the controller applies the plan's actions in order, then writes ``plan.status`` through the
status subresource, then looks again after ``plan.requeue_after`` seconds (None: only on change).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..model.rollout import Rollout, RolloutStatus
from ..model.traffic import TrafficSplit


@dataclass(frozen=True)
class ReplicaSetState:
    """What the engine knows of one ReplicaSet owned by the Rollout (its JSON form is in ``obj``)."""

    name: str
    uid: str
    pod_template_hash: str  # the rollouts-pod-template-hash label value
    template: Mapping[str, Any]  # spec.template, as stored (hash label included)
    replicas: int  # spec.replicas
    status_replicas: int
    ready_replicas: int
    available_replicas: int
    annotations: Mapping[str, str]
    labels: Mapping[str, str]
    creation_timestamp: str  # RFC3339
    obj: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class ServiceState:
    name: str
    selector: Mapping[str, str]
    annotations: Mapping[str, str]


@dataclass(frozen=True)
class PodState:
    """A pod's identity, owner and labels (for previewMetadata/activeMetadata), and readiness."""

    name: str
    replicaset: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str] = field(default_factory=dict)
    ready: bool = False
    restarts: int = 0
    creation_timestamp: str = ""  # RFC3339; restartAt replaces the pods created before it


@dataclass(frozen=True)
class AnalysisRunState:
    """An AnalysisRun the Rollout owns (its JSON form is in ``obj``)."""

    name: str
    labels: Mapping[str, str]
    phase: str  # status.phase ("" before the analysis controller first wrote it)
    message: str
    terminate: bool  # spec.terminate
    creation_timestamp: str  # RFC3339
    obj: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Observed:
    """The world as the controller last saw it, for one Rollout."""

    replicasets: tuple[ReplicaSetState, ...] = ()
    services: Mapping[str, ServiceState] = field(default_factory=dict)  # by name; missing = absent
    pods: tuple[PodState, ...] = ()
    first_seen: bool = False  # True when this controller has not reconciled this Rollout before
    # The Deployment named by spec.workloadRef (JSON form), by name; missing = absent.
    deployments: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # ReplicaSets in the namespace named "<rollout>-..." that the Rollout does NOT own. The engine
    # never acts on them; one holding the name the new RS would get is a hash collision (the
    # engine bumps status.collisionCount instead of creating a ReplicaSet whose create must fail).
    foreign_replicasets: tuple[ReplicaSetState, ...] = ()
    # The AnalysisRuns the Rollout owns, and the templates its analyses reference (nested ones
    # included), by (clusterScope, name); a missing one is an InvalidSpec.
    analysis_runs: tuple[AnalysisRunState, ...] = ()
    analysis_templates: Mapping[tuple[bool, str], Mapping[str, Any]] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Actions. Each is applied by the controller as one write.


@dataclass(frozen=True)
class CreateReplicaSet:
    """Create the ReplicaSet ``<rollout>-<hash>`` with this full JSON body (owner ref included)."""

    name: str
    body: Mapping[str, Any]


@dataclass(frozen=True)
class ScaleReplicaSet:
    """Set spec.replicas and the desired-replicas annotation."""

    name: str
    replicas: int
    desired_replicas: int


@dataclass(frozen=True)
class AnnotateReplicaSet:
    """Set (str) or remove (None) annotations on a ReplicaSet: revision, revision-history, and
    ephemeral metadata. The scale-down deadline has its own action."""

    name: str
    annotations: Mapping[str, str | None]
    labels: Mapping[str, str | None] = field(default_factory=dict)
    template_labels: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class UpdateReplicaSetAffinity:
    """Merge-patch a ReplicaSet's spec.template.spec.affinity (None: remove it): the injected
    blueGreen.antiAffinity term follows the stable RS. Running pods are not touched."""

    name: str
    affinity: Mapping[str, Any] | None


@dataclass(frozen=True)
class SetScaleDownDeadline:
    """Set (RFC3339 UTC) or clear (None) the ``scale-down-deadline`` annotation.

    ``resource_version``: the ReplicaSet's as the plan saw it. A deadline is set only on the RS the
    engine planned from: on a runtime whose reads come from caches, a view that lags behind a
    deadline written just before an outage would otherwise replace it with a later one."""

    name: str
    deadline: str | None
    resource_version: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class SwitchService:
    """Point a Service's selector at a pod-template hash and mark it managed by this Rollout."""

    service: str
    pod_template_hash: str
    managed_by: str


@dataclass(frozen=True)
class PatchPodMetadata:
    """Set or remove labels/annotations on one pod (previewMetadata/activeMetadata)."""

    pod: str
    labels: Mapping[str, str | None] = field(default_factory=dict)
    annotations: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class UpdateRollout:
    """Write the Rollout's own spec/metadata: spec.replicas when nil, the revision annotation."""

    replicas: int | None = None
    annotations: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class DeleteReplicaSet:
    name: str


@dataclass(frozen=True)
class DeletePod:
    """Delete one pod (spec.restartAt: its ReplicaSet replaces it with a fresh one)."""

    pod: str


@dataclass(frozen=True)
class EmitEvent:
    """A Kubernetes Event on the Rollout: type Normal or Warning, Argo's reason and message."""

    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class CreateAnalysisRun:
    """Create an AnalysisRun with this full JSON body (owner ref, labels and args included)."""

    name: str
    body: Mapping[str, Any]


@dataclass(frozen=True)
class TerminateAnalysisRun:
    """Set spec.terminate on a run still going (the analysis controller ends it)."""

    name: str


@dataclass(frozen=True)
class DeleteAnalysisRun:
    """Delete a finished run beyond spec.analysis's history limits (or of a ReplicaSet gone)."""

    name: str


@dataclass(frozen=True)
class SetTrafficSplit:
    """Give a canary's traffic router this split (weights, header and mirror routes)."""

    split: TrafficSplit


Action = (
    CreateReplicaSet
    | ScaleReplicaSet
    | AnnotateReplicaSet
    | UpdateReplicaSetAffinity
    | SetScaleDownDeadline
    | SwitchService
    | PatchPodMetadata
    | UpdateRollout
    | DeleteReplicaSet
    | DeletePod
    | EmitEvent
    | CreateAnalysisRun
    | TerminateAnalysisRun
    | DeleteAnalysisRun
    | SetTrafficSplit
)


@dataclass(frozen=True)
class Plan:
    """What to do now, the status to write afterwards, and when to look again (seconds)."""

    actions: tuple[Action, ...]
    status: RolloutStatus
    requeue_after: float | None = None


__all__ = [
    "Action",
    "AnalysisRunState",
    "AnnotateReplicaSet",
    "CreateAnalysisRun",
    "CreateReplicaSet",
    "DeleteAnalysisRun",
    "DeletePod",
    "DeleteReplicaSet",
    "EmitEvent",
    "Observed",
    "PatchPodMetadata",
    "Plan",
    "PodState",
    "ReplicaSetState",
    "Rollout",
    "ScaleReplicaSet",
    "ServiceState",
    "SetScaleDownDeadline",
    "SetTrafficSplit",
    "SwitchService",
    "TerminateAnalysisRun",
    "UpdateReplicaSetAffinity",
    "UpdateRollout",
]
