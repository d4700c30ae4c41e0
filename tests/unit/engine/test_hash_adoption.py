"""The pod-template hash, semantic template equality, and adopting ReplicaSets that Argo created."""

from __future__ import annotations

import copy
import subprocess
import sys
from typing import Any

from engine_support import manifest

from harness.simcluster import SimCluster
from pyrollouts.engine import CreateReplicaSet, EmitEvent, SwitchService, plan
from pyrollouts.model.hash import SAFE_ALPHABET, pod_template_hash, templates_equal
from pyrollouts.model.rollout import Rollout


def _template() -> dict[str, Any]:
    return copy.deepcopy(next(d for d in manifest() if d["kind"] == "Rollout")["spec"]["template"])


def test_hash_is_a_fixed_function_of_the_template() -> None:
    # A golden value: the hash must never change across runs, machines or Python versions, or
    # every upgrade would redeploy every Rollout.
    assert pod_template_hash(_template()) == "546p4fdwz7"
    h = pod_template_hash({"metadata": {"labels": {"app": "x"}}})
    assert len(h) == 10 and set(h) <= set(SAFE_ALPHABET)


def test_hash_ignores_key_order_hash_seed_and_the_hash_label() -> None:
    t = _template()
    reordered = dict(reversed(list(t.items())))
    assert pod_template_hash(reordered) == pod_template_hash(t)
    labelled = copy.deepcopy(t)
    labelled["metadata"]["labels"]["rollouts-pod-template-hash"] = "whatever"
    assert pod_template_hash(labelled) == pod_template_hash(t)
    code = "from pyrollouts.model.hash import pod_template_hash as h; print(h({'a': {'b': [1, 'x']}}))"
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outs) == 1


def test_hash_changes_with_the_template() -> None:
    t = _template()
    other = copy.deepcopy(t)
    other["spec"]["containers"][0]["env"][0]["value"] = "VERSION V3"
    assert pod_template_hash(other) != pod_template_hash(t)


def _as_stored_by_kubernetes(t: dict[str, Any], pod_hash: str) -> dict[str, Any]:
    """The template as the API server stores it in an RS: defaults filled in, labels injected."""
    s = copy.deepcopy(t)
    s["metadata"]["labels"]["rollouts-pod-template-hash"] = pod_hash
    s["metadata"]["labels"]["role"] = "active"  # ephemeral metadata (activeMetadata)
    s["metadata"]["creationTimestamp"] = None
    spec = s["spec"]
    spec.update(
        restartPolicy="Always",
        dnsPolicy="ClusterFirst",
        schedulerName="default-scheduler",
        securityContext={},
        terminationGracePeriodSeconds=30,
        affinity={
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 1,
                        "podAffinityTerm": {
                            "labelSelector": {
                                "matchExpressions": [
                                    {"key": "rollouts-pod-template-hash", "operator": "In", "values": ["old"]}
                                ]
                            },
                            "topologyKey": "kubernetes.io/hostname",
                        },
                    }
                ]
            }
        },
    )
    c = spec["containers"][0]
    c.update(
        imagePullPolicy="IfNotPresent",
        terminationMessagePath="/dev/termination-log",
        terminationMessagePolicy="File",
        resources={},
    )
    c["ports"][0]["protocol"] = "TCP"
    c["readinessProbe"].update(timeoutSeconds=1, successThreshold=1, failureThreshold=3)
    c["readinessProbe"]["httpGet"]["scheme"] = "HTTP"
    return s


def test_templates_equal_ignores_what_controllers_and_the_api_server_add() -> None:
    t = _template()
    stored = _as_stored_by_kubernetes(t, "abc")
    assert templates_equal(stored, t, ignore_labels=["role"])
    assert not templates_equal(stored, t)  # the ephemeral label counts unless declared
    changed = copy.deepcopy(t)
    changed["spec"]["containers"][0]["image"] = "ghcr.io/gbaeke/super:9"
    assert not templates_equal(stored, changed, ignore_labels=["role"])
    always = copy.deepcopy(stored)
    always["spec"]["containers"][0]["imagePullPolicy"] = "Always"  # not the default for a tagged image
    assert not templates_equal(always, t, ignore_labels=["role"])


def test_taking_over_from_argo_redeploys_nothing() -> None:
    objs = manifest({"spec": {"strategy": {"blueGreen": {"activeMetadata": {"labels": {"role": "active"}}}}}})
    sim = SimCluster()
    rollout = next(d for d in objs if d["kind"] == "Rollout")
    sim.apply_objects(objs)
    assert sim.rollout is not None
    uid = sim.rollout["metadata"]["uid"]
    argo_hash = "6d4f8b9c7f"  # Argo's own hash: not what we would compute
    name = f"super-hello-{argo_hash}"
    stored = _as_stored_by_kubernetes(rollout["spec"]["template"], argo_hash)
    sim.replicasets[name] = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": "my-app",
            "uid": "argo-rs-uid",
            "creationTimestamp": "2025-12-31T00:00:00Z",
            "labels": {"app": "super-hello", "rollouts-pod-template-hash": argo_hash},
            "annotations": {
                "rollout.argoproj.io/revision": "4",
                "rollout.argoproj.io/desired-replicas": "3",
                "rollout.argoproj.io/ephemeral-metadata": '{"labels":{"role":"active"}}',
            },
            "ownerReferences": [
                {
                    "apiVersion": "argoproj.io/v1alpha1",
                    "kind": "Rollout",
                    "name": "super-hello",
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "super-hello", "rollouts-pod-template-hash": argo_hash}},
            "template": stored,
        },
        "status": {},
    }
    for svc in sim.services.values():
        svc["spec"]["selector"]["rollouts-pod-template-hash"] = argo_hash
        svc["metadata"]["annotations"] = {"argo-rollouts.argoproj.io/managed-by-rollouts": "super-hello"}
    sim.rollout["metadata"]["annotations"] = {"rollout.argoproj.io/revision": "4"}
    sim.rollout["status"] = {
        "stableRS": argo_hash,
        "currentPodHash": argo_hash,
        "blueGreen": {"activeSelector": argo_hash, "previewSelector": argo_hash},
    }
    sim.settle()
    writes = [a for p in sim.plans for a in p.actions if not isinstance(a, EmitEvent)]
    assert not any(isinstance(a, CreateReplicaSet | SwitchService) for a in writes), writes
    assert writes == []
    st = sim.rollout["status"]
    assert st["currentPodHash"] == argo_hash and st["stableRS"] == argo_hash
    assert st["phase"] == "Healthy"
    assert list(sim.replicasets) == [name]
    again = plan(Rollout.from_wire(sim.rollout), sim.observed(), sim.now)
    assert again.actions == ()
