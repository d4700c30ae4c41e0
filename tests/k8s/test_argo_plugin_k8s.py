"""Argo Rollouts' own kubectl plugin (built from its module by `make tools`) against our operator on
the real control plane: it shows our Rollout, its revisions and our AnalysisRuns the way it shows
Argo's own, and its promote drives our controller (issues 13 and 16)."""

from __future__ import annotations

import re
import subprocess

import kube_helpers
import pytest
import runtime_support
from kube_helpers import apply, wait_for
from runtime_support import NAME, RuntimeEnv, manifest, with_env

from harness.k8s_cluster import tool_path
from harness.support import check_template, metric_endpoint_fixture

_crds = pytest.fixture(name="crds")(kube_helpers.crds_fixture)
_client = pytest.fixture(name="client")(kube_helpers.client_fixture)
_controllers = pytest.fixture(name="controllers")(kube_helpers.controllers_fixture)
_rt = pytest.fixture(name="rt")(runtime_support.runtime_env_fixture)
_endpoint = pytest.fixture(name="endpoint")(metric_endpoint_fixture)


def argo(rt: RuntimeEnv, *args: str) -> str:
    """Argo's plugin, as a user runs it; fails the test with its output when it exits non-zero."""
    cmd = [str(tool_path("kubectl-argo-rollouts")), *args, "-n", rt.ns, "--kubeconfig", str(rt.cp.kubeconfig)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
    return re.sub(r"\x1b\[[0-9;]*m", "", r.stdout)  # it colours its icons even into a pipe


def test_argos_plugin_shows_our_rollout_and_analysis_runs_and_promotes(
    rt: RuntimeEnv, endpoint: object
) -> None:
    pre = {
        "templates": [{"templateName": "check"}],
        "args": [{"name": "hash", "valueFrom": {"podTemplateHashValue": "Latest"}}],
    }
    objs = manifest(scale_down_delay=600, prePromotionAnalysis=pre)
    apply(rt.client, check_template(endpoint.url), rt.ns)  # type: ignore[attr-defined]
    ctrl = rt.deploy(objs)
    rt.wait_healthy(1, 60, f"Healthy on revision 1\n{ctrl.log_tail()}")
    assert "Status:          ✔ Healthy" in argo(rt, "get", "rollout", NAME)

    rt.apply_all(with_env(objs, "V2"))
    wait_for(lambda: rt.phase() == "Paused", 120, f"Paused after the analysis\n{ctrl.log_tail()}")
    h = rt.status()["currentPodHash"]
    out = argo(rt, "get", "rollout", NAME)
    lines = out.splitlines()
    assert "Status:          ॥ Paused" in lines, out
    assert "Message:         BlueGreenPause" in lines, out
    run_line = next((line for line in lines if f"{NAME}-{h}-2-pre" in line), None)
    assert run_line is not None, out
    assert "AnalysisRun" in run_line and "✔ Successful" in run_line and "✔ 2" in run_line, run_line
    # the run is listed under revision 2 (Argo's plugin groups runs by their revision annotation)
    rev2 = out.index("# revision:2")
    rev1 = out.index("# revision:1")
    assert rev2 < out.index(run_line) < rev1, out

    assert "promoted" in argo(rt, "promote", NAME)
    rt.wait_healthy(2, 120, f"Healthy on revision 2 after Argo's promote\n{ctrl.log_tail()}")
    out = argo(rt, "get", "rollout", NAME)
    assert "Status:          ✔ Healthy" in out.splitlines(), out
