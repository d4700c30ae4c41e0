"""Helpers for the local runtime's end-to-end tests (tests/local/test_e2e_*.py).

Everything is real: `rollouts server` runs as a subprocess exactly as a user starts it (with
``--test-clock``; harness.serverharness.ServerProcess, which also finds a state dir's
processes through /proc), its pods are processes, its proxy is a process, its store is the sqlite
file in the state dir. Nothing here reaches into the server's memory: tests look through the HTTP
API, the CLI, the sqlite file (read-only, also while the server is down) and /proc.

- ``E2EServer(state_dir, env=...)``: one server process (a ``ServerProcess``) whose ``wait_for``
  also takes KeyError/IndexError as "not yet", plus ``apply(docs, path)``.
- ``seed_docs(ns, prod, preview, ...)``: the example manifest (examples/super-hello.yaml) as dicts
  in namespace ``ns`` on the given Service ports, WELCOME set, ready for tweaks; ``to_yaml``.
- ``stored(state_dir, kind, ns)``: objects straight from state.db.
- ``LoadClient``: tests/local/proxy_loadclient.py in its own process against a Service port.
- ``finish(state_dir, server)``: teardown; `rollouts shutdown --all` (or kill what a dead server
  left), then asserts that no process of the state dir survives.
- Faults: ``kill_replica`` (kill -9 of one replica's process), ``integrity_check`` (PRAGMA
  integrity_check of state.db), ``check_processes_offline`` (no orphan or duplicate process while
  no server runs), ``container_status``, ``timed_wait`` (a wait that prints its time).

Every wait on the server has a floor of PYROLLOUTS_TEST_MIN_WAIT seconds (default 120): a test's
own limit is what a step takes on an idle machine, and a wait ends as soon as its condition holds.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from harness.serverharness import (
    CliResult,
    ServerProcess,
    app_processes,
    describe,
    kill_state_dir_processes,
    state_dir_processes,
    teardown_on_sigterm,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "super-hello.yaml"
#: An exact copy of the seed's faithful manifest (/work/shared/seed/super-hello.yaml).
SEED_FAITHFUL = REPO / "tests" / "unit" / "model" / "seed-super-hello.yaml"
LOADCLIENT = Path(__file__).with_name("proxy_loadclient.py")
#: The least time a wait on the server gives its condition (see E2EServer.wait_for).
MIN_WAIT = float(os.environ.get("PYROLLOUTS_TEST_MIN_WAIT", "120"))


# ---- the store, read from the file ------------------------------------------------------------


def stored(state_dir: Path, kind: str, ns: str | None = None) -> list[dict[str, Any]]:
    """Objects of a kind from state.db (read-only; works while the server is down)."""
    db = sqlite3.connect(f"file:{state_dir / 'state.db'}?mode=ro", uri=True, timeout=5)
    try:
        if ns is None:
            rows = db.execute("SELECT body FROM objects WHERE kind=? ORDER BY created_rv", (kind,))
        else:
            rows = db.execute(
                "SELECT body FROM objects WHERE kind=? AND namespace=? ORDER BY created_rv", (kind, ns)
            )
        return [json.loads(r[0]) for r in rows.fetchall()]
    finally:
        db.close()


def stored_one(state_dir: Path, kind: str, ns: str, name: str) -> dict[str, Any]:
    """One stored object (fails the test when it is not there)."""
    found = [o for o in stored(state_dir, kind, ns) if o["metadata"]["name"] == name]
    assert found, f"{kind} {ns}/{name} is not in the store"
    return found[0]


# ---- manifests --------------------------------------------------------------------------------


def seed_docs(
    ns: str,
    prod: int,
    preview: int,
    *,
    replicas: int = 2,
    welcome: str = "V2",
    env: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The example manifest (readiness periodSeconds 1) in namespace ``ns`` with its Services on
    the given ports, ``replicas`` replicas and WELCOME=``welcome`` (plus ``env``)."""
    docs = [d for d in yaml.safe_load_all(EXAMPLE.read_text(encoding="utf-8")) if d]
    for d in docs:
        if d["kind"] == "Namespace":
            d["metadata"]["name"] = ns
        else:
            d["metadata"]["namespace"] = ns
    svc = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    svc["super-hello-prod"]["spec"]["ports"][0]["port"] = prod
    svc["super-hello-preview"]["spec"]["ports"][0]["port"] = preview
    ro = rollout_doc(docs)
    ro["spec"]["replicas"] = replicas
    probe = container_doc(docs)["readinessProbe"]
    assert probe["periodSeconds"] == 1, "the example's readiness probe should poll every second"
    set_env(docs, "WELCOME", welcome)
    for k, v in (env or {}).items():
        set_env(docs, k, v)
    return docs


def rollout_doc(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The Rollout of a manifest (to edit in place)."""
    return next(d for d in docs if d["kind"] == "Rollout")


def container_doc(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The Rollout's first container (to edit in place)."""
    return dict(rollout_doc(docs)["spec"]["template"]["spec"]["containers"][0])


def set_env(docs: list[dict[str, Any]], name: str, value: str) -> list[dict[str, Any]]:
    """Set one env variable of the Rollout's container (in place; returns ``docs``)."""
    c = rollout_doc(docs)["spec"]["template"]["spec"]["containers"][0]
    env = c.setdefault("env", [])
    for e in env:
        if e["name"] == name:
            e["value"] = value
            break
    else:
        env.append({"name": name, "value": value})
    return docs


def with_env(docs: list[dict[str, Any]], **env: str) -> list[dict[str, Any]]:
    """A copy of ``docs`` with these env values."""
    out = copy.deepcopy(docs)
    for k, v in env.items():
        set_env(out, k, v)
    return out


def to_yaml(docs: list[dict[str, Any]]) -> str:
    """A multi-document YAML text of ``docs``."""
    return yaml.safe_dump_all(docs, sort_keys=False)


# ---- the server -------------------------------------------------------------------------------


class E2EServer(ServerProcess):
    """One `rollouts server --state-dir DIR --listen 127.0.0.1:PORT --test-clock` subprocess
    (``env``: extra environment, a kill point say). In ``wait_for`` an API error or a missing key
    or item of the answer counts as not yet."""

    def __init__(self, state_dir: Path, *, env: Mapping[str, str] | None = None, wait: bool = True) -> None:
        super().__init__(
            state_dir, env=env, wait=wait, retry_on=(urllib.error.HTTPError, KeyError, IndexError)
        )

    def wait_for(self, what: str, pred: Any, timeout: float = 60) -> Any:
        """:meth:`ServerProcess.wait_for` with a limit of at least :data:`MIN_WAIT` seconds (a
        test's own limit is what a step takes on an idle machine; a loaded 2-core machine can take
        many times that, and a wait ends as soon as its condition holds). A wait that went past the
        test's own limit is printed with its time (shown with -s or on a failure)."""
        started = time.monotonic()
        value = super().wait_for(what, pred, timeout=max(timeout, MIN_WAIT))
        took = time.monotonic() - started
        if took > timeout:
            print(f"slow: waited {took:.1f} s (nominal {timeout:g} s) for {what}")
        return value

    def apply(self, docs: list[dict[str, Any]], path: Path) -> CliResult:
        """Write ``docs`` to ``path`` and `rollouts apply -f` it."""
        path.write_text(to_yaml(docs), encoding="utf-8")
        return self.cli("apply", "-f", str(path))


# ---- fixtures and teardown --------------------------------------------------------------------


def new_state_dir() -> Path:
    """A fresh directory under /tmp (short: the proxy's unix socket path must fit) holding
    ``state/`` (the state dir) and the server logs."""
    return Path(tempfile.mkdtemp(prefix="e2e", dir="/tmp")) / "state"


def finish(state_dir: Path, server: E2EServer | None) -> None:
    """Teardown of one state dir: `rollouts shutdown --all` when a server runs (and then nothing
    of the state dir may be left: a leftover is a leak and fails the test), else kill what a dead
    server left behind. Either way, assert that no process of the state dir survives."""
    leaked: list[str] = []
    if server is not None and server.alive():
        try:
            server.shutdown(everything=True)
        finally:
            deadline = time.monotonic() + 5
            while state_dir_processes(state_dir) and time.monotonic() < deadline:
                time.sleep(0.1)
            leaked = kill_state_dir_processes(state_dir)
    else:
        kill_state_dir_processes(state_dir)
    survivors = [describe(p) for p in state_dir_processes(state_dir)]
    assert not survivors, f"processes of {state_dir} survive: {survivors}"
    assert not leaked, f"`rollouts shutdown --all` left processes of {state_dir} behind: {leaked}"
    shutil.rmtree(state_dir.parent, ignore_errors=True)


class Servers:
    """The servers a test starts on one state dir (one at a time); teardown goes through
    :func:`finish` with the last one."""

    def __init__(self) -> None:
        self.state_dir = new_state_dir()
        self.state_dir.mkdir(parents=True)
        self.current: E2EServer | None = None

    def start(self, env: dict[str, str] | None = None) -> E2EServer:
        """A server on this state dir (the previous one must have exited)."""
        assert self.current is None or not self.current.alive(), "one server per state dir"
        self.current = E2EServer(self.state_dir, env=env)
        return self.current


def servers_fixture() -> Iterator[Servers]:
    """The body of each test module's ``servers`` fixture: a fresh state dir for the servers the
    test starts, torn down with `rollouts shutdown --all` (see :func:`finish`)."""
    s = Servers()
    with teardown_on_sigterm():
        try:
            yield s
        finally:
            finish(s.state_dir, s.current)


# ---- traffic ----------------------------------------------------------------------------------


class LoadClient:
    """proxy_loadclient.py in its own process: steady GETs on a Service port over new and
    keep-alive connections, no retries, until :meth:`stop` (or ``max_seconds``)."""

    def __init__(self, port: int, workdir: Path, *, max_seconds: float = 90, interval: float = 0.01) -> None:
        self.stop_file = workdir / f"stop-{port}-{time.monotonic_ns()}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(LOADCLIENT),
                f"http://127.0.0.1:{port}/",
                "--stop-file",
                str(self.stop_file),
                "--max-seconds",
                str(max_seconds),
                "--interval",
                str(interval),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def stop(self) -> dict[str, Any]:
        """Stop the client; its summary {"total", "failed", "errors", "seen"}."""
        self.stop_file.touch()
        out, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, err
        return dict(json.loads(out.strip().splitlines()[-1]))

    def kill(self) -> None:
        """End it without a summary (teardown after a failure)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---- views ------------------------------------------------------------------------------------


def summary(info: dict[str, Any]) -> dict[str, Any]:
    """What an uninterrupted run's end state is compared on: phase, message, the active, preview
    and stable revisions, and each revision's replica counts and pod count."""
    by_hash = {
        rs["podTemplateHash"]: rev["revision"] for rev in info["revisions"] for rs in rev["replicaSets"]
    }
    ro = info["rollout"]
    st = ro.get("status") or {}
    return {
        "phase": info["status"],
        "message": info["message"],
        "active": by_hash.get(info["activeSelector"]),
        "preview": by_hash.get(info["previewSelector"]),
        "stable": by_hash.get(st.get("stableRS")),
        "replicas": info["replicas"],
        "revisions": {
            rev["revision"]: {
                "spec": rs["replicas"],
                "ready": rs["readyReplicas"],
                "available": rs["availableReplicas"],
                "pods": len(rs["pods"]),
                "status": rs["status"],
            }
            for rev in info["revisions"]
            for rs in rev["replicaSets"]
        },
    }


def check_processes(state_dir: Path, server: E2EServer) -> None:
    """No duplicate and no orphaned process: each container of each stored Pod runs at most once,
    exactly once when its status says it is running (and the Pod is not being deleted), and every
    app process of the state dir belongs to a stored Pod."""
    # A deleted Pod's process may still be on its way out (SIGTERM, then the grace period): an
    # orphan is one that stays, so the check waits a bounded time for those to finish.
    deadline = time.monotonic() + 60
    while True:
        procs = app_processes(state_dir)
        pods = server.http("GET", "/api/pods")["items"]
        uids = {p["metadata"]["uid"]: p for p in pods}
        orphans = {k: v for k, v in procs.items() if k[0] not in uids}
        if not orphans or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not orphans, f"app processes with no Pod: {[describe(p) for v in orphans.values() for p in v]}"
    for uid, pod in uids.items():
        statuses = {cs["name"]: cs for cs in (pod.get("status") or {}).get("containerStatuses") or []}
        for c in pod["spec"]["containers"]:
            running = procs.get((uid, c["name"]), [])
            name = pod["metadata"]["name"]
            assert len(running) <= 1, f"pod {name} runs {c['name']} {len(running)} times: {running}"
            says_running = "running" in (statuses.get(c["name"]) or {}).get("state", {})
            if says_running and not pod["metadata"].get("deletionTimestamp"):
                assert len(running) == 1, f"pod {name}: {c['name']} is running by its status, not in /proc"


# ---- faults: replicas, the store, processes while the server is down ----------------------------


def timed_wait(srv: ServerProcess, what: str, pred: Any, timeout: float = 120) -> Any:
    """``srv.wait_for`` with a generous limit that prints how long the wait took (shown with -s or
    on a failure): on a loaded 2-core machine the figure says how close a limit came."""
    started = time.monotonic()
    value = srv.wait_for(what, pred, timeout=timeout)
    print(f"waited {time.monotonic() - started:.1f} s (limit {timeout:g} s) for {what}", flush=True)
    return value


def pods_of(state_dir: Path, ns: str, pod_hash: str) -> list[dict[str, Any]]:
    """The stored Pods of one revision (by pod-template-hash), not being deleted."""
    from pyrollouts.model import names

    return [
        p
        for p in stored(state_dir, "Pod", ns)
        if p["metadata"]["labels"].get(names.POD_TEMPLATE_HASH_LABEL) == pod_hash
        and not p["metadata"].get("deletionTimestamp")
    ]


def kill_replica(state_dir: Path, ns: str, pod_hash: str, pick: Any = None) -> tuple[str, str, int]:
    """kill -9 the app process of one running replica of a revision (``pick``: chooses among the
    candidates, say ``random.Random.choice``; default the first) and wait until it is gone.
    Returns (pod uid, container, pid)."""
    import os
    import signal

    procs = app_processes(state_dir)
    candidates = []
    for p in pods_of(state_dir, ns, pod_hash):
        key = (p["metadata"]["uid"], p["spec"]["containers"][0]["name"])
        if len(procs.get(key, [])) == 1:
            candidates.append(key)
    assert candidates, f"no running replica of {ns} hash {pod_hash}: {procs}"
    key = pick(candidates) if pick is not None else candidates[0]
    pid = procs[key][0]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while pid in app_processes(state_dir).get(key, []) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pid not in app_processes(state_dir).get(key, []), f"pid {pid} did not die"
    return key[0], key[1], pid


def container_status(srv: ServerProcess, ns: str, uid: str, container: str) -> dict[str, Any] | None:
    """One container's status on a Pod, from the API (None when the Pod or status is missing)."""
    for p in srv.http("GET", f"/api/pods?namespace={ns}")["items"]:
        if p["metadata"]["uid"] == uid:
            for cs in (p.get("status") or {}).get("containerStatuses") or []:
                if cs["name"] == container:
                    return dict(cs)
    return None


def integrity_check(state_dir: Path) -> None:
    """`PRAGMA integrity_check` of state.db answers ok (a crash left the store whole)."""
    db = sqlite3.connect(f"file:{state_dir / 'state.db'}?mode=ro", uri=True, timeout=10)
    try:
        rows = db.execute("PRAGMA integrity_check").fetchall()
    finally:
        db.close()
    assert rows == [("ok",)], f"state.db integrity_check: {rows}"


def check_processes_offline(state_dir: Path) -> dict[str, int]:
    """While no server runs: every app process belongs to a Pod in the store (no orphan) and no
    container of a Pod runs twice (no duplicate). Returns {"pods", "processes"} for the record."""
    procs = app_processes(state_dir)
    pods = {p["metadata"]["uid"]: p for p in stored(state_dir, "Pod")}
    orphans = [describe(pid) for key, pids in procs.items() if key[0] not in pods for pid in pids]
    assert not orphans, f"app processes with no Pod in the store: {orphans}"
    dups = {k: [describe(p) for p in v] for k, v in procs.items() if len(v) > 1}
    assert not dups, f"containers running more than once: {dups}"
    return {"pods": len(pods), "processes": sum(len(v) for v in procs.values())}
