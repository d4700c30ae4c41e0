"""Table tests: for each key decision, the full action list and the full status of one plan."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from engine_support import set_welcome, template_hash

from harness.simcluster import SimCluster
from pyrollouts.engine import (
    CreateReplicaSet,
    DeletePod,
    EmitEvent,
    Plan,
    ScaleReplicaSet,
    SetScaleDownDeadline,
    SwitchService,
    UpdateRollout,
    plan,
)
from pyrollouts.model.rollout import Rollout

NS = "my-app"
T0 = "2026-01-01T12:00:00Z"
T1 = "2026-01-01T12:00:01Z"
T2 = "2026-01-01T12:00:02Z"


def plan_now(sim: SimCluster) -> Plan:
    assert sim.rollout is not None
    sim._sync_pods()
    return plan(Rollout.from_wire(sim.rollout), sim.observed(), sim.now)


def ev(reason: str, message: str, type_: str = "Normal") -> EmitEvent:
    return EmitEvent(type=type_, reason=reason, message=message)


def cond(type_: str, status: str, reason: str, message: str, update: str, transition: str) -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": update,
        "lastTransitionTime": transition,
    }


def test_first_reconcile_creates_scales_and_marks_stable(new_sim: Callable[..., SimCluster]) -> None:
    sim = new_sim(settle=False)
    h = template_hash(sim)
    rs = f"super-hello-{h}"
    p = plan_now(sim)
    create = p.actions[3]
    assert isinstance(create, CreateReplicaSet)
    assert create.body["metadata"] == {
        "name": rs,
        "namespace": NS,
        "labels": {"app": "super-hello", "rollouts-pod-template-hash": h},
        "annotations": {"rollout.argoproj.io/revision": "1", "rollout.argoproj.io/desired-replicas": "3"},
        "ownerReferences": [
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "Rollout",
                "name": "super-hello",
                "uid": sim.rollout["metadata"]["uid"],  # type: ignore[index]
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    assert create.body["spec"]["replicas"] == 0
    assert create.body["spec"]["minReadySeconds"] == 0
    assert create.body["spec"]["selector"] == {
        "matchLabels": {"app": "super-hello", "rollouts-pod-template-hash": h}
    }
    assert create.body["spec"]["template"]["metadata"]["labels"]["rollouts-pod-template-hash"] == h
    assert p.actions == (
        ev("RolloutAddedToInformer", "Rollout resource added to informer: my-app/super-hello"),
        UpdateRollout(annotations={"rollout.argoproj.io/revision": "1"}),
        ev("RolloutUpdated", "Rollout updated to revision 1"),
        create,
        ev("NewReplicaSetCreated", f"Created ReplicaSet {rs} (revision 1)"),
        SwitchService("super-hello-preview", h, "super-hello"),
        ev("SwitchService", f"Switched selector for service 'super-hello-preview' from '' to '{h}'"),
        ScaleReplicaSet(rs, 3, 3),
        ev("ScalingReplicaSet", f"Scaled up ReplicaSet {rs} (revision 1) from 0 to 3"),
        ev("RolloutCompleted", f"Rollout completed update to revision 1 ({h}): Initial deploy"),
    )
    assert p.status.wire() == {
        "phase": "Progressing",
        "message": "more replicas need to be updated",
        "observedGeneration": "1",
        "currentPodHash": h,
        "stableRS": h,
        "blueGreen": {"previewSelector": h},
        "canary": {},  # as Argo's status: the canary block is always there, empty for blue-green
        "selector": "app=super-hello",
        "conditions": [
            cond("Progressing", "True", "NewReplicaSetCreated", f'Created new replica set "{rs}"', T0, T0),
            cond(
                "Available", "False", "AvailableReason", "Rollout does not have minimum availability", T0, T0
            ),
            # no Healthy condition yet: Argo writes it False only once it has been True
            cond("Completed", "True", "RolloutCompleted", "RolloutCompleted", T0, T0),
        ],
    }
    assert p.requeue_after is None


def test_first_deploy_switches_active_once_saturated(new_sim: Callable[..., SimCluster]) -> None:
    sim = new_sim(settle=False)
    sim.run()  # created and scaled; pods not ready yet
    h = template_hash(sim)
    assert plan_now(sim).actions == ()
    sim.now += timedelta(seconds=1)
    p = plan_now(sim)
    assert p.actions == (
        SwitchService("super-hello-prod", h, "super-hello"),
        ev("SwitchService", f"Switched selector for service 'super-hello-prod' from '' to '{h}'"),
    )
    rs = f"super-hello-{h}"
    assert p.status.wire() == {
        "phase": "Healthy",
        "observedGeneration": "1",  # the revision annotation is metadata: no new generation
        "currentPodHash": h,
        "stableRS": h,
        "blueGreen": {"previewSelector": h, "activeSelector": h},
        "canary": {},
        "replicas": 3,
        "updatedReplicas": 3,
        "readyReplicas": 3,
        "availableReplicas": 3,
        "HPAReplicas": 3,
        "selector": f"app=super-hello,rollouts-pod-template-hash={h}",
        "conditions": [
            cond(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs}" has successfully progressed.',
                T1,
                T0,
            ),
            cond("Available", "True", "AvailableReason", "Rollout has minimum availability", T1, T1),
            cond("Healthy", "True", "RolloutHealthy", "Rollout is healthy", T1, T1),
            cond("Completed", "True", "RolloutCompleted", "RolloutCompleted", T0, T0),
        ],
    }


def test_settled_world_plans_nothing(new_sim: Callable[..., SimCluster]) -> None:
    sim = new_sim()
    before = sim.rollout["status"]  # type: ignore[index]
    p = plan_now(sim)
    assert p.actions == ()
    assert p.status.wire() == before
    assert p.requeue_after is None


def test_new_revision_pauses_once_ready(new_sim: Callable[..., SimCluster]) -> None:
    sim = new_sim()
    h1 = template_hash(sim)
    set_welcome(sim, "V3")
    sim.run()
    h2 = template_hash(sim)
    sim.now += timedelta(seconds=1)
    p = plan_now(sim)
    assert p.actions == (ev("RolloutPaused", "Rollout is paused (BlueGreenPause)"),)
    st = p.status.wire()
    assert st["pauseConditions"] == [{"reason": "BlueGreenPause", "startTime": T2}]
    assert st["controllerPause"] is True
    assert st["phase"] == "Paused" and st["message"] == "BlueGreenPause"
    assert st["blueGreen"] == {"activeSelector": h1, "previewSelector": h2}
    assert st["stableRS"] == h1 and st["currentPodHash"] == h2
    assert (st["replicas"], st["updatedReplicas"], st["availableReplicas"]) == (6, 3, 3)
    by_type = {c["type"]: (c["status"], c["reason"]) for c in st["conditions"]}
    assert by_type == {
        "Progressing": ("Unknown", "RolloutPaused"),
        "Available": ("True", "AvailableReason"),
        "Paused": ("True", "RolloutPaused"),
        "Healthy": ("False", "RolloutHealthy"),
        "Completed": ("False", "RolloutCompleted"),
    }


def _paused_on_v3(new_sim: Callable[..., SimCluster], patch: dict[str, Any] | None = None) -> SimCluster:
    sim = new_sim(patch)
    set_welcome(sim, "V3")
    sim.settle()
    return sim


def test_promote_switches_and_sets_the_scale_down_deadline(new_sim: Callable[..., SimCluster]) -> None:
    sim = _paused_on_v3(new_sim)
    h2 = template_hash(sim)
    h1 = sim.hash_of_revision(1)
    sim.patch_rollout({"status": {"pauseConditions": None}}, "status")
    p = plan_now(sim)
    deadline = "2026-01-01T12:00:32Z"
    assert p.actions == (  # no RolloutResumed: the promote cleared the pause conditions (as Argo)
        SwitchService("super-hello-prod", h2, "super-hello"),
        ev("SwitchService", f"Switched selector for service 'super-hello-prod' from '{h1}' to '{h2}'"),
        SetScaleDownDeadline(f"super-hello-{h1}", deadline),
        ev("RolloutCompleted", f"Rollout completed update to revision 2 ({h2}): Completed blue-green update"),
    )
    st = p.status.wire()
    assert st["stableRS"] == h2 and st["phase"] == "Healthy"
    assert "controllerPause" not in st and "pauseConditions" not in st
    assert p.requeue_after == 30.0


def test_old_rs_goes_to_zero_at_its_deadline(new_sim: Callable[..., SimCluster]) -> None:
    sim = _paused_on_v3(new_sim)
    h1 = sim.hash_of_revision(1)
    sim.patch_rollout({"status": {"pauseConditions": None}}, "status")
    sim.run()
    sim.now += timedelta(seconds=29)
    p = plan_now(sim)
    assert p.actions == () and p.requeue_after == 1.0
    sim.now += timedelta(seconds=1)
    p = plan_now(sim)
    assert p.actions == (
        ScaleReplicaSet(f"super-hello-{h1}", 0, 3),
        ev("ScalingReplicaSet", f"Scaled down ReplicaSet super-hello-{h1} (revision 1) from 3 to 0"),
        SetScaleDownDeadline(f"super-hello-{h1}", None),
    )


def test_abort_switches_back_and_schedules_the_scale_down(new_sim: Callable[..., SimCluster]) -> None:
    sim = _paused_on_v3(new_sim)
    h1, h2 = sim.hash_of_revision(1), sim.hash_of_revision(2)
    sim.patch_rollout({"status": {"pauseConditions": None}}, "status")
    sim.run()  # promoted: active is revision 2, revision 1 waits for its deadline
    set_welcome(sim, "V4")
    sim.settle()
    h3 = template_hash(sim)
    sim.patch_rollout({"status": {"abort": True}}, "status")
    p = plan_now(sim)
    assert p.actions == (
        ev("RolloutAborted", "Rollout aborted update to revision 3", "Warning"),
        SetScaleDownDeadline(f"super-hello-{h3}", "2026-01-01T12:00:33Z"),
    )
    st = p.status.wire()
    assert st["abort"] is True and st["abortedAt"] == "2026-01-01T12:00:03Z"
    assert st["phase"] == "Degraded"
    assert st["message"] == "RolloutAborted: Rollout aborted update to revision 3"
    assert st["blueGreen"]["activeSelector"] == h2
    assert h1 != h2


def test_abort_after_a_premature_cutover_switches_back(new_sim: Callable[..., SimCluster]) -> None:
    sim = _paused_on_v3(new_sim)
    h1, h2 = sim.hash_of_revision(1), sim.hash_of_revision(2)
    # Someone pointed the active Service at revision 2 by hand; abort must restore the stable one.
    sim.services["super-hello-prod"]["spec"]["selector"]["rollouts-pod-template-hash"] = h2
    sim.patch_rollout({"status": {"abort": True}}, "status")
    p = plan_now(sim)
    assert SwitchService("super-hello-prod", h1, "super-hello") in p.actions
    assert p.status.wire()["blueGreen"]["activeSelector"] == h1


def test_invalid_spec_degrades_and_retries_in_20s(new_sim: Callable[..., SimCluster]) -> None:
    sim = new_sim({"spec": {"strategy": {"blueGreen": {"previewService": "super-hello-prod"}}}}, settle=False)
    p = plan_now(sim)
    msg = (
        "This rollout uses the same service for the active and preview services, "
        "but two different services are required."
    )
    assert p.actions == (
        ev("RolloutAddedToInformer", "Rollout resource added to informer: my-app/super-hello"),
    )
    assert p.status.wire() == {
        "phase": "Degraded",
        "message": f"InvalidSpec: {msg}",
        "observedGeneration": "1",
        "canary": {},
        "conditions": [cond("InvalidSpec", "True", "InvalidSpec", msg, T0, T0)],
    }
    assert p.requeue_after == 20.0


def test_nil_replicas_are_written_back_as_one(new_sim: Callable[..., SimCluster]) -> None:
    sim = new_sim({"spec": {"replicas": None}}, settle=False)
    p = plan_now(sim)
    assert p.actions[1] == UpdateRollout(replicas=1)
    assert ScaleReplicaSet(f"super-hello-{template_hash(sim)}", 1, 1) in p.actions


def test_auto_promotion_seconds_requeues_for_the_promotion(new_sim: Callable[..., SimCluster]) -> None:
    sim = _paused_on_v3(
        new_sim,
        {"spec": {"strategy": {"blueGreen": {"autoPromotionEnabled": True, "autoPromotionSeconds": 20}}}},
    )
    sim.now += timedelta(seconds=5)
    p = plan_now(sim)
    assert p.actions == () and p.requeue_after == 15.0
    sim.now += timedelta(seconds=15)
    p = plan_now(sim)
    assert p.actions[0] == ev("RolloutResumed", "Rollout is resumed")
    assert isinstance(p.actions[1], SwitchService)


def test_progress_deadline_requeue(new_sim: Callable[..., SimCluster]) -> None:
    sim = new_sim({"spec": {"progressDeadlineSeconds": 30}})
    sim.pending_modes[2] = "unready"
    set_welcome(sim, "V3")
    sim.settle()
    p = plan_now(sim)
    assert p.actions == ()
    assert p.requeue_after is not None and 0 < p.requeue_after <= 30


def test_restart_deletes_one_old_pod_at_a_time(new_sim: Callable[..., SimCluster]) -> None:
    sim = new_sim()
    sim.now += timedelta(seconds=10)
    sim.patch_rollout({"spec": {"restartAt": "2026-01-01T12:00:05Z"}})
    p = plan_now(sim)
    deletes = [a for a in p.actions if isinstance(a, DeletePod)]
    assert len(deletes) == 1
    oldest = min(sim.pods, key=lambda n: (sim.pods[n]["metadata"]["creationTimestamp"], n))
    assert deletes[0].pod == oldest  # type: ignore[attr-defined]
    assert p.status.wire()["phase"] == "Progressing"
    assert p.status.wire()["message"] == "rollout is restarting"
    sim.apply(p, sim.rollout)  # type: ignore[arg-type]
    sim._sync_pods()
    assert [a for a in plan_now(sim).actions if isinstance(a, DeletePod)] == []  # one pod is down
    sim.settle()
    assert sim.rollout["status"]["restartedAt"] == "2026-01-01T12:00:05Z"  # type: ignore[index]
    assert all(p["metadata"]["creationTimestamp"] >= "2026-01-01T12:00:05Z" for p in sim.pods.values())
