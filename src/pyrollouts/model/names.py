"""The label, annotation and reason names shared with Argo Rollouts (docs/argo-compat.md)."""

from __future__ import annotations

GROUP = "argoproj.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

POD_TEMPLATE_HASH_LABEL = "rollouts-pod-template-hash"
REVISION_ANNOTATION = "rollout.argoproj.io/revision"
REVISION_HISTORY_ANNOTATION = "rollout.argoproj.io/revision-history"
DESIRED_REPLICAS_ANNOTATION = "rollout.argoproj.io/desired-replicas"
SCALE_DOWN_DEADLINE_ANNOTATION = "scale-down-deadline"
EPHEMERAL_METADATA_ANNOTATION = "rollout.argoproj.io/ephemeral-metadata"
MANAGED_BY_ANNOTATION = "argo-rollouts.argoproj.io/managed-by-rollouts"
INSTANCE_ID_LABEL = "argo-rollouts.argoproj.io/controller-instance-id"
#: Ours: where the local runtime records a Pod's host ports, JSON {containerPort: hostPort} with
#: the main port first (runtimes/local/ports.py writes it; the proxy and the info view read it).
PORTS_ANNOTATION = "local.pyrollouts.io/ports"

# Pause reasons
PAUSE_BLUE_GREEN = "BlueGreenPause"
PAUSE_CANARY_STEP = "CanaryPauseStep"
PAUSE_INCONCLUSIVE_ANALYSIS = "InconclusiveAnalysisRun"

# AnalysisRuns a Rollout creates: the label saying which analysis made them, and its values.
ROLLOUT_TYPE_LABEL = "rollout-type"
ROLLOUT_TYPE_PRE_PROMOTION = "PrePromotion"
ROLLOUT_TYPE_POST_PROMOTION = "PostPromotion"
ROLLOUT_TYPE_STEP = "Step"
ROLLOUT_TYPE_BACKGROUND = "Background"
STEP_INDEX_LABEL = "step-index"
#: spec.analysis's defaults: finished runs of earlier revisions kept, per outcome.
DEFAULT_SUCCESSFUL_RUN_HISTORY = 5
DEFAULT_UNSUCCESSFUL_RUN_HISTORY = 5

# Condition types
COND_PROGRESSING = "Progressing"
COND_AVAILABLE = "Available"
COND_PAUSED = "Paused"
COND_HEALTHY = "Healthy"
COND_COMPLETED = "Completed"
COND_INVALID_SPEC = "InvalidSpec"
COND_REPLICA_FAILURE = "ReplicaFailure"

# Condition / event reasons
NEW_RS_CREATED = "NewReplicaSetCreated"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
ROLLOUT_PAUSED = "RolloutPaused"
ROLLOUT_RESUMED = "RolloutResumed"
ROLLOUT_RETRY = "RolloutRetry"
ROLLOUT_ABORTED = "RolloutAborted"
PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
ROLLOUT_HEALTHY = "RolloutHealthy"
ROLLOUT_COMPLETED = "RolloutCompleted"
ROLLOUT_STEP_COMPLETED = "RolloutStepCompleted"
SKIP_STEPS = "SkipSteps"
ROLLOUT_NOT_COMPLETED = "RolloutNotCompleted"
AVAILABLE_REASON = "AvailableReason"
INVALID_SPEC_REASON = "InvalidSpec"
ROLLOUT_ADDED_TO_INFORMER = "RolloutAddedToInformer"
ROLLOUT_UPDATED = "RolloutUpdated"
SCALING_REPLICASET = "ScalingReplicaSet"
SWITCH_SERVICE = "SwitchService"

# Phases
PHASE_HEALTHY = "Healthy"
PHASE_PROGRESSING = "Progressing"
PHASE_PAUSED = "Paused"
PHASE_DEGRADED = "Degraded"

# Defaults
DEFAULT_REVISION_HISTORY_LIMIT = 10
DEFAULT_PROGRESS_DEADLINE_SECONDS = 600
DEFAULT_SCALE_DOWN_DELAY_SECONDS = 30
DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS = 30
DEFAULT_MAX_SURGE = "25%"  # canary.maxSurge
DEFAULT_MAX_UNAVAILABLE = "25%"  # canary.maxUnavailable
INVALID_SPEC_RETRY_SECONDS = 20
