"""Golden tests of the `get rollout` header and tree for the seed's four states.

Rendered from fixed objects at a fixed time, so they are exact. To regenerate after a deliberate
change of the output: UPDATE_GOLDEN=1 pytest tests/cli/test_tree_golden.py, then read the diff."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from cli_seed_objects import STATES, paused_with_analysis, promoted

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
    # as Argo's plugin: one image shared by two ReplicaSets gets the union of their roles, sorted
    assert info["images"] == [
        {"image": "ghcr.io/gbaeke/super:1.0.2", "roles": ["active", "preview", "stable"]}
    ]


def _with_image(rs: dict, image: str) -> dict:
    spec = dict(rs["spec"])
    template = dict(spec["template"])
    tspec = dict(template["spec"])
    tspec["containers"] = [dict(c, image=image) for c in tspec["containers"]]
    template["spec"] = tspec
    spec["template"] = template
    return dict(rs, spec=spec)


def test_images_as_argo_lists_them() -> None:
    # Argo's Images: every RS that still runs pods (roles or not), sorted by image; a single RS's
    # roles in the order stable, active, preview; an RS without pods adds nothing.
    ro, rss, pods, now = STATES["paused"]()
    by_rev = {int(rs["metadata"]["annotations"]["rollout.argoproj.io/revision"]): rs for rs in rss}
    new = _with_image(by_rev[2], "ghcr.io/gbaeke/super:1.0.3")
    old_running = _with_image(by_rev[1], "a.example/old:1")
    old_meta = dict(old_running["metadata"], name="super-hello-old", uid="u-old")
    old_running = dict(old_running, metadata=old_meta)
    old_running["metadata"]["labels"] = {"app": "super-hello", "rollouts-pod-template-hash": "old"}
    old_running["metadata"]["annotations"] = {"rollout.argoproj.io/revision": "0"}
    gone = dict(old_running, metadata=dict(old_running["metadata"], name="super-hello-gone", uid="u-gone"))
    gone = dict(_with_image(gone, "z.example/gone:1"), status={"replicas": 0})
    info = rollout_info(ro, [new, by_rev[1], old_running, gone], pods, now)
    assert info["images"] == [
        {"image": "a.example/old:1", "roles": []},
        {"image": "ghcr.io/gbaeke/super:1.0.2", "roles": ["stable", "active"]},
        {"image": "ghcr.io/gbaeke/super:1.0.3", "roles": ["preview"]},
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


def test_tree_with_analysis_runs_matches_golden() -> None:
    """Runs under their revision after its ReplicaSets, with Argo's icon per phase and the
    ✔/✖/?/⚠ counts summed over the metric results."""
    ro, rss, pods, now, runs = paused_with_analysis()
    info = rollout_info(ro, rss, pods, now, runs)
    text = render(info, now)
    path = GOLDEN / "analysis.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")
    assert [(r["name"], r["revision"]) for r in info["analysisRuns"]] == [
        ("super-hello-7d4f6c9b8-2-pre", 2),
        ("super-hello-7d4f6c9b8-2-new", 2),
        ("super-hello-6b9c8d7f5-1-post", 1),
    ]


def test_a_run_whose_replicaset_is_gone_keeps_its_revision() -> None:
    ro, rss, _, now, runs = paused_with_analysis()
    info = rollout_info(ro, rss[1:], [], now, runs)
    assert [r["revision"] for r in info["revisions"]] == [2, 1]
    assert info["revisions"][1]["replicaSets"] == []
    assert "└──\u03b1 super-hello-6b9c8d7f5-1-post  AnalysisRun  ✖ Failed" in render(info, now)
