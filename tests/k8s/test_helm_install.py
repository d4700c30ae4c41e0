"""The chart installed as the guide installs Argo Rollouts: from a chart repository, at a version.

`make chart` builds the repository (a packaged chart and index.yaml); it is served over HTTP on
127.0.0.1 and `helm install --repo URL --version V` installs from it (Service types ClusterIP and
NodePort: kwok gives no LoadBalancer an address). Then the controller runs as a local process with
a token of the chart's ServiceAccount and the chart's own arguments, and takes the seed's Rollout
through update and promote: the chart's RBAC is enough. From the apiserver audit log, the (verb,
resource) pairs that account used equal what the chart grants, except the documented ones in
UNUSED_BY_THE_SEED_STORY. Bad values fail `helm install` with the schema's message.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kube_helpers
import pytest
import yaml
from kube_helpers import REPO, ControllerProc, by_revision, get, kubectl, rs_hash, wait_for
from lightkube import Client

from harness.k8s_cluster import ControlPlane

sys.path.insert(0, str(REPO / "tests" / "deploy"))
from deploy_helpers import helm

_crds = pytest.fixture(name="crds")(kube_helpers.crds_fixture)
_controllers = pytest.fixture(name="controllers")(kube_helpers.controllers_fixture)
_chart_repo = pytest.fixture(name="chart_repo", scope="module")(kube_helpers.chart_repo_fixture)

NAME = "super-hello"
HASH = "rollouts-pod-template-hash"
CHART_VERSION = kube_helpers.chart_version()

# Granted by the chart, not used by the seed's story: each is a path the controller takes in other
# stories (tests/k8s/test_kube_runtime.py covers them with an admin identity).
UNUSED_BY_THE_SEED_STORY = {
    # ReplicaSets beyond revisionHistoryLimit (the seed keeps 6; the story makes 2).
    ("delete", "apps/replicasets"),
    # Ephemeral metadata (spec.strategy.blueGreen.activeMetadata/previewMetadata) relabels pods.
    ("patch", "pods"),
    # spec.restartAt (`rollouts restart`) deletes pods one at a time.
    ("delete", "pods"),
    # Analysis (the seed has none): runs are made from templates, measured, cancelled, cleaned up
    # (tests/k8s/test_analysis_k8s.py runs them under the controller).
    ("get", "argoproj.io/analysisruns"),
    ("create", "argoproj.io/analysisruns"),
    ("patch", "argoproj.io/analysisruns"),
    ("delete", "argoproj.io/analysisruns"),
    ("patch", "argoproj.io/analysisruns/status"),
    ("get", "argoproj.io/analysistemplates"),
    ("get", "argoproj.io/clusteranalysistemplates"),
    # The job metric provider (tests/k8s/test_job_provider_k8s.py) runs Jobs.
    ("get", "batch/jobs"),
    ("list", "batch/jobs"),
    ("create", "batch/jobs"),
    ("delete", "batch/jobs"),
    # Canary traffic routers (the seed is blue-green; tests/k8s/test_routers_k8s.py drives them).
    ("get", "gateway.networking.k8s.io/httproutes"),
    ("patch", "gateway.networking.k8s.io/httproutes"),
    ("get", "networking.k8s.io/ingresses"),
    ("create", "networking.k8s.io/ingresses"),
    ("patch", "networking.k8s.io/ingresses"),
}


def _install(
    cp: ControlPlane, home: Path, release: str, ns: str, repo: str, *extra: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return kube_helpers.helm_install(cp, home, release, ns, repo, *extra, check=check)


def _granted(cp: ControlPlane, release: str, ns: str) -> set[tuple[str, str]]:
    """(verb, group/resource) pairs of the controller's (Cluster)Role and leader-election Role."""
    return kube_helpers.granted_pairs(
        cp,
        [
            f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{release}-pyrollouts",
            f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles/{release}-pyrollouts-leader-election",
        ],
    )


def _seed_objects(welcome: str) -> list[dict[str, Any]]:
    return kube_helpers.seed_objects(welcome=welcome, service_type="NodePort")


def _svc_hash(client: Client, ns: str, name: str) -> str | None:
    return (get(client, "Service", name, ns)["spec"].get("selector") or {}).get(HASH)


def test_install_from_repository_and_the_chart_rbac_runs_the_seed_story(
    control_plane: ControlPlane,
    namespace: str,
    crds: None,
    chart_repo: str,
    controllers: list[ControllerProc],
    tmp_path: Path,
) -> None:
    cp, ns = control_plane, namespace
    release = f"r{ns.rsplit('-', 1)[-1]}"
    out = _install(
        cp,
        tmp_path,
        release,
        ns,
        chart_repo,
        "--set",
        "dashboard.enabled=true",
        "--set",
        "dashboard.service.type=NodePort",
        "--wait",
        "--timeout",
        "120s",
    )
    assert "STATUS: deployed" in out.stdout, out.stdout
    assert "kubectl rollouts promote" in out.stdout, "NOTES.txt shows the next commands"
    listed = helm(tmp_path, "list", "-n", ns, "--kubeconfig", str(cp.kubeconfig), "-o", "json").stdout
    (rel,) = json.loads(listed)
    assert rel["chart"] == f"pyrollouts-{CHART_VERSION}" and rel["status"] == "deployed", rel
    app_ns = cp.create_namespace("app")
    admin = kube_helpers.admin_client(cp, app_ns)
    try:
        status, dep = cp.api.request("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/{release}-pyrollouts")
        assert status == 200, dep
        chart_args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
        assert chart_args[0] == "controller" and "--leader-elect=true" in chart_args, chart_args
        status, svc = cp.api.request(
            "GET", f"/api/v1/namespaces/{ns}/services/{release}-pyrollouts-dashboard"
        )
        assert status == 200 and svc["spec"]["type"] == "NodePort", svc
        status, secret = cp.api.request(
            "GET", f"/api/v1/namespaces/{ns}/secrets/{release}-pyrollouts-dashboard-token"
        )
        assert status == 200 and secret["data"]["token"], secret

        user = kube_helpers.token_kubeconfig(cp, ns, f"{release}-pyrollouts", tmp_path / "sa.kubeconfig")
        ctrl = kube_helpers.ChartController(
            chart_args,
            ns,
            kubeconfig=tmp_path / "sa.kubeconfig",
            namespace=ns,
            log_path=tmp_path / "controller.log",
            identity_name="chart-sa",
        )
        controllers.append(ctrl)
        ctrl.start()

        path = tmp_path / "super-hello.yaml"
        path.write_text(yaml.safe_dump_all(_seed_objects("VERSION V2")))
        kubectl(cp, "apply", "-n", app_ns, "-f", str(path))
        kubectl(cp, "wait", "-n", app_ns, "--for=condition=Healthy", f"rollout/{NAME}", "--timeout=120s")

        path.write_text(yaml.safe_dump_all(_seed_objects("VERSION V3")))
        kubectl(cp, "apply", "-n", app_ns, "-f", str(path))

        def paused() -> bool:
            r = get(admin, "Rollout", NAME, app_ns)
            rss = by_revision(admin, r)
            return (
                (r.get("status") or {}).get("phase") == "Paused"
                and 2 in rss
                and _svc_hash(admin, app_ns, "super-hello-preview") == rs_hash(rss[2])
            )

        wait_for(paused, 60, f"Paused on revision 2\n{ctrl.log_tail()}")
        assert "promoted" in kubectl(cp, "rollouts", "promote", NAME, "-n", app_ns).stdout
        h2 = rs_hash(by_revision(admin, get(admin, "Rollout", NAME, app_ns))[2])
        wait_for(lambda: _svc_hash(admin, app_ns, "super-hello-prod") == h2, 30, f"switch\n{ctrl.log_tail()}")
        wait_for(
            lambda: bool(
                (
                    by_revision(admin, get(admin, "Rollout", NAME, app_ns))[1]["metadata"].get("annotations")
                    or {}
                ).get("scale-down-deadline")
            ),
            20,
            f"scale-down deadline\n{ctrl.log_tail()}",
        )
        ctrl.advance(60)  # past the 30 s scale-down delay
        wait_for(
            lambda: by_revision(admin, get(admin, "Rollout", NAME, app_ns))[1]["spec"]["replicas"] == 0,
            30,
            f"old revision scaled down\n{ctrl.log_tail()}",
        )
        kubectl(cp, "wait", "-n", app_ns, "--for=condition=Healthy", f"rollout/{NAME}", "--timeout=120s")
        assert "Forbidden" not in (tmp_path / "controller.log").read_text(), ctrl.log_tail(80)
        ctrl.stop()  # releases the Lease: part of what it uses

        used, granted = kube_helpers.used_pairs(cp, user), _granted(cp, release, ns)
        missing = used - granted
        unused = granted - used - UNUSED_BY_THE_SEED_STORY
        assert not missing, f"used without a grant (the API refused them): {sorted(missing)}"
        assert not unused, f"granted but never used (drop them or document why): {sorted(unused)}"
        assert granted >= UNUSED_BY_THE_SEED_STORY
    finally:
        admin.close()
        kube_helpers.helm_uninstall(cp, tmp_path, release, ns)
        cp.delete_namespace(app_ns)


def test_bad_values_fail_at_install(
    control_plane: ControlPlane, namespace: str, chart_repo: str, tmp_path: Path
) -> None:
    res = _install(
        control_plane,
        tmp_path,
        "bad",
        namespace,
        chart_repo,
        "--set",
        "dashboard.service.type=Loadbalancer",
        check=False,
    )
    assert res.returncode != 0, res.stdout
    assert re.search(r"/dashboard/service/type'?: value must be one of", res.stderr, re.S), res.stderr
    status, _ = control_plane.api.request(
        "GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/bad-pyrollouts"
    )
    assert status == 404, "nothing was installed"
