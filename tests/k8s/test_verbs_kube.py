"""Every user verb through the CLI's Kubernetes backend against a real API server: the same
Rollout afterwards, or the same refusal, as every client of the local runtime
(tests/web/test_verbs_every_client.py, from the same cases in harness/verbcases.py).

The expected Rollout is the one read back after seeding with the verb's patches merged into it,
so what the API server defaults does not matter; what does is that each patch reaches the right
place (a status patch sent to the object itself would be dropped by the API server)."""

from __future__ import annotations

from datetime import UTC, datetime

import kube_helpers
import pytest
from lightkube.types import PatchType

from harness import verbcases
from harness.k8s_cluster import ControlPlane
from harness.verbcases import CASES, NAME
from pyrollouts.cli.client import CliError
from pyrollouts.cli.kube_backend import KubeBackend
from pyrollouts.model.timefmt import parse_time
from pyrollouts.model.useractions import apply_merge_patch
from pyrollouts.runtimes.kubernetes.resources import RESOURCES
from pyrollouts.service import verbs

_crds = pytest.fixture(name="crds")(kube_helpers.crds_fixture)


def _seed(backend: KubeBackend, ns: str, case: verbcases.Case) -> verbcases.Obj:
    """The case's Rollout (status through the status subresource) and its two ReplicaSets."""
    ro = verbcases.rollout(ns, paused=case.paused)
    res = RESOURCES["Rollout"]
    backend.client.create(res({k: v for k, v in ro.items() if k != "status"}), namespace=ns)
    backend.client.patch(res.Status, NAME, {"status": ro["status"]}, namespace=ns, patch_type=PatchType.MERGE)
    stored = backend.get("rollout", ns, NAME)
    for rev in (1, 2):
        backend.client.create(RESOURCES["ReplicaSet"](verbcases.replicaset(ns, stored, rev)), namespace=ns)
    return stored


def test_every_verb_through_the_kube_backend(control_plane: ControlPlane, crds: None) -> None:
    backend = KubeBackend(str(control_plane.kubeconfig))
    assert {c.verb for c in CASES} == set(verbs.VERBS)
    made: list[str] = []
    try:
        for case in CASES:
            ns = control_plane.create_namespace("verbs")
            made.append(ns)
            before = _seed(backend, ns, case)
            if case.error is not None:
                _, message = case.error
                with pytest.raises(CliError) as refused:
                    backend.action(ns, NAME, case.verb, dict(case.args))
                assert refused.value.message == message, case.id
                continue
            started = datetime.now(UTC).replace(microsecond=0)
            done = backend.action(ns, NAME, case.verb, dict(case.args))
            after = backend.get("rollout", ns, NAME)
            rss = backend.list("replicaset", ns)
            plan = verbs.plan(case.verb, before, rss, case.args, verbcases.NOW)
            assert done["message"] == plan.message, case.id
            if case.verb == "restart":  # the backend's clock is the real one
                restart_at = parse_time(after["spec"].get("restartAt"))
                assert restart_at is not None and restart_at >= started, after["spec"]
                after["spec"]["restartAt"] = before_restart = plan.patches[0].body["spec"]["restartAt"]
                assert before_restart == "2026-01-02T03:04:05Z"
            expected = before
            for p in plan.patches:
                body = p.body if p.subresource is None else {"status": p.body["status"]}
                expected = apply_merge_patch(expected, body)
            assert verbcases.outcome(after) == verbcases.outcome(expected), case.id
            assert verbcases.outcome(after) != verbcases.outcome(before), f"{case.id} changed nothing"
    finally:
        for ns in made:
            control_plane.delete_namespace(ns)
