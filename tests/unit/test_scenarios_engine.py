"""Every scenario file, run by the engine against the simulated cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.scenarios import (
    ScenarioError,
    ScenarioFailure,
    load_scenario,
    run_scenario,
    scenario_files,
)
from harness.simcluster import SimDriver

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
FILES = scenario_files(SCENARIOS, proxy_routes_traffic=True)


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


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "manifests").mkdir(exist_ok=True)
    (tmp_path / "manifests" / "super-hello.yaml").write_text(
        (SCENARIOS / "manifests" / "super-hello.yaml").read_text()
    )
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("manifest: super-hello\nsteps: [{do: apply}]\n", "description: required"),
        ("description: x\nmanifest: nope\nsteps: [{do: apply}]\n", "manifests/nope.yaml does not exist"),
        ("description: x\nmanifest: super-hello\nsteps: []\n", "steps: required"),
        ("description: x\nmanifest: super-hello\nsteps: [{do: fly}]\n", "steps[0].do: unknown step 'fly'"),
        ("description: x\nmanifest: super-hello\nsteps: [{do: advance}]\n", "steps[0].seconds: required"),
        (
            "description: x\nmanifest: super-hello\nsteps: [{do: apply, seconds: 3}]\n",
            "`apply` takes no ['seconds']",
        ),
        (
            "description: x\nmanifest: super-hello\nsteps: [{do: apply, expect: {phaze: Healthy}}]\n",
            "unknown expect key(s) ['phaze']",
        ),
        (
            "description: x\nmanifest: super-hello\nsteps: [{do: pods, revision: 1, state: sad}]\n",
            "ready, unready or crash",
        ),
        (
            "description: x\nmanifest: super-hello\nextra: 1\nsteps: [{do: apply}]\n",
            "unknown key(s) ['extra']",
        ),
    ],
)
def test_bad_scenario_files_are_named_and_explained(tmp_path: Path, text: str, needle: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(path) in str(info.value)
    assert needle in str(info.value)


async def test_a_failed_expectation_names_file_step_and_difference(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "description: x\nmanifest: super-hello\nsteps:\n  - do: apply\n    expect: {phase: Healthy}\n"
        "  - do: apply\n    env: {WELCOME: V9}\n    expect: {phase: Healthy, active: 2}\n",
    )
    with pytest.raises(ScenarioFailure) as info:
        await run_scenario(load_scenario(path), SimDriver(), poll_timeout=0)
    msg = str(info.value)
    assert str(path) in msg and "step 1 (do: apply)" in msg
    assert "phase: expected 'Healthy', got 'Paused'" in msg
    assert "active: expected revision 2, got 1" in msg


async def test_rs_template_expectation_compares_a_subset_of_that_rs_template(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "description: x\nmanifest: super-hello\nsteps:\n  - do: apply\n"
        "    expect: {rsTemplate: {1: {metadata: {labels: {app: super-hello}}, spec: {affinity: null}}}}\n"
        "  - do: apply\n    expect: {rsTemplate: {1: {spec: {affinity: '*'}}}}\n",
    )
    with pytest.raises(ScenarioFailure) as info:
        await run_scenario(load_scenario(path), SimDriver(), poll_timeout=0)
    assert "step 1" in str(info.value) and "rsTemplate[1].spec.affinity: expected a value" in str(info.value)
    bad = _write(
        tmp_path, "description: x\nmanifest: super-hello\nsteps: [{do: apply, expect: {rsTemplate: [1]}}]\n"
    )
    with pytest.raises(ScenarioError, match="rsTemplate: must be a mapping"):
        load_scenario(bad)
