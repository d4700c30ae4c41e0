"""Blue-green analysis under the operator on the real control plane (issue 13): the controller
(a `rollouts controller` subprocess) makes the pre-promotion AnalysisRun from an AnalysisTemplate
with a stock Argo ``web`` metric, measures it against a real HTTP endpoint on 127.0.0.1, and pauses
on success or aborts on failure; the run's status is written through its status subresource.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import kube_helpers
import pytest
import runtime_support
from kube_helpers import apply, events, list_objs, wait_for
from runtime_support import PREVIEW, RuntimeEnv, manifest, rollout_of, with_env

_crds = pytest.fixture(name="crds")(kube_helpers.crds_fixture)
_client = pytest.fixture(name="client")(kube_helpers.client_fixture)
_controllers = pytest.fixture(name="controllers")(kube_helpers.controllers_fixture)
_rt = pytest.fixture(name="rt")(runtime_support.runtime_env_fixture)


class Endpoint:
    """``GET /check?hash=H`` answers ``{"ok": <self.ok>}`` and records the hashes asked for."""

    def __init__(self) -> None:
        self.ok = True
        self.asked: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.asked.append(self.path.partition("hash=")[2])
                body = json.dumps({"ok": outer.ok}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    e = Endpoint()
    yield e
    e.server.shutdown()
    e.server.server_close()


def template(port: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/check?hash={{{{args.hash}}}}"
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "check"},
        "spec": {
            "args": [{"name": "hash"}],
            "metrics": [
                {
                    "name": "ok",
                    "count": 2,
                    "interval": "1s",
                    "successCondition": "result == true",
                    "provider": {"web": {"url": url, "jsonPath": "{$.ok}"}},
                }
            ],
        },
    }


def test_pre_promotion_analysis_under_the_operator(rt: RuntimeEnv, endpoint: Endpoint) -> None:
    pre = {
        "templates": [{"templateName": "check"}],
        "args": [{"name": "hash", "valueFrom": {"podTemplateHashValue": "Latest"}}],
    }
    objs = manifest(scale_down_delay=600, prePromotionAnalysis=pre)
    apply(rt.client, template(endpoint.port), rt.ns)
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
    assert set(endpoint.asked) == {h}
    bg = rt.status()["blueGreen"]
    assert bg["prePromotionAnalysisRunStatus"] == {"name": run["metadata"]["name"], "status": "Successful"}
    assert rt.svc_hash(PREVIEW) == h and rt.svc_hash(runtime_support.ACTIVE) != h
    reasons = [e["reason"] for e in events(rt.client, rt.ns, "super-hello")]
    assert "AnalysisRunSuccessful" in reasons, reasons

    # A bad revision 3 aborts by itself; the active Service stays on revision 1.
    endpoint.ok = False
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
