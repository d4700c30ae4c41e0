"""Setup shared by the Kubernetes runtime's end-to-end tests (test_kube_runtime.py, test_collision_k8s.py).

``manifest()`` is the seed's corrected manifest with short timings. ``RuntimeEnv`` is one test's
world: the control plane, its fresh namespace, an admin client and the controller subprocesses it
started, with the reads and waits those tests repeat (the Rollout's status, Healthy on a revision,
a phase, the Services' hash selectors, the ReplicaSet creates in the audit log). A test module
registers the fixture with ``pytest.fixture(name="rt")(runtime_support.runtime_env_fixture)``, next
to kube_helpers' ``crds``, ``client`` and ``controllers`` fixtures, which it builds on.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kube_helpers
from kube_helpers import (
    ControllerProc,
    apply,
    audit_writes,
    by_revision,
    get,
    rs_hash,
    wait_for,
)
from lightkube import Client

from harness.k8s_cluster import ControlPlane

Obj = dict[str, Any]

NAME = "super-hello"
HASH = "rollouts-pod-template-hash"
ACTIVE = "super-hello-prod"
PREVIEW = "super-hello-preview"
#: The user the admin kubeconfig logs in as, in the audit log (the tests and their controllers).
ADMIN_USER = "pyrollouts-admin"


def manifest(scale_down_delay: int = 2, **bg: Any) -> list[Obj]:
    """The seed's objects (kube_helpers.seed_objects) with a short scale-down delay so the test need
    not wait 30 s; ``bg`` overrides strategy.blueGreen fields."""
    return kube_helpers.seed_objects(scaleDownDelaySeconds=scale_down_delay, **bg)


def rollout_of(objs: list[Obj]) -> Obj:
    """The Rollout among the manifest's objects."""
    return next(o for o in objs if o["kind"] == "Rollout")


def with_env(objs: list[Obj], value: str) -> list[Obj]:
    """A copy of the objects whose Rollout sets WELCOME to ``value`` (a new revision)."""
    objs = copy.deepcopy(objs)
    c = rollout_of(objs)["spec"]["template"]["spec"]["containers"][0]
    c["env"] = [{"name": "WELCOME", "value": value}]
    return objs


@dataclass
class RuntimeEnv:
    """One test's namespace on the control plane, its admin client and its controllers."""

    cp: ControlPlane
    ns: str
    client: Client
    controllers: list[ControllerProc]
    tmp_path: Path

    def start_controller(self, name: str = "ctrl", **kw: Any) -> ControllerProc:
        """Start a `rollouts controller` for the namespace (admin kubeconfig unless ``kubeconfig=``),
        logging to ``<tmp_path>/<name>.log``; waits for /readyz. Stopped after the test."""
        p = ControllerProc(
            kw.pop("kubeconfig", self.cp.kubeconfig),
            self.ns,
            self.tmp_path / f"{name}.log",
            identity_name=name,
            **kw,
        )
        self.controllers.append(p)
        return p.start()

    def apply_all(self, objs: list[Obj]) -> None:
        """Server-side apply the objects, Services first (the Rollout's first reconcile finds them)."""
        for o in sorted(objs, key=lambda o: 0 if o["kind"] == "Service" else 1):
            apply(self.client, o, self.ns)

    def deploy(self, objs: list[Obj], **controller_kw: Any) -> ControllerProc:
        """Apply the objects, then start a controller for them."""
        self.apply_all(objs)
        return self.start_controller(**controller_kw)

    def rollout(self) -> Obj:
        """The Rollout as the API server holds it now."""
        return get(self.client, "Rollout", NAME, self.ns)

    def status(self) -> Obj:
        """The Rollout's status ({} before the controller wrote one)."""
        return self.rollout().get("status") or {}

    def phase(self) -> str | None:
        """The Rollout's status.phase."""
        return self.status().get("phase")

    def svc_hash(self, name: str) -> str | None:
        """The pod-template hash a Service selects (None before the controller set one)."""
        return (get(self.client, "Service", name, self.ns)["spec"].get("selector") or {}).get(HASH)

    def revisions(self) -> dict[int, Obj]:
        """The Rollout's own ReplicaSets by revision."""
        return by_revision(self.client, self.rollout())

    def healthy_on(self, rev: int) -> bool:
        """Healthy, with the status and both Services on the ReplicaSet of revision ``rev``."""
        r = self.rollout()
        st = r.get("status") or {}
        rss = by_revision(self.client, r)
        if rev not in rss:
            return False
        h = rs_hash(rss[rev])
        bg = st.get("blueGreen") or {}
        return (
            st.get("phase") == "Healthy"
            and bg.get("activeSelector") == h
            and bg.get("previewSelector") == h
            and st.get("stableRS") == h
            and self.svc_hash(ACTIVE) == h
            and self.svc_hash(PREVIEW) == h
        )

    def wait_healthy(self, rev: int, timeout: float, what: str) -> None:
        """Wait until ``healthy_on(rev)``; AssertionError naming ``what`` on timeout."""
        wait_for(lambda: self.healthy_on(rev), timeout, what)

    def wait_phase(self, phase: str, timeout: float, what: str) -> None:
        """Wait until status.phase is ``phase``; AssertionError naming ``what`` on timeout."""
        wait_for(lambda: self.phase() == phase, timeout, what)

    def replicaset_writes(self, *verbs: str) -> list[Obj]:
        """The audit log's writes of ``verbs`` on ReplicaSets in the namespace by the admin user."""
        return [
            e
            for e in audit_writes(self.cp, ADMIN_USER, self.ns)
            if e.get("verb") in verbs and (e.get("objectRef") or {}).get("resource") == "replicasets"
        ]


def runtime_env_fixture(
    control_plane: ControlPlane,
    namespace: str,
    client: Client,
    controllers: list[ControllerProc],
    tmp_path: Path,
) -> RuntimeEnv:
    """The ``rt`` fixture: a RuntimeEnv over the test's namespace, client and controllers."""
    return RuntimeEnv(control_plane, namespace, client, controllers, tmp_path)
