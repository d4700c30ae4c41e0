"""End to end: the server dies in the middle of an update and a restarted server finishes it as if
nothing happened (issue 3, "Kill points").

For each kill point of controller/faults.py the test deploys V2 with a plain server, stops that
server (pods and proxy keep running), starts one with ``PYROLLOUTS_KILL_AT=<point>`` and updates to
V3 (promoting when the point is on the promote path). The server exits right at the point. While it
is down the test reads state.db: what the controller wrote up to the point is there and nothing it
would have written after. It then kills one app process (kill -9), starts a plain server on the same
state dir and drives the update to its end (promote, the scale-down delay on the test clock). The
end must equal an uninterrupted run's (the ``uninterrupted`` case runs the same update without a
kill), with each container of each Pod running exactly once and no process without a Pod.

The plan of the first reconcile of an update is: create the new ReplicaSet (size 0), point the
preview Service at it, scale it up, write the status. Promote's plan: point the active Service at
the new ReplicaSet, set the old one's scale-down deadline, write the status. The checks below
follow that order.

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
    KILL_ENV,
    E2EServer,
    LoadClient,
    Servers,
    app_processes,
    check_processes,
    free_port,
    http_body,
    seed_docs,
    servers_fixture,
    stored,
    stored_one,
    summary,
    with_env,
)

NS = "e2e-kill"
HASH_LABEL = "rollouts-pod-template-hash"
DEADLINE_ANNOTATION = "scale-down-deadline"
PROMOTE_PATH = ("after-deadline-set",)

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


@pytest.fixture
def servers() -> Iterator[Servers]:
    yield from servers_fixture()


def _rs_by_revision(state: Any) -> dict[int, dict[str, Any]]:
    return {int(rs["metadata"]["annotations"]["rollout.argoproj.io/revision"]): rs for rs in state}


def _selectors(servers: Servers) -> dict[str, str]:
    return {
        s["metadata"]["name"]: s["spec"]["selector"].get(HASH_LABEL, "")
        for s in stored(servers.state_dir, "Service", NS)
    }


def _apply_v3(srv: E2EServer, docs: list[dict[str, Any]], servers: Servers) -> None:
    """Apply V3 on a server that may die at any moment after storing it: the answer may be lost,
    the stored spec may not."""
    r = srv.apply(with_env(docs, WELCOME="V3"), servers.state_dir.parent / "v3.yaml")
    if r.code != 0:
        assert not srv.alive() or srv.wait_exit(10) is not None, r
    ro = stored_one(servers.state_dir, "Rollout", NS, "super-hello")
    env = {e["name"]: e.get("value") for e in ro["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["WELCOME"] == "V3", "the applied spec must be stored before the server acts on it"


def _check_between(point: str, servers: Servers, before: dict[str, Any], old_hash: str) -> None:
    """What the store holds while the server is down after dying at ``point``."""
    sd = servers.state_dir
    rollout = stored_one(sd, "Rollout", NS, "super-hello")
    status = rollout["status"]
    rss = _rs_by_revision(stored(sd, "ReplicaSet", NS))
    assert set(rss) == {1, 2}, f"{point}: ReplicaSets {sorted(rss)}"
    old, new = rss[1], rss[2]
    new_hash = new["metadata"]["labels"][HASH_LABEL]
    sel = _selectors(servers)
    new_pods = [p for p in stored(sd, "Pod", NS) if p["metadata"]["labels"].get(HASH_LABEL) == new_hash]
    assert old["spec"]["replicas"] == 2, point
    assert DEADLINE_ANNOTATION not in old["metadata"]["annotations"] or point == "after-deadline-set", old

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
        assert status != before
        assert status["currentPodHash"] == new_hash and status["stableRS"] == old_hash, status
        assert status["blueGreen"] == {"activeSelector": old_hash, "previewSelector": new_hash}, status
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


def _kill_one_app_process(servers: Servers) -> tuple[str, str]:
    """kill -9 one app process (of the newest revision when it has pods, else of the oldest);
    returns (pod uid, container)."""
    pods = stored(servers.state_dir, "Pod", NS)
    procs = app_processes(servers.state_dir)
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
    while key in app_processes(servers.state_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert key not in app_processes(servers.state_dir), f"pid {pid} did not die"
    return key


def _container_status(srv: E2EServer, uid: str, container: str) -> dict[str, Any] | None:
    for p in srv.http("GET", f"/api/pods?namespace={NS}")["items"]:
        if p["metadata"]["uid"] == uid:
            for cs in (p.get("status") or {}).get("containerStatuses") or []:
                if cs["name"] == container:
                    return dict(cs)
    return None


def _finish_update(srv: E2EServer) -> None:
    """From wherever the update is: promote when paused, wait for V3 in production, pass the
    scale-down delay on the test clock, wait for V2's pods to go."""
    srv.wait_for(
        "paused or promoted", lambda: srv.info(NS)["status"] in ("Paused", "Healthy"), timeout=60
    )
    if srv.info(NS)["status"] == "Paused":
        r = srv.cli("promote", "super-hello", "-n", NS)
        assert r.code == 0, r
    srv.wait_for("V3 active and healthy", lambda: summary(srv.info(NS))["active"] == 2, timeout=30)
    srv.wait_for("healthy", lambda: srv.info(NS)["status"] == "Healthy", timeout=30)
    srv.advance(40)
    srv.wait_for(
        "revision 1 scaled down", lambda: summary(srv.info(NS))["revisions"][1]["pods"] == 0, timeout=40
    )


@pytest.mark.parametrize("point", ["uninterrupted", *(
    "after-rs-create",
    "after-scale",
    "after-selector-switch",
    "after-status-write",
    "after-deadline-set",
)])
def test_kill_point_then_restart_ends_as_uninterrupted(point: str, servers: Servers) -> None:
    srv = servers.start()
    prod, preview = free_port(), free_port()
    docs = seed_docs(NS, prod, preview, replicas=2, welcome="V2")
    assert srv.apply(docs, servers.state_dir.parent / "v2.yaml").code == 0
    srv.wait_for("V2 healthy", lambda: srv.info(NS)["status"] == "Healthy", timeout=60)
    old_hash = srv.info(NS)["activeSelector"]

    if point == "uninterrupted":
        _apply_v3(srv, docs, servers)
        _finish_update(srv)
    else:
        # A plain stop: pods and proxy keep running, the next server adopts them.
        pids_before = app_processes(servers.state_dir)
        srv.shutdown(everything=False)
        assert app_processes(servers.state_dir) == pids_before
        assert http_body(prod) == "V2"  # no server: the proxy serves on
        before = stored_one(servers.state_dir, "Rollout", NS, "super-hello")["status"]

        srv = servers.start(env={KILL_ENV: point})
        _apply_v3(srv, docs, servers)
        if point in PROMOTE_PATH:
            srv.wait_for("V3 paused", lambda: srv.info(NS)["status"] == "Paused", timeout=60)
            r = srv.cli("promote", "super-hello", "-n", NS)
            assert r.code == 0 or not srv.alive(), r
        assert srv.wait_exit(30) == 137, srv.log_text()[-2000:]
        assert f"fault injection: exiting at {point}" in srv.log_text()

        _check_between(point, servers, before, old_hash)
        assert http_body(prod) in ("V2", "V3")  # the server is down; the proxy is not
        uid, container = _kill_one_app_process(servers)

        srv = servers.start()
        srv.wait_for(
            "the killed app process restarted",
            lambda: (cs := _container_status(srv, uid, container)) is not None
            and cs["restartCount"] >= 1 and cs["ready"],
            timeout=30,
        )
        check_processes(servers.state_dir, srv)
        _finish_update(srv)

    end = summary(srv.info(NS))
    assert end == END, end
    srv.wait_for("V3 answering in production", lambda: http_body(prod) == "V3", timeout=10)
    check_processes(servers.state_dir, srv)
    # Each Pod of the end state has its own live process, and nothing runs twice.
    pods = srv.http("GET", f"/api/pods?namespace={NS}")["items"]
    procs = app_processes(servers.state_dir)
    assert sorted(len(procs[(p["metadata"]["uid"], "super-hello")]) for p in pods) == [1, 1]
    assert len(procs) == 2, procs


def test_server_killed_under_load_fails_no_request(servers: Servers) -> None:
    srv = servers.start()
    prod, preview = free_port(), free_port()
    docs = seed_docs(NS, prod, preview, replicas=2, welcome="V2")
    assert srv.apply(docs, servers.state_dir.parent / "v2.yaml").code == 0
    srv.wait_for("V2 healthy", lambda: srv.info(NS)["status"] == "Healthy", timeout=60)

    load = LoadClient(prod, servers.state_dir.parent, max_seconds=90, interval=0.01)
    try:
        srv.wait_for("traffic flowing", lambda: http_body(prod) == "V2")
        _apply_v3(srv, docs, servers)
        srv.wait_for("V3 paused", lambda: srv.info(NS)["status"] == "Paused", timeout=60)
        srv.wait_for("V3 answering on preview", lambda: http_body(preview) == "V3", timeout=10)
        assert srv.cli("promote", "super-hello", "-n", NS).code == 0
        srv.kill9()  # in the middle of the promote
        time.sleep(2)  # the client keeps sending while no server runs
        assert http_body(prod) in ("V2", "V3")
        srv = servers.start()
        _finish_update(srv)
        srv.wait_for("V3 answering in production", lambda: http_body(prod) == "V3", timeout=10)
        time.sleep(0.5)
    except BaseException:
        load.kill()
        raise
    result = load.stop()
    assert result["failed"] == 0, result
    assert result["seen"].get("V2", 0) > 0 and result["seen"].get("V3", 0) > 0, result
    assert summary(srv.info(NS)) == END
    check_processes(servers.state_dir, srv)
