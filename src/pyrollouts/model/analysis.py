"""AnalysisTemplate, ClusterAnalysisTemplate and AnalysisRun (argoproj.io/v1alpha1) as typed models.

As ``model.rollout`` is for the Rollout, this module is the single source of these kinds' schemas:
the linter's schema walk (``model.schema.kind_type``) and the CRDs' openAPIV3Schema
(``model.crd``) are derived from these classes. Field names are Argo's (camelCase on the wire).

Providers: ``prometheus``, ``web`` and ``job`` are typed field by field. Argo's other providers
(datadog, newRelic, wavefront, kayenta, cloudWatch, graphite, influxdb, skywalking, plugin) are
accepted as open objects so that Argo manifests read unchanged; nothing runs them here. A job's
``spec`` (a Kubernetes JobSpec) is an open object too: the API server checks it when the Job is
created. Conditions (``successCondition``/``failureCondition``) are strings in Argo's expression
syntax, parsed by ``model.expr``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from . import names
from .rollout import ObjectMeta, _Wire

# The phases of an AnalysisRun, a metric result and a measurement (Argo's AnalysisPhase).
PHASE_PENDING = "Pending"
PHASE_RUNNING = "Running"
PHASE_SUCCESSFUL = "Successful"
PHASE_FAILED = "Failed"
PHASE_ERROR = "Error"
PHASE_INCONCLUSIVE = "Inconclusive"
#: Argo's defaults for a metric's consecutiveErrorLimit and failureLimit / inconclusiveLimit.
DEFAULT_CONSECUTIVE_ERROR_LIMIT = 4
DEFAULT_FAILURE_LIMIT = 0
DEFAULT_INCONCLUSIVE_LIMIT = 0

_REQUIRED: dict[str, Any] = {"x-required": True}
_INT64: dict[str, Any] = {"x-format": "int64"}
#: An IntOrString that Argo resolves with the run's args (count, the limits).
_INT_OR_ARGS: dict[str, Any] = {"x-scalar": "int-or-args"}
_META: dict[str, Any] = {"x-kube-type": "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}


class WebMetricHeader(_Wire):
    key: str
    value: str


class PrometheusRangeQuery(_Wire):
    start: str | None = None
    end: str | None = None
    step: str | None = None


class PrometheusMetric(_Wire):
    address: str | None = None
    query: str | None = None
    authentication: dict[str, Any] | None = None
    timeout: int | None = Field(default=None, json_schema_extra=_INT64)
    insecure: bool | None = None
    headers: list[WebMetricHeader] | None = None
    range_query: PrometheusRangeQuery | None = None


class WebMetric(_Wire):
    method: str | None = None
    url: str = Field(default="", json_schema_extra=_REQUIRED)
    headers: list[WebMetricHeader] | None = None
    body: str | None = None
    timeout_seconds: int | None = Field(default=None, json_schema_extra=_INT64)
    json_path: str | None = None
    insecure: bool | None = None
    json_body: Any = None
    authentication: dict[str, Any] | None = None


class JobMetric(_Wire):
    metadata: dict[str, Any] | None = None
    spec: dict[str, Any] = Field(default_factory=dict, json_schema_extra=_REQUIRED)


class MetricProvider(_Wire):
    prometheus: PrometheusMetric | None = None
    web: WebMetric | None = None
    job: JobMetric | None = None
    # Argo's other providers: read and kept, not run (see the module docstring).
    kayenta: dict[str, Any] | None = None
    datadog: dict[str, Any] | None = None
    wavefront: dict[str, Any] | None = None
    new_relic: dict[str, Any] | None = None
    cloud_watch: dict[str, Any] | None = None
    graphite: dict[str, Any] | None = None
    influxdb: dict[str, Any] | None = None
    skywalking: dict[str, Any] | None = None
    plugin: dict[str, Any] | None = None


class Metric(_Wire):
    """One metric: what to measure (``provider``), how often, and when a measurement passes."""

    name: str = Field(default="", json_schema_extra=_REQUIRED)
    interval: str | None = None
    initial_delay: str | None = None
    count: int | str | None = Field(default=None, json_schema_extra=_INT_OR_ARGS)
    success_condition: str | None = None
    failure_condition: str | None = None
    failure_limit: int | str | None = Field(default=None, json_schema_extra=_INT_OR_ARGS)
    inconclusive_limit: int | str | None = Field(default=None, json_schema_extra=_INT_OR_ARGS)
    consecutive_error_limit: int | str | None = Field(default=None, json_schema_extra=_INT_OR_ARGS)
    consecutive_success_limit: int | str | None = Field(default=None, json_schema_extra=_INT_OR_ARGS)
    provider: MetricProvider = Field(default_factory=MetricProvider, json_schema_extra=_REQUIRED)


class SecretKeyRef(_Wire):
    name: str
    key: str


class FieldRef(_Wire):
    field_path: str


class ValueFrom(_Wire):
    secret_key_ref: SecretKeyRef | None = None
    field_ref: FieldRef | None = None


class Argument(_Wire):
    """An argument of a template (``{{args.name}}``): a value, a source, or neither (then it must be
    supplied by whoever starts the run)."""

    name: str
    value: str | None = None
    value_from: ValueFrom | None = None


class DryRun(_Wire):
    metric_name: str


class MeasurementRetention(_Wire):
    metric_name: str
    limit: int


class AnalysisTemplateRef(_Wire):
    template_name: str | None = None
    cluster_scope: bool | None = None


class AnalysisTemplateSpec(_Wire):
    metrics: list[Metric] | None = None
    args: list[Argument] | None = None
    dry_run: list[DryRun] | None = None
    measurement_retention: list[MeasurementRetention] | None = None
    templates: list[AnalysisTemplateRef] | None = None


class TTLStrategy(_Wire):
    seconds_after_completion: int | None = None
    seconds_after_failure: int | None = None
    seconds_after_success: int | None = None


class AnalysisRunSpec(_Wire):
    metrics: list[Metric] = Field(default_factory=list, json_schema_extra=_REQUIRED)
    args: list[Argument] | None = None
    terminate: bool | None = None
    dry_run: list[DryRun] | None = None
    measurement_retention: list[MeasurementRetention] | None = None
    ttl_strategy: TTLStrategy | None = None


class Measurement(_Wire):
    phase: str
    message: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    value: str | None = None
    metadata: dict[str, str] | None = None
    resume_at: str | None = None


class MetricResult(_Wire):
    name: str
    phase: str
    measurements: list[Measurement] | None = None
    message: str | None = None
    count: int | None = None
    successful: int | None = None
    failed: int | None = None
    inconclusive: int | None = None
    error: int | None = None
    consecutive_error: int | None = None
    consecutive_success: int | None = None
    dry_run: bool | None = None
    metadata: dict[str, str] | None = None


class RunSummary(_Wire):
    count: int | None = None
    successful: int | None = None
    failed: int | None = None
    inconclusive: int | None = None
    error: int | None = None


class AnalysisRunStatus(_Wire):
    phase: str | None = None
    message: str | None = None
    metric_results: list[MetricResult] | None = None
    started_at: str | None = None
    run_summary: RunSummary | None = None
    dry_run_summary: RunSummary | None = None
    completed_at: str | None = None


class AnalysisTemplate(_Wire):
    api_version: str = names.API_VERSION
    kind: str = "AnalysisTemplate"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, json_schema_extra=_META)
    spec: AnalysisTemplateSpec = Field(default_factory=AnalysisTemplateSpec, json_schema_extra=_REQUIRED)

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> AnalysisTemplate:
        """Parse an AnalysisTemplate from its Kubernetes JSON form."""
        return cls.model_validate(obj)


class ClusterAnalysisTemplate(AnalysisTemplate):
    """An AnalysisTemplate that every namespace can use (``templates[].clusterScope: true``)."""

    kind: str = "ClusterAnalysisTemplate"


class AnalysisRun(_Wire):
    api_version: str = names.API_VERSION
    kind: str = "AnalysisRun"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, json_schema_extra=_META)
    spec: AnalysisRunSpec = Field(default_factory=AnalysisRunSpec, json_schema_extra=_REQUIRED)
    status: AnalysisRunStatus | None = None

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> AnalysisRun:
        """Parse an AnalysisRun from its Kubernetes JSON form."""
        return cls.model_validate(obj)


#: kind -> its model class, for the schema walk and the CRDs.
ANALYSIS_KINDS: dict[str, type[_Wire]] = {
    "AnalysisTemplate": AnalysisTemplate,
    "ClusterAnalysisTemplate": ClusterAnalysisTemplate,
    "AnalysisRun": AnalysisRun,
}
