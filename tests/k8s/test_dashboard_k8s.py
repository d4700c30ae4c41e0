"""The dashboard on the Kubernetes runtime: `rollouts --backend kubernetes dashboard` (the
kubeconfig's credentials, a KubeCluster underneath) lists the seed's rollout, and its Promote button
promotes it, the page following over its EventSource. Debian's chromium, driven by Playwright."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kube_helpers
import pytest
import yaml
from kube_helpers import REPO, ControllerProc, apply, by_revision, free_port, get, rs_hash, wait_for
from lightkube import Client
from playwright.sync_api import expect, sync_playwright

from pyrollouts.testing.k8s_cluster import ControlPlane

pytestmark = pytest.mark.browser

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
    """examples/super-hello.yaml without its Namespace, ClusterIP Services, a 2 s scale-down delay."""
    docs = [d for d in yaml.safe_load_all((REPO / "examples" / "super-hello.yaml").read_text()) if d]
    out = [d for d in docs if d["kind"] != "Namespace"]
    for d in out:
        d["metadata"].pop("namespace", None)
        if d["kind"] == "Rollout":
            d["spec"]["strategy"]["blueGreen"]["scaleDownDelaySeconds"] = 2
            d["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "WELCOME", "value": welcome}]
        if d["kind"] == "Service":
            d["spec"]["type"] = "ClusterIP"
    return sorted(out, key=lambda o: 0 if o["kind"] == "Service" else 1)


@pytest.fixture
def dashboard(control_plane: ControlPlane, tmp_path: Path) -> Iterator[str]:
    """`rollouts --backend kubernetes dashboard -p PORT` as a user runs it; its URL."""
    port = free_port()
    log = (tmp_path / "dashboard.log").open("wb")
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
                raise AssertionError(
                    f"the dashboard did not start:\n{(tmp_path / 'dashboard.log').read_text()}"
                ) from None
            time.sleep(0.3)
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


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
