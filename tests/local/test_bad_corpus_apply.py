"""Every bad manifest of tests/data/bad/ (and the generated large ones) is refused by `rollouts
apply` against one real server, naming the file and the field, and nothing is stored (issue 11).

One `rollouts server` process serves the whole corpus (a server per file would take minutes). A
refusal may come from lint (parse, validate) or from the runtime's admission; either way the
first line names the file, a detail names the field (or, for the whole file, the line or the
problem), and the objects listed before and after are the same. The server still answers at the
end. tests/unit/model/test_bad_corpus.py checks the same cases through lint.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import E2EServer, Servers, servers_fixture

from pyrollouts.model.findings import errors
from pyrollouts.model.lint import lint_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "model"))
from bad_corpus import Case, corpus, generated

KINDS = ("namespaces", "rollouts", "replicasets", "pods", "services")


@pytest.fixture(scope="module")
def server() -> Iterator[E2EServer]:
    gen = servers_fixture()
    servers: Servers = next(gen)
    srv = servers.start()
    try:
        yield srv
    finally:
        next(gen, None)


def _everything(srv: E2EServer) -> set[tuple[str, str, str, str]]:
    """(resource, namespace, name, uid) of every stored object but Events."""
    return {
        (kind, o["metadata"].get("namespace", ""), o["metadata"]["name"], o["metadata"]["uid"])
        for kind in KINDS
        for o in srv.http("GET", f"/api/{kind}")["items"]
    }


def _assert_apply_refuses(srv: E2EServer, case: Case, stored: set[tuple[str, str, str, str]]) -> None:
    r = srv.cli("apply", "-f", str(case.path))
    assert r.code == 1, f"{case.name} ({case.what}) was applied: {r}"
    lines = [ln.strip() for ln in r.err.splitlines() if ln.strip()]
    assert lines and str(case.path) in lines[0], f"{case.name}: the refusal does not name the file: {r.err}"
    if case.expect_path == "-":
        # The whole file (encoding, size, syntax): the problem is stated, with its line when known.
        assert case.expect_text in r.err, f"{case.name}: expected {case.expect_text!r} in {r.err}"
    else:
        field = case.expect_path.rstrip("*")
        assert any(field in ln for ln in lines[1:]), f"{case.name}: no detail names {field}: {r.err}"
    # The fix is the one lint gives for the case's field (the server runs the same checks).
    fixes = {f.fix for f in errors(lint_file(case.path)) if case.path_matches(f.path) and f.fix}
    assert any(fix in r.err for fix in fixes), f"{case.name}: none of the fixes {fixes} in {r.err}"
    assert _everything(srv) == stored, f"{case.name}: a refused apply stored something"


def test_apply_refuses_every_bad_manifest_and_stores_nothing(server: E2EServer, tmp_path: Path) -> None:
    cases = corpus() + generated(tmp_path / "generated")
    stored = _everything(server)
    refused = 0
    for case in cases:
        _assert_apply_refuses(server, case, stored)
        refused += 1
    print(f"apply refused {refused} bad manifests; nothing stored")
    # The server lives on and still takes a good manifest.
    good = tmp_path / "good.yaml"
    good.write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: still-up\n")
    r = server.cli("apply", "-f", str(good))
    assert r.code == 0, r
    assert any(o[0] == "namespaces" and o[2] == "still-up" for o in _everything(server))
