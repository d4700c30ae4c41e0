"""The integer formats lint uses are Kubernetes' own: every integer field of the kinds pyrollouts
reads has, in the live API server's OpenAPI, the format pyrollouts.model.schema gives it; and the
Rollout CRD makes the API server refuse replicas 2147483648 as lint does (issue 11)."""

from __future__ import annotations

import json
from typing import Any

import kube_helpers
import pytest

from harness.k8s_cluster import ControlPlane
from pyrollouts.model.lint import lint_text
from pyrollouts.model.schema import integer_formats, kind_type

_crds = pytest.fixture(name="crds")(kube_helpers.crds_fixture)

_GROUPS = ("io.k8s.api.core.v1.", "io.k8s.api.apps.v1.", "io.k8s.apimachinery.pkg.apis.meta.v1.")


def _server_formats(openapi: dict[str, Any]) -> dict[tuple[str, str], str | None]:
    """(class name, field) -> format of every integer (or integer list/map) in the groups read."""
    out: dict[tuple[str, str], str | None] = {}
    for ref, definition in openapi["definitions"].items():
        if not ref.startswith(_GROUPS):
            continue
        cls = ref.rsplit(".", 1)[1]
        for name, prop in (definition.get("properties") or {}).items():
            leaf = prop.get("items") or prop.get("additionalProperties") or prop
            if leaf.get("type") == "integer":
                out[(cls, name)] = leaf.get("format")
            elif leaf.get("format") == "int-or-string":
                out[(cls, name)] = "int32"
    return out


def test_integer_formats_match_the_api_server(control_plane: ControlPlane) -> None:
    status, openapi = control_plane.api.request("GET", "/openapi/v2", timeout=120)
    assert status == 200, openapi
    server = _server_formats(openapi)
    roots = [kind_type(k) for k in ("Service", "Namespace", "Deployment")]
    ours = integer_formats([r for r in roots if r is not None])
    compared = {k: v for k, v in ours.items() if k in server}
    # lightkube-models may know a field or two this server release does not (and the other way).
    assert len(compared) >= 0.9 * len(ours), sorted(set(ours) - set(server))
    differ = {k: (v, server[k]) for k, v in compared.items() if v != server[k]}
    assert differ == {}, f"(ours, the API server's): {differ}"
    print(f"{len(compared)} integer fields compared with the API server's OpenAPI")


def test_the_crd_refuses_replicas_over_int32_like_lint(control_plane: ControlPlane, crds: None) -> None:
    rollout = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "int32-overflow", "namespace": "default"},
        "spec": {
            "replicas": 2**31,
            "selector": {"matchLabels": {"app": "a"}},
            "template": {
                "metadata": {"labels": {"app": "a"}},
                "spec": {"containers": [{"name": "a", "image": "a:1"}]},
            },
            "strategy": {"blueGreen": {"activeService": "a"}},
        },
    }
    findings = lint_text(json.dumps(rollout), "r.json")
    assert [f.path for f in findings if f.severity == "error"] == ["spec.replicas"]
    status, body = control_plane.api.request(
        "POST", "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts", rollout
    )
    assert status == 422, body
    assert "spec.replicas" in json.dumps(body), body


def test_the_crd_takes_int64_fields(control_plane: ControlPlane, crds: None) -> None:
    # Bounds of +-2**63 on int64 fields made the API server refuse every Rollout that had one
    # (terminationGracePeriodSeconds: 30, which every undo copies from a ReplicaSet's template).
    rollout = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "int64-fields", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "a"}},
            "template": {
                "metadata": {"labels": {"app": "a"}},
                "spec": {
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {"runAsUser": 1000, "supplementalGroups": [1000]},
                    "containers": [{"name": "a", "image": "a:1"}],
                },
            },
            "strategy": {"blueGreen": {"activeService": "a"}},
        },
    }
    assert [f for f in lint_text(json.dumps(rollout), "r.json") if f.severity == "error"] == []
    status, body = control_plane.api.request(
        "POST", "/apis/argoproj.io/v1alpha1/namespaces/default/rollouts", rollout
    )
    assert status == 201, body
