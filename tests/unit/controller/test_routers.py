"""The Kubernetes traffic routers' pure parts: config, HTTPRoute rules and canary Ingress builders,
and the dispatch from trafficRouting."""

from __future__ import annotations

from typing import Any

import pytest

from pyrollouts.controller.routers import (
    TrafficRouterError,
    UnsupportedRouter,
    gatewayapi,
    kubernetes_routers,
    nginx,
)
from pyrollouts.model.traffic import HeaderMatch, HeaderRoute, StringMatch, TrafficSplit

PLUGIN = {"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "web"}}}


def split(weight: int = 0, routes: tuple[HeaderRoute, ...] = (), routing: Any = None) -> TrafficSplit:
    return TrafficSplit(
        "web-stable",
        "web-canary",
        "s1",
        "c1",
        canary_weight=weight,
        header_routes=routes,
        traffic_routing=routing if routing is not None else PLUGIN,
        rollout_name="web",
        rollout_uid="uid-1",
    )


def http_rules() -> list[dict[str, Any]]:
    return [
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
            "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": []}}],
            "backendRefs": [
                {"group": "", "kind": "Service", "name": "web-stable", "port": 80, "weight": 100},
                {"group": "", "kind": "Service", "name": "web-canary", "port": 80, "weight": 0},
            ],
        },
        {"backendRefs": [{"name": "other", "port": 80, "weight": 1}]},
    ]


def header(name: str, **value: str) -> HeaderRoute:
    return HeaderRoute(name, (HeaderMatch("x-canary", StringMatch(**value)),))


def test_weights_go_to_the_canary_and_stable_refs_only() -> None:
    rules = gatewayapi.route_rules(http_rules(), split(20), use_header_routes=True)
    assert [r["weight"] for r in rules[0]["backendRefs"]] == [80, 20]
    assert rules[1] == http_rules()[1]  # another Service's rule is untouched


def test_a_route_without_the_services_is_a_clear_error() -> None:
    with pytest.raises(TrafficRouterError, match="web-stable"):
        gatewayapi.route_rules([http_rules()[1]], split(20), use_header_routes=True)


def test_header_route_adds_a_rule_to_the_canary_and_removes_it_when_gone() -> None:
    route = header("canary-header", exact="yes")
    added = gatewayapi.route_rules(http_rules(), split(20, (route,)), use_header_routes=True)
    assert len(added) == 3
    rule = added[2]
    assert rule["name"] == "canary-header"
    assert rule["backendRefs"] == [
        {"group": "", "kind": "Service", "name": "web-canary", "weight": 1, "port": 80}
    ]
    assert rule["matches"] == [
        {
            "path": {"type": "PathPrefix", "value": "/"},
            "headers": [{"name": "x-canary", "type": "Exact", "value": "yes"}],
        }
    ]
    assert rule["filters"] == http_rules()[0]["filters"]
    # Applying the same split again changes nothing (idempotent), and the weights skip the rule.
    assert gatewayapi.route_rules(added, split(20, (route,)), use_header_routes=True) == added
    # The route gone (it stays a managed route of the Rollout): its rule goes.
    routing = {**PLUGIN, "managedRoutes": [{"name": "canary-header"}]}
    removed = gatewayapi.route_rules(added, split(20, routing=routing), use_header_routes=True)
    assert removed == gatewayapi.route_rules(http_rules(), split(20), use_header_routes=True)


def test_a_users_rule_to_the_canary_alone_is_neither_weighted_nor_removed() -> None:
    preview = {
        "matches": [{"path": {"type": "PathPrefix", "value": "/preview"}}],
        "backendRefs": [{"name": "web-canary"}],
    }
    rules = gatewayapi.route_rules([*http_rules(), preview], split(20), use_header_routes=True)
    assert rules[2] == preview


def test_header_routes_only_on_routes_that_allow_them() -> None:
    rules = gatewayapi.route_rules(
        http_rules(), split(20, (header("h", exact="1"),)), use_header_routes=False
    )
    assert len(rules) == 2


def test_header_value_kinds() -> None:
    m = gatewayapi.header_match
    assert m(HeaderMatch("h", StringMatch(prefix="v1."))) == {
        "name": "h",
        "type": "RegularExpression",
        "value": r"v1\..*",
    }
    assert m(HeaderMatch("h", StringMatch(regex="a+"))) == {
        "name": "h",
        "type": "RegularExpression",
        "value": "a+",
    }
    with pytest.raises(TrafficRouterError, match="exact"):
        m(HeaderMatch("h", StringMatch()))


def test_in_progress_label_while_weight_is_above_zero() -> None:
    route = {"metadata": {"namespace": "ns", "labels": {}}, "spec": {"rules": http_rules()}}
    ref = gatewayapi.RouteRef("web", True)
    label = (gatewayapi.IN_PROGRESS_LABEL, gatewayapi.IN_PROGRESS_VALUE)
    patch = gatewayapi.route_patch(route, split(30), ref, label)
    assert patch is not None and patch["metadata"]["labels"] == {gatewayapi.IN_PROGRESS_LABEL: "in-progress"}
    route["metadata"]["labels"] = {gatewayapi.IN_PROGRESS_LABEL: "in-progress"}
    route["spec"]["rules"] = patch["spec"]["rules"]
    assert gatewayapi.route_patch(route, split(30), ref, label) is None
    assert gatewayapi.route_patch(route, split(0), ref, label)["metadata"]["labels"] == {  # type: ignore[index]
        gatewayapi.IN_PROGRESS_LABEL: None
    }


def test_gateway_config() -> None:
    cfg = gatewayapi.parse_config(
        {"httpRoutes": [{"name": "a"}, {"name": "b", "useHeaderRoutes": True}], "namespace": "gw"}, "ns"
    )
    assert cfg.namespace == "gw"
    assert cfg.routes == (gatewayapi.RouteRef("a", False), gatewayapi.RouteRef("b", True))
    assert gatewayapi.parse_config({"httpRoute": "a", "disableInProgressLabel": True}, "ns").label is None
    with pytest.raises(TrafficRouterError, match=r"grpcRoute: not supported"):
        gatewayapi.parse_config({"grpcRoute": "g"}, "ns")
    with pytest.raises(TrafficRouterError, match=r"httpRoutes\[0\].name: required"):
        gatewayapi.parse_config({"httpRoutes": [{}]}, "ns")


def stable_ingress() -> dict[str, Any]:
    def path(service: str) -> dict[str, Any]:
        return {
            "path": "/",
            "pathType": "Prefix",
            "backend": {"service": {"name": service, "port": {"number": 80}}},
        }

    return {
        "metadata": {
            "name": "web-ing",
            "namespace": "ns",
            "annotations": {"kubernetes.io/ingress.class": "nginx"},
        },
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["web.example"], "secretName": "web-tls"}],
            "rules": [
                {"host": "web.example", "http": {"paths": [path("web-stable")]}},
                {"host": "other.example", "http": {"paths": [path("other")]}},
            ],
        },
    }


def test_canary_ingress_copies_the_stable_rules_to_the_canary_service() -> None:
    cfg = nginx.parse_config(
        {"stableIngress": "web-ing", "additionalIngressAnnotations": {"canary-by-header": "X"}}
    )
    ing = nginx.canary_ingress(stable_ingress(), cfg, split(20, routing={}), "web-web-ing-canary")
    assert ing["metadata"]["annotations"] == {
        "kubernetes.io/ingress.class": "nginx",
        "nginx.ingress.kubernetes.io/canary-by-header": "X",
        "nginx.ingress.kubernetes.io/canary": "true",
        "nginx.ingress.kubernetes.io/canary-weight": "20",
    }
    assert ing["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert [r["host"] for r in ing["spec"]["rules"]] == ["web.example"]
    assert ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "web-canary"
    assert ing["spec"]["tls"] and ing["spec"]["ingressClassName"] == "nginx"


def test_canary_ingress_name_fits() -> None:
    assert nginx.canary_ingress_name("web", "web-ing") == "web-web-ing-canary"
    assert len(nginx.canary_ingress_name("r" * 200, "i" * 200)) == 253


def test_stable_ingress_without_the_stable_service_is_a_clear_error() -> None:
    ing = stable_ingress()
    ing["spec"]["rules"] = ing["spec"]["rules"][1:]
    with pytest.raises(
        TrafficRouterError, match="ns/web-ing has no rule with a path to the stable Service web-stable"
    ):
        nginx.canary_rules(ing, split(routing={}))


def test_canary_patch_changes_the_weight_and_drops_a_gone_header_route() -> None:
    cfg = nginx.parse_config({"stableIngress": "web-ing"})
    with_header = split(20, (header("h", regex="^a"),), routing={})
    current = nginx.canary_ingress(stable_ingress(), cfg, with_header, "c")
    assert current["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-by-header-pattern"] == "^a"
    current["metadata"]["annotations"]["other.io/kept"] = "1"
    desired = nginx.canary_ingress(stable_ingress(), cfg, split(0, routing={}), "c")
    patch = nginx.canary_patch(current, desired, cfg.prefix)
    assert patch == {
        "metadata": {
            "annotations": {
                "nginx.ingress.kubernetes.io/canary-weight": "0",
                "nginx.ingress.kubernetes.io/canary-by-header": None,
                "nginx.ingress.kubernetes.io/canary-by-header-pattern": None,
            }
        }
    }
    assert nginx.canary_patch(desired, desired, cfg.prefix) is None


def test_nginx_header_routes_it_cannot_express_are_refused() -> None:
    two = (header("a", exact="1"), header("b", exact="2"))
    with pytest.raises(TrafficRouterError, match="one header only"):
        nginx.header_annotations(two, nginx.DEFAULT_PREFIX)
    assert nginx.header_annotations((header("a", prefix="v2"),), "p") == {
        "p/canary-by-header": "x-canary",
        "p/canary-by-header-pattern": "^v2",
    }


def test_nginx_config_errors_name_the_field() -> None:
    with pytest.raises(TrafficRouterError, match=r"trafficRouting.nginx.stableIngress: required"):
        nginx.parse_config({"annotationPrefix": "x"})
    assert nginx.parse_config({"stableIngresses": ["a", "b"]}).stable_ingresses == ("a", "b")


def test_dispatch() -> None:
    assert kubernetes_routers(PLUGIN) == [gatewayapi.apply]
    both = {**PLUGIN, "nginx": {"stableIngress": "i"}, "managedRoutes": [{"name": "h"}]}
    assert kubernetes_routers(both) == [gatewayapi.apply, nginx.apply]
    with pytest.raises(UnsupportedRouter, match=r"trafficRouting.istio: pyrollouts routes"):
        kubernetes_routers({"istio": {}, "nginx": {"stableIngress": "i"}})
    with pytest.raises(UnsupportedRouter, match=r"plugins.example/other"):
        kubernetes_routers({"plugins": {"example/other": {}}})
    with pytest.raises(UnsupportedRouter, match="names no traffic router"):
        kubernetes_routers({})
