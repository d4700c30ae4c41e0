"""A reconcile costs what its Rollout has, not what the cluster has (issue 15), on the real control
plane, counted, never timed.

Several Rollouts share a namespace. After all are Healthy, one of them is updated: the controller
(a `rollouts controller` subprocess with a ServiceAccount of its own, so the API server's audit log
tells its requests apart) reconciles it to Paused with no list call, and every request it makes
names that Rollout or one of its own objects. Then ``observe.gather`` over a ``KubeCluster`` with
synced caches reads exactly that Rollout's objects out of the caches and sends no request at all.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from pathlib import Path
from typing import Any

import kube_helpers
import pytest
from kube_helpers import ControllerProc, apply, get, merge_patch, seed_objects, wait_for

from harness.k8s_cluster import ControlPlane
from pyrollouts.controller.observe import gather
from pyrollouts.runtimes.kubernetes.cluster import CONTROLLER_CACHED_KINDS, KubeCluster, make_client

Obj = dict[str, Any]

_crds = pytest.fixture(name="crds")(kube_helpers.crds_fixture)
_client = pytest.fixture(name="client")(kube_helpers.client_fixture)
_controllers = pytest.fixture(name="controllers")(kube_helpers.controllers_fixture)

NAMES = ("app-a", "app-b", "app-c", "app-d")
UPDATED = "app-b"


def objects(name: str) -> list[Obj]:
    """The seed's Rollout and Services renamed to ``name`` (1 replica, its own selector), Services first."""
    out = []
    for obj in copy.deepcopy(seed_objects(services_first=True)):
        if obj["kind"] == "Rollout":
            obj["metadata"]["name"] = name
            obj["spec"]["replicas"] = 1
            obj["spec"]["selector"]["matchLabels"] = {"app": name}
            obj["spec"]["template"]["metadata"]["labels"] = {"app": name}
            bg = obj["spec"]["strategy"]["blueGreen"]
            bg["activeService"], bg["previewService"] = f"{name}-prod", f"{name}-preview"
        else:
            obj["metadata"]["name"] = f"{name}-{obj['metadata']['name'].rsplit('-', 1)[1]}"
            obj["spec"]["selector"] = {"app": name}
        out.append(obj)
    return out


def phase(client: Any, name: str, ns: str) -> str | None:
    return (get(client, "Rollout", name, ns).get("status") or {}).get("phase")


def audit_since(cp: ControlPlane, mark: int, user: str, ns: str) -> list[Obj]:
    """The audit events (one per request, ResponseComplete) of ``user`` in ``ns`` after line ``mark``."""
    out = []
    for line in Path(cp.audit_log).read_text(errors="replace").splitlines()[mark:]:
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if (ev.get("user") or {}).get("username") != user or ev.get("stage") != "ResponseComplete":
            continue
        if (ev.get("objectRef") or {}).get("namespace") == ns:
            out.append(ev)
    return out


def wait_quiet(cp: ControlPlane, user: str, ns: str, quiet: float = 3.0) -> int:
    """Wait until ``user`` has made no request in ``ns`` (watches aside) for ``quiet`` seconds; the
    audit log's line count then."""
    state = {"count": -1, "since": time.monotonic()}

    def check() -> int | None:
        lines = len(Path(cp.audit_log).read_text(errors="replace").splitlines())
        count = sum(1 for e in audit_since(cp, 0, user, ns) if e.get("verb") != "watch")
        if count != state["count"]:
            state["count"], state["since"] = count, time.monotonic()
            return None
        return lines if time.monotonic() - state["since"] >= quiet else None

    return int(wait_for(check, 60, f"the controller quiet for {quiet:g} s", interval=0.5))


def its_own(name: str, rollout: str) -> bool:
    """The Rollout itself, its ReplicaSets and Services (``<rollout>-...``), its Events (``<rollout>.x``)."""
    return name == rollout or name.startswith((f"{rollout}-", f"{rollout}."))


def test_a_reconcile_reads_only_its_rollout(
    control_plane: ControlPlane,
    namespace: str,
    client: Any,
    controllers: list[ControllerProc],
    tmp_path: Path,
) -> None:
    ns = namespace
    user = kube_helpers.service_account_kubeconfig(
        control_plane, client, ns, "scale-ctrl", tmp_path / "ctrl.kubeconfig"
    )
    for name in NAMES:
        for obj in objects(name):
            apply(client, obj, ns)
    ctrl = ControllerProc(tmp_path / "ctrl.kubeconfig", ns, tmp_path / "ctrl.log", identity_name="scale")
    controllers.append(ctrl.start())
    wait_for(lambda: all(phase(client, n, ns) == "Healthy" for n in NAMES), 120, "every Rollout Healthy")

    # The last Rollouts to turn Healthy are still being planned once more (the echo of their own
    # status write): start counting once the controller has been quiet for a while.
    mark = wait_quiet(control_plane, user, ns)
    env = [{"name": "WELCOME", "value": "V3"}]
    container = {"name": "super-hello", "image": "ghcr.io/gbaeke/super:1.0.2", "env": env}
    merge_patch(client, "Rollout", UPDATED, ns, {"spec": {"template": {"spec": {"containers": [container]}}}})
    wait_for(lambda: phase(client, UPDATED, ns) == "Paused", 120, f"{UPDATED} Paused")

    def settled() -> list[Obj]:
        # The status write that made it Paused is in the log once the API server answered it.
        evs = audit_since(control_plane, mark, user, ns)
        return evs if any(e.get("objectRef", {}).get("subresource") == "status" for e in evs) else []

    events = wait_for(settled, 60, "the controller's status write in the audit log")
    lists = [f"{e['verb']} {e.get('requestURI')}" for e in events if e["verb"] == "list"]
    assert not lists, f"the controller listed while reconciling one Rollout: {lists}"
    others = sorted(
        f"{e['verb']} {e['objectRef'].get('resource')}/{e['objectRef'].get('name')}"
        for e in events
        if e["objectRef"].get("name") and not its_own(e["objectRef"]["name"], UPDATED)
    )
    assert not others, f"requests about other Rollouts' objects while {UPDATED} was reconciled: {others}"
    writes = {e["objectRef"]["resource"] for e in events if e["verb"] in ("create", "patch")}
    assert {"replicasets", "rollouts"} <= writes, writes

    asyncio.run(_gather_reads_only_its_objects(control_plane, ns))


async def _gather_reads_only_its_objects(cp: ControlPlane, ns: str) -> None:
    cluster = KubeCluster(make_client(str(cp.kubeconfig)), namespace=ns, cached_kinds=CONTROLLER_CACHED_KINDS)
    await cluster.start(timeout=120)
    try:
        assert cluster.informers is not None
        informers = cluster.informers.informers
        in_cache = sum(len(inf.list(ns)) for inf in informers.values())
        rollout = await cluster.get("Rollout", ns, UPDATED)
        cluster.requests.clear()
        for inf in informers.values():
            inf.reads = 0
        observed = await gather(cluster, rollout)
        assert not cluster.requests, f"gather sent requests to the API server: {dict(cluster.requests)}"
        reads = {kind: inf.reads for kind, inf in informers.items() if inf.reads}
        # Its two ReplicaSets (stable and the update), one pod each, its two Services: nothing else.
        assert [rs.name.rpartition("-")[0] for rs in observed.replicasets] == [UPDATED, UPDATED]
        assert len(observed.pods) == 2
        assert sorted(observed.services) == [f"{UPDATED}-preview", f"{UPDATED}-prod"]
        assert observed.foreign_replicasets == ()
        assert reads == {"ReplicaSet": 2, "Pod": 2, "Service": 2}, reads
        assert sum(reads.values()) < in_cache / 3, (reads, in_cache)
    finally:
        await cluster.close()
