"""User actions are exactly the patches Argo's kubectl plugin sends."""

from __future__ import annotations

import json

import pytest

from pyrollouts.model import names, useractions
from pyrollouts.model.useractions import ActionError, Patch, apply_merge_patch, merge_patch_to


def rollout(**status: object) -> dict:
    return {
        "metadata": {"name": "web"},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{"name": "web", "image": "a:1", "env": [{"name": "X", "value": "1"}]}]
                },
            }
        },
        "status": dict(status),
    }


def test_promote_clears_pause_conditions_through_status() -> None:
    r = rollout(pauseConditions=[{"reason": "BlueGreenPause", "startTime": "2026-01-01T00:00:00Z"}])
    assert useractions.promote(r) == [Patch({"status": {"pauseConditions": None}}, "status")]


def test_promote_patches_status_then_unpauses_spec() -> None:
    # Argo's plugin sends the status patch first, then the spec patch.
    r = rollout()
    r["spec"]["paused"] = True
    assert useractions.promote(r) == [
        Patch({"status": {"pauseConditions": None}}, "status"),
        Patch({"spec": {"paused": False}}),
    ]


def test_promote_full_after_a_manual_pause() -> None:
    r = rollout(stableRS="a", currentPodHash="b")
    r["spec"]["paused"] = True
    assert useractions.promote(r, full=True) == [
        Patch({"status": {"promoteFull": True}}, "status"),
        Patch({"spec": {"paused": False}}),
    ]
    # nothing in flight: only the unpause, as Argo's plugin
    done = rollout(stableRS="a", currentPodHash="a")
    done["spec"]["paused"] = True
    assert useractions.promote(done, full=True) == [Patch({"spec": {"paused": False}})]
    with pytest.raises(ActionError, match="already fully promoted"):
        useractions.promote(rollout(stableRS="a", currentPodHash="a"), full=True)


def test_promote_of_a_rollout_that_is_not_paused_is_refused() -> None:
    with pytest.raises(ActionError, match="rollout 'web' is not paused"):
        useractions.promote(rollout())


def test_promote_full_abort_retry() -> None:
    r = rollout(stableRS="a", currentPodHash="b")
    assert useractions.promote(r, full=True) == [Patch({"status": {"promoteFull": True}}, "status")]
    assert useractions.abort(r) == [Patch({"status": {"abort": True}}, "status")]
    assert useractions.retry(r) == [Patch({"status": {"abort": False}}, "status")]


def test_set_image_unknown_container() -> None:
    with pytest.raises(ActionError, match="no container named 'api'"):
        useractions.set_image(rollout(), "api", "b:2")
    (p,) = useractions.set_image(rollout(), "*", "b:2")
    assert p.body["spec"]["template"]["spec"]["containers"][0]["image"] == "b:2"


def test_set_env_replaces_existing_value() -> None:
    (p,) = useractions.set_env(rollout(), "web", "X", "2")
    assert p.body["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "X", "value": "2"}]


def test_undo_restores_template_without_injected_labels() -> None:
    r = rollout()
    old_tmpl = {
        "metadata": {
            "labels": {"app": "web", names.POD_TEMPLATE_HASH_LABEL: "abc", "role": "active"},
        },
        "spec": {"containers": [{"name": "web", "image": "a:0"}]},
    }
    rs1 = {
        "metadata": {
            "annotations": {
                names.REVISION_ANNOTATION: "1",
                names.EPHEMERAL_METADATA_ANNOTATION: json.dumps({"labels": {"role": "active"}}),
            }
        },
        "spec": {"template": old_tmpl},
    }
    rs2 = {"metadata": {"annotations": {names.REVISION_ANNOTATION: "2"}}, "spec": {"template": {}}}
    (p,) = useractions.undo(r, [rs1, rs2], None)
    restored = apply_merge_patch(r["spec"]["template"], p.body["spec"]["template"])
    assert restored == {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "a:0"}]},
    }
    with pytest.raises(ActionError, match="no revision 7"):
        useractions.undo(r, [rs1, rs2], 7)


def test_merge_patch_round_trip() -> None:
    a = {"x": {"y": 1, "z": [1]}, "q": 2}
    b = {"x": {"y": 2}, "w": 3}
    assert apply_merge_patch(a, merge_patch_to(a, b)) == b


def test_undo_drops_injected_anti_affinity() -> None:
    term = {
        "weight": 10,
        "podAffinityTerm": {
            "labelSelector": {
                "matchExpressions": [
                    {"key": names.POD_TEMPLATE_HASH_LABEL, "operator": "In", "values": ["zzz"]}
                ]
            },
            "topologyKey": "kubernetes.io/hostname",
        },
    }
    old_tmpl = {
        "metadata": {"labels": {"app": "web", names.POD_TEMPLATE_HASH_LABEL: "abc"}},
        "spec": {
            "containers": [{"name": "web", "image": "a:0"}],
            "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [term]}},
        },
    }
    rs1 = {"metadata": {"annotations": {names.REVISION_ANNOTATION: "1"}}, "spec": {"template": old_tmpl}}
    rs2 = {"metadata": {"annotations": {names.REVISION_ANNOTATION: "2"}}, "spec": {"template": {}}}
    r = rollout()
    (p,) = useractions.undo(r, [rs1, rs2], 1)
    restored = apply_merge_patch(r["spec"]["template"], p.body["spec"]["template"])
    assert "affinity" not in restored["spec"]


def test_promote_moves_a_canary_that_is_not_paused_on_one_step() -> None:
    r = {
        "metadata": {"name": "c"},
        "spec": {"strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}}},
        "status": {"currentStepIndex": 0, "stableRS": "a", "currentPodHash": "b"},
    }
    assert useractions.promote(r) == [
        Patch({"status": {"pauseConditions": None, "currentStepIndex": 1}}, "status")
    ]
    r["status"]["pauseConditions"] = [{"reason": "CanaryPauseStep", "startTime": "2026-01-01T00:00:00Z"}]
    assert useractions.promote(r) == [Patch({"status": {"pauseConditions": None}}, "status")]
    assert useractions.promote(r, full=True) == [Patch({"status": {"promoteFull": True}}, "status")]
