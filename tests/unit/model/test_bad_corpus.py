"""Every bad manifest of tests/data/bad/ (and the generated large ones) is refused by lint, and the
refusal names the file, the field, the problem and a fix (issue 11, "a corpus of bad manifests").

The same cases go through `rollouts apply` against a real server in
tests/local/test_bad_corpus_apply.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from bad_corpus import BASE_ROLLOUT, Case, corpus, generated

from pyrollouts.cli.main import run
from pyrollouts.model.findings import Finding
from pyrollouts.model.lint import lint_file, lint_text

CASES = corpus()
CATEGORIES = ("int32", "int64", "huge", "neg", "limit", "type", "name", "port", "ref", "doc", "enc")


def _assert_refused(case: Case, findings: list[Finding]) -> Finding:
    errors = [f for f in findings if f.severity == "error"]
    assert errors, f"{case.name} ({case.what}) was not refused: {[str(f) for f in findings]}"
    hits = [f for f in errors if case.path_matches(f.path) and case.expect_text in f.problem]
    assert hits, (
        f"{case.name} ({case.what}): no error at {case.expect_path!r} saying {case.expect_text!r}; "
        f"got {[str(f) for f in errors]}"
    )
    f = hits[0]
    assert f.source == str(case.path), f
    whole_file = case.expect_path == "-"  # size, encoding: the file is the place
    assert f.line is not None or f.path or whole_file, f"{case.name}: the refusal names no line or field: {f}"
    assert f.fix, f"{case.name}: the refusal says no fix: {f}"
    return f


def test_the_corpus_is_large_and_covers_every_category() -> None:
    assert len(CASES) >= 100
    names = {c.name.split("-")[0] for c in CASES}
    assert names == set(CATEGORIES), names
    # Kept small: large cases are generated at test time.
    assert sum(c.path.stat().st_size for c in CASES) < 200_000


def test_the_base_rollout_is_valid() -> None:
    """Each case is this Rollout (or a Service) with one mistake: the refusal is the mistake's."""
    assert [f for f in lint_text(BASE_ROLLOUT, "base.yaml") if f.severity == "error"] == []


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_lint_refuses_with_file_field_and_fix(case: Case) -> None:
    _assert_refused(case, lint_file(case.path))


def test_generated_large_cases_are_refused_quickly(tmp_path: Path) -> None:
    for case in generated(tmp_path):
        t0 = time.monotonic()
        findings = lint_file(case.path)
        took = time.monotonic() - t0
        _assert_refused(case, findings)
        assert len(findings) <= 201, f"{case.name}: {len(findings)} findings; lint reports at most 200"
        # Generous (a loaded 2-core machine): a refusal, not a hang.
        assert took < 30, f"{case.name} took {took:.1f} s to refuse"


def test_replicas_over_int32_is_refused_by_the_lint_verb(capsys: pytest.CaptureFixture[str]) -> None:
    """The defect of issue 11: `rollouts lint` passed replicas: 2147483648."""
    path = Path(__file__).resolve().parents[2] / "data" / "bad" / "int32-replicas.yaml"
    assert run(["lint", "-f", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"error: {path}:9: spec.replicas: replicas is 2147483648, over 2147483647" in out, out
    assert "set replicas to a realistic number, at most 2147483647" in out, out
