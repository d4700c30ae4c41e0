"""The dashboard on the Kubernetes runtime: `rollouts --backend kubernetes dashboard` (the
kubeconfig's credentials, a KubeCluster underneath) lists the seed's rollout, and its Promote button
promotes it, the page following over its EventSource (Debian's chromium, driven by Playwright).
Scoped with ``-n NS`` it serves that namespace alone: its namespace list is NS, and every page,
stream and API path of another namespace answers 403; ``-n`` is refused on the local backend."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kube_helpers
import pytest
from kube_helpers import ControllerProc, apply, by_revision, free_port, get, rs_hash, wait_for
from lightkube import Client
from lightkube.types import PatchType
from playwright.sync_api import expect, sync_playwright

from harness.k8s_cluster import ControlPlane
from pyrollouts.runtimes.kubernetes.resources import RESOURCES

_crds = pytest.fixture(name="crds")(kube_helpers.crds_fixture)
_client = pytest.fixture(name="client")(kube_helpers.client_fixture)
_controllers = pytest.fixture(name="controllers")(kube_helpers.controllers_fixture)

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
NAME = "super-hello"
WAIT_MS = 40_000


def seed_objects(welcome: str) -> list[dict[str, Any]]:
    """The seed's objects: ClusterIP Services first, a 2 s scale-down delay."""
    return kube_helpers.seed_objects(welcome=welcome, services_first=True, scaleDownDelaySeconds=2)


@pytest.fixture
def dashboard(start_dashboard: Callable[..., str]) -> str:
    """`rollouts --backend kubernetes dashboard -p PORT` as a user runs it; its URL."""
    return start_dashboard()


@pytest.fixture
def start_dashboard(control_plane: ControlPlane, tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Starts `rollouts --backend kubernetes dashboard -p PORT [ARGS]` (admin kubeconfig); its URL.
    Every dashboard it started is stopped afterwards."""
    stops: list[Callable[[], None]] = []

    def start(*extra: str) -> str:
        url, stop = _start(control_plane, tmp_path / f"dashboard-{len(stops)}.log", list(extra))
        stops.append(stop)
        return url

    try:
        yield start
    finally:
        for stop in stops:
            stop()


def _start(control_plane: ControlPlane, log_path: Path, extra: list[str]) -> tuple[str, Callable[[], None]]:
    port = free_port()
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pyrollouts.cli.main",
            "--backend",
            "kubernetes",
            "--kubeconfig",
            str(control_plane.kubeconfig),
            "dashboard",
            "-p",
            str(port),
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/api/v1/version", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                log.close()
                raise AssertionError(f"the dashboard did not start:\n{log_path.read_text()}") from None
            time.sleep(0.3)

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()

    return url, stop


def _fetch(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, str]:
    """(status, body) of one request, errors included; redirects are followed."""
    if method == "PUT":  # as the page sends it: JSON (a form or text/plain body is refused, 415)
        headers = {"Content-Type": "application/json", **(headers or {})}
    req = urllib.request.Request(
        url, method=method, headers=headers or {}, data=b"{}" if method == "PUT" else None
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_scoped_dashboard_serves_one_namespace(
    control_plane: ControlPlane, namespace: str, client: Client, start_dashboard: Callable[..., str]
) -> None:
    ns = namespace
    other = control_plane.create_namespace("other")
    try:
        for obj in seed_objects("HERE"):
            apply(client, obj, ns)
        elsewhere = next(o for o in seed_objects("ELSEWHERE") if o["kind"] == "Rollout")
        apply(client, elsewhere, other)
        url = start_dashboard("-n", ns)

        # Its own namespace: listed, shown, and / leads there (not to the kubeconfig's namespace).
        assert json.loads(_fetch(url + "/api/v1/namespace")[1]) == {
            "namespace": ns,
            "availableNamespaces": [ns],
        }
        status, body = _fetch(url + f"/api/v1/rollouts/{ns}/info")
        assert status == 200 and [i["objectMeta"]["name"] for i in json.loads(body)["rollouts"]] == [NAME]
        assert _fetch(url + f"/api/v1/rollouts/{ns}/{NAME}/info")[0] == 200
        status, html = _fetch(url + "/")
        assert status == 200 and f"Rollouts in {ns}" in html, html[:500]
        assert f'<option value="{ns}" selected>{ns}</option>' in html and f'value="{other}"' not in html

        # Another namespace, where a Rollout of the same name exists: 403, naming the served one.
        want = f"serves namespace '{ns}' only"
        for path in (
            f"/api/v1/rollouts/{other}/info",
            f"/api/v1/rollouts/{other}/info/watch",
            f"/api/v1/rollouts/{other}/{NAME}/info",
            f"/api/v1/rollouts/{other}/{NAME}/info/watch",
            f"/api/v1/rollouts/{other}/{NAME}/events",
            f"/ui/rollouts/{other}/stream",
            f"/ui/rollouts/{other}/{NAME}/stream",
            f"/ui/rollouts/{other}/{NAME}/analysisruns/{NAME}-x-1-pre/stream",
        ):
            status, body = _fetch(url + path)
            assert status == 403 and want in json.loads(body)["error"], (path, status, body)
        for path in (
            f"/rollouts/{other}",
            f"/rollouts/{other}/{NAME}",
            f"/rollouts/{other}/{NAME}/analysisruns/{NAME}-x-1-pre",
        ):
            status, body = _fetch(url + path)
            assert status == 403 and f"serves namespace &#x27;{ns}&#x27; only" in body, (path, body)
        status, body = _fetch(url + f"/api/v1/rollouts/{other}/{NAME}/abort", "PUT", {"Origin": url})
        assert status == 403 and want in body, body
        assert not (get(client, "Rollout", NAME, other).get("status") or {}).get("abort")
    finally:
        control_plane.delete_namespace(other)


def _analysis_run(client: Client, ns: str) -> str:
    """A finished pre-promotion run of the seed's Rollout, written as Argo's controller writes one
    (owner reference, revision annotation, hash label, status through the subresource); its name."""
    ro = get(client, "Rollout", NAME, ns)
    name = f"{NAME}-abc123-1-pre"
    run = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {"rollouts-pod-template-hash": "abc123", "rollout-type": "PrePromotion"},
            "annotations": {"rollout.argoproj.io/revision": "1"},
            "ownerReferences": [
                {
                    "apiVersion": "argoproj.io/v1alpha1",
                    "kind": "Rollout",
                    "name": NAME,
                    "uid": ro["metadata"]["uid"],
                }
            ],
        },
        "spec": {
            "metrics": [
                {
                    "name": "error-rate",
                    "successCondition": "result[0] <= 0.05",
                    "provider": {"web": {"url": "http://x/"}},
                }
            ]
        },
    }
    client.create(RESOURCES["AnalysisRun"](run), namespace=ns)
    status = {
        "phase": "Failed",
        "message": 'Metric "error-rate" assessed Failed due to failed (1) > failureLimit (0)',
        "metricResults": [
            {
                "name": "error-rate",
                "phase": "Failed",
                "count": 2,
                "successful": 1,
                "failed": 1,
                "measurements": [
                    {"phase": "Successful", "value": "[0.01]", "startedAt": "2026-01-01T12:00:00Z"},
                    {"phase": "Failed", "value": "[0.3]", "startedAt": "2026-01-01T12:00:10Z"},
                ],
            }
        ],
    }
    client.patch(
        RESOURCES["AnalysisRun"].Status, name, {"status": status}, namespace=ns, patch_type=PatchType.MERGE
    )
    return name


def test_analysis_runs_on_the_kubernetes_dashboard(
    namespace: str, crds: None, client: Client, start_dashboard: Callable[..., str]
) -> None:
    """A Rollout's AnalysisRun under its revision and on its own page, read from the API server with
    the kubeconfig's credentials (listed, as the chart's dashboard role allows)."""
    ns = namespace
    for obj in seed_objects("HERE"):
        apply(client, obj, ns)
    name = _analysis_run(client, ns)
    url = start_dashboard()

    def run_listed() -> bool:
        status, html = _fetch(url + f"/rollouts/{ns}/{NAME}")
        return status == 200 and f'data-run="{name}"' in html

    wait_for(run_listed, 30, "the run under revision 1")
    status, html = _fetch(url + f"/rollouts/{ns}/{NAME}/analysisruns/{name}")
    assert status == 200, html
    assert 'id="run-phase" class="ar-phase ar-bad" data-phase="Failed"' in html, html
    assert 'data-metric="error-rate" data-points="2"' in html and 'data-threshold="0.05"' in html, html
    assert "assessed Failed" in html
    status, body = _fetch(url + f"/rollouts/{ns}/{NAME}/analysisruns/{NAME}-nope-1-pre")
    assert status == 404 and "not found" in body, body
    req = urllib.request.Request(url + f"/ui/rollouts/{ns}/{NAME}/analysisruns/{name}/stream")
    with urllib.request.urlopen(req, timeout=15) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        for raw in resp:
            line = raw.decode().rstrip("\n")
            if line.startswith("data: "):
                assert "run-metrics" in line and "Failed" in line, line[:300]
                break


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["dashboard", "-n", "team-a"], 1, "--namespace scopes the Kubernetes backend's dashboard"),
        (["--backend", "kubernetes", "dashboard", "--namespace", "Team_A"], 2, "is not a namespace name"),
    ],
)
def test_dashboard_namespace_option_is_checked(argv: list[str], code: int, message: str) -> None:
    from pyrollouts.cli.main import run_captured

    got, out, err = run_captured(argv)
    assert got == code and message in err, (got, out, err)


@pytest.mark.browser
def test_dashboard_lists_and_promotes_on_kubernetes(
    control_plane: ControlPlane,
    namespace: str,
    client: Client,
    controllers: list[ControllerProc],
    tmp_path: Path,
    dashboard: str,
) -> None:
    ns = namespace
    for obj in seed_objects("VERSION V2"):
        apply(client, obj, ns)
    ctrl = ControllerProc(control_plane.kubeconfig, ns, tmp_path / "ctrl.log")
    controllers.append(ctrl)
    ctrl.start()

    def phase() -> str:
        return str((get(client, "Rollout", NAME, ns).get("status") or {}).get("phase"))

    wait_for(lambda: phase() == "Healthy", 60, f"Healthy on revision 1\n{ctrl.log_tail()}")
    for obj in seed_objects("VERSION V3"):
        apply(client, obj, ns)
    wait_for(lambda: phase() == "Paused", 60, f"the blue-green pause\n{ctrl.log_tail()}")

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run `make browser`"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{dashboard}/rollouts/{ns}")
            row = page.locator(f'tr.rollout-row[data-name="{NAME}"]')
            expect(row).to_contain_text("Paused", timeout=WAIT_MS)
            expect(row).to_contain_text("BlueGreen")
            row.locator("a").click()
            expect(page).to_have_url(f"{dashboard}/rollouts/{ns}/{NAME}")
            expect(page.locator("#live")).to_have_class("live on", timeout=WAIT_MS)
            page.evaluate("window.__stayed = true")
            rev2 = page.locator('section.revision[data-revision="2"]')
            expect(rev2).to_have_attribute("data-roles", "preview", timeout=WAIT_MS)
            expect(page.locator("#btn-promote")).to_be_enabled()
            page.locator("#btn-promote").click()
            page.locator("#confirm-ok").click()
            expect(page.locator("#phase")).to_have_text("Healthy", timeout=WAIT_MS)
            expect(rev2).to_have_attribute("data-roles", "stable active", timeout=WAIT_MS)
            assert page.evaluate("window.__stayed === true"), "the page was reloaded"
            assert not errors, errors
        finally:
            browser.close()
    ro = get(client, "Rollout", NAME, ns)
    h2 = rs_hash(by_revision(client, ro)[2])
    assert (
        get(client, "Service", "super-hello-prod", ns)["spec"]["selector"]["rollouts-pod-template-hash"] == h2
    )
