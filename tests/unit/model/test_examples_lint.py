"""Every manifest under examples/ lints clean (no finding at all), as `rollouts lint -f` says.
The analysis templates there are documented as copyable (docs/analysis.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyrollouts.model.lint import lint_file

EXAMPLES = sorted((Path(__file__).resolve().parents[3] / "examples").rglob("*.yaml"))


def test_the_examples_are_found() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"super-hello.yaml", "error-rate-web.yaml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_an_example_lints_clean(path: Path) -> None:
    findings = lint_file(path)
    assert [str(f) for f in findings] == []
