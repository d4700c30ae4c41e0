"""Every manifest under examples/ lints clean (no finding at all), as `rollouts lint -f` says.
The analysis templates there are documented as copyable (docs/analysis.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pyrollouts.model.lint import lint_file

ALL = sorted((Path(__file__).resolve().parents[3] / "examples").rglob("*.yaml"))
#: ``*.k8s.yaml``: objects for ``kubectl apply`` on Kubernetes only (a Gateway API HTTPRoute a
#: Rollout's traffic router writes to), which pyrollouts' own apply and lint do not take.
KUBECTL_ONLY = [p for p in ALL if p.name.endswith(".k8s.yaml")]
EXAMPLES = [p for p in ALL if p not in KUBECTL_ONLY]


def test_the_examples_are_found() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"super-hello.yaml", "error-rate-web.yaml", "basic.yaml", "gatewayapi.yaml"} <= names


def test_the_kubectl_only_files_hold_only_router_objects() -> None:
    assert KUBECTL_ONLY
    for path in KUBECTL_ONLY:
        kinds = {d["kind"] for d in yaml.safe_load_all(path.read_text()) if d}
        assert kinds <= {"HTTPRoute", "Ingress"}, (path.name, kinds)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_an_example_lints_clean(path: Path) -> None:
    findings = lint_file(path)
    assert [str(f) for f in findings] == []
