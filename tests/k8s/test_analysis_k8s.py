"""Blue-green analysis under the operator on the real control plane (issue 13): the controller
(a `rollouts controller` subprocess) makes the pre-promotion AnalysisRun from an AnalysisTemplate
with a stock Argo ``web`` metric, measures it against a real HTTP endpoint on 127.0.0.1, and pauses
on success or aborts on failure; the run's status is written through its status subresource.
"""

from __future__ import annotations

import kube_helpers
import pytest
import runtime_support
from kube_helpers import apply, events, list_objs, wait_for
from runtime_support import PREVIEW, RuntimeEnv, manifest, rollout_of, with_env

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
