"""End to end: the server dies in the middle of an update and a restarted server finishes it as if
nothing happened (issue 3, "Kill points").

The module shares one state dir: a plain server deploys V2 in one namespace per case at once. For
each kill point of controller/faults.py the test stops the plain server (pods and proxy keep
running), starts one with ``PYROLLOUTS_KILL_AT=<point>`` and updates its namespace to V3 (promoting
first when the point is on the promote path). The server exits right at the point. While it
is down the test reads state.db: what the controller wrote up to the point is there and nothing it
would have written after. It then kills one app process (kill -9), starts a plain server on the same
state dir and drives the update to its end (promote, the scale-down delay on the test clock). The
end must equal an uninterrupted run's (the ``uninterrupted`` case runs the same update without a
kill), with each container of each Pod running exactly once and no process without a Pod.

The plan of the first reconcile of an update is: create the new ReplicaSet (size 0), point the
preview Service at it, scale it up, write the status. Promote's plan: point the active Service at
the new ReplicaSet, set the old one's scale-down deadline, write the status. The checks below
follow that order; the promote's active switch is also checked on its own (the second pass of
after-selector-switch, ``after-selector-switch:2``).

A last test kills the server with SIGKILL in the middle of a promote while a client sends traffic
through the production port: no request fails, the proxy keeps serving on its last table.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_support import (
    E2EServer,
    LoadClient,
    Servers,
    check_processes,
    check_processes_offline,
    finish,
    integrity_check,
    seed_docs,
    stored,
    stored_one,
    summary,
    with_env,
)

from harness.serverharness import (
    KILL_ENV,
    app_processes,
    free_port,
    http_body,
    teardown_on_sigterm,
)
from pyrollouts.controller.faults import POINTS
from pyrollouts.model import names

HASH_LABEL = names.POD_TEMPLATE_HASH_LABEL
DEADLINE_ANNOTATION = names.SCALE_DOWN_DEADLINE_ANNOTATION
#: The promote path's active switch: the second pass of after-selector-switch (the first one is the
#: preview switch of the update's first reconcile).
ACTIVE_SWITCH = "after-selector-switch:2"
PROMOTE_PATH = ("after-deadline-set", ACTIVE_SWITCH)

#: How every case ends, and how an uninterrupted run of the same update ends: V3 (revision 2)
#: active, preview and stable with its 2 replicas; V2 (revision 1) scaled down with no pod left.
END = {
    "phase": "Healthy",
    "message": "",
    "active": 2,
    "preview": 2,
    "stable": 2,
    "replicas": {"desired": 2, "current": 2, "updated": 2, "ready": 2, "available": 2},
    "revisions": {
        2: {"spec": 2, "ready": 2, "available": 2, "pods": 2, "status": "Healthy"},
        1: {"spec": 0, "ready": 0, "available": 0, "pods": 0, "status": "ScaledDown"},
    },
}


CASES = ("uninterrupted", *POINTS, ACTIVE_SWITCH)


def _ns(case: str) -> str:
    return case.replace(":", "-")


class World:
    """One state dir shared by the module's tests, each in its own namespace: deploying V2 once
    for all of them, and starting fewer servers, keeps the module quick. Between tests a plain
    server (no kill point) runs, or none."""

    def __init__(self) -> None:
        self.servers = Servers()
        self.ports: dict[str, tuple[int, int]] = {}
        self.docs: dict[str, list[dict[str, Any]]] = {}
        self.srv: E2EServer | None = None
        self.srv_is_plain = False

    def deploy(self) -> None:
        """V2 in every namespace, all healthy."""
        srv = self.plain()
        for ns in (*map(_ns, CASES), "under-load"):
            self.ports[ns] = (free_port(), free_port())
            self.docs[ns] = seed_docs(ns, *self.ports[ns], replicas=2, welcome="V2")
            assert srv.apply(self.docs[ns], self.servers.state_dir.parent / f"{ns}.yaml").code == 0
        for ns in self.docs:
            srv.wait_for(f"{ns}: V2 healthy", lambda n=ns: srv.info(n)["status"] == "Healthy")

    def plain(self) -> E2EServer:
        """The running plain server (started if none runs; a kill-point server that a failed test
        left running is killed first)."""
        if self.srv is not None and self.srv.alive() and not self.srv_is_plain:
            self.srv.kill9()
        if self.srv is None or not self.srv.alive():
            self.srv, self.srv_is_plain = self.servers.start(), True
        return self.srv

    def with_kill_point(self, point: str) -> E2EServer:
        """A server that exits at ``point`` (the plain one must have stopped)."""
        self.srv, self.srv_is_plain = self.servers.start(env={KILL_ENV: point}), False
        return self.srv


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    w = World()
    with teardown_on_sigterm():
        try:
            w.deploy()
            yield w
        finally:
            finish(w.servers.state_dir, w.srv)


def _rs_by_revision(objs: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {int(rs["metadata"]["annotations"]["rollout.argoproj.io/revision"]): rs for rs in objs}


def _selectors(world: World, ns: str) -> dict[str, str]:
    return {
        s["metadata"]["name"]: s["spec"]["selector"].get(HASH_LABEL, "")
        for s in stored(world.servers.state_dir, "Service", ns)
    }


def _apply_v3(world: World, srv: E2EServer, ns: str) -> None:
    """Apply V3 on a server that may die at any moment after storing it: the answer may be lost,
    the stored spec may not."""
    r = srv.apply(with_env(world.docs[ns], WELCOME="V3"), world.servers.state_dir.parent / f"{ns}-v3.yaml")
    if r.code != 0:
        assert srv.wait_exit(10) is not None, r  # only a server that died may fail the apply
    ro = stored_one(world.servers.state_dir, "Rollout", ns, "super-hello")
    env = {e["name"]: e.get("value") for e in ro["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["WELCOME"] == "V3", "the applied spec must be stored before the server acts on it"


def _check_between(point: str, world: World, ns: str, before: dict[str, Any], old_hash: str) -> None:
    """What the store holds while the server is down after dying at ``point``."""
    sd = world.servers.state_dir
    status = stored_one(sd, "Rollout", ns, "super-hello")["status"]
    rss = _rs_by_revision(stored(sd, "ReplicaSet", ns))
    assert set(rss) == {1, 2}, f"{point}: ReplicaSets {sorted(rss)}"
    old, new = rss[1], rss[2]
    new_hash = new["metadata"]["labels"][HASH_LABEL]
    sel = _selectors(world, ns)
    new_pods = [p for p in stored(sd, "Pod", ns) if p["metadata"]["labels"].get(HASH_LABEL) == new_hash]
    assert old["spec"]["replicas"] == 2, point
    if point != "after-deadline-set":
        assert DEADLINE_ANNOTATION not in old["metadata"]["annotations"], old["metadata"]

    if point == "after-rs-create":
        # The new ReplicaSet, created at size 0, and nothing else: no Service moved, no status.
        assert new["spec"]["replicas"] == 0
        assert sel == {"super-hello-prod": old_hash, "super-hello-preview": old_hash}, sel
        assert status == before, "the status must not move before the plan's status write"
        assert new_pods == []
    elif point == "after-selector-switch":
        # ...then the preview Service on the new hash; the new ReplicaSet not yet scaled.
        assert new["spec"]["replicas"] == 0
        assert sel == {"super-hello-prod": old_hash, "super-hello-preview": new_hash}, sel
        assert status == before
        assert new_pods == []
    elif point == "after-scale":
        # ...then the new ReplicaSet scaled to the Rollout's replicas; still no status write.
        assert new["spec"]["replicas"] == 2
        assert new["metadata"]["annotations"]["rollout.argoproj.io/desired-replicas"] == "2"
        assert sel == {"super-hello-prod": old_hash, "super-hello-preview": new_hash}, sel
        assert status == before
    elif point == "after-status-write":
        # The whole first plan, status included: revision 2 is current, production still old.
        assert new["spec"]["replicas"] == 2
        assert sel == {"super-hello-prod": old_hash, "super-hello-preview": new_hash}, sel
        assert status["currentPodHash"] == new_hash and status["stableRS"] == old_hash, status
        assert status["blueGreen"] == {"activeSelector": old_hash, "previewSelector": new_hash}, status
    elif point == ACTIVE_SWITCH:
        # Promote's plan up to the active switch: production on the new hash; the old ReplicaSet
        # has no deadline yet and the status still names the old active.
        assert new["spec"]["replicas"] == 2
        assert sel == {"super-hello-prod": new_hash, "super-hello-preview": new_hash}, sel
        assert status["blueGreen"] == {"activeSelector": old_hash, "previewSelector": new_hash}, status
        assert status["stableRS"] == old_hash, status
    elif point == "after-deadline-set":
        # Promote's plan up to the deadline: production on the new hash, the old ReplicaSet given
        # its scale-down deadline, but the status not written yet (it still names the old active).
        assert new["spec"]["replicas"] == 2
        assert sel == {"super-hello-prod": new_hash, "super-hello-preview": new_hash}, sel
        assert DEADLINE_ANNOTATION in old["metadata"]["annotations"], old["metadata"]
        assert status["blueGreen"]["activeSelector"] == old_hash, status
        assert status["stableRS"] == old_hash, status
    else:
        raise AssertionError(f"unknown kill point {point}")


def _kill_one_app_process(world: World, ns: str) -> tuple[str, str]:
    """kill -9 one app process of ``ns`` (of the newest revision when it has running pods, else
    of the oldest); returns (pod uid, container)."""
    pods = stored(world.servers.state_dir, "Pod", ns)
    procs = app_processes(world.servers.state_dir)
    # Oldest first: the last Pod with a process belongs to the newest revision that has some.
    running = [
        (p["metadata"]["uid"], p["spec"]["containers"][0]["name"])
        for p in pods
        if len(procs.get((p["metadata"]["uid"], p["spec"]["containers"][0]["name"]), [])) == 1
    ]
    assert running, procs
    key = running[-1]
    pid = procs[key][0]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while key in app_processes(world.servers.state_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert key not in app_processes(world.servers.state_dir), f"pid {pid} did not die"
    return key


def _container_status(srv: E2EServer, ns: str, uid: str, container: str) -> dict[str, Any] | None:
    for p in srv.http("GET", f"/api/pods?namespace={ns}")["items"]:
        if p["metadata"]["uid"] == uid:
            for cs in (p.get("status") or {}).get("containerStatuses") or []:
                if cs["name"] == container:
                    return dict(cs)
    return None


def _finish_update(srv: E2EServer, ns: str) -> None:
    """From wherever the update is: promote when paused, wait for V3 in production, pass the
    scale-down delay on the test clock, wait for V2's pods to go."""
    srv.wait_for("paused or promoted", lambda: srv.info(ns)["status"] in ("Paused", "Healthy"), timeout=60)
    if srv.info(ns)["status"] == "Paused":
        r = srv.cli("promote", "super-hello", "-n", ns)
        assert r.code == 0, r
    srv.wait_for("V3 active", lambda: summary(srv.info(ns))["active"] == 2, timeout=30)
    srv.wait_for("healthy", lambda: srv.info(ns)["status"] == "Healthy", timeout=30)
    srv.advance(40)
    srv.wait_for(
        "revision 1 scaled down", lambda: summary(srv.info(ns))["revisions"][1]["pods"] == 0, timeout=40
    )


def _check_end(world: World, srv: E2EServer, ns: str) -> None:
    """The end of an uninterrupted run: END, V3 in production, one process per Pod."""
    end = summary(srv.info(ns))
    assert end == END, end
    srv.wait_for("V3 answering in production", lambda: http_body(world.ports[ns][0]) == "V3", timeout=10)
    check_processes(world.servers.state_dir, srv)
    pods = srv.http("GET", f"/api/pods?namespace={ns}")["items"]
    procs = app_processes(world.servers.state_dir)
    assert sorted(len(procs.get((p["metadata"]["uid"], "super-hello"), [])) for p in pods) == [1, 1], pods


@pytest.mark.parametrize("case", CASES)
def test_kill_point_then_restart_ends_as_uninterrupted(case: str, world: World) -> None:
    ns = _ns(case)
    srv = world.plain()
    old_hash = srv.info(ns)["activeSelector"]
    prod = world.ports[ns][0]

    if case == "uninterrupted":
        _apply_v3(world, srv, ns)
        _finish_update(srv, ns)
        _check_end(world, srv, ns)
        return

    point = case
    # A plain stop: pods and proxy keep running, the next server adopts them.
    pids_before = app_processes(world.servers.state_dir)
    srv.shutdown(everything=False)
    assert app_processes(world.servers.state_dir) == pids_before
    assert http_body(prod) == "V2"  # no server: the proxy serves on
    before = stored_one(world.servers.state_dir, "Rollout", ns, "super-hello")["status"]

    srv = world.with_kill_point(point)
    _apply_v3(world, srv, ns)
    if point in PROMOTE_PATH:
        srv.wait_for("V3 paused", lambda: srv.info(ns)["status"] == "Paused", timeout=60)
        r = srv.cli("promote", "super-hello", "-n", ns)
        if r.code != 0:
            assert srv.wait_exit(10) is not None, r  # the answer may be lost as the server dies
    assert srv.wait_exit(30) == 137, srv.log_text()[-2000:]
    assert f"fault injection: exiting at {point.partition(':')[0]}\n" in srv.log_text()

    _check_between(point, world, ns, before, old_hash)
    integrity_check(world.servers.state_dir)
    check_processes_offline(world.servers.state_dir)
    assert http_body(prod) in ("V2", "V3")  # the server is down; the proxy is not
    uid, container = _kill_one_app_process(world, ns)

    srv = world.plain()
    srv.wait_for(
        "the killed app process restarted",
        lambda: (
            (cs := _container_status(srv, ns, uid, container)) is not None
            and cs["restartCount"] >= 1
            and cs["ready"]
        ),
        timeout=30,
    )
    check_processes(world.servers.state_dir, srv)
    _finish_update(srv, ns)
    _check_end(world, srv, ns)


def test_server_killed_under_load_fails_no_request(world: World) -> None:
    ns = "under-load"
    prod, preview = world.ports[ns]
    srv = world.plain()
    load = LoadClient(prod, world.servers.state_dir.parent, max_seconds=150, interval=0.01)
    try:
        srv.wait_for("traffic flowing", lambda: http_body(prod) == "V2")
        _apply_v3(world, srv, ns)
        srv.wait_for("V3 paused", lambda: srv.info(ns)["status"] == "Paused", timeout=60)
        srv.wait_for("V3 answering on preview", lambda: http_body(preview) == "V3", timeout=10)
        assert srv.cli("promote", "super-hello", "-n", ns).code == 0
        srv.kill9()  # in the middle of the promote
        integrity_check(world.servers.state_dir)
        check_processes_offline(world.servers.state_dir)
        time.sleep(2)  # the client keeps sending while no server runs
        assert http_body(prod) in ("V2", "V3")
        srv = world.plain()
        _finish_update(srv, ns)
        srv.wait_for("V3 answering in production", lambda: http_body(prod) == "V3", timeout=10)
        time.sleep(0.5)
        assert load.proc.poll() is None, "the client must send until the end of the run"
    except BaseException:
        load.kill()
        raise
    result = load.stop()
    assert result["failed"] == 0, result
    assert result["seen"].get("V2", 0) > 0 and result["seen"].get("V3", 0) > 0, result
    _check_end(world, srv, ns)
