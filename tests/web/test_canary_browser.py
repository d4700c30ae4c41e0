"""A canary's page in headless Debian chromium, on a real local server: the steps with the current
one highlighted, and the traffic split the proxy measures from real requests through the stable
Service, following a promote over the page's EventSource (no navigation)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from test_browser import WAIT_MS, browser, confirm, open_rollout, page, still_same_page  # noqa: F401
from webharness import REPO, Deployed, _try_text, get_text

from harness.serverharness import ServerProcess, free_port

pytestmark = pytest.mark.browser

EXAMPLE = REPO / "examples" / "canary" / "canary-hello.yaml"
NAME = "canary-hello"
# `make screenshots` (PYROLLOUTS_UPDATE_SCREENSHOTS=1) refreshes the one docs/dashboard.md shows.
DOCS_SCREENSHOT = REPO / "docs" / "img" / "dashboard-canary.png"


def deploy_canary(server: ServerProcess, ns: str) -> Deployed:
    """examples/canary/canary-hello.yaml in ``ns`` on free ports, Healthy on V1."""
    stable, canary = free_port(), free_port()
    text = EXAMPLE.read_text(encoding="utf-8").replace("my-app", ns)
    text = re.sub(r"(\bport:\s*)8090\b", rf"\g<1>{stable}", text)
    text = re.sub(r"(\bport:\s*)8091\b", rf"\g<1>{canary}", text)
    server.ok("POST", "/api/apply", {"text": text, "source": f"{Path(EXAMPLE).name}"})
    dep = Deployed(server, ns, stable, canary, name=NAME)
    dep.wait_phase("Healthy")
    server.wait_for("stable answers V1", lambda: _try_text(stable) == "VERSION V1")
    return dep


def set_welcome(dep: Deployed, value: str) -> None:
    dep.server.ok(
        "POST",
        f"/api/rollouts/{dep.ns}/{dep.name}/set-env",
        {"container": NAME, "name": "WELCOME", "value": value},
    )


def step_state(pg: Page, index: int) -> str:
    return str(pg.locator(f'#canary li.step[data-step="{index}"]').get_attribute("data-state"))


# `page` and `browser` are test_browser's fixtures (Debian's chromium, a context per test)
def test_canary_steps_and_measured_split(server: ServerProcess, page: Page, tmp_path: Path) -> None:  # noqa: F811
    dep = deploy_canary(server, "ui-canary")
    set_welcome(dep, "VERSION V2")
    server.wait_for(
        "paused at step 1/5 with the canary available",
        lambda: (
            (i := dep.info())["status"] == "Paused"
            and i.get("step") == "1/5"
            and any(rs["canary"] and rs["available"] == 1 for rs in i["replicaSets"])
        ),
        90,
    )
    open_rollout(page, dep)
    canary = page.locator("#canary")
    expect(canary.locator("#canary-step")).to_have_text("1/5")
    expect(canary.locator("#set-weight")).to_have_text("20")
    current = canary.locator('li.step[aria-current="step"]')
    expect(current).to_have_count(1)
    expect(current).to_have_attribute("data-step", "1")
    expect(current).to_have_text(re.compile(r"pause$"))
    assert step_state(page, 0) == "done" and step_state(page, 2) == "pending"
    # the highlight is visible: the current step's background differs from a pending one's
    bg = current.evaluate("el => getComputedStyle(el).backgroundColor")
    pending_bg = canary.locator('li.step[data-step="2"]').evaluate(
        "el => getComputedStyle(el).backgroundColor"
    )
    assert bg != pending_bg, (bg, pending_bg)

    # Real requests through the stable Service: the proxy splits them 80/20 and the page shows
    # the share it measured (exact weights: 100 requests at 20% give the canary 20, give or take 1).
    answers = [get_text(dep.prod) for _ in range(100)]
    assert 18 <= answers.count("VERSION V2") <= 22, answers.count("VERSION V2")
    measured = canary.locator('.split[data-source="proxy"]')
    expect(measured).not_to_have_attribute("data-requests", "0", timeout=WAIT_MS)
    v2 = measured.locator('.split-rev[data-role="canary"]')
    expect(v2).to_be_visible(timeout=WAIT_MS)
    pct = float(str(v2.get_attribute("data-percent")))
    assert 10.0 <= pct <= 30.0, pct
    expect(canary.locator('.split[data-source="status"] .split-rev[data-role="canary"]')).to_have_attribute(
        "data-percent", "20.0"
    )
    update_docs = os.environ.get("PYROLLOUTS_UPDATE_SCREENSHOTS") == "1"
    shot = DOCS_SCREENSHOT if update_docs else tmp_path / "canary-paused.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000, f"{shot}: the screenshot is nearly empty"

    # Promote: setWeight 50, the 10 s pause, setWeight 100, then every step is done.
    confirm(page, "#btn-promote")
    expect(canary.locator('li.step[data-step="1"]')).to_have_attribute("data-state", "done", timeout=WAIT_MS)
    expect(page.locator("#phase")).to_have_text("Healthy", timeout=WAIT_MS * 3)
    for index in range(5):
        expect(canary.locator(f'li.step[data-step="{index}"]')).to_have_attribute(
            "data-state", "done", timeout=WAIT_MS
        )
    expect(canary.locator('li.step[aria-current="step"]')).to_have_count(0)
    expect(canary.locator("#set-weight")).to_have_text("100")
    assert still_same_page(page), "the page was reloaded: the update did not come over the EventSource"
    server.wait_for("stable answers V2", lambda: get_text(dep.prod) == "VERSION V2", 30)
