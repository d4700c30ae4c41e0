"""Bounds where input becomes work, and one admission path for every write (issue 11, items 2-3).

Real servers (``rollouts server`` subprocesses), real pods (processes), the real SQLite store:

- a replica count above the local cap (``--max-replicas``, default 100) is refused at apply, by
  PATCH and by the verbs, with the field and the fix; nothing is stored;
- PATCH, the user verbs and the dashboard's actions are checked on the object they would store,
  as apply checks a manifest (``spec.replicas: "abc"`` used to be stored and break the info route);
- the annotations the runtime owns (a replica's host ports, its process records) and the status
  of Pods cannot be written by clients (a patched ports annotation routed a Service's traffic to
  the control API);
- a Service port equal to the API's port, a replica's host port or another Service's port is
  refused with its holder named;
- while hundreds of Pods are created, the API keeps answering (they are created and started a
  few at a time, yielding to the event loop);
- a server restarted on a store that holds absurd objects (written straight into it) listens,
  answers and reports them instead of freezing.
"""

from __future__ import annotations

import copy
import json
import shutil
import socket
import sqlite3
import tempfile
import threading
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import E2EServer, Servers, finish, new_state_dir, rollout_doc, seed_docs, servers_fixture

from harness.serverharness import free_port
from pyrollouts.runtimes.local.store import Store

NS = "adm"


@pytest.fixture
def servers() -> Iterator[Servers]:
    yield from servers_fixture()


@pytest.fixture(scope="module")
def srv() -> Iterator[E2EServer]:
    """One server for the admission tests, running the example (1 replica) in namespace adm."""
    state_dir = new_state_dir()
    state_dir.mkdir(parents=True)
    server: E2EServer | None = None
    try:
        server = E2EServer(state_dir)
        docs = seed_docs(NS, free_port(), free_port(), replicas=1)
        r = server.request("POST", "/api/apply", {"objects": docs})
        assert r.status == 200, r.body
        server.wait_for("a pod with host ports", lambda: _pods(server)[0]["metadata"]["annotations"])
        yield server
    finally:
        finish(state_dir, server)


def _pods(srv: E2EServer, ns: str = NS) -> list[dict[str, Any]]:
    return list(srv.http("GET", f"/api/pods?namespace={ns}")["items"])


def _rollout(srv: E2EServer) -> dict[str, Any]:
    return dict(srv.http("GET", f"/api/rollouts/{NS}/super-hello"))


def _text(body: Any) -> str:
    """An error answer as one text: its error and every detail."""
    return json.dumps(body)


def _refused(srv: E2EServer, method: str, path: str, body: Any, **kw: Any) -> str:
    """The request must be refused with 422 and details; the answer as text."""
    r = srv.request(method, path, body, **kw)
    assert r.status == 422, f"{method} {path} {body}: expected 422, got {r.status} {r.body}"
    assert isinstance(r.body, dict) and r.body.get("error"), r.body
    return _text(r.body)


def _rv(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["resourceVersion"])


# ---- item 2: a local cap on counts ------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("replicas", 101), ("replicas", 100000), ("replicas", 2147483648), ("previewReplicaCount", 101)],
)
def test_counts_above_the_local_cap_are_refused_at_apply(srv: E2EServer, field: str, value: int) -> None:
    before = _rollout(srv)
    docs = seed_docs(NS, 1, 2, replicas=1)  # ports are not looked at: the Services are left out
    ro = copy.deepcopy(rollout_doc(docs))
    if field == "replicas":
        ro["spec"]["replicas"] = value
    else:
        ro["spec"]["strategy"]["blueGreen"]["previewReplicaCount"] = value
    text = _refused(srv, "POST", "/api/apply", {"objects": [ro]})
    assert field in text, text
    if value < 2**31:  # above int32 the manifest checks refuse it first (model/validate.py)
        assert "--max-replicas 100" in text and "docs/local-runtime.md" in text, text
    assert _rv(_rollout(srv)) == _rv(before), "a refused apply must store nothing"


# ---- item 3: one admission path ---------------------------------------------------------------


def test_patch_is_checked_like_apply_and_stores_nothing(srv: E2EServer) -> None:
    before = _rollout(srv)
    path = f"/api/rollouts/{NS}/super-hello"
    text = _refused(srv, "PATCH", path, {"spec": {"replicas": "abc"}})
    assert "spec.replicas" in text, text
    text = _refused(srv, "PATCH", path, {"spec": {"replicas": 5000}})
    assert "spec.replicas" in text and "--max-replicas" in text, text
    text = _refused(srv, "PATCH", path, {"spec": {"template": {"spec": {"hostNetwork": True}}}})
    assert "spec.template.spec.hostNetwork" in text, text
    assert _rv(_rollout(srv)) == _rv(before), "a refused PATCH must store nothing"
    # The routes that read the Rollout still answer, and a good patch still goes through.
    assert srv.request("GET", f"/api/rollouts/{NS}/super-hello/info").status == 200
    ok = srv.request("PATCH", path, {"metadata": {"labels": {"team": "a"}}})
    assert ok.status == 200, ok.body


def test_user_verbs_and_dashboard_actions_are_checked(srv: E2EServer) -> None:
    before = _rollout(srv)
    image = "registry.example/unmapped:1"
    text = _refused(
        srv, "POST", f"/api/rollouts/{NS}/super-hello/set-image", {"container": "*", "image": image}
    )
    assert "has no command" in text and image in text, text
    r = srv.action(f"/api/v1/rollouts/{NS}/super-hello/set/super-hello/{image}")
    assert r.status == 422, r.body
    assert "has no command" in _text(r.body), r.body
    assert _rv(_rollout(srv)) == _rv(before), "a refused action must store nothing"


def test_runtime_owned_annotations_and_pod_status_are_not_for_clients(srv: E2EServer) -> None:
    pod = _pods(srv)[0]
    name = pod["metadata"]["name"]
    path = f"/api/pods/{NS}/{name}"
    owned = {k: v for k, v in pod["metadata"]["annotations"].items() if k.startswith("local.pyrollouts.io/")}
    assert "local.pyrollouts.io/ports" in owned, pod["metadata"]["annotations"]
    # Pointing the replica's port at the API would send the Service's traffic to the control API.
    hijack = json.dumps({"8080": srv.port})
    for patch in (
        {"metadata": {"annotations": {"local.pyrollouts.io/ports": hijack}}},
        {"metadata": {"annotations": {"local.pyrollouts.io/ports": None}}},
        {
            "metadata": {
                "annotations": {"local.pyrollouts.io/processes": json.dumps({"x": {"pid": 1, "start": 1}})}
            }
        },
    ):
        text = _refused(srv, "PATCH", path, patch)
        assert "written by the local runtime only" in text, text
    text = _refused(
        srv,
        "PATCH",
        path + "?subresource=status",
        {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
    )
    assert "Pod status is written by the local runtime" in text, text
    # Nor the rest the runtime owns: a running Pod's spec, the deletion marks, Events.
    command = {"spec": {"containers": [{"name": "super-hello", "command": ["sh", "-c", "id"]}]}}
    assert "a Pod's spec cannot change" in _refused(srv, "PATCH", path, command)
    mark = {"metadata": {"deletionTimestamp": "2020-01-01T00:00:00Z"}}
    assert "delete it instead" in _refused(srv, "PATCH", path, mark)
    event = srv.http("GET", f"/api/events?namespace={NS}")["items"][0]["metadata"]["name"]
    assert "Events are recorded by the server" in _refused(
        srv, "PATCH", f"/api/events/{NS}/{event}", {"message": "all good"}
    )
    after = srv.http("GET", path)
    assert after["spec"] == pod["spec"] and not after["metadata"].get("deletionTimestamp")
    assert {k: v for k, v in after["metadata"]["annotations"].items() if k in owned} == owned
    # What clients may write still goes through.
    ok = srv.request("PATCH", path, {"metadata": {"labels": {"checked": "yes"}}})
    assert ok.status == 200, ok.body


def _service(name: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"selector": {"app": "nothing"}, "ports": [{"port": port, "targetPort": 8080}]},
    }


def test_service_ports_that_collide_are_refused_with_the_owner_named(srv: E2EServer) -> None:
    text = _refused(srv, "POST", "/api/apply", {"objects": [_service("on-api", srv.port)]})
    assert f"port {srv.port} is the pyrollouts server's API port" in text, text
    pod = _pods(srv)[0]
    host_port = next(iter(json.loads(pod["metadata"]["annotations"]["local.pyrollouts.io/ports"]).values()))
    text = _refused(srv, "POST", "/api/services", _service("on-pod", host_port))
    assert f"held by Pod {NS}/{pod['metadata']['name']}" in text, text
    prod = srv.http("GET", f"/api/services/{NS}/super-hello-prod")["spec"]["ports"][0]["port"]
    text = _refused(
        srv,
        "PATCH",
        f"/api/services/{NS}/super-hello-preview",
        {"spec": {"ports": [{"port": prod, "targetPort": 8080}]}},
    )
    assert f"{prod} is already held by Service {NS}/super-hello-prod" in text, text
    names = {s["metadata"]["name"] for s in srv.http("GET", f"/api/services?namespace={NS}")["items"]}
    assert names == {"super-hello-prod", "super-hello-preview"}, names


# ---- item 2: work in batches, the API answers during it ----------------------------------------


def _pod_count(state_dir: Path, ns: str) -> int:
    """Pods in state.db, read straight from the file (not through the API being measured)."""
    db = sqlite3.connect(f"file:{state_dir / 'state.db'}?mode=ro", uri=True, timeout=30)
    try:
        return int(
            db.execute("SELECT count(*) FROM objects WHERE kind='Pod' AND namespace=?", (ns,)).fetchone()[0]
        )
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def _sleepers(ns: str, replicas: int, port: int) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "many", "namespace": ns},
            "spec": {"selector": {"app": "many"}, "ports": [{"port": port, "targetPort": 8080}]},
        },
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": "many", "namespace": ns},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "many"}},
                "strategy": {"blueGreen": {"activeService": "many"}},
                "template": {
                    "metadata": {"labels": {"app": "many"}},
                    "spec": {"containers": [{"name": "c", "image": "sleep", "command": ["sleep", "600"]}]},
                },
            },
        },
    ]


@pytest.mark.parametrize("replicas", [pytest.param(100), pytest.param(300, marks=pytest.mark.soak)])
def test_the_api_answers_while_hundreds_of_pods_are_created(servers: Servers, replicas: int) -> None:
    srv = servers.start(env={"PYROLLOUTS_MAX_REPLICAS": str(replicas)})
    ns = "many"
    answers: list[tuple[float, float]] = []  # (sent, answered), monotonic
    errors: list[str] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            sent = time.monotonic()
            try:
                srv.http("GET", "/api/version", timeout=120)
                answers.append((sent, time.monotonic()))
            except (OSError, urllib.error.HTTPError) as exc:
                errors.append(f"{exc}")
            time.sleep(0.02)

    r = srv.request("POST", "/api/apply", {"objects": _sleepers(ns, replicas, free_port())}, timeout=60)
    assert r.status == 200, r.body
    applied = time.monotonic()
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        deadline = applied + 300
        first: float | None = None
        while (count := _pod_count(srv.state_dir, ns)) < replicas:
            if count and first is None:
                first = time.monotonic()
            assert time.monotonic() < deadline, f"{replicas} pods not created in 300 s"
            time.sleep(0.01)
        created = time.monotonic()
        first = first or created
        srv.wait_for(
            f"{replicas} pods running",
            lambda: (
                sum(1 for p in _pods(srv, ns) if (p.get("status") or {}).get("phase") == "Running")
                >= replicas
            ),
            timeout=300,
        )
        running = time.monotonic()
    finally:
        done.set()
        poller.join(timeout=130)
    # Answers that came back between the first Pod and the last one reaching the store. The
    # poller has one request in flight: at most one answer can land in the moment between the
    # loop being freed and this test seeing the last Pod.
    during = [a for a in answers if first <= a[1] <= created]
    worst = max((b - a for a, b in answers), default=float("nan"))
    print(
        f"\n{replicas} pods: created in {created - first:.1f}s, running {running - applied:.1f}s after "
        f"the apply; {len(answers)} API answers, {len(during)} while pods were being created, "
        f"worst latency {worst:.2f}s"
    )
    assert not errors, errors[:3]
    # Before the batches, the whole scale-up ran in one turn of the event loop: no answer in it.
    assert len(during) >= 2, (
        f"the API answered {len(during)} time(s) during the {created - first:.1f}s it took to create "
        f"{replicas} pods (worst latency {worst:.2f}s)"
    )


# ---- item 2: a restart on absurd stored objects -------------------------------------------------


def test_a_restart_on_a_store_with_absurd_objects_listens_and_reports_them(servers: Servers) -> None:
    absurd = 2147483648
    store = Store(servers.state_dir / "state.db")
    try:
        docs = seed_docs("absurd", free_port(), free_port(), replicas=1)
        for d in docs:
            if d["kind"] == "Rollout":
                d["spec"]["replicas"] = absurd
            store.create(d["kind"], d)
        store.create(
            "ReplicaSet",
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {"name": "loose", "namespace": "absurd"},
                "spec": {
                    "replicas": absurd,
                    "selector": {"matchLabels": {"app": "loose"}},
                    "template": copy.deepcopy(rollout_doc(docs)["spec"]["template"]),
                },
            },
        )
    finally:
        store.close()
    srv = servers.start()  # waits until the API answers (30 s at most)

    def events() -> list[dict[str, Any]]:
        return [
            e for e in srv.http("GET", "/api/events?namespace=absurd")["items"] if e.get("type") == "Warning"
        ]

    def refused(kind: str, name_prefix: str, reason: str) -> dict[str, Any] | None:
        return next(
            (
                e
                for e in events()
                if e["involvedObject"]["kind"] == kind
                and e["involvedObject"]["name"].startswith(name_prefix)
                and e["reason"] == reason
            ),
            None,
        )

    ev = srv.wait_for(
        "a warning about the Rollout", lambda: refused("Rollout", "super-hello", "RefusedByLocalRuntime")
    )
    assert f"spec.replicas: {absurd}" in ev["message"] and "--max-replicas" in ev["message"], ev
    ev = srv.wait_for(
        "a warning about the ReplicaSet", lambda: refused("ReplicaSet", "loose", "TooManyReplicas")
    )
    assert "ReplicaSet absurd/loose" in ev["message"] and "--max-replicas" in ev["message"], ev
    # The Rollout's own ReplicaSet (the controller made it from the absurd spec) is refused too.
    ev = srv.wait_for(
        "a warning about the Rollout's ReplicaSet",
        lambda: refused("ReplicaSet", "super-hello-", "TooManyReplicas"),
    )
    assert "fix the Rollout absurd/super-hello" in ev["message"], ev
    rs = srv.http("GET", "/api/replicasets/absurd/loose")
    cond = next(c for c in rs["status"]["conditions"] if c["type"] == "ReplicaFailure")
    assert cond["reason"] == "TooManyReplicas", cond
    assert "not acted on" in srv.log_text(), srv.log_tail()
    assert _pods(srv, "absurd") == []
    # It still answers, and the way out works: a PATCH to a sane count runs the pods.
    assert srv.request("GET", "/api/rollouts/absurd/super-hello/info").status == 200
    ok = srv.request("PATCH", "/api/replicasets/absurd/loose", {"spec": {"replicas": 1}})
    assert ok.status == 200, ok.body
    srv.wait_for("the ReplicaSet's pod", lambda: len(_pods(srv, "absurd")) >= 1)


async def test_a_stored_service_on_the_api_port_is_named_when_the_server_cannot_listen() -> None:
    from pyrollouts.daemons.local_server import LocalServer, ServerError

    state_dir = Path(tempfile.mkdtemp(prefix="adm", dir="/tmp"))
    try:
        with socket.socket() as holder:  # the running proxy, holding the Service's port
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            port = holder.getsockname()[1]
            store = Store(state_dir / "state.db")
            try:
                store.create("Service", _service("on-api", port))
            finally:
                store.close()
            server = LocalServer(state_dir, f"127.0.0.1:{port}")
            with pytest.raises(ServerError) as err:
                await server.start()
        assert f"Service {NS}/on-api holds this port" in str(err.value), err.value
        assert "another --listen" in str(err.value), err.value
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
