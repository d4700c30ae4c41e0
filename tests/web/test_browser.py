"""The dashboard in headless Debian chromium (Playwright's driver, never its browser downloads), on a
real local server: the seed's rollout paused, promoted, aborted and rolled back from the page, with
every change arriving over the page's EventSource (no navigation)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

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
