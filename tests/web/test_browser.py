"""The dashboard in headless Debian chromium (Playwright's driver, never its browser downloads), on a
real local server: the seed's rollout paused, promoted, aborted and rolled back from the page, with
every change arriving over the page's EventSource (no navigation)."""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from webharness import Deployed, deploy, get_text

from harness.serverharness import ServerProcess

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The README's screenshot. Tests write theirs to a temporary directory, so a test run leaves the
# tree clean; `make screenshots` (PYROLLOUTS_UPDATE_SCREENSHOTS=1) refreshes the one in docs/.
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "dashboard-paused.png"
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless (installed by `make browser`; a missing one is a failure)."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    ctx = browser.new_context(viewport={"width": 1100, "height": 960})
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield pg
    finally:
        ctx.close()
    assert not errors, f"script errors on the page: {errors}"


def open_rollout(page: Page, dep: Deployed) -> None:
    page.goto(dep.page)
    expect(page.locator("#live")).to_have_class("live on", timeout=WAIT_MS)
    # A marker that survives only if the page is never reloaded or navigated away.
    page.evaluate("window.__stayed = true")


def still_same_page(page: Page) -> bool:
    return bool(page.evaluate("window.__stayed === true"))


def buttons(page: Page) -> dict[str, bool]:
    """Which action buttons are enabled."""
    return {
        key: page.locator(f"#btn-{key}").is_enabled()
        for key in ("promote", "promoteFull", "abort", "retry", "restart")
    }


def confirm(page: Page, button: str) -> None:
    page.locator(button).click()
    expect(page.locator("#confirm")).to_be_visible()
    page.locator("#confirm-ok").click()
    expect(page.locator("#confirm")).to_be_hidden()


def paused_with_v3(server: ServerProcess, ns: str) -> Deployed:
    dep = deploy(server, ns)
    dep.set_welcome("VERSION V3")
    dep.wait_paused_with_preview(2)
    return dep


def test_promote_from_the_page(server: ServerProcess, page: Page, tmp_path: Path) -> None:
    dep = paused_with_v3(server, "ui-promote")
    open_rollout(page, dep)
    expect(page.locator("#phase")).to_have_text("Paused")
    rev2 = page.locator('section.revision[data-revision="2"]')
    expect(rev2).to_have_attribute("data-roles", "preview")
    expect(page.locator('section.revision[data-revision="1"]')).to_have_attribute(
        "data-roles", "stable active"
    )
    expect(rev2.locator(".pod.ok")).to_have_count(2)
    assert buttons(page) == {
        "promote": True,
        "promoteFull": True,
        "abort": True,
        "retry": False,
        "restart": True,
    }
    assert page.locator("#btn-rollback-1").is_enabled()
    # Some traffic for the chart (bounded: 20 requests to each Service over about two seconds).
    for _ in range(20):
        assert get_text(dep.prod) == "VERSION V2"
        assert get_text(dep.preview) == "VERSION V3"
        page.wait_for_timeout(100)
    for revision in (1, 2):
        expect(
            page.locator(f'#traffic [data-metric="rps"] .legend[data-revision="{revision}"]')
        ).to_be_visible(timeout=WAIT_MS)
    expect(page.locator('#traffic [data-metric="rps"] polyline')).to_have_count(2)
    update_docs = os.environ.get("PYROLLOUTS_UPDATE_SCREENSHOTS") == "1"
    shot = DOCS_SCREENSHOT if update_docs else tmp_path / "paused.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000, f"{shot}: the screenshot is nearly empty"

    confirm(page, "#btn-promote")
    expect(page.locator("#phase")).to_have_text("Healthy", timeout=WAIT_MS)
    expect(rev2).to_have_attribute("data-roles", "stable active", timeout=WAIT_MS)
    assert still_same_page(page), "the page was reloaded: the update did not come over the EventSource"
    server.wait_for("prod says V3", lambda: get_text(dep.prod) == "VERSION V3", 10)
    expect(page.locator("#events")).to_contain_text("RolloutCompleted", timeout=WAIT_MS)
    assert buttons(page) == {
        "promote": False,
        "promoteFull": False,
        "abort": False,
        "retry": False,
        "restart": True,
    }
    # The old revision waits out its scale-down delay, counted down on the page.
    expect(page.locator('section.revision[data-revision="1"] .countdown')).to_contain_text(
        "scale-down in", timeout=WAIT_MS
    )


def test_cancel_then_abort_from_the_page(server: ServerProcess, page: Page) -> None:
    dep = paused_with_v3(server, "ui-abort")
    open_rollout(page, dep)
    # Cancelling the dialog sends nothing.
    page.locator("#btn-promote").click()
    page.locator("#confirm-cancel").click()
    expect(page.locator("#confirm")).to_be_hidden()
    page.wait_for_timeout(1000)
    assert dep.info()["status"] == "Paused"

    confirm(page, "#btn-abort")
    expect(page.locator("#phase")).to_have_text("Degraded", timeout=WAIT_MS)
    expect(page.locator("#message")).to_contain_text("RolloutAborted")
    assert still_same_page(page)
    assert get_text(dep.prod) == "VERSION V2"
    expect(page.locator("#btn-retry")).to_be_enabled(timeout=WAIT_MS)
    assert buttons(page) == {
        "promote": False,
        "promoteFull": False,
        "abort": False,
        "retry": True,
        "restart": False,
    }

    confirm(page, "#btn-retry")
    expect(page.locator("#phase")).to_have_text("Paused", timeout=WAIT_MS)
    assert still_same_page(page)


def test_rollback_from_the_page(server: ServerProcess, page: Page) -> None:
    dep = paused_with_v3(server, "ui-rollback")
    assert server.action(dep.api + "/promote").status == 200
    dep.wait_phase("Healthy")
    server.wait_for("prod says V3", lambda: get_text(dep.prod) == "VERSION V3", 10)
    open_rollout(page, dep)
    expect(page.locator('section.revision[data-revision="2"]')).to_have_attribute(
        "data-roles", "stable active"
    )
    # Revision 1 still runs inside its scale-down delay: rolling back to it is instant.
    confirm(page, "#btn-rollback-1")
    expect(page.locator('section.revision[data-revision="3"]')).to_have_attribute(
        "data-roles", "stable active", timeout=WAIT_MS
    )
    expect(page.locator("#phase")).to_have_text("Healthy", timeout=WAIT_MS)
    assert still_same_page(page)
    server.wait_for("prod says V2", lambda: get_text(dep.prod) == "VERSION V2", 10)


def test_list_filters_namespaces_and_live_rows(server: ServerProcess, page: Page) -> None:
    dep = deploy(server, "ui-list")
    page.goto(f"{server.url}/rollouts/ui-list")
    row = page.locator('tr.rollout-row[data-name="super-hello"]')
    expect(row).to_contain_text("Healthy")
    expect(row).to_contain_text("BlueGreen")
    expect(row).to_contain_text("ghcr.io/gbaeke/super:1.0.2")
    expect(row).to_contain_text("2 / 2 / 2 / 2 / 2")
    page.evaluate("window.__stayed = true")
    page.fill("#filter-name", "nothing-like-it")
    expect(row).to_be_hidden()
    page.fill("#filter-name", "hello")
    expect(row).to_be_visible()
    page.select_option("#filter-phase", "Paused")
    expect(row).to_be_hidden()
    page.select_option("#filter-phase", "")
    expect(row).to_be_visible()
    # A change arrives without a reload.
    dep.set_welcome("VERSION V3")
    expect(row).to_contain_text("Paused", timeout=WAIT_MS)
    assert still_same_page(page)
    page.locator(f"{row_selector()} a").click()
    expect(page).to_have_url(dep.page)
    page.go_back()
    page.select_option("#ns-switch", "default")
    expect(page).to_have_url(f"{server.url}/rollouts/default")
    expect(page.locator("tr.empty")).to_have_text("No rollouts in this namespace.")


def row_selector() -> str:
    return 'tr.rollout-row[data-name="super-hello"]'


def test_unknown_rollout_page(server: ServerProcess, page: Page) -> None:
    resp = page.goto(f"{server.url}/rollouts/nowhere/ghost")
    assert resp is not None and resp.status == 404
    expect(page.locator("p.error")).to_have_text("rollout 'ghost' not found in namespace 'nowhere'")


# ---- analysis: the runs under their revision and the page of one run, live --------------------

#: What the metric endpoint answers, one rate per measurement (all below the success threshold).
GOOD_RATES = (0.01, 0.03, 0.02, 0.04, 0.01, 0.02, 0.03, 0.01)
#: The measurement that waits for the test (so the run page is seen while the run is Running).
HELD_AT = 3
ANALYSIS_SCREENSHOT = DOCS_SCREENSHOT.with_name("dashboard-analysis.png")


class RateEndpoint:
    """A tiny metric backend on 127.0.0.1: ``GET /rate`` answers ``{"rate": R}``, the next of
    ``rates`` (then the last one again). Measurement ``held_at`` (1-based) waits until the test
    calls :meth:`release` (at most 50 s: the metric's timeout is 60 s)."""

    def __init__(self) -> None:
        self.rates: list[float] = list(GOOD_RATES)
        self.served = 0
        self.held_at = HELD_AT
        self.gate = threading.Event()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                endpoint.served += 1
                n = endpoint.served
                if n == endpoint.held_at:
                    endpoint.gate.wait(50)
                rate = endpoint.rates[min(n, len(endpoint.rates)) - 1]
                body = json.dumps({"rate": rate}).encode()
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

    def release(self) -> None:
        self.gate.set()

    def close(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def rates() -> Iterator[RateEndpoint]:
    endpoint = RateEndpoint()
    try:
        yield endpoint
    finally:
        endpoint.close()


def with_pre_promotion_analysis(port: int) -> Callable[[str], str]:
    """The seed's Rollout with a pre-promotion run of a stock Argo ``web`` metric on the endpoint."""

    def edit(text: str) -> str:
        ns = re.search(r"namespace: (\S+)", text)
        assert ns is not None
        text = text.replace(
            "      autoPromotionEnabled: false\n",
            "      autoPromotionEnabled: false\n"
            "      prePromotionAnalysis:\n"
            "        templates: [{templateName: error-rate}]\n"
            "        args: [{name: limit, value: '0.05'}]\n",
        )
        template = (
            "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\n"
            f"metadata: {{name: error-rate, namespace: {ns.group(1)}}}\n"
            "spec:\n"
            "  args: [{name: limit}]\n"
            "  metrics:\n"
            "  - name: error-rate\n"
            f"    count: {len(GOOD_RATES)}\n"
            "    interval: 1s\n"
            "    successCondition: result <= {{args.limit}}\n"
            "    failureCondition: result > 0.2\n"
            "    provider:\n"
            "      web:\n"
            f"        url: http://127.0.0.1:{port}/rate\n"
            "        jsonPath: '{$.rate}'\n"
            "        timeoutSeconds: 60\n"
        )
        return text + "---\n" + template

    return edit


def test_analysis_runs_and_the_run_page_update_live(
    server: ServerProcess, page: Page, rates: RateEndpoint, tmp_path: Path
) -> None:
    dep = deploy(server, "ui-analysis", edit=with_pre_promotion_analysis(rates.port))
    open_rollout(page, dep)
    assert page.locator("a.ar").count() == 0, "a first deploy runs no analysis"

    # V3: its pre-promotion run appears under revision 2 over the page's stream.
    dep.set_welcome("VERSION V3")
    run_link = page.locator('section.revision[data-revision="2"] a.ar')
    expect(run_link).to_have_attribute("data-phase", "Running", timeout=WAIT_MS)
    expect(run_link).to_contain_text("◌")
    expect(run_link).to_contain_text("Analysis 2-pre")
    assert still_same_page(page)

    # The run's page, opened while the endpoint holds a measurement: two points so far.
    run_link.click()
    expect(page).to_have_url(
        re.compile(r"/rollouts/ui-analysis/super-hello/analysisruns/super-hello-\w+-2-pre$")
    )
    expect(page.locator("#live")).to_have_class("live on", timeout=WAIT_MS)
    page.evaluate("window.__stayed = true")
    chart = page.locator('#run-metrics figure.metric-chart[data-metric="error-rate"]')
    expect(chart).to_have_attribute("data-points", str(HELD_AT - 1), timeout=WAIT_MS)
    expect(page.locator("#run-phase")).to_have_attribute("data-phase", "Running")
    expect(page.locator('#run-summary tr[data-arg="limit"]')).to_contain_text("0.05")
    expect(page.locator('#run-metrics section.metric[data-metric="error-rate"]')).to_contain_text(
        "result <= {{args.limit}}"
    )
    # The conditions' thresholds, drawn as lines (the success one with its arg resolved).
    expect(chart.locator('line.threshold-success[data-threshold="0.05"]')).to_have_count(1)
    expect(chart.locator('line.threshold-failure[data-threshold="0.2"]')).to_have_count(1)

    # Released: the rest arrive on the open page, then the run succeeds.
    rates.release()
    expect(chart).to_have_attribute("data-points", str(len(GOOD_RATES)), timeout=WAIT_MS)
    expect(page.locator("#run-phase")).to_have_attribute("data-phase", "Successful", timeout=WAIT_MS)
    expect(chart.locator('circle.m[data-phase="Successful"]')).to_have_count(len(GOOD_RATES))
    values = [float(v) for v in chart.locator("circle.m").evaluate_all("cs => cs.map(c => c.dataset.value)")]
    assert values == list(GOOD_RATES), values
    expect(page.locator("#run-metrics tr.measurement")).to_have_count(len(GOOD_RATES))
    expect(page.locator("#run-counts")).to_contain_text(f"✔ {len(GOOD_RATES)}")
    assert still_same_page(page), "the run's page was reloaded: updates did not come over its stream"
    update_docs = os.environ.get("PYROLLOUTS_UPDATE_SCREENSHOTS") == "1"
    shot = ANALYSIS_SCREENSHOT if update_docs else tmp_path / "analysis.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000, f"{shot}: the screenshot is nearly empty"

    # Back on the rollout: the run is Successful under revision 2, the rollout paused for promote.
    page.locator("nav.crumbs a", has_text="super-hello").click()
    expect(page.locator("#phase")).to_have_text("Paused", timeout=WAIT_MS)
    expect(run_link).to_have_attribute("data-phase", "Successful")
    expect(run_link).to_contain_text(f"✔ {len(GOOD_RATES)}")

    # A bad V4: its run fails at the first measurement and the update aborts, live on the page.
    open_rollout(page, dep)
    rates.rates, rates.served, rates.held_at = [0.5], 0, 0
    dep.set_welcome("VERSION V4")
    bad_link = page.locator('section.revision[data-revision="3"] a.ar')
    expect(bad_link).to_have_attribute("data-phase", "Failed", timeout=WAIT_MS)
    expect(bad_link).to_contain_text("✖ 1")
    expect(page.locator("#phase")).to_have_text("Degraded", timeout=WAIT_MS)
    assert still_same_page(page)
    assert get_text(dep.prod) == "VERSION V2"
