"""End to end: steady traffic through the production port of a real server across a promote and an
abort fails no request (issue 3, "Traffic"); and the same with kill -9 of the server and of replicas
at the risky moments of a promote, an abort and a scale-down (issue 11, "traffic under faults").

The client is its own process (proxy_loadclient.py): two threads, one opening a new connection per
request and one keeping a connection alive, GET / about every 10 ms each, never retrying, for at
most 150 s. Every non-200 answer or connection error counts as a failure.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_support import (
    E2EServer,
    LoadClient,
    Servers,
    check_processes,
    check_processes_offline,
    container_status,
    integrity_check,
    kill_replica,
    seed_docs,
    servers_fixture,
    stored,
    summary,
    timed_wait,
    with_env,
)

from harness.serverharness import free_port, http_body
from pyrollouts.model import names

NS = "e2e-traffic"


@pytest.fixture
def servers() -> Iterator[Servers]:
    yield from servers_fixture()


def test_no_request_fails_across_promote_and_abort(servers: Servers) -> None:
    srv = servers.start()
    prod, preview = free_port(), free_port()
    docs = seed_docs(NS, prod, preview, replicas=2, welcome="V2")
    manifest = servers.state_dir.parent / "traffic.yaml"
    assert srv.apply(docs, manifest).code == 0
    srv.wait_for("revision 1 healthy", lambda: srv.info(NS)["status"] == "Healthy", timeout=60)
    assert http_body(prod) == "V2"

    load = LoadClient(prod, servers.state_dir.parent, max_seconds=150, interval=0.01)
    try:
        srv.wait_for("the client running", lambda: load.proc.poll() is None and http_body(prod) == "V2")

        # Promote: V3 comes up on preview, then takes production; V2 is scaled down after the
        # scale-down delay (30 s, passed on the test clock) while the client keeps going.
        assert srv.apply(with_env(docs, WELCOME="V3"), manifest).code == 0
        srv.wait_for("V3 paused on preview", lambda: srv.info(NS)["status"] == "Paused", timeout=60)
        srv.wait_for("V3 answering on preview", lambda: http_body(preview) == "V3", timeout=10)
        assert http_body(prod) == "V2"
        r = srv.cli("promote", "super-hello", "-n", NS)
        assert r.code == 0, r
        srv.wait_for("V3 in production", lambda: http_body(prod) == "V3", timeout=30)
        srv.wait_for("revision 2 healthy", lambda: srv.info(NS)["status"] == "Healthy", timeout=30)
        srv.advance(40)
        srv.wait_for(
            "revision 1 scaled down",
            lambda: summary(srv.info(NS))["revisions"][1]["pods"] == 0,
            timeout=40,
        )

        # Abort: V4 comes up on preview and is aborted; production never leaves V3, and V4's
        # replicas go after the abort's scale-down delay (preview keeps V4's selector, as Argo).
        assert srv.apply(with_env(docs, WELCOME="V4"), manifest).code == 0
        srv.wait_for("V4 paused on preview", lambda: srv.info(NS)["status"] == "Paused", timeout=60)
        srv.wait_for("V4 answering on preview", lambda: http_body(preview) == "V4", timeout=10)
        assert http_body(prod) == "V3"
        r = srv.cli("abort", "super-hello", "-n", NS)
        assert r.code == 0, r
        srv.wait_for("aborted", lambda: srv.info(NS)["status"] == "Degraded", timeout=30)
        srv.advance(40)
        srv.wait_for(
            "revision 3 scaled down",
            lambda: summary(srv.info(NS))["revisions"][3]["pods"] == 0,
            timeout=40,
        )
        assert http_body(prod) == "V3"
        assert load.proc.poll() is None, "the client must send until the end of the run"
    except BaseException:
        load.kill()
        raise
    result = load.stop()

    assert result["failed"] == 0, result
    assert result["total"] >= 200, result  # a steady stream, not a handful
    seen = result["seen"]
    assert seen.get("V2", 0) > 0 and seen.get("V3", 0) > 0, seen  # both revisions answered
    assert set(seen) == {"V2", "V3"}, seen  # the aborted V4 never reached production
    end = summary(srv.info(NS))
    assert (end["phase"], end["active"], end["stable"]) == ("Degraded", 2, 2), end


# ---- traffic under faults -------------------------------------------------------------------------
#
# What the design promises (docs/local-runtime.md, DESIGN.md "the proxy"), and so what is asserted:
# - the server's death stops no traffic: the proxy is its own process and serves on its last table,
#   and a restarted server re-adopts the pods and the proxy;
# - a replica's death fails no GET while another ready replica of the revision is in the table: the
#   proxy tries the next endpoint when a connect is refused, and replays an idempotent bodiless
#   request when the connection closes before any byte of the response came back. A request whose
#   response had begun when its replica died cannot be replayed; the demo app answers in
#   microseconds, so that window is tiny: such failures would be counted, and the assertion would
#   show them (none seen in the runs recorded in docs/reliability.md).
# Both clients never retry. One replica of a revision is killed at a time, and the next kill waits
# until it is back and ready: two replicas down at once is an outage the design does not cover.

FAULT_NS = "e2e-faults"


class FaultRun:
    """One server (restarted after each kill -9) on one state dir, one Rollout of 2 replicas, a
    client on the production port all along and one on the preview port while it has a revision
    worth serving; :meth:`cycle` is one update ended by a promote or an abort, with the faults."""

    def __init__(self, servers: Servers, rng: random.Random) -> None:
        self.servers = servers
        self.rng = rng
        self.prod, self.preview = free_port(), free_port()
        self.docs = seed_docs(FAULT_NS, self.prod, self.preview, replicas=2, welcome="V1")
        self.manifest = servers.state_dir.parent / "faults.yaml"
        self.version = 1
        self.offset = 0.0  # how far the test clock was moved: a restarted server starts at 0 again
        self.figures: Counter[str] = Counter()
        self.preview_results: list[dict[str, Any]] = []
        self.prod_version = 1  # the version production serves
        self.srv = servers.start()
        assert self.srv.apply(self.docs, self.manifest).code == 0
        timed_wait(self.srv, "V1 healthy", lambda: self.srv.info(FAULT_NS)["status"] == "Healthy")

    @property
    def state_dir(self) -> Any:
        return self.servers.state_dir

    def advance(self, seconds: float) -> None:
        self.srv.advance(seconds)
        self.offset += seconds

    def kill_server(self, when: str) -> None:
        """kill -9 of the server; while it is down the store is whole and no process is orphaned
        or doubled."""
        self.srv.kill9()
        self.figures["server kill -9"] += 1
        integrity_check(self.state_dir)
        check_processes_offline(self.state_dir)
        print(f"server killed {when}")

    def restart_server(self) -> E2EServer:
        self.srv = self.servers.start()
        if self.offset:
            self.srv.advance(self.offset)  # the clock where the killed server had it
        return self.srv

    def kill_replica(self, pod_hash: str) -> tuple[str, str]:
        uid, container, _ = kill_replica(self.state_dir, FAULT_NS, pod_hash, self.rng.choice)
        self.figures["replica kill -9"] += 1
        return uid, container

    def wait_back(self, uid: str, container: str, what: str) -> None:
        """The killed replica restarted and is ready again (the server running)."""
        srv = self.srv
        timed_wait(
            srv,
            f"{what}: the killed replica back and ready",
            lambda: (
                (cs := container_status(srv, FAULT_NS, uid, container)) is not None
                and cs["restartCount"] >= 1
                and cs["ready"]
            ),
        )

    def hashes(self) -> tuple[str, str]:
        info = self.srv.info(FAULT_NS)
        return info["activeSelector"], info["previewSelector"]

    def cycle(self, action: str) -> None:
        """Update to the next version; kill a replica of preview and of production while paused;
        promote or abort with the server and a production replica killed right behind it; then the
        scale-down with the server, a going replica and a production replica killed right behind
        the clock's move."""
        ns, srv = FAULT_NS, self.srv
        self.version += 1
        new_v = f"V{self.version}"
        assert srv.apply(with_env(self.docs, WELCOME=new_v), self.manifest).code == 0
        timed_wait(srv, f"{new_v} paused", lambda: srv.info(ns)["status"] == "Paused")
        timed_wait(srv, f"{new_v} on preview", lambda: http_body(self.preview) == new_v)
        old, new = self.hashes()
        assert old != new
        preview_load = LoadClient(self.preview, self.state_dir.parent, max_seconds=600, interval=0.01)
        try:
            # Replica deaths while paused: one of preview's revision, then one of production's.
            for h, what in ((new, "preview replica"), (old, "production replica")):
                uid, c = self.kill_replica(h)
                self.wait_back(uid, c, what)

            # The action, and the server killed right behind it with one replica of the revision
            # that serves production next.
            r = srv.cli(action, "super-hello", "-n", ns)
            assert r.code == 0, r
            time.sleep(self.rng.uniform(0, 0.5))
            self.kill_server(f"during the {action}")
            serving = new if action == "promote" else old
            uid, c = self.kill_replica(serving)
            time.sleep(self.rng.uniform(0.2, 1.5))  # traffic goes on with no server
            srv = self.restart_server()
            if action == "promote":
                timed_wait(
                    srv,
                    "promoted",
                    lambda: (i := srv.info(ns))["status"] == "Healthy" and i["activeSelector"] == new,
                )
                self.figures["promotes (production switches)"] += 1
            else:
                timed_wait(
                    srv,
                    "aborted",
                    lambda: (i := srv.info(ns))["status"] == "Degraded" and i["activeSelector"] == old,
                )
                self.figures["aborts"] += 1
            self.wait_back(uid, c, f"after the {action}")
            assert http_body(self.prod) == (new_v if action == "promote" else f"V{self.prod_version}")
        except BaseException:
            preview_load.kill()
            raise
        result = preview_load.stop()
        self.preview_results.append(result)
        assert result["failed"] == 0, f"preview, {new_v} {action}: {result}"

        # Scale-down of the revision that lost: the clock past the delay, the server killed right
        # behind, and one of the going replicas killed too when one still runs.
        going = old if action == "promote" else new
        if action == "promote":
            self.prod_version = self.version
        self.advance(40)
        time.sleep(self.rng.uniform(0, 0.5))
        self.kill_server("during the scale-down")
        pods_going = [p for p in stored(self.state_dir, "Pod", ns) if _hash(p) == going]
        if any(not p["metadata"].get("deletionTimestamp") for p in pods_going):
            self.kill_replica(going)
        # ...and one production replica, while no server runs to restart it.
        staying = new if action == "promote" else old
        uid, c = self.kill_replica(staying)
        srv = self.restart_server()
        timed_wait(
            srv,
            f"the pods of hash {going} gone (scale-down)",
            lambda: not [p for p in stored(self.state_dir, "Pod", ns) if _hash(p) == going],
        )
        self.wait_back(uid, c, "after the scale-down")
        check_processes(self.state_dir, srv)
        integrity_check(self.state_dir)


def _hash(pod: dict[str, Any]) -> str:
    return str(pod["metadata"]["labels"].get(names.POD_TEMPLATE_HASH_LABEL, ""))


def _run_faults(servers: Servers, actions: list[str], seed: int) -> dict[str, Any]:
    run = FaultRun(servers, random.Random(seed))
    srv = run.srv
    prod_load = LoadClient(run.prod, servers.state_dir.parent, max_seconds=3000, interval=0.01)
    started = time.monotonic()
    try:
        timed_wait(srv, "production traffic flowing", lambda: http_body(run.prod) == "V1")
        for action in actions:
            run.cycle(action)
        assert prod_load.proc.poll() is None, "the client must send until the end of the run"
    except BaseException:
        prod_load.kill()
        raise
    prod = prod_load.stop()
    figures = {
        "seed": seed,
        "seconds": round(time.monotonic() - started),
        "production": {k: prod[k] for k in ("total", "failed", "errors")},
        "preview": {
            "total": sum(r["total"] for r in run.preview_results),
            "failed": sum(r["failed"] for r in run.preview_results),
        },
        **run.figures,
    }
    print("traffic under faults:", json.dumps(figures))
    assert prod["failed"] == 0, figures
    promoted = {"V1"} | {f"V{i + 2}" for i, a in enumerate(actions) if a == "promote"}
    assert set(prod["seen"]) <= promoted, prod["seen"]  # an aborted version never reached production
    assert len(prod["seen"]) >= 2, prod["seen"]
    return figures


def test_kill9_of_server_and_replicas_under_traffic(servers: Servers) -> None:
    """The fast form: one promote and one abort, each with its kill -9s (server and replicas)."""
    figures = _run_faults(servers, ["promote", "abort"], seed=11)
    assert figures["server kill -9"] == 4 and figures["replica kill -9"] >= 8, figures


@pytest.mark.soak
@pytest.mark.timeout(7200)  # many rounds: far past the suite's 300 s per test
def test_kill9_under_traffic_soak(servers: Servers) -> None:
    """Many cycles (SOAK_FAULT_CYCLES, default 20), promote or abort at random."""
    seed = int(os.environ.get("SOAK_SEED", str(random.randrange(1 << 30))))
    rng = random.Random(seed)
    cycles = int(os.environ.get("SOAK_FAULT_CYCLES", "20"))
    actions = [rng.choice(["promote", "abort"]) for _ in range(cycles)]
    _run_faults(servers, actions, seed)
