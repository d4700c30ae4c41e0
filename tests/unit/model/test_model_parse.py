"""Parsing: kinds, read-time defaults, findings for what cannot be read."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyrollouts.model.findings import ManifestError
from pyrollouts.model.parse import load_file, parse_collect, parse_manifests

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "super-hello.yaml"

SERVICE = """apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
"""


def test_example_parses_into_typed_objects() -> None:
    objs = load_file(EXAMPLE)
    assert [(o.kind, o.namespace, o.name) for o in objs] == [
        ("Namespace", None, "my-app"),
        ("Rollout", "my-app", "super-hello"),
        ("Service", "my-app", "super-hello-prod"),
        ("Service", "my-app", "super-hello-preview"),
    ]
    rollout = objs[1].rollout()
    assert rollout.spec.replicas == 3 and rollout.bg.active_service == "super-hello-prod"
    assert objs[1].line(("spec", "strategy", "blueGreen", "activeService")) == 45
    # Argo reads its defaults at use time; the spec stays as written.
    assert "progressDeadlineSeconds" not in objs[1].obj["spec"]
    assert rollout.progress_deadline_seconds() == 600


def test_service_and_namespace_defaults_like_the_api_server() -> None:
    (svc,) = parse_manifests(SERVICE, "s.yaml")
    assert svc.namespace == "default"
    assert svc.obj["spec"]["type"] == "ClusterIP"
    assert svc.obj["spec"]["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert svc.raw["spec"]["ports"] == [{"port": 80}]  # what was written stays available to lint
    (other,) = parse_manifests(SERVICE, "s.yaml", default_namespace="team")
    assert other.namespace == "team"


def test_analysis_template_is_kept() -> None:
    text = (
        "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata: {name: a}\nspec: {metrics: []}\n"
    )
    (at,) = parse_manifests(text, "a.yaml")
    assert at.kind == "AnalysisTemplate" and at.obj["spec"] == {"metrics": []}


@pytest.mark.parametrize(
    ("text", "path", "words"),
    [
        (
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: d}\n",
            "kind",
            "'StatefulSet' is not supported",
        ),
        (
            "apiVersion: argoproj.io/v1beta1\nkind: Rollout\nmetadata: {name: r}\n",
            "apiVersion",
            "write apiVersion: argoproj.io/v1alpha1",
        ),
        ("apiVersion: v1\nmetadata: {name: r}\n", "kind", "no kind"),
        ("apiVersion: v1\nkind: Service\nmetadata: {}\n", "metadata.name", "no metadata.name"),
        ("- just\n- a list\n", "", "not a mapping"),
        (SERVICE + "---\n" + SERVICE, "metadata.name", "appears twice"),
    ],
)
def test_unreadable_documents_are_findings(text: str, path: str, words: str) -> None:
    with pytest.raises(ManifestError) as ei:
        parse_manifests(text, "x.yaml")
    (f,) = ei.value.findings
    assert f.path == path and words in f.problem + " " + f.fix
    assert f.source == "x.yaml" and f.line is not None


def test_parse_collect_keeps_the_readable_objects() -> None:
    text = SERVICE + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
    objs, findings = parse_collect(text, "x.yaml")
    assert [o.kind for o in objs] == ["Service"]
    assert [(f.line, f.problem) for f in findings] == [(9, "kind 'ConfigMap' is not supported here")]
