"""The analysis CRDs (generated from model/analysis.py) on a real API server: an Argo-shaped
AnalysisTemplate, ClusterAnalysisTemplate and AnalysisRun are stored unchanged (nothing pruned),
and an ill-typed field is refused by the API server as lint refuses it."""

from __future__ import annotations

import copy
import json
from typing import Any

import kube_helpers
import pytest

from harness.k8s_cluster import ControlPlane
from pyrollouts.model.lint import lint_text

_crds = pytest.fixture(name="crds")(kube_helpers.crds_fixture)

_API = "/apis/argoproj.io/v1alpha1"

TEMPLATE: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "AnalysisTemplate",
    "metadata": {"name": "success-rate", "namespace": "default"},
    "spec": {
        "args": [{"name": "service-name"}, {"name": "threshold", "value": "0.95"}, {"name": "count"}],
        "metrics": [
            {
                "name": "success-rate",
                "interval": "30s",
                "count": "{{args.count}}",
                "failureLimit": 2,
                "successCondition": "len(result) == 0 || result[0] >= {{args.threshold}}",
                "provider": {
                    "prometheus": {
                        "address": "http://127.0.0.1:9090",
                        "query": 'sum(rate(requests{service="{{args.service-name}}"}[1m]))',
                    }
                },
            },
            {
                "name": "health",
                "successCondition": "result.ok",
                "provider": {
                    "web": {
                        "url": "http://127.0.0.1:8080/health",
                        "headers": [{"key": "X-Probe", "value": "1"}],
                        "timeoutSeconds": 5,
                        "jsonPath": "{$.data}",
                    }
                },
            },
            {
                "name": "smoke",
                "provider": {
                    "job": {
                        "spec": {
                            "backoffLimit": 0,
                            "template": {
                                "spec": {
                                    "restartPolicy": "Never",
                                    "containers": [
                                        {"name": "smoke", "image": "busybox", "command": ["true"]}
                                    ],
                                }
                            },
                        }
                    }
                },
            },
        ],
        "dryRun": [{"metricName": "health"}],
        "measurementRetention": [{"metricName": "success-rate", "limit": 20}],
    },
}


def _clean(obj: dict[str, Any]) -> None:
    assert [f for f in lint_text(json.dumps(obj), "t.json") if f.severity == "error"] == []


def test_analysis_objects_are_stored_unchanged(control_plane: ControlPlane, crds: None) -> None:
    api = control_plane.api
    _clean(TEMPLATE)
    status, body = api.request("POST", f"{_API}/namespaces/default/analysistemplates", TEMPLATE)
    assert status == 201, body
    assert body["spec"] == TEMPLATE["spec"]

    cluster = copy.deepcopy(TEMPLATE)
    cluster["kind"] = "ClusterAnalysisTemplate"
    cluster["metadata"] = {"name": "shared"}
    _clean(cluster)
    status, body = api.request("POST", f"{_API}/clusteranalysistemplates", cluster)
    assert status == 201, body
    assert body["spec"] == cluster["spec"]

    run = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": "run-1", "namespace": "default"},
        "spec": {"metrics": TEMPLATE["spec"]["metrics"][1:2], "args": [{"name": "a", "value": "b"}]},
    }
    _clean(run)
    status, body = api.request("POST", f"{_API}/namespaces/default/analysisruns", run)
    assert status == 201, body
    assert body["spec"] == run["spec"]


def test_an_ill_typed_field_is_refused_by_the_api_server_and_lint(
    control_plane: ControlPlane, crds: None
) -> None:
    bad = copy.deepcopy(TEMPLATE)
    bad["metadata"]["name"] = "bad-timeout"
    bad["spec"]["metrics"][1]["provider"]["web"]["timeoutSeconds"] = "five"
    assert any(f.path.endswith("timeoutSeconds") for f in lint_text(json.dumps(bad), "t.json"))
    status, body = control_plane.api.request("POST", f"{_API}/namespaces/default/analysistemplates", bad)
    assert status == 422, body
    assert "timeoutSeconds" in json.dumps(body)


def test_a_null_list_item_is_refused_by_the_api_server_and_lint(
    control_plane: ControlPlane, crds: None
) -> None:
    bad = copy.deepcopy(TEMPLATE)
    bad["metadata"]["name"] = "null-item"
    bad["spec"]["dryRun"] = [None]
    (finding,) = lint_text(json.dumps(bad), "t.json")
    assert finding.path == "spec.dryRun[0]" and "null" in finding.problem
    status, body = control_plane.api.request("POST", f"{_API}/namespaces/default/analysistemplates", bad)
    assert status == 422, body
