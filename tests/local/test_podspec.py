"""What a Pod template and a Service can ask of the local runtime; host port planning."""

from __future__ import annotations

from typing import Any

from pyrollouts.runtimes.local import ports
from pyrollouts.runtimes.local.imagemap import ImageMap
from pyrollouts.runtimes.local.podspec import check_service_ports, check_template, template_warnings


def template(**container: Any) -> dict[str, Any]:
    c = {"name": "app", "image": "ghcr.io/gbaeke/super:1.0.2", **container}
    return {"metadata": {"labels": {"app": "super"}}, "spec": {"containers": [c]}}


def test_the_seed_template_runs() -> None:
    t = template(
        ports=[{"containerPort": 8080}],
        env=[{"name": "WELCOME", "value": "hi"}],
        readinessProbe={"httpGet": {"path": "/healthz", "port": 8080}},
    )
    assert check_template(t, ImageMap.load()) == []
    assert template_warnings(t) == []


def test_refusals_say_where_and_what_to_do() -> None:
    t = template(
        env=[
            {"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
            {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        ],
        envFrom=[{"secretRef": {"name": "s"}}],
        ports=[{"containerPort": 8080, "hostPort": 80}],
    )
    t["spec"]["volumes"] = [{"name": "cfg", "configMap": {"name": "c"}}, {"name": "tmp", "emptyDir": {}}]
    t["spec"]["hostNetwork"] = True
    errors = check_template(t, ImageMap.load())
    assert any(
        e.startswith("spec.containers[0].env[0].valueFrom.secretKeyRef: Secrets") and "`value:`" in e
        for e in errors
    )
    assert any(e.startswith("spec.containers[0].env[1].valueFrom.configMapKeyRef") for e in errors)
    assert not any("env[2]" in e for e in errors)  # fieldRef to a label is fine
    assert any(e.startswith("spec.containers[0].envFrom[0]: Secrets") for e in errors)
    assert any(e.startswith("spec.volumes[0] (cfg): only emptyDir") for e in errors)
    assert not any("spec.volumes[1]" in e for e in errors)
    assert any(e.startswith("spec.hostNetwork") for e in errors)
    assert any(e.startswith("spec.containers[0].ports[0].hostPort") for e in errors)
    assert len(errors) == 6


def test_an_unmapped_image_without_command_is_refused_with_how_to_map_it() -> None:
    errors = check_template(template(image="registry.example.com/shop/api:3"), ImageMap.load())
    assert errors == [
        "spec.containers[0]: image registry.example.com/shop/api:3 has no command: add `command:` to the "
        "container or map the image in <state-dir>/images.yaml (see docs/local-runtime.md)"
    ]
    assert (
        check_template(
            template(image="registry.example.com/shop/api:3", command=["/srv/api"]), ImageMap.load()
        )
        == []
    )


def test_what_is_not_enforced_is_a_warning() -> None:
    t = template(resources={"limits": {"memory": "128Mi"}})
    assert check_template(t, ImageMap.load()) == []
    assert template_warnings(t) == [
        "spec.containers[0].resources: recorded but not enforced on the local runtime"
    ]


def service(name: str, *port_numbers: int, ns: str = "default") -> dict[str, Any]:
    return {
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "selector": {"app": "super"},
            "ports": [{"port": p, "targetPort": 8080} for p in port_numbers],
        },
    }


def test_service_ports_clash_or_privileged() -> None:
    others = [service("active", 8000), service("preview", 8001), service("other", 9000, ns="other")]
    assert check_service_ports(service("active", 8000), others) == []  # itself is not a clash
    errs = check_service_ports(service("new", 8001, 9000, 9100), others)
    assert errs[0].startswith("spec.ports[0].port: 8001 is already held by Service default/preview")
    assert errs[1].startswith("spec.ports[1].port: 9000 is already held by Service other/other")
    assert len(errs) == 2
    unprivileged = check_service_ports(service("web", 80, 8080), [], may_bind=lambda p: p >= 1024)
    assert unprivileged == [
        "spec.ports[0].port: 80 is below 1024 and this server may not bind it; use a "
        "port of 1024 or more, or run the server with CAP_NET_BIND_SERVICE"
    ]


def test_ports_every_declared_probe_and_service_port_gets_a_host_port() -> None:
    spec = {
        "containers": [
            {
                "name": "app",
                "ports": [{"containerPort": 8080, "name": "http"}, {"containerPort": 9090}],
                "livenessProbe": {"httpGet": {"port": 8081}},
                "readinessProbe": {"tcpSocket": {"port": "http"}},
            },
            {"name": "side", "ports": [{"containerPort": 7000}]},
        ]
    }
    svc = {
        "spec": {
            "selector": {"app": "super", "rollouts-pod-template-hash": "abc"},
            "ports": [{"port": 80, "targetPort": 8082}, {"port": 81, "targetPort": "http"}],
        }
    }
    other = {"spec": {"selector": {"app": "else"}, "ports": [{"port": 82, "targetPort": 9999}]}}
    wanted = ports.wanted_ports(spec, {"app": "super", "rollouts-pod-template-hash": "def"}, [svc, other])
    assert wanted == [8080, 9090, 7000, 8081, 8082]
    host = ports.allocate(wanted, set())
    assert len(set(host.values())) == 5
    pod = {"metadata": {"annotations": {ports.PORTS_ANNOTATION: ports.encode_ports(host)}}, "spec": spec}
    got = ports.pod_ports(pod)
    assert got["http"] == got[8080] == host[8080] and got[7000] == host[7000]
    env = ports.port_env(spec, spec["containers"][0], host)
    assert env["PORT"] == str(host[8080]) and env["PORT_9090"] == str(host[9090])
    assert ports.port_env(spec, spec["containers"][1], host)["PORT"] == str(host[7000])
    assert ports.used_host_ports([pod]) == set(host.values())


def test_runtime_admission_names_the_object_and_field(make_runtime: Any) -> None:
    rt = make_runtime()
    rt.store.create("Service", service("taken", 8100))
    rt.store.create("Service", service("again", 8300))
    rollout = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"template": template(image="unknown/app:1", resources={"limits": {"cpu": "1"}})},
    }
    batch = [
        rollout,
        service("active", 8100, ns="shop"),
        service("preview", 8200, ns="shop"),
        service("preview2", 8200, ns="shop"),
        service("again", 8300),
    ]
    errors = rt.admission(batch)
    assert errors[0].startswith(
        "Rollout shop/web: spec.template.spec.containers[0]: image unknown/app:1 has no"
    )
    assert errors[1].startswith(
        "Service shop/active: spec.ports[0].port: 8100 is already held by Service default/taken"
    )
    assert errors[2].startswith(
        "Service shop/preview2: spec.ports[0].port: 8200 is already held by Service shop/preview"
    )
    assert len(errors) == 3  # re-applying default/again does not clash with itself
    assert rt.admission_warnings(batch) == [
        "Rollout shop/web: spec.template.spec.containers[0].resources: recorded but not enforced on the "
        "local runtime"
    ]
