"""Canary on our operator, on the real control plane, with Argo's own kubectl plugin watching and
driving it (issue 14): the manifests under examples/canary/ are applied unchanged.

- basic.yaml (no traffic router): each setWeight sizes the canary and stable ReplicaSets by the
  share of 5 pods; the first pause waits for Argo's `promote`, the timed ones end by themselves
  (the controller's test clock is moved past them); the Rollout ends Healthy on the new revision
  and Argo's plugin shows the step and the weights as it shows them for its own controller.
- gatewayapi.yaml (the Gateway API plugin config): the HTTPRoute's backendRef weights follow the
  steps exactly (30, then 60, then all to the new revision), and an abort puts them back.
"""

from __future__ import annotations

import copy
import re
import subprocess
from typing import Any

import kube_helpers
import pytest
import runtime_support
import yaml
from kube_helpers import REPO, apply, by_revision, get, list_objs, rs_hash, wait_for
from runtime_support import RuntimeEnv
from test_routers_k8s import gateway_crds_fixture

from harness.k8s_cluster import tool_path
from harness.support import MetricEndpoint, check_template, metric_endpoint_fixture

_crds = pytest.fixture(name="crds")(kube_helpers.crds_fixture)
_client = pytest.fixture(name="client")(kube_helpers.client_fixture)
_controllers = pytest.fixture(name="controllers")(kube_helpers.controllers_fixture)
_rt = pytest.fixture(name="rt")(runtime_support.runtime_env_fixture)
_gateway = gateway_crds_fixture

Obj = dict[str, Any]
EXAMPLES = REPO / "examples" / "canary"


def _load(name: str) -> list[Obj]:
    return [d for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d]


def _rollout(objs: list[Obj]) -> Obj:
    return next(o for o in objs if o["kind"] == "Rollout")


def _with_version(objs: list[Obj], version: str) -> list[Obj]:
    objs = copy.deepcopy(objs)
    container = _rollout(objs)["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": "WELCOME", "value": version}]
    return objs


def argo(rt: RuntimeEnv, *args: str) -> str:
    """Argo's plugin, as a user runs it; fails the test with its output when it exits non-zero."""
    cmd = [str(tool_path("kubectl-argo-rollouts")), *args, "-n", rt.ns, "--kubeconfig", str(rt.cp.kubeconfig)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
    return re.sub(r"\x1b\[[0-9;]*m", "", r.stdout)


class Canary:
    """What the test reads of one canary Rollout."""

    def __init__(self, rt: RuntimeEnv, name: str) -> None:
        self.rt, self.name = rt, name

    def obj(self) -> Obj:
        return get(self.rt.client, "Rollout", self.name, self.rt.ns)

    def status(self) -> Obj:
        return self.obj().get("status") or {}

    def sizes(self) -> dict[int, int]:
        """spec.replicas of each revision's ReplicaSet."""
        return {rev: rs["spec"]["replicas"] for rev, rs in by_revision(self.rt.client, self.obj()).items()}

    def healthy_on(self, rev: int) -> bool:
        r = self.obj()
        st = r.get("status") or {}
        rss = by_revision(self.rt.client, r)
        if rev not in rss:
            return False
        h = rs_hash(rss[rev])
        return st.get("phase") == "Healthy" and st.get("stableRS") == h and st.get("currentPodHash") == h

    def paused_at(self, step: int) -> bool:
        st = self.status()
        reasons = [c.get("reason") for c in st.get("pauseConditions") or []]
        return (
            st.get("phase") == "Paused"
            and st.get("currentStepIndex") == step
            and "CanaryPauseStep" in reasons
        )


def _field(out: str, name: str) -> str:
    """One `Name:   value` line of Argo's `get rollout`."""
    m = re.search(rf"^\s*{name}:\s+(.*)$", out, re.M)
    assert m is not None, f"no {name}: line in\n{out}"
    return m.group(1).strip()


def test_basic_canary_example_steps_with_argos_plugin(rt: RuntimeEnv) -> None:
    objs = _load("basic.yaml")
    ctrl = rt.deploy(objs)
    c = Canary(rt, "canary-demo")
    wait_for(lambda: c.healthy_on(1), 120, f"Healthy on revision 1\n{ctrl.log_tail()}")
    out = argo(rt, "get", "rollout", c.name)
    assert _field(out, "Strategy") == "Canary", out
    assert _field(out, "Status") == "✔ Healthy", out

    rt.apply_all(_with_version(objs, "VERSION V2"))
    wait_for(lambda: c.paused_at(1), 120, f"Paused at the first pause\n{ctrl.log_tail()}")
    # 20% of 5 pods: one canary pod beside four stable ones.
    wait_for(lambda: c.sizes() == {1: 4, 2: 1}, 60, f"1 canary and 4 stable pods, saw {c.sizes()}")
    out = argo(rt, "get", "rollout", c.name)
    assert _field(out, "Status") == "॥ Paused", out
    assert _field(out, "Step") == "1/8", out
    assert _field(out, "SetWeight") == "20", out
    assert _field(out, "ActualWeight") == "20", out

    assert "promoted" in argo(rt, "promote", c.name)
    # 40%, 60%, 80%, each followed by a 10 s pause that ends once the controller's clock passes it.
    for pause, canary_pods in ((3, 2), (5, 3), (7, 4)):
        wait_for(lambda p=pause: c.paused_at(p), 120, f"at the pause of step {pause}\n{ctrl.log_tail()}")
        assert c.sizes() == {1: 5 - canary_pods, 2: canary_pods}, (pause, c.sizes())
        ctrl.advance(15)
    wait_for(lambda: c.healthy_on(2), 180, f"Healthy on revision 2\n{ctrl.log_tail()}")
    wait_for(lambda: c.sizes() == {1: 0, 2: 5}, 120, f"all 5 pods on revision 2, saw {c.sizes()}")
    out = argo(rt, "get", "rollout", c.name)
    assert _field(out, "Status") == "✔ Healthy", out
    assert _field(out, "Step") == "8/8", out
    assert _field(out, "SetWeight") == "100", out
    assert _field(out, "ActualWeight") == "100", out


def _route_weights(rt: RuntimeEnv) -> dict[str, int]:
    route = get(rt.client, "HTTPRoute", "gateway-demo", rt.ns)
    refs = route["spec"]["rules"][0]["backendRefs"]
    return {r["name"]: int(r.get("weight", 1)) for r in refs}


def test_gateway_api_example_weights_follow_the_steps(rt: RuntimeEnv, gateway_crds: None) -> None:
    objs = _load("gatewayapi.yaml")
    for route in _load("gatewayapi-httproute.k8s.yaml"):
        apply(rt.client, route, rt.ns)
    ctrl = rt.deploy(objs)
    c = Canary(rt, "gateway-demo")
    stable, canary = "gateway-demo-stable", "gateway-demo-canary"
    wait_for(lambda: c.healthy_on(1), 120, f"Healthy on revision 1\n{ctrl.log_tail()}")

    rt.apply_all(_with_version(objs, "VERSION V2"))
    wait_for(lambda: c.paused_at(1), 120, f"Paused at the first pause\n{ctrl.log_tail()}")
    wait_for(
        lambda: _route_weights(rt) == {stable: 70, canary: 30},
        60,
        f"the HTTPRoute at 70/30, saw {_route_weights(rt)}\n{ctrl.log_tail()}",
    )
    weights = c.status()["canary"]["weights"]
    assert (weights["canary"]["weight"], weights["stable"]["weight"]) == (30, 70), weights
    out = argo(rt, "get", "rollout", c.name)
    assert _field(out, "SetWeight") == "30", out
    assert _field(out, "ActualWeight") == "30", out

    assert "aborted" in argo(rt, "abort", c.name)
    wait_for(
        lambda: _route_weights(rt) == {stable: 100, canary: 0},
        120,
        f"the HTTPRoute back to 100/0 on abort, saw {_route_weights(rt)}\n{ctrl.log_tail()}",
    )
    wait_for(lambda: c.status().get("phase") == "Degraded", 60, "Degraded after the abort")

    argo(rt, "retry", "rollout", c.name)
    wait_for(lambda: c.paused_at(1), 120, f"Paused again after the retry\n{ctrl.log_tail()}")
    argo(rt, "promote", c.name)
    wait_for(
        lambda: _route_weights(rt) == {stable: 40, canary: 60},
        120,
        f"the HTTPRoute at 40/60, saw {_route_weights(rt)}\n{ctrl.log_tail()}",
    )
    ctrl.advance(15)
    wait_for(lambda: c.healthy_on(2), 180, f"Healthy on revision 2\n{ctrl.log_tail()}")
    wait_for(
        lambda: _route_weights(rt) == {stable: 100, canary: 0},
        60,
        f"all traffic on the new stable, saw {_route_weights(rt)}",
    )
    stable_sel = get(rt.client, "Service", stable, rt.ns)["spec"]["selector"]
    assert stable_sel.get("rollouts-pod-template-hash") == c.status()["stableRS"], stable_sel


_endpoint = pytest.fixture(name="endpoint")(metric_endpoint_fixture)


def _with_analysis_steps(objs: list[Obj]) -> list[Obj]:
    """basic.yaml with Argo's step analysis after the first weight: the `check` template (a web
    metric asking the test's endpoint) with the canary's hash as its argument."""
    objs = copy.deepcopy(objs)
    analysis = {
        "templates": [{"templateName": "check"}],
        "args": [{"name": "hash", "valueFrom": {"podTemplateHashValue": "Latest"}}],
    }
    _rollout(objs)["spec"]["strategy"]["canary"]["steps"] = [
        {"setWeight": 20},
        {"analysis": analysis},
        {"setWeight": 60},
        {"pause": {"duration": 10}},
    ]
    return objs


def test_canary_analysis_step_promotes_a_good_version_and_aborts_a_bad_one(
    rt: RuntimeEnv, endpoint: MetricEndpoint
) -> None:
    apply(rt.client, check_template(endpoint.url), rt.ns)
    objs = _with_analysis_steps(_load("basic.yaml"))
    ctrl = rt.deploy(objs)
    c = Canary(rt, "canary-demo")
    wait_for(lambda: c.healthy_on(1), 120, f"Healthy on revision 1\n{ctrl.log_tail()}")

    # A good version: the step's run succeeds, the steps go on, the update completes.
    rt.apply_all(_with_version(objs, "VERSION V2"))
    wait_for(lambda: c.paused_at(3), 180, f"at the timed pause after the analysis\n{ctrl.log_tail()}")
    runs = list_objs(rt.client, "AnalysisRun", rt.ns)
    assert [r["status"]["phase"] for r in runs] == ["Successful"], runs
    ctrl.advance(15)
    wait_for(lambda: c.healthy_on(2), 180, f"Healthy on revision 2\n{ctrl.log_tail()}")

    # A bad version: the run fails, the Rollout aborts by itself, all pods back on stable.
    endpoint.value = False
    rt.apply_all(_with_version(objs, "VERSION V3"))
    wait_for(
        lambda: c.status().get("phase") == "Degraded", 180, f"Degraded by the analysis\n{ctrl.log_tail()}"
    )
    st = c.status()
    assert st.get("abort") is True, st
    assert "Failed" in (st.get("message") or ""), st
    wait_for(lambda: c.sizes().get(3) == 0 and c.sizes().get(2) == 5, 120, f"stable back, saw {c.sizes()}")
    out = argo(rt, "get", "rollout", c.name)
    assert _field(out, "Status") == "✖ Degraded", out
    assert "AnalysisRun" in out and "✖ Failed" in out, out
