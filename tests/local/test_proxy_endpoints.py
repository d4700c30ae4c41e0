"""build_table: Services and Pods (Kubernetes JSON) -> the proxy's routing table."""

from __future__ import annotations

import json
from typing import Any

from pyrollouts.runtimes.local.endpoints import PORTS_ANNOTATION, build_table
from pyrollouts.runtimes.local.proxy.table import build_routing, validate_table


def service(
    name: str, selector: dict[str, str] | None, ports: list[dict[str, Any]], ns: str = "my-app"
) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": selector, "ports": ports}}  # fmt: skip


def pod(
    name: str,
    labels: dict[str, str],
    ports: dict[str, int],
    *,
    ready: bool = True,
    ns: str = "my-app",
    deleting: bool = False,
    container_ports: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "labels": labels,
                            "annotations": {PORTS_ANNOTATION: json.dumps(ports)}}  # fmt: skip
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [{"name": "app", "ports": container_ports or []}]},
        "status": {"podIP": "127.0.0.1", "phase": "Running",
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }  # fmt: skip


def test_selector_with_pod_template_hash_picks_one_revision() -> None:
    svc = service(
        "prod",
        {"app": "hello", "rollouts-pod-template-hash": "aaa"},
        [{"name": "http", "port": 8088, "targetPort": 8080}],
    )
    pods = [
        pod("a-1", {"app": "hello", "rollouts-pod-template-hash": "aaa"}, {"8080": 41001}),
        pod("a-2", {"app": "hello", "rollouts-pod-template-hash": "aaa"}, {"8080": 41002}, ready=False),
        pod("b-1", {"app": "hello", "rollouts-pod-template-hash": "bbb"}, {"8080": 41003}),
        pod("a-3", {"app": "hello", "rollouts-pod-template-hash": "aaa"}, {"8080": 41004}, deleting=True),
        pod(
            "other-ns", {"app": "hello", "rollouts-pod-template-hash": "aaa"}, {"8080": 41005}, ns="elsewhere"
        ),
    ]
    table = build_table([svc], pods, 7, "127.0.0.1")
    assert validate_table(table) is table
    assert table["version"] == 7
    (entry,) = table["services"]
    assert entry["ports"] == [{"name": "http", "port": 8088, "appProtocol": None}]
    assert entry["endpoints"] == [
        {"pod": "a-1", "revision": "aaa", "host": "127.0.0.1", "ports": {"8088": 41001}, "ready": True},
        {"pod": "a-2", "revision": "aaa", "host": "127.0.0.1", "ports": {"8088": 41002}, "ready": False},
    ]
    routing = build_routing(table, "127.0.0.1")
    route = routing.routes[("127.0.0.1", 8088)]
    assert [t.port for t in route.targets] == [41001]


def test_target_port_by_name_default_and_tcp() -> None:
    svc = service(
        "s",
        {"app": "x"},
        [
            {"name": "web", "port": 80, "targetPort": "http"},
            {"name": "raw", "port": 9000, "appProtocol": "TCP"},  # no targetPort: the port itself
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "missing", "port": 81, "targetPort": "nope"},
        ],
    )
    pods = [
        pod("by-annotation", {"app": "x"}, {"8080": 41010, "http": 41010, "9000": 41011}),
        # The name is only in the container's ports, not in the annotation.
        pod(
            "by-spec",
            {"app": "x"},
            {"8080": 41020},
            container_ports=[{"name": "http", "containerPort": 8080}],
        ),
    ]
    (entry,) = build_table([svc], pods, 1, "0.0.0.0")["services"]
    assert entry["bind"] == "0.0.0.0"
    assert [(p["port"], p["appProtocol"]) for p in entry["ports"]] == [(80, None), (9000, "tcp"), (81, None)]
    eps = {e["pod"]: e["ports"] for e in entry["endpoints"]}
    assert eps == {"by-annotation": {"80": 41010, "9000": 41011}, "by-spec": {"80": 41020}}


def test_no_selector_or_no_match_means_no_endpoints() -> None:
    svcs = [service("manual", None, [{"port": 1234}]), service("nomatch", {"app": "zzz"}, [{"port": 1235}])]
    table = build_table(svcs, [pod("p", {"app": "x"}, {"1234": 40000})], 1, "127.0.0.1")
    assert [s["endpoints"] for s in table["services"]] == [[], []]
