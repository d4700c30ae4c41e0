"""Golden tests of `get rollout` for a canary, and the step and weights as Argo's plugin computes
them (service/canaryinfo.py). To regenerate after a deliberate change of the output:
UPDATE_GOLDEN=1 pytest tests/cli/test_canary_tree.py, then read the diff."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
from cli_canary_objects import CANARY_STATES, GATEWAY, canary_paused, canary_rollout, canary_traffic

from pyrollouts.cli.tree import render
from pyrollouts.service.canaryinfo import actual_weight, set_weight, step_text, steps_view
from pyrollouts.service.info import rollout_info

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("state", sorted(CANARY_STATES))
def test_canary_tree_matches_golden(state: str) -> None:
    ro, rss, pods, now = CANARY_STATES[state]()
    text = render(rollout_info(ro, rss, pods, now), now)
    path = GOLDEN / f"{state}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def test_paused_header_as_argo_prints_it() -> None:
    ro, rss, pods, now = canary_paused()
    text = render(rollout_info(ro, rss, pods, now), now)
    assert "Status:          ॥ Paused\nMessage:         CanaryPauseStep\nStrategy:        Canary\n" in text
    assert "  Step:          1/5\n  SetWeight:     20\n  ActualWeight:  20\n" in text
    assert "Images:          ghcr.io/gbaeke/super:1.0.2 (canary, stable)\n" in text


def test_roles_are_stable_and_canary() -> None:
    ro, rss, pods, now = canary_traffic()
    info = rollout_info(ro, rss, pods, now)
    roles = {rs["revision"]: rs["roles"] for rev in info["revisions"] for rs in rev["replicaSets"]}
    assert roles == {2: ["canary"], 1: ["stable"]}
    assert info["canary"]["weights"]["canary"]["weight"] == 50
    assert [s["state"] for s in info["canary"]["steps"]] == ["done", "done", "done", "current", "pending"]
    assert [s["text"] for s in info["canary"]["steps"]] == [
        "setWeight: 20",
        "pause",
        "setWeight: 50",
        "pause: 10s",
        "setWeight: 100",
    ]


def _with_status(ro: dict, **fields: object) -> dict:
    out = copy.deepcopy(ro)
    out["status"].update(fields)
    return out


def test_set_weight_follows_the_steps() -> None:
    ro = canary_rollout({"currentStepIndex": 0})
    assert set_weight(ro) == 20  # the setWeight step itself is current
    assert set_weight(_with_status(ro, currentStepIndex=3)) == 50
    assert set_weight(_with_status(ro, currentStepIndex=5)) == 100  # every step ran
    assert set_weight(_with_status(ro, currentStepIndex=3, abort=True)) == 0
    capped = canary_rollout({"currentStepIndex": 5}, dict(GATEWAY, maxTrafficWeight=1000))
    assert set_weight(capped) == 1000
    no_weight_yet = canary_rollout({"currentStepIndex": 0})
    no_weight_yet["spec"]["strategy"]["canary"]["steps"] = [{"pause": {}}, {"setWeight": 30}]
    assert set_weight(no_weight_yet) == 0


def test_step_text_needs_an_index_and_steps() -> None:
    assert step_text(canary_rollout({})) == ""
    assert step_text(canary_rollout({"currentStepIndex": 2})) == "2/5"
    no_steps = canary_rollout({"currentStepIndex": 0})
    no_steps["spec"]["strategy"]["canary"]["steps"] = []
    assert step_text(no_steps) == ""
    assert set_weight(no_steps) == 100 and steps_view(no_steps) == []


def test_actual_weight() -> None:
    ro, rss, pods, now = canary_paused()
    rows = [rs for rev in rollout_info(ro, rss, pods, now)["revisions"] for rs in rev["replicaSets"]]
    assert actual_weight(ro, rows) == 20  # 1 canary pod of 5 available, no trafficRouting
    assert actual_weight(_with_status(ro, availableReplicas=0), rows) == 0
    routed = canary_rollout({"currentStepIndex": 2, "availableReplicas": 8}, GATEWAY)
    assert actual_weight(routed, []) == 50  # before the router reported a split: the set weight
    assert actual_weight(_with_status(routed, currentStepIndex=5), []) == 100


def test_a_step_the_model_cannot_read_is_named_by_its_field() -> None:
    ro = canary_rollout({"currentStepIndex": 0})
    ro["spec"]["strategy"]["canary"]["steps"] = [{"setWeight": "lots"}, {"experiment": {}}]
    assert [s["text"] for s in steps_view(ro)] == ["setWeight", "experiment"]


def test_blue_green_has_no_canary_block() -> None:
    from cli_seed_objects import STATES

    ro, rss, pods, now = STATES["paused"]()
    info = rollout_info(ro, rss, pods, now)
    assert info["canary"] is None
    assert "SetWeight" not in render(info, now)
