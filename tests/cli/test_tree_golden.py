"""Golden tests of the `get rollout` header and tree for the seed's four states.

Rendered from fixed objects at a fixed time, so they are exact. To regenerate after a deliberate
change of the output: UPDATE_GOLDEN=1 pytest tests/cli/test_tree_golden.py, then read the diff."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from cli_seed_objects import STATES, promoted

from pyrollouts.cli.tree import go_duration, human_duration, render
from pyrollouts.service.info import rollout_info

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("state", sorted(STATES))
def test_tree_matches_golden(state: str) -> None:
    ro, rss, pods, now = STATES[state]()
    text = render(rollout_info(ro, rss, pods, now), now)
    path = GOLDEN / f"{state}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def test_delay_counts_down_then_passes() -> None:
    ro, rss, pods, now = promoted()
    info = rollout_info(ro, rss, pods, now)
    assert "delay:20s" in render(info, now)
    assert "delay:1s" in render(info, now + timedelta(seconds=19))
    later = render(info, now + timedelta(seconds=25))
    assert "delay:passed" in later and "delay:2" not in later


def test_info_roles_and_revisions_newest_first() -> None:
    ro, rss, pods, now = STATES["paused"]()
    info = rollout_info(ro, rss, pods, now)
    assert [r["revision"] for r in info["revisions"]] == [2, 1]
    rs2, rs1 = info["revisions"][0]["replicaSets"][0], info["revisions"][1]["replicaSets"][0]
    assert rs2["roles"] == ["preview"] and rs1["roles"] == ["stable", "active"]
    assert [p["hostPort"] for p in rs2["pods"]] == [41004, 41005, 41006]
    assert info["images"] == [
        {"image": "ghcr.io/gbaeke/super:1.0.2", "roles": ["stable", "active", "preview"]}
    ]


def test_unowned_objects_are_left_out() -> None:
    ro, rss, pods, now = STATES["healthy"]()
    stranger = dict(rss[0], metadata=dict(rss[0]["metadata"], name="other-rs", uid="x", ownerReferences=[]))
    info = rollout_info(ro, [*rss, stranger], pods, now)
    assert [rs["name"] for r in info["revisions"] for rs in r["replicaSets"]] == ["super-hello-6b9c8d7f5"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "5s"),
        (119, "119s"),
        (130, "2m10s"),
        (600, "10m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 120, "3h2m"),
        (30 * 3600, "30h"),
        (50 * 3600, "2d2h"),
        (-3, "0s"),
    ],
)
def test_human_duration_like_kubectl(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def test_go_duration() -> None:
    assert [go_duration(s) for s in (0, 45, 80, 3605)] == ["0s", "45s", "1m20s", "1h0m5s"]
