"""Every validation rule, each with a failing and a passing case."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pyrollouts.model.findings import Finding
from pyrollouts.model.parse import parse_manifests
from pyrollouts.model.rollout import Rollout
from pyrollouts.model.validate import (
    pod_template_errors,
    rollout_spec_errors,
    validate,
    validate_references,
)

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "super-hello.yaml"
C0 = "spec.template.spec.containers[0]"
BG = "spec.strategy.blueGreen"

Docs = list[dict[str, Any]]


def _docs() -> Docs:
    return [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d]


def ro(d: Docs) -> dict[str, Any]:
    r: dict[str, Any] = next(x for x in d if x["kind"] == "Rollout")
    return r


def spec(d: Docs) -> dict[str, Any]:
    s: dict[str, Any] = ro(d)["spec"]
    return s


def bg(d: Docs) -> dict[str, Any]:
    b: dict[str, Any] = spec(d)["strategy"]["blueGreen"]
    return b


def pod(d: Docs) -> dict[str, Any]:
    p: dict[str, Any] = spec(d)["template"]["spec"]
    return p


def c0(d: Docs) -> dict[str, Any]:
    c: dict[str, Any] = pod(d)["containers"][0]
    return c


def svc(d: Docs, name: str = "super-hello-prod") -> dict[str, Any]:
    s: dict[str, Any] = next(x for x in d if x["kind"] == "Service" and x["metadata"]["name"] == name)
    return s


def _validate(d: Docs) -> list[Finding]:
    return validate(parse_manifests(yaml.safe_dump_all(d, sort_keys=False), "t.yaml"))


Mut = Callable[[Docs], object]

# (name, failing mutation, passing mutation, path of the finding, words in it, severity)
RULES: list[tuple[str, Mut, Mut, str, str, str]] = [
    (
        "activeService required",
        lambda d: bg(d).pop("activeService"),
        lambda d: None,
        f"{BG}.activeService",
        "missing field",
        "error",
    ),
    (
        "active differs from preview",
        lambda d: bg(d).update(previewService="super-hello-prod"),
        lambda d: bg(d).pop("previewService"),
        f"{BG}.activeService",
        "same service",
        "error",
    ),
    (
        "selector required",
        lambda d: spec(d).pop("selector"),
        lambda d: None,
        "spec.selector",
        "missing field",
        "error",
    ),
    (
        "selector not empty",
        lambda d: spec(d).update(selector={}),
        lambda d: spec(d).update(selector={"matchExpressions": [{"key": "app", "operator": "Exists"}]}),
        "spec.selector",
        "empty",
        "error",
    ),
    (
        "selector matches labels",
        lambda d: spec(d)["selector"]["matchLabels"].update(app="other"),
        lambda d: spec(d)["template"]["metadata"]["labels"].update(extra="x"),
        "spec.template.metadata.labels",
        "does not match",
        "error",
    ),
    (
        "selector expressions match labels",
        lambda d: spec(d)["selector"].update(
            matchExpressions=[{"key": "tier", "operator": "In", "values": ["a"]}]
        ),
        lambda d: spec(d)["selector"].update(matchExpressions=[{"key": "tier", "operator": "DoesNotExist"}]),
        "spec.template.metadata.labels",
        "does not match",
        "error",
    ),
    (
        "selector expression operator values",
        lambda d: spec(d)["selector"].update(matchExpressions=[{"key": "app", "operator": "In"}]),
        lambda d: spec(d)["selector"].update(
            matchExpressions=[{"key": "app", "operator": "In", "values": ["super-hello"]}]
        ),
        "spec.selector.matchExpressions[0].values",
        "at least one value",
        "error",
    ),
    (
        "template required",
        lambda d: spec(d).pop("template"),
        lambda d: None,
        "spec.template",
        "missing field",
        "error",
    ),
    (
        "progressDeadlineSeconds > minReadySeconds",
        lambda d: spec(d).update(minReadySeconds=30, progressDeadlineSeconds=30),
        lambda d: spec(d).update(minReadySeconds=30, progressDeadlineSeconds=31),
        "spec.progressDeadlineSeconds",
        "greater than minReadySeconds",
        "error",
    ),
    (
        "the default progressDeadlineSeconds counts",
        lambda d: spec(d).update(minReadySeconds=600),
        lambda d: spec(d).update(minReadySeconds=599),
        "spec.progressDeadlineSeconds",
        "the default",
        "error",
    ),
    (
        "scaleDownDelayRevisionLimit <= revisionHistoryLimit",
        lambda d: bg(d).update(scaleDownDelayRevisionLimit=7),
        lambda d: bg(d).update(scaleDownDelayRevisionLimit=6),
        f"{BG}.scaleDownDelayRevisionLimit",
        "revision history limit",
        "error",
    ),
    (
        "antiAffinity exactly one mode (two)",
        lambda d: bg(d).update(
            antiAffinity={
                "preferredDuringSchedulingIgnoredDuringExecution": {"weight": 5},
                "requiredDuringSchedulingIgnoredDuringExecution": {},
            }
        ),
        lambda d: bg(d).update(antiAffinity={"requiredDuringSchedulingIgnoredDuringExecution": {}}),
        f"{BG}.antiAffinity",
        "exactly one",
        "error",
    ),
    (
        "antiAffinity exactly one mode (none)",
        lambda d: bg(d).update(antiAffinity={}),
        lambda d: bg(d).update(
            antiAffinity={"preferredDuringSchedulingIgnoredDuringExecution": {"weight": 1}}
        ),
        f"{BG}.antiAffinity",
        "exactly one",
        "error",
    ),
    (
        "antiAffinity weight 1-100",
        lambda d: bg(d).update(
            antiAffinity={"preferredDuringSchedulingIgnoredDuringExecution": {"weight": 101}}
        ),
        lambda d: bg(d).update(
            antiAffinity={"preferredDuringSchedulingIgnoredDuringExecution": {"weight": 100}}
        ),
        f"{BG}.antiAffinity.preferredDuringSchedulingIgnoredDuringExecution.weight",
        "1-100",
        "error",
    ),
    (
        "canary setWeight 0-100",
        lambda d: spec(d).update(strategy={"canary": {"steps": [{"setWeight": 120}]}}),
        lambda d: spec(d).update(strategy={"canary": {"steps": [{"setWeight": 20}]}}),
        "spec.strategy.canary.steps[0].setWeight",
        "100",
        "error",
    ),
    (
        "canary step has one kind",
        lambda d: spec(d).update(strategy={"canary": {"steps": [{"setWeight": 20, "pause": {}}]}}),
        lambda d: spec(d).update(strategy={"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}}),
        "spec.strategy.canary.steps[0]",
        "Multiple Steps",
        "error",
    ),
    (
        "canary pause duration parses",
        lambda d: spec(d).update(strategy={"canary": {"steps": [{"pause": {"duration": "soon"}}]}}),
        lambda d: spec(d).update(strategy={"canary": {"steps": [{"pause": {"duration": "1m30s"}}]}}),
        "spec.strategy.canary.steps[0].pause.duration",
        "not a duration",
        "error",
    ),
    (
        "canary maxSurge and maxUnavailable not both 0",
        lambda d: spec(d).update(strategy={"canary": {"maxSurge": 0, "maxUnavailable": "0%"}}),
        lambda d: spec(d).update(strategy={"canary": {"maxSurge": 0, "maxUnavailable": 1}}),
        "spec.strategy.canary.maxSurge",
        "both can not be zero",
        "error",
    ),
    (
        "canary services differ",
        lambda d: spec(d).update(
            strategy={"canary": {"canaryService": "super-hello-prod", "stableService": "super-hello-prod"}}
        ),
        lambda d: spec(d).update(
            strategy={"canary": {"canaryService": "super-hello-preview", "stableService": "super-hello-prod"}}
        ),
        "spec.strategy.canary.stableService",
        "two different services",
        "error",
    ),
    (
        "canary dynamicStableScale needs trafficRouting",
        lambda d: spec(d).update(strategy={"canary": {"dynamicStableScale": True}}),
        lambda d: spec(d).update(strategy={"canary": {}}),
        "spec.strategy.canary.dynamicStableScale",
        "traffic routing",
        "error",
    ),
    (
        "canary trafficRouting needs both services",
        lambda d: spec(d).update(
            strategy={
                "canary": {
                    "stableService": "super-hello-prod",
                    "trafficRouting": {"nginx": {"stableIngress": "i"}},
                }
            }
        ),
        lambda d: spec(d).update(
            strategy={
                "canary": {
                    "stableService": "super-hello-prod",
                    "canaryService": "super-hello-preview",
                    "trafficRouting": {"nginx": {"stableIngress": "i"}},
                }
            }
        ),
        "spec.strategy.canary.canaryService",
        "must to be set",
        "error",
    ),
    (
        "canary setHeaderRoute needs a managed route",
        lambda d: spec(d).update(
            strategy={
                "canary": {
                    "stableService": "super-hello-prod",
                    "canaryService": "super-hello-preview",
                    "trafficRouting": {"plugins": {"argoproj-labs/gatewayAPI": {}}},
                    "steps": [
                        {
                            "setHeaderRoute": {
                                "name": "h",
                                "match": [{"headerName": "x", "headerValue": {"exact": "1"}}],
                            }
                        }
                    ],
                }
            }
        ),
        lambda d: spec(d).update(
            strategy={
                "canary": {
                    "stableService": "super-hello-prod",
                    "canaryService": "super-hello-preview",
                    "trafficRouting": {
                        "plugins": {"argoproj-labs/gatewayAPI": {}},
                        "managedRoutes": [{"name": "h"}],
                    },
                    "steps": [
                        {
                            "setHeaderRoute": {
                                "name": "h",
                                "match": [{"headerName": "x", "headerValue": {"exact": "1"}}],
                            }
                        }
                    ],
                }
            }
        ),
        "spec.strategy.canary.steps[0].setHeaderRoute",
        "managedRoutes",
        "error",
    ),
    (
        "one strategy",
        lambda d: spec(d)["strategy"].update(canary={}),
        lambda d: None,
        "spec.strategy",
        "Multiple Strategies",
        "error",
    ),
    (
        "a strategy",
        lambda d: spec(d).update(strategy={}),
        lambda d: None,
        "spec.strategy",
        "missing field",
        "error",
    ),
    (
        "autoPromotionSeconds ignored",
        lambda d: bg(d).update(autoPromotionSeconds=5),
        lambda d: bg(d).update(autoPromotionSeconds=5, autoPromotionEnabled=True),
        f"{BG}.autoPromotionSeconds",
        "ignored",
        "warning",
    ),
    (
        "restartAt is a time",
        lambda d: spec(d).update(restartAt="yesterday"),
        lambda d: spec(d).update(restartAt="2024-05-01T12:00:00Z"),
        "spec.restartAt",
        "RFC 3339",
        "error",
    ),
    (
        "workloadRef excludes template",
        lambda d: spec(d).update(workloadRef={"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"}),
        lambda d: (
            spec(d).update(workloadRef={"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"}),
            spec(d).pop("template"),
        ),
        "spec.template",
        "must be empty",
        "error",
    ),
    # --- the pod template
    (
        "containers non-empty",
        lambda d: pod(d).update(containers=[]),
        lambda d: None,
        "spec.template.spec.containers",
        "no containers",
        "error",
    ),
    (
        "container name DNS-1123",
        lambda d: c0(d).update(name="Super_Hello"),
        lambda d: c0(d).update(name="s-1"),
        f"{C0}.name",
        "DNS-1123",
        "error",
    ),
    (
        "container names unique",
        lambda d: pod(d)["containers"].append(dict(c0(d))),
        lambda d: pod(d)["containers"].append(dict(c0(d), name="sidecar")),
        "spec.template.spec.containers[1].name",
        "used twice",
        "error",
    ),
    (
        "image required",
        lambda d: c0(d).pop("image"),
        lambda d: c0(d).update(image="busybox"),
        f"{C0}.image",
        "no image",
        "error",
    ),
    (
        "command-only container is local-only",
        lambda d: (c0(d).pop("image"), c0(d).update(command=["app"])),
        lambda d: c0(d).update(command=["app"]),
        f"{C0}.image",
        "only the local runtime",
        "warning",
    ),
    (
        "imagePullPolicy",
        lambda d: c0(d).update(imagePullPolicy="Sometimes"),
        lambda d: c0(d).update(imagePullPolicy="IfNotPresent"),
        f"{C0}.imagePullPolicy",
        "not supported",
        "error",
    ),
    (
        "containerPort 1-65535",
        lambda d: c0(d).update(ports=[{"containerPort": 70000}]),
        lambda d: c0(d).update(ports=[{"containerPort": 65535}]),
        f"{C0}.ports[0].containerPort",
        "out of range",
        "error",
    ),
    (
        "port name is IANA_SVC_NAME",
        lambda d: c0(d).update(ports=[{"containerPort": 80, "name": "my_http_port"}]),
        lambda d: c0(d).update(ports=[{"containerPort": 80, "name": "http"}]),
        f"{C0}.ports[0].name",
        "IANA_SVC_NAME",
        "error",
    ),
    (
        "port name not a numeric string",
        lambda d: c0(d)["readinessProbe"]["httpGet"].update(port="8080"),
        lambda d: c0(d)["readinessProbe"]["httpGet"].update(port=8080),
        f"{C0}.readinessProbe.httpGet.port",
        "numeric string as a port name",
        "error",
    ),
    (
        "port names unique",
        lambda d: c0(d).update(ports=[{"containerPort": 1, "name": "a"}, {"containerPort": 2, "name": "a"}]),
        lambda d: c0(d).update(ports=[{"containerPort": 1, "name": "a"}, {"containerPort": 2, "name": "b"}]),
        f"{C0}.ports[1].name",
        "used twice",
        "error",
    ),
    (
        "probe has a handler",
        lambda d: c0(d)["readinessProbe"].pop("httpGet"),
        lambda d: (
            c0(d)["readinessProbe"].pop("httpGet"),
            c0(d)["readinessProbe"].update(tcpSocket={"port": 8080}),
        ),
        f"{C0}.readinessProbe",
        "no handler",
        "error",
    ),
    (
        "probe has one handler",
        lambda d: c0(d)["readinessProbe"].update(exec={"command": ["true"]}),
        lambda d: None,
        f"{C0}.readinessProbe",
        "more than one handler",
        "error",
    ),
    (
        "probe numbers non-negative",
        lambda d: c0(d)["readinessProbe"].update(periodSeconds=-1),
        lambda d: c0(d)["readinessProbe"].update(periodSeconds=0),
        f"{C0}.readinessProbe.periodSeconds",
        "negative",
        "error",
    ),
    (
        "liveness successThreshold 1",
        lambda d: c0(d).update(livenessProbe={"tcpSocket": {"port": 8080}, "successThreshold": 2}),
        lambda d: c0(d).update(livenessProbe={"tcpSocket": {"port": 8080}, "successThreshold": 1}),
        f"{C0}.livenessProbe.successThreshold",
        "must be 1",
        "error",
    ),
    (
        "readiness has no terminationGracePeriodSeconds",
        lambda d: c0(d)["readinessProbe"].update(terminationGracePeriodSeconds=5),
        lambda d: c0(d).update(
            livenessProbe={"tcpSocket": {"port": 8080}, "terminationGracePeriodSeconds": 5}
        ),
        f"{C0}.readinessProbe.terminationGracePeriodSeconds",
        "may not set",
        "error",
    ),
    (
        "probe port in range",
        lambda d: c0(d)["readinessProbe"]["httpGet"].update(port=0),
        lambda d: None,
        f"{C0}.readinessProbe.httpGet.port",
        "out of range",
        "error",
    ),
    (
        "named probe port is declared",
        lambda d: c0(d)["readinessProbe"]["httpGet"].update(port="http"),
        lambda d: (
            c0(d)["readinessProbe"]["httpGet"].update(port="http"),
            c0(d).update(ports=[{"containerPort": 8080, "name": "http"}]),
        ),
        f"{C0}.readinessProbe.httpGet.port",
        "no port named",
        "warning",
    ),
    (
        "exec has a command",
        lambda d: c0(d).update(livenessProbe={"exec": {"command": []}}),
        lambda d: c0(d).update(livenessProbe={"exec": {"command": ["true"]}}),
        f"{C0}.livenessProbe.exec.command",
        "no command",
        "error",
    ),
    (
        "env names valid",
        lambda d: c0(d)["env"].append({"name": "1BAD=", "value": "x"}),
        lambda d: c0(d)["env"].append({"name": "GOOD.name-1", "value": "x"}),
        f"{C0}.env[1].name",
        "not valid",
        "error",
    ),
    (
        "env value xor valueFrom",
        lambda d: c0(d)["env"].append(
            {"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}
        ),
        lambda d: c0(d)["env"].append(
            {"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
        ),
        f"{C0}.env[1]",
        "not both",
        "error",
    ),
    (
        "env duplicates",
        lambda d: c0(d)["env"].append({"name": "WELCOME", "value": "x"}),
        lambda d: None,
        f"{C0}.env[1].name",
        "set twice",
        "warning",
    ),
    (
        "restartPolicy Always",
        lambda d: pod(d).update(restartPolicy="Never"),
        lambda d: pod(d).update(restartPolicy="Always"),
        "spec.template.spec.restartPolicy",
        "Always",
        "error",
    ),
    (
        "volumeMounts name volumes",
        lambda d: c0(d).update(volumeMounts=[{"name": "data", "mountPath": "/d"}]),
        lambda d: (
            c0(d).update(volumeMounts=[{"name": "data", "mountPath": "/d"}]),
            pod(d).update(volumes=[{"name": "data", "emptyDir": {}}]),
        ),
        f"{C0}.volumeMounts[0].name",
        "no volume named",
        "error",
    ),
    (
        "template labels valid",
        lambda d: spec(d)["template"]["metadata"]["labels"].update(bad="a b"),
        lambda d: spec(d)["template"]["metadata"]["labels"].update(good="a.b_c-d"),
        "spec.template.metadata.labels.bad",
        "label value",
        "error",
    ),
    # --- negative numbers
    *[
        (
            f"{key} non-negative",
            (lambda k: lambda d: spec(d).update({k: -1}))(key),
            (lambda k: lambda d: spec(d).update({k: 0}))(key),
            f"spec.{key}",
            "negative",
            "error",
        )
        for key in ("replicas", "minReadySeconds", "revisionHistoryLimit")
    ],
    *[
        (
            f"{key} non-negative",
            (lambda k: lambda d: bg(d).update({k: -1}))(key),
            (lambda k: lambda d: bg(d).update({k: 0}))(key),
            f"{BG}.{key}",
            "negative",
            "error",
        )
        for key in (
            "previewReplicaCount",
            "scaleDownDelaySeconds",
            "scaleDownDelayRevisionLimit",
            "abortScaleDownDelaySeconds",
        )
    ],
    (
        "autoPromotionSeconds non-negative",
        lambda d: bg(d).update(autoPromotionSeconds=-1, autoPromotionEnabled=True),
        lambda d: bg(d).update(autoPromotionSeconds=0),
        f"{BG}.autoPromotionSeconds",
        "negative",
        "error",
    ),
    (
        "rollbackWindow non-negative",
        lambda d: spec(d).update(rollbackWindow={"revisions": -1}),
        lambda d: spec(d).update(rollbackWindow={"revisions": 2}),
        "spec.rollbackWindow.revisions",
        "negative",
        "error",
    ),
    # --- metadata and Services
    (
        "Rollout name",
        lambda d: ro(d)["metadata"].update(name="Super_Hello"),
        lambda d: None,
        "metadata.name",
        "DNS-1123 subdomain",
        "error",
    ),
    (
        "Service port 1-65535",
        lambda d: svc(d)["spec"]["ports"][0].update(port=0),
        lambda d: None,
        "spec.ports[0].port",
        "out of range",
        "error",
    ),
    (
        "Service targetPort not a numeric string",
        lambda d: svc(d)["spec"]["ports"][0].update(targetPort="8080"),
        lambda d: svc(d)["spec"]["ports"][0].update(targetPort=8080),
        "spec.ports[0].targetPort",
        "numeric string",
        "error",
    ),
    (
        "Service ports named when several",
        lambda d: svc(d)["spec"]["ports"].append({"port": 9000}),
        lambda d: (
            svc(d)["spec"]["ports"].append({"port": 9000, "name": "b"}),
            svc(d)["spec"]["ports"][0].update(name="a"),
        ),
        "spec.ports[0]",
        "name each port",
        "error",
    ),
    (
        "Service type",
        lambda d: svc(d)["spec"].update(type="Public"),
        lambda d: svc(d)["spec"].update(type="NodePort"),
        "spec.type",
        "not supported",
        "error",
    ),
    (
        "Service selector matches template",
        lambda d: svc(d)["spec"]["selector"].update(app="other"),
        lambda d: svc(d)["spec"]["selector"].update({"rollouts-pod-template-hash": "abc"}),
        f"{BG}.activeService",
        "unmatch label",
        "error",
    ),
    (
        "referenced Service in a self-contained file",
        lambda d: bg(d).update(previewService="typo"),
        lambda d: None,
        f"{BG}.previewService",
        "not found",
        "warning",
    ),
]


@pytest.mark.parametrize(
    ("name", "bad", "good", "path", "words", "severity"), RULES, ids=[r[0] for r in RULES]
)
def test_rule(name: str, bad: Mut, good: Mut, path: str, words: str, severity: str) -> None:
    docs = _docs()
    bad(docs)
    hits = [f for f in _validate(docs) if f.path == path and words in f.problem + f.fix]
    assert len(hits) == 1, (name, _validate(docs))
    assert hits[0].severity == severity
    assert hits[0].source == "t.yaml" and hits[0].line is not None
    docs = _docs()
    good(docs)
    assert _validate(docs) == []


def test_missing_service_in_a_rollout_only_file_is_not_reported() -> None:
    docs = [d for d in _docs() if d["kind"] != "Service"]
    assert _validate(docs) == []


def test_validate_references() -> None:
    rollout = Rollout.from_wire(ro(_docs()))
    prod, preview = svc(_docs()), svc(_docs(), "super-hello-preview")
    assert validate_references(rollout, {"super-hello-prod": prod, "super-hello-preview": preview}) == []
    missing = validate_references(rollout, {"super-hello-prod": prod}, source="my-app/super-hello")
    assert [(f.path, f.severity, f.line) for f in missing] == [(f"{BG}.previewService", "error", None)]
    assert str(missing[0]).startswith("my-app/super-hello: spec.strategy.blueGreen.previewService: service")
    prod["spec"]["selector"] = {"app": "nope", "rollouts-pod-template-hash": "123"}
    preview["metadata"]["annotations"] = {"argo-rollouts.argoproj.io/managed-by-rollouts": "other"}
    found = validate_references(ro(_docs()), {"super-hello-prod": prod, "super-hello-preview": preview})
    assert [f.problem.split(":")[0] for f in found] == [
        'Service "super-hello-prod" has unmatch label "app" in rollout',
        'Service "super-hello-preview" is managed by the Rollout "other"',
    ]
    preview["metadata"]["annotations"] = {"argo-rollouts.argoproj.io/managed-by-rollouts": "super-hello"}
    prod["spec"]["selector"] = {"app": "super-hello", "rollouts-pod-template-hash": "123"}
    assert validate_references(rollout, {"super-hello-prod": prod, "super-hello-preview": preview}) == []


def test_pod_template_errors_for_invalid_spec_messages() -> None:
    template = spec(_docs())["template"]
    assert pod_template_errors(template) == []
    template["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = "8080"
    template["spec"]["containers"][0]["name"] = "Bad_Name"
    template["spec"]["containers"][0]["readinessProbe"]["periodSeconds"] = "1"
    errs = pod_template_errors(template)
    assert errs == [
        'spec.template.spec.containers[0].readinessProbe.httpGet.port: "8080" is a string, and Kubernetes '
        "rejects a numeric string as a port name",
        f"{C0}.readinessProbe.periodSeconds: expected an integer, got the string '1'",
        "spec.template.spec.containers[0].name: the container name 'Bad_Name' is not a DNS-1123 label",
    ]
    assert pod_template_errors(None) == ["spec.template: the pod template is missing"]


def test_rollout_spec_errors() -> None:
    r = ro(_docs())
    assert rollout_spec_errors(r) == []
    r["spec"]["strategy"]["blueGreen"]["previewService"] = "super-hello-prod"
    r["spec"]["replicas"] = "3"
    r["spec"]["unknownField"] = 1  # the API server prunes it; not an InvalidSpec
    assert rollout_spec_errors(r) == [
        "spec.replicas: expected an integer, got the string '3'",
        f"{BG}.activeService: This rollout uses the same service for the active and preview services, "
        "but two different services are required.",
    ]


def test_ill_typed_input_never_raises() -> None:
    for bad in (
        {"spec": "x"},
        {"spec": {"template": "x", "strategy": {"blueGreen": "x"}}},
        {"spec": {"template": {"spec": {"containers": ["x", {"ports": "x", "env": 1}]}}}},
    ):
        obj = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "a"}, **bad}
        assert rollout_spec_errors(obj)
