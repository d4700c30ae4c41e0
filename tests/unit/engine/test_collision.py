"""Pod-template hash collisions: status.collisionCount, as Argo Rollouts and Kubernetes handle them.

The new ReplicaSet is named ``<rollout>-<hash>``. When that name is already held by a ReplicaSet
that is not this template's, the engine creates nothing, bumps status.collisionCount, and the next
reconcile computes another hash (the count is mixed into it) and so another name.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from engine_support import manifest, set_welcome

from harness.simcluster import SimCluster
from pyrollouts.engine import CreateReplicaSet, Plan, plan
from pyrollouts.engine.replicaset import COLLISION_REQUEUE_SECONDS
from pyrollouts.model import names
from pyrollouts.model.hash import pod_template_hash
from pyrollouts.model.rollout import Rollout
from pyrollouts.model.useractions import promote

NAME = "super-hello"
GOLDEN = "546p4fdwz7"  # the seed template's hash, as in test_hash_adoption: it must never change


def _template() -> dict[str, Any]:
    return copy.deepcopy(next(d for d in manifest() if d["kind"] == "Rollout")["spec"]["template"])


def _squatter(
    pod_hash: str,
    *,
    image: str = "ghcr.io/gbaeke/super:0.0.1",
    replicas: int = 1,
    owner_uid: str | None = None,
    label_hash: str | None = None,
) -> dict[str, Any]:
    """A ReplicaSet named as our RS for ``pod_hash`` would be, with another template (another image)."""
    label = label_hash or pod_hash
    template = _template()
    template["spec"]["containers"][0]["image"] = image
    template["metadata"]["labels"][names.POD_TEMPLATE_HASH_LABEL] = label
    meta: dict[str, Any] = {
        "name": f"{NAME}-{pod_hash}",
        "namespace": "my-app",
        "uid": "squatter-uid",
        "creationTimestamp": "2025-12-31T00:00:00Z",
        "labels": {"app": NAME, names.POD_TEMPLATE_HASH_LABEL: label},
    }
    if owner_uid is not None:
        meta["ownerReferences"] = [
            {
                "apiVersion": names.API_VERSION,
                "kind": "Rollout",
                "name": NAME,
                "uid": owner_uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": meta,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": NAME, names.POD_TEMPLATE_HASH_LABEL: label}},
            "template": template,
        },
        "status": {},
    }


def _sim(rollout_patch: dict[str, Any] | None = None) -> SimCluster:
    sim = SimCluster()
    sim.apply_objects(manifest(rollout_patch))
    return sim


def _plan_once(sim: SimCluster) -> Plan:
    assert sim.rollout is not None
    return plan(Rollout.from_wire(sim.rollout), sim.observed(), sim.now)


def _creates(p: Plan) -> list[CreateReplicaSet]:
    return [a for a in p.actions if isinstance(a, CreateReplicaSet)]


def _owned_names(sim: SimCluster) -> list[str]:
    assert sim.rollout is not None
    uid = sim.rollout["metadata"]["uid"]
    return sorted(
        n
        for n, rs in sim.replicasets.items()
        if any(ref.get("uid") == uid for ref in rs["metadata"].get("ownerReferences") or [])
    )


# -- the hash --------------------------------------------------------------------------------------


def test_a_zero_or_absent_count_leaves_the_hash_as_it_always_was() -> None:
    t = _template()
    assert pod_template_hash(t) == GOLDEN
    assert pod_template_hash(t, None) == GOLDEN
    assert pod_template_hash(t, 0) == GOLDEN


def test_a_positive_count_gives_another_hash_each_time_and_always_the_same_one() -> None:
    t = _template()
    hashes = [pod_template_hash(t, n) for n in range(5)]
    assert len(set(hashes)) == 5
    assert [pod_template_hash(copy.deepcopy(t), n) for n in range(5)] == hashes
    # Golden too: a Rollout that once collided keeps its RS names across upgrades.
    assert hashes[1:3] == ["8k5h8lthg6", "cp82bxl4cg"]
    labelled = copy.deepcopy(t)
    labelled["metadata"]["labels"][names.POD_TEMPLATE_HASH_LABEL] = "x"
    assert pod_template_hash(labelled, 3) == hashes[3]


def test_a_negative_count_is_refused() -> None:
    with pytest.raises(ValueError, match="collisionCount"):
        pod_template_hash(_template(), -1)


# -- the engine ------------------------------------------------------------------------------------


def test_a_foreign_rs_holding_the_name_bumps_the_count_then_the_rollout_proceeds_as_usual() -> None:
    sim = _sim()
    h0 = pod_template_hash(_template())
    h1 = pod_template_hash(_template(), 1)
    squatter = _squatter(h0)
    sim.replicasets[squatter["metadata"]["name"]] = squatter
    before = copy.deepcopy(squatter)

    first = _plan_once(sim)
    assert _creates(first) == []
    assert first.status.collision_count == 1
    assert first.requeue_after == COLLISION_REQUEUE_SECONDS
    assert all(getattr(a, "name", None) != squatter["metadata"]["name"] for a in first.actions)

    sim.settle()
    assert sim.rollout is not None
    st = sim.rollout["status"]
    assert st["collisionCount"] == 1
    assert st["phase"] == "Healthy", st
    assert st["currentPodHash"] == h1 and st["stableRS"] == h1
    assert _owned_names(sim) == [f"{NAME}-{h1}"]
    assert sim.services["super-hello-prod"]["spec"]["selector"][names.POD_TEMPLATE_HASH_LABEL] == h1
    squatter_now = sim.replicasets[squatter["metadata"]["name"]]
    assert squatter_now["spec"] == before["spec"] and squatter_now["metadata"] == before["metadata"]
    # Exactly one bump over the whole run, and the settled world plans nothing more.
    assert [p.status.collision_count for p in sim.plans].count(1) == len(sim.plans)
    assert _plan_once(sim).actions == ()

    # A new revision: hashed with the count, paused for promotion as usual, then promoted.
    set_welcome(sim, "VERSION V3")
    sim.settle()
    tmpl3 = sim.rollout["spec"]["template"]
    h3 = pod_template_hash(tmpl3, 1)
    assert h3 != pod_template_hash(tmpl3)
    st = sim.rollout["status"]
    assert (st["phase"], st["message"]) == ("Paused", "BlueGreenPause")
    assert st["currentPodHash"] == h3 and st["stableRS"] == h1 and st["collisionCount"] == 1
    for p in promote(sim.rollout):
        sim.patch_rollout(p.body, p.subresource)
    sim.settle()
    st = sim.rollout["status"]
    assert st["phase"] == "Healthy" and st["stableRS"] == h3 and st["collisionCount"] == 1
    assert _owned_names(sim) == sorted([f"{NAME}-{h1}", f"{NAME}-{h3}"])


def test_a_foreign_rs_with_an_equal_template_is_still_not_ours() -> None:
    # Argo takes an existing RS only if the Rollout is its controller: we never adopt or write to
    # an RS we do not own, so the name is stepped around.
    sim = _sim()
    h0 = pod_template_hash(_template())
    squatter = _squatter(h0, image=_template()["spec"]["containers"][0]["image"])
    sim.replicasets[squatter["metadata"]["name"]] = squatter
    p = _plan_once(sim)
    assert _creates(p) == [] and p.status.collision_count == 1


def test_an_owned_rs_holding_the_name_with_another_hash_and_template_is_a_collision() -> None:
    sim = _sim()
    assert sim.rollout is not None
    h0 = pod_template_hash(_template())
    rs = _squatter(h0, owner_uid=sim.rollout["metadata"]["uid"], label_hash="zzzzzzzzzz", replicas=0)
    sim.replicasets[rs["metadata"]["name"]] = rs
    p = _plan_once(sim)
    assert _creates(p) == [] and p.status.collision_count == 1
    sim.settle()
    assert sim.rollout["status"]["phase"] == "Healthy"
    assert f"{NAME}-{pod_template_hash(_template(), 1)}" in _owned_names(sim)


def test_an_owned_rs_with_the_computed_hash_label_is_ours_whatever_its_stored_template() -> None:
    # The label is authoritative (as in Argo): the API server or a webhook may have rewritten the
    # stored template (here a quantity), and that must never read as a collision.
    sim = _sim()
    assert sim.rollout is not None
    h0 = pod_template_hash(_template())
    image = _template()["spec"]["containers"][0]["image"]
    rs = _squatter(h0, owner_uid=sim.rollout["metadata"]["uid"], image=image)
    rs["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "500m"}}
    rs["metadata"]["annotations"] = {names.REVISION_ANNOTATION: "1"}
    sim.replicasets[rs["metadata"]["name"]] = rs
    p = _plan_once(sim)
    assert _creates(p) == [] and not p.status.collision_count
    sim.settle()
    assert sim.rollout["status"]["currentPodHash"] == h0
    assert "collisionCount" not in sim.rollout["status"]
    assert _owned_names(sim) == [rs["metadata"]["name"]]


def test_a_replan_from_the_same_status_bumps_only_once() -> None:
    sim = _sim()
    squatter = _squatter(pod_template_hash(_template()))
    sim.replicasets[squatter["metadata"]["name"]] = squatter
    assert _plan_once(sim).status.collision_count == 1
    assert _plan_once(sim).status.collision_count == 1  # the write was lost: the same bump again


def test_several_names_taken_are_stepped_around_one_by_one() -> None:
    sim = _sim()
    for n in (0, 1):
        squatter = _squatter(pod_template_hash(_template(), n))
        sim.replicasets[squatter["metadata"]["name"]] = squatter
    sim.settle()
    assert sim.rollout is not None
    assert sim.rollout["status"]["collisionCount"] == 2
    assert sim.rollout["status"]["phase"] == "Healthy"
    assert _owned_names(sim) == [f"{NAME}-{pod_template_hash(_template(), 2)}"]


def test_paused_rollout_still_steps_around_a_collision() -> None:
    # As in Argo, spec.paused does not hold back the new RS, so a name held by another RS is a
    # collision then too: nothing is created and the count goes up.
    sim = _sim({"spec": {"paused": True}})
    squatter = _squatter(pod_template_hash(_template()))
    sim.replicasets[squatter["metadata"]["name"]] = squatter
    p = _plan_once(sim)
    assert _creates(p) == [] and p.status.collision_count == 1


def test_a_count_of_zero_changes_nothing() -> None:
    plain = _sim()
    zero = _sim()
    assert zero.rollout is not None
    zero.rollout["status"] = {"collisionCount": 0}
    a, b = _plan_once(plain), _plan_once(zero)
    assert a.actions == b.actions
    assert a.status == b.status
    assert [c.name for c in _creates(a)] == [f"{NAME}-{GOLDEN}"]
    plain.settle()
    assert plain.rollout is not None and "collisionCount" not in plain.rollout["status"]
    assert _owned_names(plain) == [f"{NAME}-{GOLDEN}"]


def test_a_lost_count_finds_the_rs_again_by_its_template() -> None:
    # status.collisionCount wiped (a restored Rollout, say): the RS made under count 1 is found by
    # semantic template equality, so nothing is redeployed.
    sim = _sim()
    squatter = _squatter(pod_template_hash(_template()))
    sim.replicasets[squatter["metadata"]["name"]] = squatter
    sim.settle()
    assert sim.rollout is not None
    h1 = sim.rollout["status"]["currentPodHash"]
    del sim.rollout["status"]["collisionCount"]
    p = _plan_once(sim)
    assert _creates(p) == [] and p.status.current_pod_hash == h1
