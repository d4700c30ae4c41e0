"""Smoke tests of the control plane itself: what the Kubernetes runtime's tests rely on."""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import subprocess
import time
from typing import Any

import pytest
from lightkube import ApiError, Client, KubeConfig
from lightkube.codecs import from_dict
from lightkube.resources.apps_v1 import Deployment, ReplicaSet
from lightkube.resources.core_v1 import ConfigMap, Namespace, Pod
from lightkube.resources.discovery_v1 import EndpointSlice

from harness.k8s_cluster import ControlPlane, tool_path, tool_versions
from harness.kwok_stages import (
    ANNOTATION_CRASH,
    ANNOTATION_READY,
    ANNOTATION_READY_AFTER,
)
from harness.support import wait_until

pytestmark = pytest.mark.k8s

IMAGE = "example.invalid/app:1"  # never pulled: kwok runs no containers


def _pod(name: str, labels: dict[str, str], annotations: dict[str, str] | None = None) -> Any:
    return from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": labels, "annotations": annotations or {}},
            "spec": {"containers": [{"name": "app", "image": IMAGE}]},
        }
    )


def _deployment(name: str, replicas: int) -> Any:
    labels = {"app": name}
    return from_dict(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "app", "image": IMAGE}]},
                },
            },
        }
    )


def _is_ready(pod: Any) -> bool:
    conditions = (pod.status and pod.status.conditions) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _gone(check: Any) -> bool:
    try:
        check()
    except ApiError as exc:
        if exc.status.code == 404:
            return True
        raise
    return False


def test_version_is_the_pinned_one(control_plane: ControlPlane) -> None:
    version = control_plane.api.get("/version")
    assert version["gitVersion"] == tool_versions()["kube-apiserver"]


def test_deployment_gets_three_running_ready_pods(kube: Client) -> None:
    kube.create(_deployment("web", 3))

    def three_ready() -> bool:
        pods = list(kube.list(Pod, labels={"app": "web"}))
        return len(pods) == 3 and all(p.status.phase == "Running" and _is_ready(p) for p in pods)

    wait_until(three_ready, 120, "3 Running and Ready pods of Deployment web")
    assert {p.spec.nodeName for p in kube.list(Pod, labels={"app": "web"})} <= {
        f"kwok-node-{i}" for i in range(3)
    }
    wait_until(
        lambda: kube.get(Deployment, "web").status.readyReplicas == 3,
        120,
        "Deployment web to report 3 ready replicas",
    )


def test_pod_annotated_never_ready_stays_unready(kube: Client) -> None:
    kube.create(_pod("stuck", {"app": "stuck"}, {ANNOTATION_READY: "never"}))
    wait_until(lambda: kube.get(Pod, "stuck").status.phase == "Running", 120, "pod stuck Running")
    # Long enough for kwok to have acted on it several times over.
    for _ in range(6):
        pod = kube.get(Pod, "stuck")
        assert pod.status.phase == "Running"
        assert not _is_ready(pod)
        time.sleep(0.5)


def test_pod_ready_after_delay(kube: Client) -> None:
    kube.create(_pod("slow", {"app": "slow"}, {ANNOTATION_READY_AFTER: "3s"}))
    wait_until(lambda: kube.get(Pod, "slow").status.phase == "Running", 120, "pod slow Running")
    running_at = time.monotonic()
    assert not _is_ready(kube.get(Pod, "slow"))
    wait_until(lambda: _is_ready(kube.get(Pod, "slow")), 120, "pod slow Ready after its delay")
    assert time.monotonic() - running_at >= 2.0


def test_pod_annotated_crash_is_in_crash_loop(kube: Client) -> None:
    kube.create(_pod("crashy", {"app": "crashy"}, {ANNOTATION_CRASH: "true"}))

    def crashing() -> bool:
        statuses = kube.get(Pod, "crashy").status.containerStatuses or []
        return any(s.state.waiting and s.state.waiting.reason == "CrashLoopBackOff" for s in statuses)

    wait_until(crashing, 120, "pod crashy in CrashLoopBackOff")
    pod = kube.get(Pod, "crashy")
    assert not _is_ready(pod)
    assert pod.status.containerStatuses[0].restartCount >= 1


def test_service_gets_endpointslices_with_the_ready_pods(kube: Client) -> None:
    labels = {"app": "svc"}
    kube.create(_pod("ready-1", labels))
    kube.create(_pod("ready-2", labels))
    kube.create(_pod("unready", labels, {ANNOTATION_READY: "never"}))
    kube.create(
        from_dict(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "svc"},
                "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
            }
        )
    )

    def endpoints() -> dict[str, bool]:
        found: dict[str, bool] = {}
        for eps in kube.list(EndpointSlice, labels={"kubernetes.io/service-name": "svc"}):
            for ep in eps.endpoints or []:
                found[ep.targetRef.name] = bool(ep.conditions.ready)
        return found

    wait_until(
        lambda: endpoints() == {"ready-1": True, "ready-2": True, "unready": False},
        120,
        "EndpointSlices of svc listing ready-1 and ready-2 as ready, unready as not ready",
    )
    ips = {kube.get(Pod, n).status.podIP for n in ("ready-1", "ready-2")}
    ready_addresses = {
        address
        for eps in kube.list(EndpointSlice, labels={"kubernetes.io/service-name": "svc"})
        for ep in eps.endpoints or []
        if ep.conditions.ready
        for address in ep.addresses
    }
    assert ready_addresses == ips


def _kubectl_as(cp: ControlPlane, token: str, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    kubectl = str(tool_path("kubectl"))
    ca = cp.root / "pki" / "ca.crt"
    return subprocess.run(
        [
            kubectl,
            f"--server={cp.server}",
            f"--certificate-authority={ca}",
            f"--token={token}",
            "--kubeconfig=/dev/null",
            "-n",
            namespace,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_service_account_rbac(control_plane: ControlPlane, kube: Client, namespace: str) -> None:
    api = control_plane.api
    for name in ("nobody", "reader"):
        api.create(f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": name}})
    kube.create(
        from_dict(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "pod-reader"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
            }
        )
    )
    kube.create(
        from_dict(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "reader-reads-pods"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
            }
        )
    )

    # A bound token from the TokenRequest API: signed with the apiserver's signing key.
    def token_for(sa: str) -> str:
        created = api.create(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{sa}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 600},
            },
        )
        return str(created["status"]["token"])

    denied = _kubectl_as(control_plane, token_for("nobody"), namespace, "get", "pods")
    assert denied.returncode != 0
    assert "Forbidden" in denied.stderr, denied.stderr
    status, body = _raw_as(control_plane, token_for("nobody"), f"/api/v1/namespaces/{namespace}/pods")
    assert status == 403, body

    allowed = _kubectl_as(control_plane, token_for("reader"), namespace, "get", "pods", "-o", "json")
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["kind"] == "List"
    # The Role grants reading pods only.
    assert _kubectl_as(control_plane, token_for("reader"), namespace, "get", "configmaps").returncode != 0

    # A legacy token Secret, filled in by kube-controller-manager with its service-account key.
    kube.create(
        from_dict(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "kubernetes.io/service-account-token",
                "metadata": {
                    "name": "reader-token",
                    "annotations": {"kubernetes.io/service-account.name": "reader"},
                },
            }
        )
    )

    def legacy_token() -> str | None:
        data = api.get(f"/api/v1/namespaces/{namespace}/secrets/reader-token").get("data") or {}
        return data.get("token")

    wait_until(lambda: legacy_token() is not None, 120, "the token controller to fill Secret reader-token")
    token = base64.b64decode(str(legacy_token())).decode()
    assert _kubectl_as(control_plane, token, namespace, "get", "pods").returncode == 0


def _raw_as(cp: ControlPlane, token: str, path: str) -> tuple[int, str]:
    context = ssl.create_default_context(cafile=str(cp.root / "pki" / "ca.crt"))
    conn = http.client.HTTPSConnection(
        "127.0.0.1", int(cp.server.rsplit(":", 1)[1]), context=context, timeout=10
    )
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def test_deleting_an_owner_garbage_collects_what_it_owns(kube: Client) -> None:
    kube.create(_deployment("owned", 2))
    wait_until(
        lambda: len([p for p in kube.list(Pod, labels={"app": "owned"}) if _is_ready(p)]) == 2,
        120,
        "2 ready pods of Deployment owned",
    )
    replicasets = list(kube.list(ReplicaSet, labels={"app": "owned"}))
    assert len(replicasets) == 1

    owner = kube.create(from_dict({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}}))
    kube.create(
        from_dict(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": "dependent",
                    "ownerReferences": [
                        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
                    ],
                },
            }
        )
    )

    kube.delete(Deployment, "owned")
    kube.delete(ConfigMap, "owner")
    wait_until(
        lambda: _gone(lambda: kube.get(ReplicaSet, replicasets[0].metadata.name)),
        120,
        "the ReplicaSet of the deleted Deployment to be collected",
    )
    wait_until(
        lambda: not list(kube.list(Pod, labels={"app": "owned"})),
        120,
        "the pods of the deleted Deployment to be collected",
    )
    wait_until(
        lambda: _gone(lambda: kube.get(ConfigMap, "dependent")),
        120,
        "ConfigMap dependent to be collected with its owner",
    )


def test_deleted_namespace_goes_away(control_plane: ControlPlane) -> None:
    name = control_plane.create_namespace(prefix="doomed")
    client = Client(KubeConfig.from_file(str(control_plane.kubeconfig)), namespace=name)
    try:
        client.create(_pod("inside", {"app": "inside"}))
        client.create(from_dict({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}))
        wait_until(lambda: _is_ready(client.get(Pod, "inside")), 120, "pod inside Ready")
        client.delete(Namespace, name)
        wait_until(lambda: _gone(lambda: client.get(Namespace, name)), 120, f"namespace {name} to go away")
    finally:
        client.close()


def test_audit_log_records_request_metadata(
    control_plane: ControlPlane, kube: Client, namespace: str
) -> None:
    kube.create(from_dict({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "audited"}}))

    def audited() -> bool:
        with control_plane.audit_log.open() as f:
            for line in f:
                event = json.loads(line)
                ref = event.get("objectRef") or {}
                if (
                    event["verb"] == "create"
                    and ref.get("resource") == "configmaps"
                    and ref.get("namespace") == namespace
                    and event["stage"] == "ResponseComplete"
                ):
                    assert event["level"] == "Metadata"
                    assert event["user"]["username"] == "pyrollouts-admin"
                    return True
        return False

    wait_until(audited, 120, "an audit event for the ConfigMap create")
