"""The Rollout object (argoproj.io/v1alpha1), blue-green and canary, as typed pydantic models.

This module is the single source of the Rollout's schema: the parser, the linter's schema walk
and the CRD's openAPIV3Schema are all derived from these classes. Wire names are camelCase
(aliases); Python attributes are snake_case. The pod template is kept as a plain mapping here and
is described by Kubernetes' own generated models (lightkube-models, see ``model.kube``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from . import names

# Field metadata read by the linter's schema walk and the CRD generator (model.schema): the bounds
# Argo and Kubernetes enforce, fields Argo requires, and fields typed by Kubernetes' own schema.
_NON_NEGATIVE: dict[str, Any] = {"minimum": 0}
_REQUIRED: dict[str, Any] = {"x-required": True}


class _Wire(BaseModel):
    """Base: camelCase on the wire, unknown fields kept (lint reports them), None omitted on dump."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    def wire(self) -> dict[str, Any]:
        """The object as Kubernetes JSON (camelCase, no None values)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ObjectMeta(_Wire):
    name: str = ""
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    owner_references: list[dict[str, Any]] | None = None
    finalizers: list[str] | None = None


class LabelSelector(_Wire):
    match_labels: dict[str, str] | None = None
    match_expressions: list[dict[str, Any]] | None = None


class PodMetadata(_Wire):
    """Labels and annotations put on pods while they hold a role (previewMetadata/activeMetadata)."""

    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class PreferredAntiAffinity(_Wire):
    weight: int = Field(json_schema_extra={"minimum": 1, "maximum": 100})


class RequiredAntiAffinity(_Wire):
    pass


class AntiAffinity(_Wire):
    preferred_during_scheduling_ignored_during_execution: PreferredAntiAffinity | None = None
    required_during_scheduling_ignored_during_execution: RequiredAntiAffinity | None = None


class RolloutAnalysis(_Wire):
    """blueGreen.prePromotionAnalysis / postPromotionAnalysis: the templates an AnalysisRun is made
    from, the args given to them, and what the run inherits (dryRun, measurementRetention, labels
    and annotations of analysisRunMetadata)."""

    templates: list[dict[str, Any]] | None = None
    args: list[dict[str, Any]] | None = None
    dry_run: list[dict[str, Any]] | None = None
    measurement_retention: list[dict[str, Any]] | None = None
    analysis_run_metadata: dict[str, Any] | None = None


class AnalysisRunStrategy(_Wire):
    """spec.analysis: how many finished AnalysisRuns of earlier revisions are kept (5 and 5)."""

    successful_run_history_limit: int | None = Field(default=None, json_schema_extra=_NON_NEGATIVE)
    unsuccessful_run_history_limit: int | None = Field(default=None, json_schema_extra=_NON_NEGATIVE)


class BlueGreenStrategy(_Wire):
    active_service: str = Field(default="", json_schema_extra=_REQUIRED)
    preview_service: str | None = None
    preview_replica_count: int | None = Field(default=None, json_schema_extra=_NON_NEGATIVE)
    auto_promotion_enabled: bool | None = None
    auto_promotion_seconds: int | None = Field(default=None, json_schema_extra=_NON_NEGATIVE)
    scale_down_delay_seconds: int | None = Field(default=None, json_schema_extra=_NON_NEGATIVE)
    scale_down_delay_revision_limit: int | None = Field(default=None, json_schema_extra=_NON_NEGATIVE)
    abort_scale_down_delay_seconds: int | None = Field(default=None, json_schema_extra=_NON_NEGATIVE)
    pre_promotion_analysis: RolloutAnalysis | None = None
    post_promotion_analysis: RolloutAnalysis | None = None
    preview_metadata: PodMetadata | None = None
    active_metadata: PodMetadata | None = None
    anti_affinity: AntiAffinity | None = None


class RolloutAnalysisBackground(RolloutAnalysis):
    """canary.analysis: the background analysis, run from ``startingStep`` (default: the first
    step) until the update completes."""

    starting_step: int | None = Field(default=None, json_schema_extra=_NON_NEGATIVE)


class CanaryPause(_Wire):
    """A pause step: ``duration`` (seconds as a number, or a duration such as ``30s``, ``5m``,
    ``1h``); no duration waits for a promote."""

    duration: int | str | None = None


class SetCanaryScale(_Wire):
    """setCanaryScale (with trafficRouting): size the canary by ``replicas`` or ``weight``
    instead of by the traffic weight, or go back to matching it (``matchTrafficWeight``)."""

    weight: int | None = Field(default=None, json_schema_extra={"minimum": 0, "maximum": 100})
    replicas: int | None = Field(default=None, json_schema_extra=_NON_NEGATIVE)
    match_traffic_weight: bool | None = None


class StringMatchSpec(_Wire):
    """Argo's StringMatch: exactly one of exact, prefix, regex."""

    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None


class HeaderRoutingMatch(_Wire):
    header_name: str = Field(default="", json_schema_extra=_REQUIRED)
    header_value: StringMatchSpec | None = Field(default=None, json_schema_extra=_REQUIRED)


class SetHeaderRoute(_Wire):
    """setHeaderRoute: the requests matching every header go to the canary (a route with no
    match removes the route)."""

    name: str = Field(default="", json_schema_extra=_REQUIRED)
    match: list[HeaderRoutingMatch] | None = None


class RouteMatch(_Wire):
    method: StringMatchSpec | None = None
    path: StringMatchSpec | None = None
    headers: dict[str, StringMatchSpec] | None = None


class SetMirrorRoute(_Wire):
    """setMirrorRoute: ``percentage`` of the requests matching any ``match`` are copied to the
    canary and its answers dropped (no match removes the mirror)."""

    name: str = Field(default="", json_schema_extra=_REQUIRED)
    percentage: int | None = Field(default=None, json_schema_extra={"minimum": 0, "maximum": 100})
    match: list[RouteMatch] | None = None


class CanaryStep(_Wire):
    """One step of canary.steps: exactly one of its fields is set."""

    set_weight: int | None = Field(default=None, json_schema_extra={"minimum": 0, "maximum": 100})
    pause: CanaryPause | None = None
    set_canary_scale: SetCanaryScale | None = None
    analysis: RolloutAnalysis | None = None
    set_header_route: SetHeaderRoute | None = None
    set_mirror_route: SetMirrorRoute | None = None
    experiment: dict[str, Any] | None = None
    plugin: dict[str, Any] | None = None


class NginxTrafficRouting(_Wire):
    """trafficRouting.nginx: the stable Ingress(es) whose canary twin carries the weight."""

    stable_ingress: str | None = None
    stable_ingresses: list[str] | None = None
    annotation_prefix: str | None = None
    additional_ingress_annotations: dict[str, str] | None = None
    canary_ingress_annotations: dict[str, str] | None = None


class TrafficRouting(_Wire):
    """canary.trafficRouting: which router carries the weights. Typed for the routers we drive
    (the Gateway API plugin, NGINX); the others Argo knows are kept as written."""

    plugins: dict[str, Any] | None = None
    nginx: NginxTrafficRouting | None = None
    managed_routes: list[dict[str, Any]] | None = None
    max_traffic_weight: int | None = Field(default=None, json_schema_extra={"minimum": 1})
    istio: dict[str, Any] | None = None
    alb: dict[str, Any] | None = None
    smi: dict[str, Any] | None = None
    ambassador: dict[str, Any] | None = None
    app_mesh: dict[str, Any] | None = None
    traefik: dict[str, Any] | None = None
    apisix: dict[str, Any] | None = None


class CanaryStrategy(_Wire):
    steps: list[CanaryStep] | None = None
    canary_service: str | None = None
    stable_service: str | None = None
    max_surge: int | str | None = None
    max_unavailable: int | str | None = None
    dynamic_stable_scale: bool | None = None
    scale_down_delay_seconds: int | None = Field(default=None, json_schema_extra=_NON_NEGATIVE)
    scale_down_delay_revision_limit: int | None = Field(default=None, json_schema_extra=_NON_NEGATIVE)
    abort_scale_down_delay_seconds: int | None = Field(default=None, json_schema_extra=_NON_NEGATIVE)
    analysis: RolloutAnalysisBackground | None = None
    canary_metadata: PodMetadata | None = None
    stable_metadata: PodMetadata | None = None
    anti_affinity: AntiAffinity | None = None
    min_pods_per_replica_set: int | None = Field(default=None, json_schema_extra={"minimum": 1})
    traffic_routing: TrafficRouting | None = None


class RolloutStrategy(_Wire):
    blue_green: BlueGreenStrategy | None = None
    canary: CanaryStrategy | None = None


class ObjectRef(_Wire):
    api_version: str | None = None
    kind: str | None = None
    name: str | None = None


class RollbackWindow(_Wire):
    revisions: int | None = Field(default=None, json_schema_extra=_NON_NEGATIVE)


class RolloutSpec(_Wire):
    replicas: int | None = Field(default=None, json_schema_extra=_NON_NEGATIVE)
    selector: LabelSelector | None = Field(
        default=None, json_schema_extra={"x-kube-type": "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"}
    )
    template: dict[str, Any] | None = Field(
        default=None, json_schema_extra={"x-kube-type": "io.k8s.api.core.v1.PodTemplateSpec"}
    )
    workload_ref: ObjectRef | None = None
    min_ready_seconds: int | None = Field(default=None, json_schema_extra=_NON_NEGATIVE)
    revision_history_limit: int | None = Field(default=None, json_schema_extra=_NON_NEGATIVE)
    progress_deadline_seconds: int | None = Field(default=None, json_schema_extra=_NON_NEGATIVE)
    progress_deadline_abort: bool | None = None
    paused: bool | None = None
    restart_at: str | None = None
    rollback_window: RollbackWindow | None = None
    analysis: AnalysisRunStrategy | None = None
    strategy: RolloutStrategy = Field(default_factory=RolloutStrategy)


class PauseCondition(_Wire):
    reason: str
    start_time: str


class Condition(_Wire):
    type: str
    status: str
    reason: str = ""
    message: str = ""
    last_update_time: str | None = None
    last_transition_time: str | None = None


class BlueGreenStatus(_Wire):
    active_selector: str | None = None
    preview_selector: str | None = None
    scale_up_preview_check_point: bool | None = None
    pre_promotion_analysis_run_status: dict[str, Any] | None = None
    post_promotion_analysis_run_status: dict[str, Any] | None = None


class TrafficWeightDestination(_Wire):
    pod_template_hash: str | None = None
    weight: int = 0
    service_name: str | None = None


class TrafficWeights(_Wire):
    """status.canary.weights: the split the router was last given (canary, stable, additional)."""

    canary: TrafficWeightDestination = Field(default_factory=TrafficWeightDestination)
    stable: TrafficWeightDestination = Field(default_factory=TrafficWeightDestination)
    additional: list[TrafficWeightDestination] | None = None
    verified: bool | None = None


class CanaryStatus(_Wire):
    weights: TrafficWeights | None = None
    current_step_analysis_run_status: dict[str, Any] | None = None
    current_background_analysis_run_status: dict[str, Any] | None = None
    current_experiment: str | None = None
    stable_ping_pong: str | None = None


class RolloutStatus(_Wire):
    phase: str | None = None
    message: str | None = None
    observed_generation: str | None = None
    current_pod_hash: str | None = None
    stable_rs: str | None = Field(default=None, alias="stableRS")
    blue_green: BlueGreenStatus | None = None
    pause_conditions: list[PauseCondition] | None = None
    controller_pause: bool | None = None
    abort: bool | None = None
    aborted_at: str | None = None
    promote_full: bool | None = None
    replicas: int | None = None
    updated_replicas: int | None = None
    ready_replicas: int | None = None
    available_replicas: int | None = None
    hpa_replicas: int | None = Field(default=None, alias="HPAReplicas")
    selector: str | None = None
    restarted_at: str | None = None
    collision_count: int | None = None
    conditions: list[Condition] | None = None
    current_step_index: int | None = None
    current_step_hash: str | None = None
    canary: CanaryStatus | None = None


class Rollout(_Wire):
    api_version: str = names.API_VERSION
    kind: str = "Rollout"
    metadata: ObjectMeta = Field(
        default_factory=ObjectMeta,
        json_schema_extra={"x-kube-type": "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
    )
    spec: RolloutSpec = Field(default_factory=RolloutSpec)
    status: RolloutStatus | None = None

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Rollout:
        """Parse a Rollout from its Kubernetes JSON form."""
        return cls.model_validate(obj)

    # Effective values with Argo's defaults -------------------------------------------------
    @property
    def bg(self) -> BlueGreenStrategy:
        return self.spec.strategy.blue_green or BlueGreenStrategy()

    def effective_replicas(self) -> int:
        return 1 if self.spec.replicas is None else self.spec.replicas

    def revision_history_limit(self) -> int:
        v = self.spec.revision_history_limit
        return names.DEFAULT_REVISION_HISTORY_LIMIT if v is None else v

    def progress_deadline_seconds(self) -> int:
        v = self.spec.progress_deadline_seconds
        return names.DEFAULT_PROGRESS_DEADLINE_SECONDS if v is None else v

    def min_ready_seconds(self) -> int:
        return self.spec.min_ready_seconds or 0

    def auto_promotion_enabled(self) -> bool:
        v = self.bg.auto_promotion_enabled
        return True if v is None else v

    def scale_down_delay_seconds(self) -> int:
        """scaleDownDelaySeconds: 30 by default for blue-green and for a canary with
        trafficRouting; a canary without it scales old ReplicaSets down at once (as Argo)."""
        canary = self.spec.strategy.canary
        if canary is not None and self.spec.strategy.blue_green is None:
            if canary.traffic_routing is None:
                return 0
            v = canary.scale_down_delay_seconds
        else:
            v = self.bg.scale_down_delay_seconds
        return names.DEFAULT_SCALE_DOWN_DELAY_SECONDS if v is None else v

    def abort_scale_down_delay_seconds(self) -> int:
        """abortScaleDownDelaySeconds: 30 by default for blue-green and for a canary with
        trafficRouting; 0 (no delay) for a canary without it, whose weight is its replicas."""
        canary = self.spec.strategy.canary
        if canary is not None and self.spec.strategy.blue_green is None:
            if canary.traffic_routing is None:
                return 0
            v = canary.abort_scale_down_delay_seconds
        else:
            v = self.bg.abort_scale_down_delay_seconds
        return names.DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS if v is None else v

    def anti_affinity(self) -> AntiAffinity | None:
        """The strategy's antiAffinity (blueGreen's, or a canary's)."""
        return self.canary.anti_affinity if self.is_canary else self.bg.anti_affinity

    def scale_down_delay_revision_limit(self) -> int | None:
        """The strategy's scaleDownDelayRevisionLimit (None: no limit)."""
        strategy = self.canary if self.is_canary else self.bg
        return strategy.scale_down_delay_revision_limit

    # The canary strategy ---------------------------------------------------------------------
    @property
    def is_canary(self) -> bool:
        """The Rollout runs the canary strategy (blueGreen alone, or both, is not canary)."""
        return self.spec.strategy.canary is not None and self.spec.strategy.blue_green is None

    @property
    def canary(self) -> CanaryStrategy:
        return self.spec.strategy.canary or CanaryStrategy()

    def canary_steps(self) -> list[CanaryStep]:
        return list(self.canary.steps or [])

    def max_surge(self) -> int:
        """maxSurge resolved against spec.replicas (rounded up; default 25%), Argo's fenceposts."""
        return _fenceposts(self)[0]

    def max_unavailable(self) -> int:
        """maxUnavailable resolved against spec.replicas (rounded down; default 25%; 1 when both
        resolve to 0), at most spec.replicas."""
        return min(_fenceposts(self)[1], self.effective_replicas())


def int_or_percent(value: int | str | None, total: int, *, round_up: bool) -> int:
    """An IntOrString as Kubernetes resolves it: a number as is, ``N%`` of ``total`` rounded up or
    down. A value that does not parse counts as 0 (validation reports it)."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = value.strip()
    if not text.endswith("%"):
        return int(text) if text.isdigit() else 0
    try:
        pct = int(text[:-1])
    except ValueError:
        return 0
    whole, rest = divmod(pct * total, 100)
    return whole + (1 if round_up and rest else 0)


def _fenceposts(rollout: Rollout) -> tuple[int, int]:
    replicas = rollout.effective_replicas()
    canary = rollout.canary
    surge_v = canary.max_surge if canary.max_surge is not None else names.DEFAULT_MAX_SURGE
    unavail_v = (
        canary.max_unavailable if canary.max_unavailable is not None else names.DEFAULT_MAX_UNAVAILABLE
    )
    surge = int_or_percent(surge_v, replicas, round_up=True)
    unavailable = int_or_percent(unavail_v, replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable
