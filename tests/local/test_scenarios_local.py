"""Every scenario file, run by the local runtime: a real server, real pod processes, the proxy."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyrollouts.testing.localdriver import LocalDriver
from pyrollouts.testing.scenarios import load_scenario, run_scenario, scenario_files

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
FILES = scenario_files(SCENARIOS)
#: Per step: real pods start in about a second; minReadySeconds and crash loops take a few more.
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
