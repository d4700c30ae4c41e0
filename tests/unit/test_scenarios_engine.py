"""Every scenario file, run by the engine against the simulated cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyrollouts.testing.scenarios import load_scenario, run_scenario, scenario_files
from pyrollouts.testing.simcluster import SimDriver

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
FILES = scenario_files(SCENARIOS)


def test_the_corpus_is_not_empty() -> None:
    assert len(FILES) >= 20


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
async def test_scenario(path: Path) -> None:
    scenario = load_scenario(path)
    driver = SimDriver(ready_after=scenario.ready_after)
    try:
        await run_scenario(scenario, driver, poll_timeout=0)
    finally:
        await driver.close()
