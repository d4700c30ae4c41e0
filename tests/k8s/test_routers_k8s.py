"""The Kubernetes traffic routers on the real API server: ``apply_split`` writes an HTTPRoute of the
real Gateway API CRDs (sigs.k8s.io/gateway-api, fetched by `make tools`) and an NGINX canary
Ingress, read back after each split. The routers run as a ServiceAccount holding exactly the Helm
chart's controller rules (rendered by helm, namespaced mode): no request is refused, and from the
audit log, the calls they made on HTTPRoutes and Ingresses are the chart's grants for them."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import kube_helpers
import pytest
import yaml
from kube_helpers import REPO, wait_for

from harness.k8s_cluster import ControlPlane, gateway_api_crds
from pyrollouts.controller.routers import TrafficRouterError, apply_split
from pyrollouts.model.cluster import NotFound
from pyrollouts.model.traffic import HeaderMatch, HeaderRoute, StringMatch, TrafficSplit
from pyrollouts.runtimes.kubernetes.cluster import KubeCluster, make_client

_crds = pytest.fixture(name="crds")(kube_helpers.crds_fixture)

T = TypeVar("T")
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
_gateway_done: set[str] = set()


@pytest.fixture(name="gateway_crds")
def gateway_crds_fixture(control_plane: ControlPlane) -> None:
    """The Gateway API's standard CRDs, created once per control plane and Established."""
    if str(control_plane.kubeconfig) in _gateway_done:
        return
    names = []
    for path in gateway_api_crds():
        crd = yaml.safe_load(path.read_text())
        status, body = control_plane.api.request("POST", CRDS, crd, timeout=60)
        assert status in (201, 409), (path.name, status, body)
        names.append(crd["metadata"]["name"])

    def established() -> bool:
        for name in names:
            status, body = control_plane.api.request("GET", f"{CRDS}/{name}")
            conds = {c["type"]: c["status"] for c in (body.get("status") or {}).get("conditions") or []}
            if status != 200 or conds.get("Established") != "True":
                return False
        return True

    wait_for(established, 60, "the Gateway API CRDs to be Established")
    _gateway_done.add(str(control_plane.kubeconfig))


def _chart_rules(tmp_path: Path) -> list[dict[str, Any]]:
    """The controller's rules as the chart renders them (namespaced mode: a Role)."""
    helpers = kube_helpers._deploy_helpers()
    text = helpers.helm(
        tmp_path, "template", "rel", str(helpers.CHART), "--namespace", "x", "--set", "namespaced=true"
    ).stdout
    roles = [
        d
        for d in yaml.safe_load_all(text)
        if d and d["kind"] == "Role" and "leader" not in d["metadata"]["name"]
    ]
    assert len(roles) == 1, [r["metadata"]["name"] for r in roles]
    return list(roles[0]["rules"])


@dataclass
class Identity:
    """A ServiceAccount with the chart's controller rules in the test's namespace."""

    kubeconfig: Path
    user: str
    rules: list[dict[str, Any]]


@pytest.fixture(name="controller_identity")
def controller_identity_fixture(control_plane: ControlPlane, namespace: str, tmp_path: Path) -> Identity:
    rules = _chart_rules(tmp_path)
    api = control_plane.api
    base = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
    for path, obj in (
        (f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": "controller"}}),
        (f"{base}/roles", {"metadata": {"name": "controller"}, "rules": rules}),
        (
            f"{base}/rolebindings",
            {
                "metadata": {"name": "controller"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "controller"},
                "subjects": [{"kind": "ServiceAccount", "name": "controller", "namespace": namespace}],
            },
        ),
    ):
        status, body = api.request("POST", path, obj)
        assert status == 201, (path, body)
    kubeconfig = tmp_path / "controller.kubeconfig"
    user = kube_helpers.token_kubeconfig(control_plane, namespace, "controller", kubeconfig, namespace)
    return Identity(kubeconfig, user, rules)


def _check_grants(cp: ControlPlane, who: Identity, resource: str) -> None:
    """No request refused; the calls on ``resource`` are exactly the chart's grants on it."""
    assert not kube_helpers.refused_requests(cp, who.user)
    used = {verb for verb, res in kube_helpers.used_pairs(cp, who.user) if res == resource}
    group, _, plural = resource.partition("/")
    granted = {
        verb
        for rule in who.rules
        if group in rule["apiGroups"] and plural in rule["resources"]
        for verb in rule["verbs"]
    }
    assert used == granted, f"{resource}: used {sorted(used)}, the chart grants {sorted(granted)}"


def run(aw: Awaitable[T]) -> T:
    return asyncio.run(aw)  # type: ignore[arg-type]


Body = Callable[[KubeCluster, KubeCluster], Awaitable[None]]


async def _with_clusters(cp: ControlPlane, namespace: str, who: Identity, body: Body) -> None:
    """``body(admin, controller)``: the test's own reads and writes go through ``admin``, the
    routers' through ``controller`` (the chart's rules)."""
    admin = KubeCluster(make_client(str(cp.kubeconfig)), namespace=namespace, cache=False)
    controller = KubeCluster(make_client(str(who.kubeconfig)), namespace=namespace, cache=False)
    try:
        await body(admin, controller)
    finally:
        await admin.close()
        await controller.close()


def _rollout(cp: ControlPlane, namespace: str) -> dict[str, Any]:
    """A Rollout to own the canary Ingress (no controller runs: it only has to exist)."""
    docs = [d for d in yaml.safe_load_all((REPO / "examples" / "super-hello.yaml").read_text()) if d]
    ro = copy.deepcopy(next(d for d in docs if d["kind"] == "Rollout"))
    ro["metadata"]["namespace"] = namespace
    status, body = cp.api.request("POST", f"/apis/argoproj.io/v1alpha1/namespaces/{namespace}/rollouts", ro)
    assert status == 201, body
    return dict(body)


def _split(
    weight: int, routing: dict[str, Any], ro: dict[str, Any] | None = None, routes: Any = ()
) -> TrafficSplit:
    return TrafficSplit(
        "web-stable",
        "web-canary",
        "s1",
        "c1",
        canary_weight=weight,
        header_routes=tuple(routes),
        traffic_routing=routing,
        rollout_name=(ro or {}).get("metadata", {}).get("name", ""),
        rollout_uid=(ro or {}).get("metadata", {}).get("uid", ""),
    )


def _backend(name: str) -> dict[str, Any]:
    return {"name": name, "port": 80}


HTTPROUTE = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "web"},
    "spec": {
        "parentRefs": [{"name": "gateway"}],
        "rules": [
            {"backendRefs": [_backend("web-stable"), _backend("web-canary")]},
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/other"}}],
                "backendRefs": [_backend("other")],
            },
        ],
    },
}
HEADER = HeaderRoute("canary-header", (HeaderMatch("x-canary", StringMatch(exact="yes")),))


def test_gateway_api_httproute(
    control_plane: ControlPlane, namespace: str, gateway_crds: None, controller_identity: Identity
) -> None:
    routing = {
        "plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "web", "namespace": namespace}},
        "managedRoutes": [{"name": "canary-header"}],
    }

    async def body(admin: KubeCluster, cluster: KubeCluster) -> None:
        with pytest.raises(TrafficRouterError, match=f"HTTPRoute {namespace}/web not found"):
            await apply_split(cluster, namespace, _split(20, routing))
        route = copy.deepcopy(HTTPROUTE)
        route["metadata"]["namespace"] = namespace
        await admin.create("HTTPRoute", route)
        other = (await admin.get("HTTPRoute", namespace, "web"))["spec"]["rules"][1]

        async def read() -> dict[str, Any]:
            return await admin.get("HTTPRoute", namespace, "web")

        def weights(obj: dict[str, Any]) -> list[int]:
            return [r["weight"] for r in obj["spec"]["rules"][0]["backendRefs"]]

        for w in (0, 20, 100):
            await apply_split(cluster, namespace, _split(w, routing))
            obj = await read()
            assert weights(obj) == [100 - w, w]
            assert obj["spec"]["rules"][1] == other  # the other Service's rule is untouched
            assert (obj["metadata"].get("labels") or {}).get("rollouts.argoproj.io/gatewayapi-canary") == (
                "in-progress" if w else None
            )

        await apply_split(cluster, namespace, _split(20, routing, routes=[HEADER]))
        obj = await read()
        assert weights(obj) == [80, 20]
        rules = obj["spec"]["rules"]
        assert len(rules) == 3 and rules[2]["name"] == "canary-header"
        assert [b["name"] for b in rules[2]["backendRefs"]] == ["web-canary"]
        assert rules[2]["matches"][0]["headers"] == [{"name": "x-canary", "type": "Exact", "value": "yes"}]
        rv = obj["metadata"]["resourceVersion"]
        await apply_split(cluster, namespace, _split(20, routing, routes=[HEADER]))
        assert (await read())["metadata"]["resourceVersion"] == rv  # already there: no write

        await apply_split(cluster, namespace, _split(0, routing))  # abort: routes gone, weight 0
        obj = await read()
        assert weights(obj) == [100, 0] and len(obj["spec"]["rules"]) == 2

        bad = {"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "web"}}}
        with pytest.raises(TrafficRouterError, match="web: no rule has a backendRef to the Service nope"):
            await apply_split(
                cluster, namespace, TrafficSplit("nope", "web-canary", "", "", 10, traffic_routing=bad)
            )

    run(_with_clusters(control_plane, namespace, controller_identity, body))
    _check_grants(control_plane, controller_identity, "gateway.networking.k8s.io/httproutes")


def _stable_ingress(namespace: str) -> dict[str, Any]:
    def path(service: str, prefix: str) -> dict[str, Any]:
        return {
            "path": prefix,
            "pathType": "Prefix",
            "backend": {"service": {"name": service, "port": {"number": 80}}},
        }

    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "web-ing",
            "namespace": namespace,
            "annotations": {"kubernetes.io/ingress.class": "nginx"},
        },
        "spec": {
            "rules": [
                {"host": "web.example", "http": {"paths": [path("web-stable", "/")]}},
                {"host": "other.example", "http": {"paths": [path("other", "/")]}},
            ]
        },
    }


def test_nginx_canary_ingress(
    control_plane: ControlPlane, namespace: str, crds: None, controller_identity: Identity
) -> None:
    ro = _rollout(control_plane, namespace)
    routing = {
        "nginx": {
            "stableIngress": "web-ing",
            "additionalIngressAnnotations": {"canary-by-header": "X-Canary"},
        }
    }
    prefix = "nginx.ingress.kubernetes.io"
    canary = f"{ro['metadata']['name']}-web-ing-canary"

    async def body(admin: KubeCluster, cluster: KubeCluster) -> None:
        with pytest.raises(TrafficRouterError, match=f"Ingress {namespace}/web-ing not found"):
            await apply_split(cluster, namespace, _split(20, routing, ro))
        await admin.create("Ingress", _stable_ingress(namespace))

        await apply_split(cluster, namespace, _split(20, routing, ro))
        obj = await admin.get("Ingress", namespace, canary)
        ann = obj["metadata"]["annotations"]
        assert ann[f"{prefix}/canary"] == "true" and ann[f"{prefix}/canary-weight"] == "20"
        assert ann[f"{prefix}/canary-by-header"] == "X-Canary"
        assert ann["kubernetes.io/ingress.class"] == "nginx"
        assert [r["host"] for r in obj["spec"]["rules"]] == ["web.example"]
        assert obj["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "web-canary"
        owner = obj["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["uid"], owner["controller"]) == ("Rollout", ro["metadata"]["uid"], True)

        rv = obj["metadata"]["resourceVersion"]
        await apply_split(cluster, namespace, _split(20, routing, ro))
        assert (await admin.get("Ingress", namespace, canary))["metadata"][
            "resourceVersion"
        ] == rv  # no write
        await apply_split(cluster, namespace, _split(50, routing, ro))
        ann = (await admin.get("Ingress", namespace, canary))["metadata"]["annotations"]
        assert ann[f"{prefix}/canary-weight"] == "50"
        await apply_split(cluster, namespace, _split(0, routing, ro))  # abort
        ann = (await admin.get("Ingress", namespace, canary))["metadata"]["annotations"]
        assert ann[f"{prefix}/canary-weight"] == "0"
        assert ann[f"{prefix}/canary-by-header"] == "X-Canary"

        # Not ours: never written.
        stranger = _split(10, routing, {"metadata": {"name": ro["metadata"]["name"], "uid": "another"}})
        with pytest.raises(TrafficRouterError, match="not controlled by Rollout"):
            await apply_split(cluster, namespace, stranger)

        # Owned by the Rollout: the garbage collector deletes it with the Rollout.
        await admin.delete("Rollout", namespace, ro["metadata"]["name"])

        async def gone() -> bool:
            try:
                await admin.get("Ingress", namespace, canary)
            except NotFound:
                return True
            return False

        for _ in range(600):
            if await gone():
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"the canary Ingress {canary} outlived its Rollout by 60 s")

    run(_with_clusters(control_plane, namespace, controller_identity, body))
    _check_grants(control_plane, controller_identity, "networking.k8s.io/ingresses")
