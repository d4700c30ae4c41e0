"""End to end: a new revision whose app fails shows a clear phase and message, and production keeps
answering the old version untouched (issue 3, "Apps that fail").

One server runs five rollouts side by side, each in its own namespace with its own Service ports,
each healthy on V2 (one replica). Each is then updated to a V3 that fails in its own way:

- command not found (``command: [/nonexistent]``): the pod in CrashLoopBackOff, its lastState a
  StartError naming the path, a Failed event; the rollout Degraded, ProgressDeadlineExceeded.
- port in use (the app's PORT pinned to a port the test holds): CrashLoopBackOff, the pod's log
  says it cannot listen on that port; Degraded.
- crash loop (DEMO_FAIL=crash): CrashLoopBackOff with restarts; Degraded.
- never ready (DEMO_FAIL=never-ready): the pod Running, ready 0/1; Degraded,
  ProgressDeadlineExceeded.
- slow start (DEMO_FAIL=slow-start:3): after a while Paused (BlueGreenPause), V3 on preview.

The failing ones have progressDeadlineSeconds 5 (real time). Throughout, a thread reads every
production port: each answer must be V2, and the V2 pods keep their processes with no restart.
"""

from __future__ import annotations

import copy
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_support import (
    E2EServer,
    Servers,
    check_processes,
    rollout_doc,
    seed_docs,
    servers_fixture,
    set_env,
)

from harness.serverharness import app_processes, free_port, http_body

CASES = ("not-found", "port-in-use", "crash", "never-ready", "slow-start")
DEADLINE = 5


@pytest.fixture
def servers() -> Iterator[Servers]:
    yield from servers_fixture()


class ProdWatcher(threading.Thread):
    """Reads GET / on each production port every 0.2 s (bounded by ``max_seconds``) and keeps
    every answer that is not the expected body."""

    def __init__(self, ports: dict[str, int], expect: str, max_seconds: float = 120) -> None:
        super().__init__(daemon=True)
        self.ports, self.expect = ports, expect
        self.deadline = time.monotonic() + max_seconds
        self.stop_now = threading.Event()
        self.wrong: list[tuple[str, str]] = []
        self.count = 0

    def run(self) -> None:
        while not self.stop_now.is_set() and time.monotonic() < self.deadline:
            for case, port in self.ports.items():
                body = http_body(port)
                self.count += 1
                if body != self.expect:
                    self.wrong.append((case, body))
            self.stop_now.wait(0.2)

    def stop(self) -> None:
        self.stop_now.set()
        self.join(10)


def _failing(docs: list[dict[str, Any]], case: str, held_port: int) -> list[dict[str, Any]]:
    d = copy.deepcopy(docs)
    set_env(d, "WELCOME", "V3")
    container = rollout_doc(d)["spec"]["template"]["spec"]["containers"][0]
    if case == "not-found":
        container["command"] = ["/nonexistent"]
    elif case == "port-in-use":
        set_env(d, "PORT", str(held_port))  # the container's env wins over the assigned port
    elif case == "crash":
        set_env(d, "DEMO_FAIL", "crash")
    elif case == "never-ready":
        set_env(d, "DEMO_FAIL", "never-ready")
    elif case == "slow-start":
        set_env(d, "DEMO_FAIL", "slow-start:3")
    if case != "slow-start":
        rollout_doc(d)["spec"]["progressDeadlineSeconds"] = DEADLINE
    return d


def _pods_of(srv: E2EServer, ns: str, revision: int) -> list[dict[str, Any]]:
    info = srv.info(ns)
    return [
        p
        for rev in info["revisions"]
        if rev["revision"] == revision
        for rs in rev["replicaSets"]
        for p in rs["pods"]
    ]


def _pod_obj(srv: E2EServer, ns: str, name: str) -> dict[str, Any]:
    return dict(srv.http("GET", f"/api/pods/{ns}/{name}"))


def test_failing_apps_show_why_and_leave_production_alone(servers: Servers) -> None:
    srv = servers.start()
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    held_port = held.getsockname()[1]
    prod: dict[str, int] = {}
    docs: dict[str, list[dict[str, Any]]] = {}
    try:
        for case in CASES:
            prod[case] = free_port()
            docs[case] = seed_docs(case, prod[case], free_port(), replicas=1, welcome="V2")
            assert srv.apply(docs[case], servers.state_dir.parent / f"{case}.yaml").code == 0
        for case in CASES:
            srv.wait_for(f"{case}: V2 healthy", lambda c=case: srv.info(c)["status"] == "Healthy", timeout=60)
            srv.wait_for(f"{case}: V2 in production", lambda c=case: http_body(prod[c]) == "V2", timeout=10)
        # The production pods, to check that nothing touches them: name -> (uid, pid).
        v2 = {case: _pod_obj(srv, case, _pods_of(srv, case, 1)[0]["name"]) for case in CASES}
        v2_procs = {
            case: app_processes(servers.state_dir)[(p["metadata"]["uid"], "super-hello")]
            for case, p in v2.items()
        }

        watcher = ProdWatcher(prod, "V2")
        watcher.start()
        try:
            for case in CASES:
                path = servers.state_dir.parent / f"{case}-v3.yaml"
                r = srv.apply(_failing(docs[case], case, held_port), path)
                assert r.code == 0, (case, r)

            # slow start: not ready for a while, then fine (paused for promotion, V3 on preview).
            srv.wait_for("slow-start: paused", lambda: srv.info("slow-start")["status"] == "Paused")
            assert srv.info("slow-start")["message"] == "BlueGreenPause"
            r = srv.cli("get", "rollout", "super-hello", "-n", "slow-start")
            assert "॥ Paused" in r.out and "Message:         BlueGreenPause" in r.out, r.out
            assert srv.cli("status", "super-hello", "-n", "slow-start", "--no-watch").out.strip() == (
                "Paused - BlueGreenPause"
            )

            for case in ("not-found", "port-in-use", "crash", "never-ready"):
                srv.wait_for(f"{case}: degraded", lambda c=case: srv.info(c)["status"] == "Degraded")
                message = srv.info(case)["message"]
                assert message.startswith("ProgressDeadlineExceeded: ReplicaSet "), (case, message)
                assert message.endswith(" has timed out progressing."), (case, message)
                r = srv.cli("status", "super-hello", "-n", case, "-t", "5s")
                assert r.code == 1 and "Degraded - ProgressDeadlineExceeded" in r.out, (case, r)
                r = srv.cli("get", "rollout", "super-hello", "-n", case)
                assert "✖ Degraded" in r.out and "ProgressDeadlineExceeded" in r.out, (case, r.out)
                [new_pod] = _pods_of(srv, case, 2)
                assert not new_pod["allReady"], (case, new_pod)
                cs = _pod_obj(srv, case, new_pod["name"])["status"]["containerStatuses"][0]
                if case == "never-ready":
                    # Running, never ready: the probe says why in the pod's Ready condition/events.
                    assert "running" in cs["state"] and not cs["ready"], cs
                    [line] = [ln for ln in r.out.splitlines() if new_pod["name"] in ln]
                    assert "✔ Running" in line and "ready:0/1" in line, line
                    continue
                srv.wait_for(
                    f"{case}: crash loop shown",
                    lambda c=case, n=new_pod["name"]: any(
                        n in ln and "✖ CrashLoopBackOff" in ln
                        for ln in srv.cli("get", "rollout", "super-hello", "-n", c).out.splitlines()
                    ),
                    timeout=30,
                )
                cs = _pod_obj(srv, case, new_pod["name"])["status"]["containerStatuses"][0]
                assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff", cs
                assert cs["restartCount"] >= 1, cs
                term = cs["lastState"]["terminated"]
                if case == "not-found":
                    assert term["reason"] == "StartError" and "/nonexistent" in term["message"], term
                else:
                    assert term["reason"] == "Error" and term["exitCode"] == 1, term
                logs = srv.cli("logs", new_pod["name"], "-n", case)
                if case == "port-in-use":
                    assert f"cannot listen on 127.0.0.1:{held_port}" in logs.out, logs
                    assert "in use" in logs.out, logs

            # Events say the same: the start error and the back-off. The deadline has no event of
            # its own (as Argo's controller): the phase message above says it.
            events = srv.http("GET", "/api/events?namespace=not-found")["items"]
            reasons = {(e["reason"], e["message"]) for e in events}
            assert any(r == "Failed" and "/nonexistent" in m for r, m in reasons), reasons
            assert not any(r == "ProgressDeadlineExceeded" for r, _ in reasons), reasons
            time.sleep(1)  # a few more production reads after the last failure was seen
        finally:
            watcher.stop()
    finally:
        held.close()

    assert watcher.count >= 5 * len(CASES), watcher.count
    assert watcher.wrong == [], watcher.wrong[:10]
    procs = app_processes(servers.state_dir)
    for case, pod in v2.items():
        now = _pod_obj(srv, case, pod["metadata"]["name"])
        assert now["metadata"]["uid"] == pod["metadata"]["uid"], case
        assert now["status"]["containerStatuses"][0]["restartCount"] == 0, case
        assert procs[(pod["metadata"]["uid"], "super-hello")] == v2_procs[case], case
        info = srv.info(case)
        assert info["activeSelector"] == pod["metadata"]["labels"]["rollouts-pod-template-hash"], case
        assert http_body(prod[case]) == "V2", case
    check_processes(servers.state_dir, srv)
