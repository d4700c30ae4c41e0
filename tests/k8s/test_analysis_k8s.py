"""Blue-green analysis under the operator on the real control plane (issue 13): the controller
(a `rollouts controller` subprocess) makes the pre-promotion AnalysisRun from an AnalysisTemplate
with a stock Argo ``web`` metric, measures it against a real HTTP endpoint on 127.0.0.1, and pauses
on success or aborts on failure; the run's status is written through its status subresource.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import kube_helpers
import pytest
import runtime_support
from kube_helpers import apply, events, list_objs, wait_for
from runtime_support import PREVIEW, RuntimeEnv, manifest, rollout_of, with_env

from harness.kwok_stages import ANNOTATION_JOB_FAIL
from harness.prometheus import Target, prometheus_fixture, target_fixture
from harness.support import MetricEndpoint, check_template, hashes_asked, metric_endpoint_fixture

_crds = pytest.fixture(name="crds")(kube_helpers.crds_fixture)
_client = pytest.fixture(name="client")(kube_helpers.client_fixture)
_controllers = pytest.fixture(name="controllers")(kube_helpers.controllers_fixture)
_rt = pytest.fixture(name="rt")(runtime_support.runtime_env_fixture)


_endpoint = pytest.fixture(name="endpoint")(metric_endpoint_fixture)


def test_pre_promotion_analysis_under_the_operator(rt: RuntimeEnv, endpoint: MetricEndpoint) -> None:
    pre = {
        "templates": [{"templateName": "check"}],
        "args": [{"name": "hash", "valueFrom": {"podTemplateHashValue": "Latest"}}],
    }
    objs = manifest(scale_down_delay=600, prePromotionAnalysis=pre)
    apply(rt.client, check_template(endpoint.url), rt.ns)
    ctrl = rt.deploy(objs)
    rt.wait_healthy(1, 60, f"Healthy on revision 1\n{ctrl.log_tail()}")

    # A good revision 2: its pre run succeeds (two measurements of the preview's hash), then the
    # rollout pauses before the switch.
    rt.apply_all(with_env(objs, "V2"))
    wait_for(lambda: rt.phase() == "Paused", 120, f"Paused after the analysis\n{ctrl.log_tail()}")
    runs = list_objs(rt.client, "AnalysisRun", rt.ns)
    assert len(runs) == 1, runs
    run = runs[0]
    h = run["metadata"]["labels"]["rollouts-pod-template-hash"]
    assert run["metadata"]["name"] == f"super-hello-{h}-2-pre"
    assert run["metadata"]["labels"]["rollout-type"] == "PrePromotion"
    assert run["status"]["phase"] == "Successful", run["status"]
    assert set(hashes_asked(endpoint)) == {h}
    bg = rt.status()["blueGreen"]
    assert bg["prePromotionAnalysisRunStatus"] == {"name": run["metadata"]["name"], "status": "Successful"}
    assert rt.svc_hash(PREVIEW) == h and rt.svc_hash(runtime_support.ACTIVE) != h
    reasons = [e["reason"] for e in events(rt.client, rt.ns, "super-hello")]
    assert "AnalysisRunSuccessful" in reasons, reasons

    # A bad revision 3 aborts by itself; the active Service stays on revision 1.
    endpoint.value = False
    rt.apply_all(with_env(objs, "V3"))
    wait_for(lambda: rt.phase() == "Degraded", 120, f"aborted by the analysis\n{ctrl.log_tail()}")
    st = rt.status()
    assert st["abort"] is True
    progressing = next(c for c in st["conditions"] if c["type"] == "Progressing")
    assert progressing["reason"] == "RolloutAborted"
    failed = [
        r
        for r in list_objs(rt.client, "AnalysisRun", rt.ns)
        if (r.get("status") or {}).get("phase") == "Failed"
    ]
    assert len(failed) == 1 and failed[0]["metadata"]["name"].endswith("-3-pre"), failed
    assert rollout_of(objs)["metadata"]["name"] == "super-hello"


def job_template(name: str, fail: bool) -> dict[str, Any]:
    """An Argo-style Job metric (as Argo's examples write one: a container that exits 0 or 1,
    backoffLimit 0); kwok's Stages finish its pod (failed with the job-fail annotation)."""
    annotations = {ANNOTATION_JOB_FAIL: "true"} if fail else {}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": {
            "metrics": [
                {
                    "name": name,
                    "count": 1,
                    "interval": "5s",
                    "failureLimit": 0,
                    "provider": {
                        "job": {
                            "spec": {
                                "backoffLimit": 0,
                                "template": {
                                    "metadata": {"annotations": annotations},
                                    "spec": {
                                        "restartPolicy": "Never",
                                        "containers": [
                                            {
                                                "name": "check",
                                                "image": "alpine:3.8",
                                                "command": ["sh", "-c"],
                                                "args": ["exit 0"],
                                            }
                                        ],
                                    },
                                },
                            }
                        }
                    },
                }
            ]
        },
    }


def test_job_analysis_under_the_operator(rt: RuntimeEnv) -> None:
    """A job metric: the operator's run creates a Job (owned by the run), kube-controller-manager
    makes its pod, kwok finishes it; a passing Job lets the update pause, a failing one aborts it."""
    apply(rt.client, job_template("pass", fail=False), rt.ns)
    apply(rt.client, job_template("fail", fail=True), rt.ns)
    objs = manifest(scale_down_delay=600, prePromotionAnalysis={"templates": [{"templateName": "pass"}]})
    ctrl = rt.deploy(objs)
    rt.wait_healthy(1, 60, f"Healthy on revision 1\n{ctrl.log_tail()}")

    rt.apply_all(with_env(objs, "V2"))
    wait_for(lambda: rt.phase() == "Paused", 180, f"Paused after the job analysis\n{ctrl.log_tail()}")
    [run] = list_objs(rt.client, "AnalysisRun", rt.ns)
    assert run["status"]["phase"] == "Successful", run["status"]
    jobs = list_objs(rt.client, "Job", rt.ns)
    assert jobs and jobs[0]["metadata"]["ownerReferences"][0]["kind"] == "AnalysisRun", jobs

    failing = manifest(scale_down_delay=600, prePromotionAnalysis={"templates": [{"templateName": "fail"}]})
    rt.apply_all(with_env(failing, "V3"))
    wait_for(lambda: rt.phase() == "Degraded", 180, f"aborted by the failed job\n{ctrl.log_tail()}")
    assert rt.status()["abort"] is True
    phases = sorted(
        (r.get("status") or {}).get("phase", "") for r in list_objs(rt.client, "AnalysisRun", rt.ns)
    )
    assert "Failed" in phases, phases


_target = pytest.fixture(scope="module", name="target")(target_fixture)
_prometheus = pytest.fixture(scope="module", name="prometheus")(prometheus_fixture)


def test_prometheus_analysis_under_the_operator(rt: RuntimeEnv, target: Target, prometheus: str) -> None:
    """A prometheus metric (as Argo's examples write one, the address and query in the template):
    a real Prometheus scrapes an error ratio; below 5% the update pauses, above it aborts."""
    template = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "error-ratio"},
        "spec": {
            "args": [{"name": "address", "value": prometheus}],
            "metrics": [
                {
                    "name": "error-ratio",
                    "count": 2,
                    "interval": "1s",
                    "failureLimit": 0,
                    "successCondition": "len(result) == 0 || result[0] < 0.05",
                    "provider": {"prometheus": {"address": "{{args.address}}", "query": "demo_error_ratio"}},
                }
            ],
        },
    }
    apply(rt.client, template, rt.ns)
    objs = manifest(
        scale_down_delay=600, prePromotionAnalysis={"templates": [{"templateName": "error-ratio"}]}
    )
    ctrl = rt.deploy(objs)
    rt.wait_healthy(1, 60, f"Healthy on revision 1\n{ctrl.log_tail()}")

    target.values["ratio"] = 0.01
    rt.apply_all(with_env(objs, "V2"))
    wait_for(lambda: rt.phase() == "Paused", 120, f"Paused after the prometheus analysis\n{ctrl.log_tail()}")
    [run] = list_objs(rt.client, "AnalysisRun", rt.ns)
    assert run["status"]["phase"] == "Successful", run["status"]
    values = [m.get("value") for m in run["status"]["metricResults"][0]["measurements"]]
    assert values == ["[0.01]", "[0.01]"], values

    target.values["ratio"] = 0.5
    wait_for(lambda: _scraped(prometheus, "0.5"), 90, "Prometheus to scrape the new ratio")
    rt.apply_all(with_env(objs, "V3"))
    wait_for(lambda: rt.phase() == "Degraded", 120, f"aborted by the prometheus analysis\n{ctrl.log_tail()}")
    failed = [
        r
        for r in list_objs(rt.client, "AnalysisRun", rt.ns)
        if (r.get("status") or {}).get("phase") == "Failed"
    ]
    assert len(failed) == 1, failed
    assert failed[0]["status"]["metricResults"][0]["measurements"][0]["value"] == "[0.5]"


def _scraped(address: str, value: str) -> bool:
    with urllib.request.urlopen(f"{address}/api/v1/query?query=demo_error_ratio", timeout=5) as r:
        result = json.load(r)["data"]["result"]
    return bool(result) and result[0]["value"][1] == value
