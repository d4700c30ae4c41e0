"""A pod-template-hash collision on the real control plane: a ReplicaSet that the Rollout does not
own already holds the name ``<rollout>-<hash>`` its new ReplicaSet would get.

The controller (a `rollouts controller` subprocess) must step around it as Argo does: bump
status.collisionCount to 1, create its ReplicaSet under ``pod_template_hash(template, 1)``, turn
Healthy with both Services on that hash, and never write to the ReplicaSet holding the name
(checked by its resourceVersion and in the API server's audit log).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import kube_helpers
import pytest
import runtime_support
from kube_helpers import get, owned_replicasets, rs_hash, wait_for
from runtime_support import ACTIVE, HASH, NAME, PREVIEW, RuntimeEnv, manifest, rollout_of

from pyrollouts.model.hash import pod_template_hash
from pyrollouts.runtimes.kubernetes.resources import RESOURCES

Obj = dict[str, Any]

_crds = pytest.fixture(name="crds")(kube_helpers.crds_fixture)
_client = pytest.fixture(name="client")(kube_helpers.client_fixture)
_controllers = pytest.fixture(name="controllers")(kube_helpers.controllers_fixture)
_rt = pytest.fixture(name="rt")(runtime_support.runtime_env_fixture)


def squatter(template: Obj, pod_hash: str, ns: str) -> Obj:
    """A running ReplicaSet named as the Rollout's would be, with another template (WELCOME differs)
    and no ownerReference: someone else's, which only happens to hold the name."""
    template = copy.deepcopy(template)
    template["spec"]["containers"][0]["env"] = [{"name": "WELCOME", "value": "SOMEONE ELSE"}]
    template["metadata"]["labels"][HASH] = pod_hash
    labels = {"app": NAME, HASH: pod_hash}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": f"{NAME}-{pod_hash}", "namespace": ns, "labels": labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": template},
    }


def test_a_taken_replicaset_name_is_stepped_around(rt: RuntimeEnv) -> None:
    objs = manifest()
    # The Rollout and its Services first, with no controller running: nothing acts on the Rollout
    # before the name its ReplicaSet would get is taken.
    rt.apply_all(objs)
    template = rt.rollout()["spec"]["template"]
    # The controller hashes the template as the API server returns it. The Rollout CRD keeps the
    # template as sent (no pruning, defaulting or quantity rewriting), so the manifest's hash is
    # the controller's too: `rollouts` can name a revision's ReplicaSet from the file alone.
    assert template == rollout_of(objs)["spec"]["template"], template
    h0 = pod_template_hash(template)
    h1 = pod_template_hash(template, 1)
    assert h0 != h1

    taken = f"{NAME}-{h0}"
    rt.client.create(RESOURCES["ReplicaSet"](squatter(template, h0, rt.ns)), namespace=rt.ns)

    # Let Kubernetes' ReplicaSet controller finish its own status writes (its pod ready) so that
    # the resourceVersion recorded here changes only if someone else writes to it.
    def settled() -> Obj | None:
        rs = get(rt.client, "ReplicaSet", taken, rt.ns)
        st = rs.get("status") or {}
        current = st.get("observedGeneration") == rs["metadata"]["generation"]
        return rs if current and st.get("availableReplicas") == 1 else None

    before = wait_for(settled, 30, f"the squatting ReplicaSet {taken} running")

    ctrl = rt.start_controller()

    def waited(check: Callable[[], Any], timeout: float, what: str) -> None:
        # The controller's log and its ReplicaSet creates as they are when the wait gives up.
        try:
            wait_for(check, timeout, what)
        except AssertionError as exc:
            creates = len(rt.replicaset_writes("create")) - 1  # the squatter's is the test's
            raise AssertionError(
                f"{exc}\nReplicaSet creates by the controller: {creates}\n{ctrl.log_tail()}"
            ) from None

    waited(lambda: rt.status().get("collisionCount") == 1, 20, f"status.collisionCount 1 ({taken} is taken)")
    waited(lambda: rt.healthy_on(1), 40, "Healthy on revision 1 under the stepped-around name")

    r = rt.rollout()
    st = r["status"]
    assert st["collisionCount"] == 1, st  # bumped once, not once per reconcile
    assert st["currentPodHash"] == st["stableRS"] == h1, st
    assert st["availableReplicas"] == 3, st
    owned = owned_replicasets(rt.client, r)
    assert [rs["metadata"]["name"] for rs in owned] == [f"{NAME}-{h1}"], owned
    assert rs_hash(owned[0]) == h1
    assert (owned[0].get("status") or {}).get("availableReplicas") == 3, owned[0]
    assert rt.svc_hash(ACTIVE) == h1
    assert rt.svc_hash(PREVIEW) == h1
    # The controller saw the name taken before it tried it (the engine stepped around it; the
    # create-time fallback in controller/apply.py was not needed): the only create of that name is
    # the test's own.
    tries = [e for e in rt.replicaset_writes("create") if (e.get("objectRef") or {}).get("name") == taken]
    assert len(tries) == 1, tries

    # The ReplicaSet that held the name is exactly as it was: not adopted, scaled or annotated.
    now = get(rt.client, "ReplicaSet", taken, rt.ns)
    assert now["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], now
    assert now["spec"]["replicas"] == 1
    assert not now["metadata"].get("ownerReferences"), now["metadata"]
    assert now["metadata"].get("annotations") == before["metadata"].get("annotations")
    assert now["metadata"]["labels"] == before["metadata"]["labels"]
    assert now["spec"] == before["spec"]
    # ... and the controller did not even try to. It logs in as the admin, as the test and
    # kube-controller-manager do; the latter's ReplicaSet controller keeps the squatter's status
    # (before `before` was read), so writes are told apart by their user agent.
    touched = [
        (e["verb"], (e.get("objectRef") or {}).get("subresource"), e.get("userAgent"))
        for e in rt.replicaset_writes("update", "patch", "delete")
        if (e.get("objectRef") or {}).get("name") == taken
        and not str(e.get("userAgent", "")).startswith("kube-controller-manager/")
    ]
    assert touched == [], f"writes to {taken}: {touched}\n{ctrl.log_tail()}"
