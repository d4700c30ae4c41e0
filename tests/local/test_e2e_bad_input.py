"""End to end: bad input is refused at apply, says what to do instead, and stores nothing (issue 3,
"Bad input at apply").

- The seed's faithful manifest (tests/unit/model/seed-super-hello.yaml, an exact copy of
  shared/seed/super-hello.yaml) is refused with exactly the findings `rollouts lint` prints.
- Pod features one machine cannot give (a Secret reference in env, a hostPath volume,
  hostNetwork) and Service ports that clash (with a stored Service, or within the manifest) are
  refused with the way out.
After each refusal the server holds exactly the objects it held before.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    SEED_FAITHFUL,
    E2EServer,
    Servers,
    rollout_doc,
    seed_docs,
    servers_fixture,
)

from harness.serverharness import free_port
from pyrollouts.cli.main import run

KINDS = ("namespaces", "rollouts", "replicasets", "pods", "services")


@pytest.fixture
def servers() -> Iterator[Servers]:
    yield from servers_fixture()


def _everything(srv: E2EServer) -> set[tuple[str, str, str, str]]:
    """(resource, namespace, name, uid) of every stored object but Events."""
    return {
        (kind, o["metadata"].get("namespace", ""), o["metadata"]["name"], o["metadata"]["uid"])
        for kind in KINDS
        for o in srv.http("GET", f"/api/{kind}")["items"]
    }


def _lint(path: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The error findings `rollouts lint -f PATH` prints, without the "error: " prefix."""
    capsys.readouterr()
    assert run(["lint", "-f", str(path)]) == 1
    out = capsys.readouterr().out
    return [line.removeprefix("error: ") for line in out.splitlines() if line.startswith("error: ")]


def _refused(srv: E2EServer, docs: list[dict[str, Any]] | None, path: Path) -> tuple[str, list[str]]:
    """Apply ``docs`` (or the file already at ``path``), expect a refusal; (first line, details)."""
    before = _everything(srv)
    r = srv.apply(docs, path) if docs is not None else srv.cli("apply", "-f", str(path))
    assert r.code == 1, r
    lines = r.err.splitlines()
    assert lines and lines[0].startswith(f"error: {path}: "), r.err
    assert "nothing was applied" in r.err, r.err
    assert _everything(srv) == before, "a refused apply must store nothing"
    return lines[0], [ln.strip() for ln in lines[1:] if ln.strip()]


def _with_pod_spec(docs: list[dict[str, Any]], **changes: Any) -> list[dict[str, Any]]:
    d = copy.deepcopy(docs)
    spec = rollout_doc(d)["spec"]["template"]["spec"]
    for k, v in changes.items():
        if k == "env":
            spec["containers"][0]["env"] = v
        else:
            spec[k] = v
    return d


def test_bad_input_is_refused_with_what_to_do_and_nothing_stored(
    servers: Servers, capsys: pytest.CaptureFixture[str]
) -> None:
    srv = servers.start()
    work = servers.state_dir.parent

    # A healthy rollout already holds two Service ports.
    held_prod, held_preview = free_port(), free_port()
    good = seed_docs("e2e-good", held_prod, held_preview, replicas=1)
    assert srv.apply(good, work / "good.yaml").code == 0
    srv.wait_for("the good rollout healthy", lambda: srv.info("e2e-good")["status"] == "Healthy", timeout=60)

    # 1. The seed's faithful manifest: the same findings as lint, file and line included.
    seed = work / "seed-super-hello.yaml"
    shutil.copyfile(SEED_FAITHFUL, seed)
    findings = _lint(seed, capsys)
    assert len(findings) == 3, findings
    assert any('"8080" is a string' in f for f in findings), findings
    _, details = _refused(srv, None, seed)
    assert details == findings
    assert all(f.startswith(f"{seed}:") for f in details), details
    assert srv.http("GET", "/api/rollouts?namespace=my-app")["items"] == []

    ns = "e2e-bad"
    base = seed_docs(ns, free_port(), free_port(), replicas=1)
    where = "Rollout e2e-bad/super-hello: spec.template.spec."

    # 2. A Secret reference in env.
    secret_env = [{"name": "WELCOME", "valueFrom": {"secretKeyRef": {"name": "greeting", "key": "text"}}}]
    _, details = _refused(srv, _with_pod_spec(base, env=secret_env), work / "secret.yaml")
    assert details == [
        f"{where}containers[0].env[0].valueFrom.secretKeyRef: Secrets do not exist on the local runtime; "
        "give WELCOME its value with `value:` (or set it in the server's environment and map it)"
    ], details

    # 3. A hostPath volume.
    volumes = [{"name": "data", "hostPath": {"path": "/var/data"}}]
    _, details = _refused(srv, _with_pod_spec(base, volumes=volumes), work / "hostpath.yaml")
    assert len(details) == 1, details
    assert details[0].startswith(f"{where}volumes[0] (data): only emptyDir volumes exist"), details
    assert "not hostPath; use an emptyDir" in details[0], details

    # 4. hostNetwork.
    _, details = _refused(srv, _with_pod_spec(base, hostNetwork=True), work / "hostnet.yaml")
    assert details == [
        f"{where}hostNetwork: every local replica already uses the host's network with ports "
        "assigned by pyrollouts; remove hostNetwork"
    ], details

    # 5. A Service port another Service holds: named, with the way out.
    clash = copy.deepcopy(base)
    for d in clash:
        if d["kind"] == "Service" and d["metadata"]["name"] == "super-hello-prod":
            d["spec"]["ports"][0]["port"] = held_prod
    _, details = _refused(srv, clash, work / "clash.yaml")
    assert details == [
        f"Service {ns}/super-hello-prod: spec.ports[0].port: {held_prod} is already held by Service "
        "e2e-good/super-hello-prod; on the local runtime every Service port is a listener on this "
        "machine, so pick another port"
    ], details

    # 6. Two Services of one manifest on the same port.
    twin = copy.deepcopy(base)
    port = free_port()
    for d in twin:
        if d["kind"] == "Service":
            d["spec"]["ports"][0]["port"] = port
    _, details = _refused(srv, twin, work / "twin.yaml")
    assert details == [
        f"Service {ns}/super-hello-preview: spec.ports[0].port: {port} is already held by Service "
        f"{ns}/super-hello-prod; on the local runtime every Service port is a listener on this "
        "machine, so pick another port"
    ], details

    # Nothing of the refused namespaces exists, and the good rollout was never touched.
    for kind in KINDS[1:]:
        assert srv.http("GET", f"/api/{kind}?namespace={ns}")["items"] == [], kind
    assert ns not in {o["metadata"]["name"] for o in srv.http("GET", "/api/namespaces")["items"]}
    assert srv.info("e2e-good")["status"] == "Healthy"
