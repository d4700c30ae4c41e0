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

import functools
import http.server
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kube_helpers
import pytest
import yaml
from kube_helpers import REPO, ControllerProc, by_revision, get, kubectl, rs_hash, wait_for
from lightkube import Client

from pyrollouts.testing.k8s_cluster import ControlPlane

sys.path.insert(0, str(REPO / "tests" / "deploy"))
from deploy_helpers import CHART, helm

_crds = pytest.fixture(name="crds")(kube_helpers.crds_fixture)
_controllers = pytest.fixture(name="controllers")(kube_helpers.controllers_fixture)

NAME = "super-hello"
HASH = "rollouts-pod-template-hash"
CHART_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]

# Granted by the chart, not used by the seed's story: each is a path the controller takes in other
# stories (tests/k8s/test_kube_runtime.py covers them with an admin identity).
UNUSED_BY_THE_SEED_STORY = {
    # ReplicaSets beyond revisionHistoryLimit (the seed keeps 6; the story makes 2).
    ("delete", "apps/replicasets"),
    # Ephemeral metadata (spec.strategy.blueGreen.activeMetadata/previewMetadata) relabels pods.
    ("patch", "pods"),
    # spec.restartAt (`rollouts restart`) deletes pods one at a time.
    ("delete", "pods"),
}


@pytest.fixture(scope="module")
def chart_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`make chart` into a temporary folder, served over HTTP on 127.0.0.1; yields the URL."""
    out = tmp_path_factory.mktemp("chart-repo")
    res = subprocess.run(
        ["make", "-s", "chart", f"CHART_OUT={out}"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, f"make chart failed:\n{res.stdout}\n{res.stderr}"
    index = yaml.safe_load((out / "index.yaml").read_text())
    assert [e["version"] for e in index["entries"]["pyrollouts"]] == [CHART_VERSION]
    assert (out / f"pyrollouts-{CHART_VERSION}.tgz").is_file()

    handler = functools.partial(_QuietHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _install(
    cp: ControlPlane, home: Path, release: str, ns: str, repo: str, *extra: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return helm(
        home,
        "install",
        release,
        "pyrollouts",
        "--repo",
        repo,
        "--version",
        CHART_VERSION,
        "--namespace",
        ns,
        "--kubeconfig",
        str(cp.kubeconfig),
        "--set",
        "metrics.service.type=ClusterIP",
        *extra,
        check=check,
        timeout=180,
    )


def _granted(cp: ControlPlane, release: str, ns: str) -> set[tuple[str, str]]:
    """(verb, group/resource) pairs of the controller's (Cluster)Role and leader-election Role."""
    api = cp.api
    rules: list[dict[str, Any]] = []
    for path in (
        f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{release}-pyrollouts",
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles/{release}-pyrollouts-leader-election",
    ):
        status, body = api.request("GET", path)
        assert status == 200, (path, body)
        rules += body["rules"]
    out = set()
    for rule in rules:
        for group in rule.get("apiGroups") or [""]:
            for res in rule["resources"]:
                for verb in rule["verbs"]:
                    out.add((verb, f"{group}/{res}" if group else res))
    return out


def _used(cp: ControlPlane, user: str) -> set[tuple[str, str]]:
    """(verb, group/resource[/subresource]) pairs of the requests ``user`` made, from the audit log."""
    out = set()
    for line in Path(cp.audit_log).read_text(errors="replace").splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if (ev.get("user") or {}).get("username") != user or "objectRef" not in ev:
            continue
        ref = ev["objectRef"]
        res = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        out.add((ev["verb"], f"{ref['apiGroup']}/{res}" if ref.get("apiGroup") else res))
    return out


def _token_kubeconfig(cp: ControlPlane, ns: str, sa: str, path: Path) -> str:
    """A kubeconfig with a TokenRequest token of an existing ServiceAccount; its audit user name."""
    status, data = cp.api.request(
        "POST",
        f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        },
    )
    assert status in (200, 201), data
    conf = json.loads(Path(cp.kubeconfig).read_text())
    conf["users"] = [{"name": sa, "user": {"token": data["status"]["token"]}}]
    conf["contexts"] = [{"name": sa, "context": {"cluster": conf["clusters"][0]["name"], "user": sa}}]
    conf["current-context"] = sa
    path.write_text(json.dumps(conf))
    path.chmod(0o600)
    return f"system:serviceaccount:{ns}:{sa}"


class ChartController(ControllerProc):
    """The controller with the chart Deployment's own arguments, as a local process (kwok runs no
    images): only the kubeconfig, ports, listen address and test clock are added."""

    def __init__(self, chart_args: list[str], pod_namespace: str, **kw: Any) -> None:
        super().__init__(env={"POD_NAMESPACE": pod_namespace}, **kw)
        self.chart_args = [a for a in chart_args if not a.startswith(("--metrics-port", "--healthz-port"))]

    def args(self) -> list[str]:
        return [
            kube_helpers.ROLLOUTS,
            *self.chart_args,
            "--kubeconfig",
            self.kubeconfig,
            f"--metrics-port={self.metrics_port}",
            f"--healthz-port={self.healthz_port}",
            "--listen-address=127.0.0.1",
            "--test-clock",
            # Short timings: the first election need not wait for a stale Lease.
            "--leader-election-lease-duration=4s",
            "--leader-election-renew-deadline=3s",
            "--leader-election-retry-period=1s",
        ]


def _seed_objects(welcome: str) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all((REPO / "examples" / "super-hello.yaml").read_text()) if d]
    out = [d for d in docs if d["kind"] != "Namespace"]
    for d in out:
        d["metadata"].pop("namespace", None)
        if d["kind"] == "Rollout":
            d["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "WELCOME", "value": welcome}]
        if d["kind"] == "Service":
            d["spec"]["type"] = "NodePort"
    return out


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

        user = _token_kubeconfig(cp, ns, f"{release}-pyrollouts", tmp_path / "sa.kubeconfig")
        ctrl = ChartController(
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
        kubectl(cp, "wait", "-n", app_ns, "--for=condition=Healthy", f"rollout/{NAME}", "--timeout=60s")

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
        kubectl(cp, "wait", "-n", app_ns, "--for=condition=Healthy", f"rollout/{NAME}", "--timeout=30s")
        assert "Forbidden" not in (tmp_path / "controller.log").read_text(), ctrl.log_tail(80)
        ctrl.stop()  # releases the Lease: part of what it uses

        used, granted = _used(cp, user), _granted(cp, release, ns)
        missing = used - granted
        unused = granted - used - UNUSED_BY_THE_SEED_STORY
        assert not missing, f"used without a grant (the API refused them): {sorted(missing)}"
        assert not unused, f"granted but never used (drop them or document why): {sorted(unused)}"
        assert granted >= UNUSED_BY_THE_SEED_STORY
    finally:
        admin.close()
        helm(
            tmp_path,
            "uninstall",
            release,
            "-n",
            ns,
            "--kubeconfig",
            str(cp.kubeconfig),
            "--wait",
            check=False,
        )
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
