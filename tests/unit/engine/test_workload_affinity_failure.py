"""spec.workloadRef resolution, the injected blueGreen.antiAffinity term, and the ReplicaFailure
condition, at the level of one plan (the scenarios cover them end to end)."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

from engine_support import set_welcome, template_hash

from harness.simcluster import SimCluster
from pyrollouts.engine import CreateReplicaSet, UpdateReplicaSetAffinity, plan
from pyrollouts.model import names
from pyrollouts.model.hash import pod_template_hash, templates_equal
from pyrollouts.model.rollout import Rollout


def plan_now(sim: SimCluster):  # type: ignore[no-untyped-def]
    assert sim.rollout is not None
    sim._sync_pods()
    return plan(Rollout.from_wire(sim.rollout), sim.observed(), sim.now)


def test_replica_failure_is_copied_from_the_new_rs_and_removed_when_it_recovers(
    new_sim: Callable[..., SimCluster],
) -> None:
    sim = new_sim()
    assert sim.rollout is not None
    rollout = Rollout.from_wire(sim.rollout)
    observed = sim.observed()
    (rs,) = observed.replicasets
    failure = {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "no ports"}
    failing_obj = {**rs.obj, "status": {**rs.obj["status"], "conditions": [failure]}}
    failing = dataclasses.replace(observed, replicasets=(dataclasses.replace(rs, obj=failing_obj),))
    status = plan(rollout, failing, sim.now).status.wire()
    got = {c["type"]: c for c in status["conditions"]}[names.COND_REPLICA_FAILURE]
    assert (got["status"], got["reason"], got["message"]) == ("True", "FailedCreate", "no ports")
    # Recovered: the condition is dropped from the status that carried it.
    rollout = Rollout.from_wire({**sim.rollout, "status": status})
    status = plan(rollout, observed, sim.now).status.wire()
    assert names.COND_REPLICA_FAILURE not in {c["type"] for c in status["conditions"]}


def test_anti_affinity_term_is_injected_into_the_new_rs_only_and_keeps_the_hash(
    new_sim: Callable[..., SimCluster],
) -> None:
    sim = new_sim(
        {
            "spec": {
                "strategy": {
                    "blueGreen": {"antiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}}
                }
            }
        }
    )
    h1 = template_hash(sim)
    set_welcome(sim, "V3")
    p = plan_now(sim)
    create = next(a for a in p.actions if isinstance(a, CreateReplicaSet))
    tmpl = create.body["spec"]["template"]
    terms = tmpl["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms == [
        {
            "labelSelector": {
                "matchExpressions": [{"key": names.POD_TEMPLATE_HASH_LABEL, "operator": "In", "values": [h1]}]
            },
            "topologyKey": "kubernetes.io/hostname",
        }
    ]
    assert sim.rollout is not None
    rollout_tmpl = sim.rollout["spec"]["template"]
    assert "affinity" not in rollout_tmpl["spec"]
    # The hash is the Rollout template's; the injected term is ignored when templates are compared.
    assert create.name.endswith(pod_template_hash(rollout_tmpl))
    assert templates_equal(tmpl, rollout_tmpl)


def test_anti_affinity_keeps_the_users_own_terms_and_is_removed_once_stable(
    new_sim: Callable[..., SimCluster],
) -> None:
    own = {
        "weight": 7,
        "podAffinityTerm": {"labelSelector": {"matchLabels": {"x": "y"}}, "topologyKey": "zone"},
    }
    sim = new_sim(
        {
            "spec": {
                "template": {
                    "spec": {
                        "affinity": {
                            "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [own]}
                        }
                    }
                },
                "strategy": {
                    "blueGreen": {
                        "antiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": {"weight": 60}}
                    }
                },
            }
        }
    )
    set_welcome(sim, "V3")
    sim.settle()
    assert sim.rollout is not None and sim.rollout["status"]["phase"] == "Paused"
    new = max(sim.replicasets.values(), key=lambda r: r["metadata"]["annotations"][names.REVISION_ANNOTATION])
    terms = new["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert terms[0] == own and terms[1]["weight"] == 60 and len(terms) == 2
    assert sim.rollout is not None
    sim.patch_rollout({"status": {"pauseConditions": None}}, subresource="status")  # promote
    sim.settle()
    terms = new["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert terms == [own]
    assert not any(isinstance(a, UpdateReplicaSetAffinity) for a in plan_now(sim).actions)


def test_workload_ref_plans_with_the_deployments_template(new_sim: Callable[..., SimCluster]) -> None:
    sim = new_sim(settle=False)
    assert sim.rollout is not None
    template = copy.deepcopy(sim.rollout["spec"]["template"])
    selector = sim.rollout["spec"]["selector"]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": sim.rollout["metadata"]["namespace"]},
        "spec": {"replicas": 0, "selector": selector, "template": template},
    }
    sim.apply_objects([deployment])
    sim.patch_rollout(
        {
            "spec": {
                "template": None,
                "selector": None,
                "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            }
        }
    )
    p = plan_now(sim)
    create = next(a for a in p.actions if isinstance(a, CreateReplicaSet))
    assert create.name.endswith(pod_template_hash(template))
    assert create.body["spec"]["selector"]["matchLabels"]["app"] == selector["matchLabels"]["app"]


def test_workload_ref_to_a_missing_deployment_is_an_invalid_spec(new_sim: Callable[..., SimCluster]) -> None:
    sim = new_sim(settle=False)
    sim.patch_rollout(
        {
            "spec": {
                "template": None,
                "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"},
            }
        }
    )
    p = plan_now(sim)
    assert p.status.phase == names.PHASE_DEGRADED
    assert p.status.message == "InvalidSpec: workloadRef: deployment 'x' not found"
    assert not any(isinstance(a, CreateReplicaSet) for a in p.actions)
