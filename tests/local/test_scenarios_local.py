"""Every scenario file, run by the local runtime: a real server, real pod processes, the proxy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.localdriver import LocalDriver
from harness.scenarios import ScenarioFailure, load_scenario, run_scenario, scenario_files
from pyrollouts.runtimes.local.proxy.server import process_start_time
from pyrollouts.runtimes.local.supervisor import find_pod_processes

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
FILES = scenario_files(SCENARIOS, proxy_routes_traffic=True)
#: Per step: real pods are ready in about a second; minReadySeconds and crash loops take longer.
POLL_TIMEOUT = 20.0


def test_the_corpus_is_not_empty() -> None:
    assert len(FILES) >= 20


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
async def test_scenario(path: Path) -> None:
    scenario = load_scenario(path)
    driver = LocalDriver(ready_after=scenario.ready_after)
    try:
        await run_scenario(scenario, driver, poll_timeout=POLL_TIMEOUT, poll_interval=0.05)
    finally:
        await driver.close()


async def test_a_failed_scenario_leaves_no_process_behind(tmp_path: Path) -> None:
    """A scenario that fails mid-way (pods running, one revision crash-looping): close() still
    stops every pod process and the proxy, and removes the temporary dir."""
    shutil.copytree(SCENARIOS / "manifests", tmp_path / "manifests")
    path = tmp_path / "fails.yaml"
    path.write_text(
        "description: fails on purpose once pods run\n"
        "manifest: super-hello\n"
        "steps:\n"
        "  - do: pods\n    revision: 2\n    state: crash\n"
        "  - do: apply\n    expect: {phase: Healthy, active: 1}\n"
        "  - do: apply\n    env: {WELCOME: V3}\n    expect: {active: 2}\n"
    )
    driver = LocalDriver()
    try:
        with pytest.raises(ScenarioFailure, match="step 2"):
            await run_scenario(load_scenario(path), driver, poll_timeout=2.0, poll_interval=0.05)
        assert find_pod_processes(driver.state_dir), "the scenario should have left pods running"
        assert driver.server is not None
        proxy_pid = driver.server.proxy.pid
        assert proxy_pid is not None
    finally:
        await driver.close()
    assert find_pod_processes(driver.state_dir) == []
    assert process_start_time(proxy_pid) is None, "the proxy still runs"
    assert not driver.dir.exists()
