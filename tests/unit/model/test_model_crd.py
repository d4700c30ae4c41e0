"""The Rollout CRD is generated from model/rollout.py and Kubernetes' own pod template schema."""

from __future__ import annotations

import json
from typing import Any

from pyrollouts.model.crd import crds, rollout_crd
from pyrollouts.model.schema import rollout_openapi_schema


def _nodes(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, schema)]
    for name, sub in schema.get("properties", {}).items():
        out += _nodes(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        out += _nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        out += _nodes(schema["additionalProperties"], f"{path}{{}}")
    return out


def test_schema_is_structural() -> None:
    schema = rollout_openapi_schema()
    nodes = _nodes(schema)
    assert len(nodes) > 500  # the pod template is expanded, not preserved
    for path, node in nodes:
        assert (
            "type" in node
            or node.get("x-kubernetes-int-or-string")
            or node.get("x-kubernetes-preserve-unknown-fields")
        ), path
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
    json.dumps(schema)  # plain JSON


def test_schema_has_the_rollout_fields() -> None:
    props = rollout_openapi_schema()["properties"]
    bg = props["spec"]["properties"]["strategy"]["properties"]["blueGreen"]
    assert bg["properties"]["activeService"] == {"type": "string"}
    assert bg["required"] == ["activeService"]
    int32 = {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1}
    # Every integer carries its Kubernetes format and range (issue 11: replicas 2147483648 was
    # accepted), narrowed by the field's own bounds.
    assert bg["properties"]["scaleDownDelaySeconds"] == {**int32, "minimum": 0}
    assert props["spec"]["properties"]["replicas"] == {**int32, "minimum": 0}
    weight = bg["properties"]["antiAffinity"]["properties"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert weight["properties"]["weight"] == {**int32, "minimum": 1, "maximum": 100}
    pod = props["spec"]["properties"]["template"]["properties"]["spec"]["properties"]
    # int64 carries no bounds: the API server would hold them as float64 and refuse every object
    # with the field (tests/k8s/test_int_formats_k8s.py applies one).
    assert pod["terminationGracePeriodSeconds"] == {"type": "integer", "format": "int64"}
    probe = props["spec"]["properties"]["template"]["properties"]["spec"]["properties"]["containers"][
        "items"
    ]["properties"]["readinessProbe"]
    assert probe["properties"]["httpGet"]["properties"]["port"]["x-kubernetes-int-or-string"] is True
    assert probe["properties"]["httpGet"]["required"] == ["port"]
    assert "initialDelaySeconds" not in probe["properties"]["httpGet"]["properties"]
    status = props["status"]["properties"]
    assert status["HPAReplicas"] == int32 and status["observedGeneration"] == {"type": "string"}
    assert props["metadata"] == {"type": "object"}


def test_rollout_crd_matches_argo() -> None:
    crd = rollout_crd()
    assert crd["metadata"]["name"] == "rollouts.argoproj.io"
    spec = crd["spec"]
    assert spec["group"] == "argoproj.io" and spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "Rollout",
        "listKind": "RolloutList",
        "plural": "rollouts",
        "singular": "rollout",
        "shortNames": ["ro"],
    }
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.HPAReplicas",
            "labelSelectorPath": ".status.selector",
        },
    }
    assert [(c["name"], c["jsonPath"]) for c in version["additionalPrinterColumns"]] == [
        ("Desired", ".spec.replicas"),
        ("Current", ".status.replicas"),
        ("Up-to-date", ".status.updatedReplicas"),
        ("Available", ".status.availableReplicas"),
        ("Age", ".metadata.creationTimestamp"),
    ]


def test_all_crds() -> None:
    by_kind = {c["spec"]["names"]["kind"]: c for c in crds()}
    assert set(by_kind) == {
        "Rollout",
        "AnalysisTemplate",
        "ClusterAnalysisTemplate",
        "AnalysisRun",
        "Experiment",
    }
    assert by_kind["ClusterAnalysisTemplate"]["spec"]["scope"] == "Cluster"
    for c in by_kind.values():
        assert c["metadata"]["name"] == f"{c['spec']['names']['plural']}.argoproj.io"
        schema = c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert schema["type"] == "object"
