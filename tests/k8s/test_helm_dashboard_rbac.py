"""The chart's dashboard RBAC, proven against the apiserver audit log, in both of the chart's modes.

Cluster mode: the dashboard watches every namespace under a ClusterRole, and the seed lives in a
namespace of its own. Namespaced mode (namespaced=true): the chart runs it with
``--namespace=<release namespace>`` under a Role there, and the seed lives in the release namespace;
another namespace's pages and API paths answer 403 from the dashboard itself, and every request the
dashboard's user made stays in the release namespace.

The chart is installed from its repository with the dashboard enabled. kwok runs no images, so the
dashboard runs as a local process with the chart Deployment's own arguments, a TokenRequest token
of the chart's dashboard ServiceAccount (its context's namespace the release namespace, as the
pod's in-cluster config has) and the chart's token Secret as its --token-file; only the listen
address, the port and the token file's path change. A controller (admin identity: the chart's
controller RBAC is test_helm_install.py's subject) drives the seed's Rollout, and the test uses the
dashboard as a browser does: the token once as ``?token=`` (a cookie), the list page and the rollout
page with their streams, the API reads and streams, and every button (abort, retry, promote,
rollback, promote full, restart) with the page's same-origin ``Origin`` header. Then, from the
audit log: the dashboard's user was never refused (no 403), and the (verb, resource) pairs it used
are exactly those its role grants.
"""

from __future__ import annotations

import base64
import http.cookiejar
import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kube_helpers
import pytest
from kube_helpers import ControllerProc, apply, by_revision, free_port, get, rs_hash, wait_for
from lightkube import Client

from harness.k8s_cluster import ControlPlane

_crds = pytest.fixture(name="crds")(kube_helpers.crds_fixture)
_controllers = pytest.fixture(name="controllers")(kube_helpers.controllers_fixture)
_chart_repo = pytest.fixture(name="chart_repo", scope="module")(kube_helpers.chart_repo_fixture)

NAME = "super-hello"


def _seed_objects(welcome: str) -> list[dict[str, Any]]:
    """The seed's objects with ClusterIP Services, Services first."""
    return kube_helpers.seed_objects(welcome=welcome, services_first=True)


class Browser:
    """What the dashboard's page does over HTTP: a cookie jar, the page's Origin on actions."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def get(self, path: str) -> tuple[int, str]:
        """GET (following the ?token= redirect, keeping the cookie); (status, body)."""
        try:
            with self.opener.open(self.url + path, timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def json(self, path: str) -> Any:
        status, body = self.get(path)
        assert status == 200, (path, status, body)
        return json.loads(body)

    def first_message(self, path: str) -> str:
        """Open an SSE stream, read up to its first message's data line, close it."""
        with self.opener.open(self.url + path, timeout=15) as resp:
            assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
            for raw in resp:
                line = str(raw.decode()).rstrip("\n")
                if line.startswith("data: "):
                    return line[6:]
        raise AssertionError(f"{path}: the stream ended before a message")

    def put(self, ns: str, name: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, str]:
        """PUT an action as the page's script sends it (same-origin Origin, the cookie); (status, body)."""
        req = urllib.request.Request(
            f"{self.url}/api/v1/rollouts/{ns}/{name}/{path}",
            data=json.dumps(body or {}).encode(),
            method="PUT",
            headers={"Content-Type": "application/json", "Origin": self.url},
        )
        try:
            with self.opener.open(req, timeout=15) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def action(self, ns: str, name: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """PUT an action; its JSON answer (anything but 200 fails the test)."""
        status, text = self.put(ns, name, path, body)
        assert status == 200, f"PUT {path}: {status} {text}"
        return json.loads(text)


@pytest.fixture
def dashboard_procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Dashboard processes a test started; stopped afterwards."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(10)


@pytest.mark.parametrize("mode", ["cluster", "namespaced"])
def test_chart_dashboard_rbac_is_what_the_dashboard_uses(
    control_plane: ControlPlane,
    namespace: str,
    crds: None,
    chart_repo: str,
    controllers: list[ControllerProc],
    dashboard_procs: list[subprocess.Popen[bytes]],
    tmp_path: Path,
    mode: str,
) -> None:
    cp, ns = control_plane, namespace
    namespaced = mode == "namespaced"
    release = f"d{ns.rsplit('-', 1)[-1]}"
    dash = f"{release}-pyrollouts-dashboard"
    extra = ["--set=namespaced=true"] if namespaced else []
    kube_helpers.helm_install(
        cp,
        tmp_path,
        release,
        ns,
        chart_repo,
        "--set=dashboard.enabled=true",
        *extra,
        "--wait",
        "--timeout=120s",
    )
    # Namespaced, the dashboard serves the release namespace alone: the seed goes there, and a
    # namespace of its own holds a Rollout the dashboard must not reach.
    other_ns = cp.create_namespace("dash")
    app_ns = ns if namespaced else other_ns
    admin = kube_helpers.admin_client(cp, app_ns)
    try:
        _story(cp, ns, app_ns, other_ns, release, dash, admin, controllers, dashboard_procs, tmp_path)
    finally:
        admin.close()
        kube_helpers.helm_uninstall(cp, tmp_path, release, ns)
        cp.delete_namespace(other_ns)


def _audit_namespaces(cp: ControlPlane, user: str) -> set[str]:
    """The namespaces of ``user``'s requests in the audit log ("" for a cluster-scoped one)."""
    return {str(ev["objectRef"].get("namespace") or "") for ev in kube_helpers.audit_events(cp, user)}


def _refused_by_the_dashboard(b: Browser, ns: str, other_ns: str) -> None:
    """Every page, stream and API path of ``other_ns`` answers 403 naming the served namespace."""
    paths = [
        f"/rollouts/{other_ns}",
        f"/rollouts/{other_ns}/{NAME}",
        f"/ui/rollouts/{other_ns}/stream",
        f"/ui/rollouts/{other_ns}/{NAME}/stream",
        f"/rollouts/{other_ns}/{NAME}/analysisruns/{NAME}-x-2-pre",
        f"/ui/rollouts/{other_ns}/{NAME}/analysisruns/{NAME}-x-2-pre/stream",
        f"/api/v1/rollouts/{other_ns}/info",
        f"/api/v1/rollouts/{other_ns}/info/watch",
        f"/api/v1/rollouts/{other_ns}/{NAME}/info",
        f"/api/v1/rollouts/{other_ns}/{NAME}/info/watch",
        f"/api/v1/rollouts/{other_ns}/{NAME}/events",
        f"/api/v1/rollouts/{other_ns}/{NAME}/traffic",
    ]
    for path in paths:
        status, body = b.get(path)
        assert status == 403, (path, status, body[:300])
        assert f"serves namespace &#x27;{ns}&#x27; only" in body or f"serves namespace '{ns}' only" in body, (
            path,
            body[:300],
        )
    for action in ("promote", "abort", "retry", "restart", "undo/1", "set/super-hello/nginx:1"):
        status, body = b.put(other_ns, NAME, action)
        assert status == 403 and f"serves namespace '{ns}' only" in body, (action, status, body)


def _story(
    cp: ControlPlane,
    ns: str,
    app_ns: str,
    other_ns: str,
    release: str,
    dash: str,
    admin: Client,
    controllers: list[ControllerProc],
    dashboard_procs: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    namespaced = app_ns == ns
    status, dep = cp.api.request("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/{dash}")
    assert status == 200, dep
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == dash
    chart_args: list[str] = pod["containers"][0]["args"]
    status, secret = cp.api.request("GET", f"/api/v1/namespaces/{ns}/secrets/{dash}-token")
    assert status == 200, secret
    token_file = tmp_path / "dashboard-token"
    token = base64.b64decode(secret["data"]["token"]).decode()
    token_file.write_text(token)

    for obj in _seed_objects("VERSION V2"):
        apply(admin, obj, app_ns)
    ctrl = ControllerProc(cp.kubeconfig, app_ns, tmp_path / "controller.log")
    controllers.append(ctrl)
    ctrl.start()

    def phase() -> str:
        return str((get(admin, "Rollout", NAME, app_ns).get("status") or {}).get("phase"))

    def wait_phase(want: str, what: str) -> None:
        wait_for(lambda: phase() == want, 60, f"{what} (phase {want})\n{ctrl.log_tail()}")

    wait_phase("Healthy", "revision 1")
    for obj in _seed_objects("VERSION V3"):
        apply(admin, obj, app_ns)
    wait_phase("Paused", "the blue-green pause on revision 2")

    # The chart's dashboard, as its pod runs it: only where it listens and where the token file is.
    user = kube_helpers.token_kubeconfig(cp, ns, dash, tmp_path / "dash.kubeconfig", namespace=ns)
    port = free_port()
    args = []
    for a in chart_args:
        if a.startswith("--token-file="):
            a = f"--token-file={token_file}"
        elif a.startswith("--address="):
            a = "--address=127.0.0.1"
        elif a.startswith("--port="):
            a = f"--port={port}"
        args.append(a)
    assert args[0] == "--backend=kubernetes" and "dashboard" in args, chart_args
    assert (f"--namespace={ns}" in args) == namespaced, chart_args
    log_path = tmp_path / "dashboard.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [kube_helpers.ROLLOUTS, "--kubeconfig", str(tmp_path / "dash.kubeconfig"), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    dashboard_procs.append(proc)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the dashboard exited {proc.returncode}:\n{log_path.read_text()}")
        return kube_helpers.http_get(url + "/api/v1/version", 1.0)[0] == 401  # up, and wants the token

    wait_for(up, 60, f"the dashboard\n{log_path.read_text() if log_path.exists() else ''}", 0.3)

    b = Browser(url)
    status, html = b.get(f"/?token={token}")  # the token once: a cookie; / goes to the default namespace
    assert status == 200 and "Token needed" not in html, html
    status, html = b.get(f"/rollouts/{app_ns}")
    assert status == 200 and f'data-name="{NAME}"' in html, html
    assert NAME in b.first_message(f"/ui/rollouts/{app_ns}/stream")
    status, html = b.get(f"/rollouts/{app_ns}/{NAME}")
    assert status == 200 and "btn-promote" in html, html
    assert "Paused" in b.first_message(f"/ui/rollouts/{app_ns}/{NAME}/stream")
    # A run's page lists the namespace's runs (this one does not exist: 404 after the list).
    status, html = b.get(f"/rollouts/{app_ns}/{NAME}/analysisruns/{NAME}-none-2-pre")
    assert status == 404 and "not found" in html, (status, html[:300])
    assert b.json("/api/v1/version")["runtime"] == "kubernetes"
    names = b.json("/api/v1/namespace")
    if namespaced:
        assert names == {"namespace": ns, "availableNamespaces": [ns]}, names
    else:
        assert names["namespace"] == ns and app_ns in names["availableNamespaces"], names
    (info,) = b.json(f"/api/v1/rollouts/{app_ns}/info")["rollouts"]
    assert info["objectMeta"]["name"] == NAME and info["status"] == "Paused", info
    assert b.json(f"/api/v1/rollouts/{app_ns}/{NAME}/info")["status"] == "Paused"
    assert json.loads(b.first_message(f"/api/v1/rollouts/{app_ns}/{NAME}/info/watch"))["result"]["status"]
    assert json.loads(b.first_message(f"/api/v1/rollouts/{app_ns}/info/watch"))["result"]["type"] == "ADDED"
    b.json(f"/api/v1/rollouts/{app_ns}/{NAME}/events")
    assert b.json(f"/api/v1/rollouts/{app_ns}/{NAME}/traffic")["available"] is False

    # Every button, each when it applies (docs/dashboard.md "Actions").
    b.action(app_ns, NAME, "abort")
    wait_phase("Degraded", "abort")
    b.action(app_ns, NAME, "retry")
    wait_phase("Paused", "retry")
    b.action(app_ns, NAME, "promote", {"full": False})
    wait_phase("Healthy", "promote")
    h2 = rs_hash(by_revision(admin, get(admin, "Rollout", NAME, app_ns))[2])
    svc = get(admin, "Service", "super-hello-prod", app_ns)
    assert svc["spec"]["selector"]["rollouts-pod-template-hash"] == h2
    # Rollback to revision 1: it comes back as revision 3, at once (revision 1 is still inside its
    # scale-down delay: the test clock stands still), as Argo's fast rollback does.
    b.action(app_ns, NAME, "undo/1")
    wait_for(
        lambda: phase() == "Healthy" and 3 in by_revision(admin, get(admin, "Rollout", NAME, app_ns)),
        60,
        f"rollback to revision 3\n{ctrl.log_tail()}",
    )
    for obj in _seed_objects("VERSION V4"):
        apply(admin, obj, app_ns)
    wait_phase("Paused", "the blue-green pause on revision 4")
    b.action(app_ns, NAME, "promote", {"full": True})
    wait_phase("Healthy", "promote full")
    b.action(app_ns, NAME, "restart")
    wait_for(
        lambda: (get(admin, "Rollout", NAME, app_ns).get("spec") or {}).get("restartAt"), 10, "restartAt"
    )

    if namespaced:
        # Another namespace, holding a Rollout of the same name: refused by the dashboard itself,
        # before any API call (the audit log below holds no 403 and nothing outside ns).
        for obj in _seed_objects("ELSEWHERE"):
            if obj["kind"] == "Rollout":
                apply(admin, obj, other_ns)
        _refused_by_the_dashboard(b, ns, other_ns)

    proc.terminate()
    proc.wait(20)
    dash_log = log_path.read_text(errors="replace")
    assert "Forbidden" not in dash_log and " 403" not in dash_log, dash_log[-4000:]

    refused = kube_helpers.refused_requests(cp, user)
    used = kube_helpers.used_pairs(cp, user)
    role_path = (
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles/{dash}"
        if namespaced
        else f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{dash}"
    )
    granted = kube_helpers.granted_pairs(cp, [role_path])
    report = f"used {sorted(used)}\ngranted {sorted(granted)}"
    assert not refused, f"the API refused the dashboard's account (403): {sorted(set(refused))}\n{report}"
    assert not used - granted, f"used without a grant: {sorted(used - granted)}\n{report}"
    assert not granted - used, (
        f"granted but never used (drop them or document why): {sorted(granted - used)}\n{report}"
    )
    if namespaced:
        assert _audit_namespaces(cp, user) == {ns}, (
            f"the scoped dashboard asked beyond namespace {ns}: {sorted(_audit_namespaces(cp, user))}"
        )
