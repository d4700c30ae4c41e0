"""The analysis kinds (AnalysisTemplate, ClusterAnalysisTemplate, AnalysisRun): read with Argo's
field names, linted (schema walk and conditions that do not parse), and their CRDs generated from
model/analysis.py."""

from __future__ import annotations

import json
from typing import Any

from pyrollouts.model.analysis import AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate
from pyrollouts.model.crd import crds
from pyrollouts.model.lint import check_manifests, lint_text
from pyrollouts.model.parse import parse_manifests

TEMPLATES = """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: success-rate
spec:
  args:
  - name: service-name
  - name: threshold
    value: "0.95"
  - name: api-token
    valueFrom:
      secretKeyRef: {name: token, key: value}
  - name: error-limit
  - name: max-restarts
  metrics:
  - name: success-rate
    interval: 30s
    initialDelay: 10s
    count: 5
    failureLimit: "2"
    inconclusiveLimit: 1
    consecutiveErrorLimit: "{{args.error-limit}}"
    successCondition: len(result) == 0 || result[0] >= {{args.threshold}}
    failureCondition: result[0] < 0.5
    provider:
      prometheus:
        address: http://127.0.0.1:9090
        query: sum(rate(requests{service="{{args.service-name}}",code!~"5.."}[1m]))
  - name: health
    successCondition: result.ok && all(result.checks, {.status == 'pass'})
    provider:
      web:
        url: http://127.0.0.1:8080/health
        method: POST
        headers: [{key: Authorization, value: "Bearer {{args.api-token}}"}]
        body: '{"probe": true}'
        timeoutSeconds: 5
        jsonPath: "{$.data}"
  - name: smoke
    provider:
      job:
        metadata: {labels: {app: smoke}}
        spec:
          backoffLimit: 0
          template:
            spec:
              restartPolicy: Never
              containers: [{name: smoke, image: curlimages/curl, command: [curl, -f, http://x/]}]
  - name: elsewhere
    provider:
      datadog: {query: "avg:errors{*}", apiVersion: v2}
  dryRun: [{metricName: health}]
  measurementRetention: [{metricName: success-rate, limit: 20}]
---
apiVersion: argoproj.io/v1alpha1
kind: ClusterAnalysisTemplate
metadata:
  name: shared
spec:
  metrics:
  - name: always
    successCondition: "true"
    provider: {web: {url: "http://127.0.0.1:1/"}}
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata:
  name: run-1
spec:
  terminate: false
  args: [{name: service-name, value: demo}]
  metrics:
  - name: health
    count: 1
    successCondition: result == 'ok'
    provider: {web: {url: "http://127.0.0.1:8080/"}}
"""


def _line(text: str, needle: str) -> int:
    (n,) = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    return n


def test_argo_shaped_templates_lint_clean_and_read_typed() -> None:
    objects, findings = check_manifests(TEMPLATES, "t.yaml")
    assert findings == []
    at, cat, run = objects
    template = AnalysisTemplate.from_wire(at.obj)
    success, health, smoke, _ = template.spec.metrics or []
    assert success.count == 5 and success.consecutive_error_limit == "{{args.error-limit}}"
    assert success.provider.prometheus is not None and success.provider.prometheus.query
    assert health.provider.web is not None and health.provider.web.timeout_seconds == 5
    assert health.provider.web.json_path == "{$.data}"
    assert smoke.provider.job is not None and smoke.provider.job.spec["backoffLimit"] == 0
    assert [d.metric_name for d in template.spec.dry_run or []] == ["health"]
    assert (template.spec.args or [])[2].value_from is not None
    assert cat.namespace is None  # cluster-scoped: no namespace filled in
    assert ClusterAnalysisTemplate.from_wire(cat.obj).kind == "ClusterAnalysisTemplate"
    assert run.namespace == "default"
    assert AnalysisRun.from_wire(run.obj).spec.metrics[0].name == "health"
    # The wire form round-trips with Argo's field names.
    assert template.wire()["spec"]["metrics"][1]["provider"]["web"]["timeoutSeconds"] == 5


def test_a_condition_that_does_not_parse_is_a_finding_with_line_and_fix() -> None:
    text = TEMPLATES.replace("failureCondition: result[0] < 0.5", "failureCondition: result[0] <")
    text = text.replace("result == 'ok'", "results == 'ok'")
    findings = lint_text(text, "t.yaml")
    assert [(f.line, f.path) for f in findings] == [
        (_line(text, "failureCondition: result[0] <"), "spec.metrics[0].failureCondition"),
        (_line(text, "results == 'ok'"), "spec.metrics[0].successCondition"),
    ]
    first, second = findings
    assert first.severity == "error" and "does not parse" in first.problem and "offset 11" in first.problem
    assert "result[0] >= 0.95" in first.fix
    assert "unknown name results" in second.problem


def test_args_placeholders_are_not_parse_errors() -> None:
    text = TEMPLATES.replace("result[0] < 0.5", "default(result, 0) > {{ args.max-restarts }}")
    assert lint_text(text, "t.yaml") == []


def test_schema_walk_reports_unknown_and_ill_typed_fields() -> None:
    text = TEMPLATES.replace("timeoutSeconds: 5", "timeoutSeconds: five").replace(
        "initialDelay: 10s", "initialDelay: 10s\n    intervall: 5m"
    )
    problems = {f.path: f.problem for f in lint_text(text, "t.yaml")}
    assert "unknown field 'intervall'" in problems["spec.metrics[0].intervall"]
    assert "expected an integer" in problems["spec.metrics[1].provider.web.timeoutSeconds"]


def test_conditions_of_a_run_and_of_a_cluster_template_are_checked_too() -> None:
    text = TEMPLATES.replace('successCondition: "true"', 'successCondition: "true &&"')
    (finding,) = lint_text(text, "t.yaml")
    assert finding.path == "spec.metrics[0].successCondition"
    assert finding.line == _line(text, '"true &&"')


def _schema(kind: str) -> dict[str, Any]:
    (crd,) = [c for c in crds() if c["spec"]["names"]["kind"] == kind]
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def test_analysis_crds_are_generated_from_the_model() -> None:
    for kind in ("AnalysisTemplate", "ClusterAnalysisTemplate", "AnalysisRun"):
        schema = _schema(kind)
        json.dumps(schema)
        assert schema["properties"]["metadata"] == {"type": "object"}
        assert "required" not in schema
        metric = schema["properties"]["spec"]["properties"]["metrics"]["items"]
        assert metric["required"] == ["name", "provider"]
        props = metric["properties"]
        assert props["successCondition"] == {"type": "string"}
        assert props["count"]["x-kubernetes-int-or-string"] is True
        web = props["provider"]["properties"]["web"]
        assert web["required"] == ["url"]
        assert web["properties"]["timeoutSeconds"] == {"type": "integer", "format": "int64"}
        job = props["provider"]["properties"]["job"]["properties"]["spec"]
        assert job == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    run = _schema("AnalysisRun")["properties"]
    assert run["spec"]["required"] == ["metrics"]
    results = run["status"]["properties"]["metricResults"]["items"]["properties"]
    assert {"measurements", "consecutiveError", "dryRun"} <= set(results)


def test_parse_reads_the_analysis_kinds() -> None:
    kinds = [p.kind for p in parse_manifests(TEMPLATES, "t.yaml")]
    assert kinds == ["AnalysisTemplate", "ClusterAnalysisTemplate", "AnalysisRun"]


BAD_METRICS = """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: bad
spec:
  args: [{name: delay}, {name: count}]
  metrics:
  - name: a
    count: 3
    failureLimit: 5
    inconclusiveLimit: -1
    provider: {web: {url: "http://x/"}}
  - name: a
    interval: 5 minutes
    initialDelay: "{{args.delay}}"
    provider: {}
  - name: b
    interval: 1m30s
    count: "{{args.count}}"
    provider: {web: {url: "http://x/"}, prometheus: {query: up}}
  dryRun: [{metricName: c}, {metricName: ".*"}]
  measurementRetention: [{metricName: b, limit: 5}]
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: empty
spec: {args: [{name: x}]}
"""


def test_argo_metric_rules_are_findings() -> None:
    found = {(f.path, f.problem) for f in lint_text(BAD_METRICS, "t.yaml")}
    assert found == {
        ("spec.metrics[0].inconclusiveLimit", "inconclusiveLimit is -1, below 0"),
        ("spec.metrics[0].count", "count is 3 but no interval is set"),
        (
            "spec.metrics[0].count",
            "count (3) is below failureLimit (5): the limit could never be reached",
        ),
        ("spec.metrics[1].name", "duplicate metric name 'a' (also metrics[0])"),
        ("spec.metrics[1].interval", "interval '5 minutes' is not a duration"),
        ("spec.metrics[1].provider", "no provider specified"),
        ("spec.metrics[2].provider", "a metric has one provider, this one has 2 (prometheus, web)"),
        ("spec.dryRun[0].metricName", "dryRun[0] matches no metric ('c')"),
        ("spec.metrics", "no metrics specified"),
    }


def test_a_placeholder_naming_no_declared_arg_is_a_finding() -> None:
    text = TEMPLATES.replace("{{args.threshold}}", "{{args.treshold}}")
    (finding,) = lint_text(text, "t.yaml")
    assert finding.path == "spec.metrics[0]"
    assert finding.problem == (
        "the metric uses {{args.treshold}}, which is not an arg that spec.args declares"
    )
    assert finding.fix.startswith("declare it under spec.args (- name: treshold)")


def test_a_tag_that_is_not_an_arg_is_a_finding() -> None:
    text = TEMPLATES.replace("interval: 30s", 'interval: "{{}}"').replace(
        "{{args.threshold}}", "{{ threshold }}"
    )
    (finding,) = lint_text(text, "t.yaml")
    assert (
        finding.problem == "the metric uses {{}}, {{threshold}}, which is not an arg that spec.args declares"
    )


ROLLOUT_WITH_ANALYSIS = """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: demo
spec:
  replicas: 1
  selector: {matchLabels: {app: demo}}
  template:
    metadata: {labels: {app: demo}}
    spec:
      containers: [{name: demo, image: demo:1}]
  strategy:
    blueGreen:
      activeService: demo
      prePromotionAnalysis:
        templates:
        - templateName: success-rate
        - templateName: shared
          clusterScope: true
        args:
        - name: service-name
          value: demo-preview
        - name: error-limit
          valueFrom: {podTemplateHashValue: Latest}
      postPromotionAnalysis:
        templates:
        - templateName: missing
---
"""


def test_a_rollouts_analysis_is_checked_against_the_templates_of_the_manifest() -> None:
    text = ROLLOUT_WITH_ANALYSIS + TEMPLATES
    findings = lint_text(text, "t.yaml")
    assert [(f.severity, f.path, f.problem) for f in findings] == [
        (
            "error",
            "spec.strategy.blueGreen.prePromotionAnalysis.args",
            "arg 'max-restarts' of AnalysisTemplate 'success-rate' has no value and the Rollout "
            "never supplies it",
        ),
        (
            "warning",
            "spec.strategy.blueGreen.postPromotionAnalysis.templates[0].templateName",
            "AnalysisTemplate 'missing' is not in this manifest",
        ),
    ]
    assert findings[0].line == text.splitlines().index("        args:") + 1
    assert findings[0].fix.startswith("add it: args: [{name: max-restarts, value: ...}]")


def test_a_rollout_alone_is_not_told_about_templates_it_cannot_see() -> None:
    assert [f for f in lint_text(ROLLOUT_WITH_ANALYSIS, "t.yaml") if "Template" in f.problem] == []
