"""End to end: blue-green pre- and post-promotion analysis on the local runtime (issue 13).

A real `rollouts server` (subprocess, test clock), its pods and proxy as processes, and a real
metric endpoint: an HTTP server in this test on 127.0.0.1 whose answer the test sets. The Rollout
names an AnalysisTemplate with a stock Argo ``web`` metric; the server's AnalysisRun controller
measures it, and the Rollout waits for, promotes on or aborts on the run's verdict.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from e2e_support import Servers, rollout_doc, seed_docs, servers_fixture, stored, with_env

from harness.serverharness import free_port, http_body
from harness.support import MetricEndpoint, check_template, hashes_asked, metric_endpoint_fixture

NS = "e2e-analysis"


@pytest.fixture
def servers() -> Iterator[Servers]:
    yield from servers_fixture()


_endpoint = pytest.fixture(name="endpoint")(metric_endpoint_fixture)


def with_analysis(docs: list[dict[str, Any]], which: str) -> list[dict[str, Any]]:
    bg = rollout_doc(docs)["spec"]["strategy"]["blueGreen"]
    bg[which] = {
        "templates": [{"templateName": "check"}],
        "args": [{"name": "hash", "valueFrom": {"podTemplateHashValue": "Latest"}}],
    }
    return docs


def runs(servers: Servers) -> list[dict[str, Any]]:
    return stored(servers.state_dir, "AnalysisRun", NS)


def bg_status(servers: Servers) -> dict[str, Any]:
    ro = stored(servers.state_dir, "Rollout", NS)[0]
    return dict((ro.get("status") or {}).get("blueGreen") or {})


def test_pre_promotion_analysis_gates_the_pause_and_aborts_a_bad_version(
    servers: Servers, endpoint: MetricEndpoint
) -> None:
    srv = servers.start()
    prod, preview = free_port(), free_port()
    docs = with_analysis(seed_docs(NS, prod, preview, replicas=1, welcome="V2"), "prePromotionAnalysis")
    manifest = servers.state_dir.parent / "analysis.yaml"
    assert srv.apply([*docs, check_template(endpoint.url, NS)], manifest).code == 0
    srv.wait_for("revision 1 healthy", lambda: srv.info(NS)["status"] == "Healthy", timeout=60)
    assert runs(servers) == [], "a first deploy runs no analysis"

    # A good V3: the pre run measures the preview's hash twice, succeeds, then the rollout pauses.
    assert srv.apply([*with_env(docs, WELCOME="V3"), check_template(endpoint.url, NS)], manifest).code == 0
    srv.wait_for("V3 paused after its analysis", lambda: srv.info(NS)["status"] == "Paused", timeout=90)
    [run] = runs(servers)
    h = run["metadata"]["labels"]["rollouts-pod-template-hash"]
    assert run["metadata"]["name"] == f"super-hello-{h}-2-pre"
    assert run["metadata"]["labels"]["rollout-type"] == "PrePromotion"
    assert run["metadata"]["ownerReferences"][0]["kind"] == "Rollout"
    assert run["status"]["phase"] == "Successful", run["status"]
    assert [r["count"] for r in run["status"]["metricResults"]] == [2]
    assert hashes_asked(endpoint) and set(hashes_asked(endpoint)) == {h}, hashes_asked(endpoint)
    assert bg_status(servers)["prePromotionAnalysisRunStatus"] == {
        "name": run["metadata"]["name"],
        "status": "Successful",
    }
    assert http_body(prod) == "V2" and http_body(preview) == "V3"
    assert srv.cli("promote", "super-hello", "-n", NS).code == 0
    srv.wait_for("V3 in production", lambda: http_body(prod) == "V3", timeout=60)
    srv.wait_for("revision 2 healthy", lambda: srv.info(NS)["status"] == "Healthy", timeout=60)

    # A bad V4: its run fails, the update aborts by itself and production never leaves V3.
    endpoint.value = False
    assert srv.apply([*with_env(docs, WELCOME="V4"), check_template(endpoint.url, NS)], manifest).code == 0
    srv.wait_for("V4 aborted by its analysis", lambda: srv.info(NS)["status"] == "Degraded", timeout=90)
    failed = [r for r in runs(servers) if r["metadata"]["annotations"]["rollout.argoproj.io/revision"] == "3"]
    assert [r["status"]["phase"] for r in failed] == ["Failed"], failed
    ro = stored(servers.state_dir, "Rollout", NS)[0]
    assert ro["status"]["abort"] is True
    events = [e for e in stored(servers.state_dir, "Event", NS) if e["reason"] == "RolloutAborted"]
    assert any("pre-promotion analysis phase error/failed" in e["message"] for e in events), events
    assert any(e["reason"] == "AnalysisRunFailed" for e in stored(servers.state_dir, "Event", NS))
    assert http_body(prod) == "V3"


def test_post_promotion_analysis_gates_stable_and_switches_back_on_failure(
    servers: Servers, endpoint: MetricEndpoint
) -> None:
    srv = servers.start()
    prod, preview = free_port(), free_port()
    docs = with_analysis(seed_docs(NS, prod, preview, replicas=1, welcome="V2"), "postPromotionAnalysis")
    rollout_doc(docs)["spec"]["strategy"]["blueGreen"]["autoPromotionEnabled"] = True
    manifest = servers.state_dir.parent / "analysis.yaml"
    assert srv.apply([*docs, check_template(endpoint.url, NS)], manifest).code == 0
    srv.wait_for("revision 1 healthy", lambda: srv.info(NS)["status"] == "Healthy", timeout=60)

    # A good V3 goes to production at once (auto-promotion), then becomes stable once its post run
    # succeeds.
    assert srv.apply([*with_env(docs, WELCOME="V3"), check_template(endpoint.url, NS)], manifest).code == 0
    srv.wait_for(
        "V3 stable after its post-promotion analysis",
        lambda: (
            bg_status(servers).get("postPromotionAnalysisRunStatus", {}).get("status") == "Successful"
            and srv.info(NS)["status"] == "Healthy"
        ),
        timeout=90,
    )
    [run] = runs(servers)
    assert run["metadata"]["labels"]["rollout-type"] == "PostPromotion"
    assert run["metadata"]["name"].endswith("-2-post")
    assert http_body(prod) == "V3"

    # A bad V4 reaches production, fails its post run and production goes back to V3.
    endpoint.value = False
    assert srv.apply([*with_env(docs, WELCOME="V4"), check_template(endpoint.url, NS)], manifest).code == 0
    srv.wait_for("V4 aborted by its post analysis", lambda: srv.info(NS)["status"] == "Degraded", timeout=90)
    srv.wait_for("production back on V3", lambda: http_body(prod) == "V3", timeout=60)
    ro = stored(servers.state_dir, "Rollout", NS)[0]
    assert ro["status"]["stableRS"] == ro["status"]["blueGreen"]["activeSelector"]
    events = [e for e in stored(servers.state_dir, "Event", NS) if e["reason"] == "RolloutAborted"]
    assert any("post-promotion analysis phase error/failed" in e["message"] for e in events), events
