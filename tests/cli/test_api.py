"""The HTTP/JSON API (docs/api.md) against a real `rollouts server`: status codes, error bodies,
all-or-nothing apply, the origin check, Server-Sent Events, the test clock."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest
from cli_support import seed_manifest

from harness.serverharness import ServerProcess, free_port
from pyrollouts.cli.tree import parse_time


def error_of(
    server: ServerProcess, method: str, path: str, body: Any = None, **kw: Any
) -> tuple[int, dict[str, Any]]:
    with pytest.raises(urllib.error.HTTPError) as info:
        server.http(method, path, body, **kw)
    return info.value.code, json.loads(info.value.read())


def test_version(server: ServerProcess) -> None:
    v = server.http("GET", "/api/version")
    assert v["version"] and v["runtime"] == "local" and v["testClock"] is True


def test_errors_are_json_with_the_right_status(server: ServerProcess) -> None:
    code, body = error_of(server, "GET", "/api/gizmos")
    assert code == 404 and "unknown resource 'gizmos'" in body["error"]
    code, body = error_of(server, "GET", "/api/rollouts/nowhere/nothing/info")
    assert code == 404 and body["error"] == "rollout 'nothing' not found in namespace 'nowhere'"
    code, body = error_of(server, "POST", "/api/apply", raw=b"{not json")
    assert code == 400 and "not valid JSON" in body["error"]
    code, body = error_of(server, "POST", "/api/apply", {"neither": 1})
    assert code == 400
    code, body = error_of(server, "POST", "/api/rollouts/nowhere/nothing/launch", {})
    assert code == 404 and "unknown action" in body["error"]


def test_apply_is_all_or_nothing(server: ServerProcess) -> None:
    ns = "api-atomic"
    text, _, _ = seed_manifest(ns)
    # one good document and one bad one: nothing may be stored
    bad = text + (
        "---\napiVersion: v1\nkind: Service\n"
        f"metadata: {{name: broken, namespace: {ns}}}\nspec:\n  ports: oops\n"
    )
    code, body = error_of(server, "POST", "/api/apply", {"text": bad, "source": "mixed.yaml"})
    assert code == 422 and "nothing was applied" in body["error"]
    assert body["details"] and all(d["file"] == "mixed.yaml" for d in body["details"])
    assert any(d["line"] for d in body["details"])
    assert server.http("GET", f"/api/rollouts?namespace={ns}")["items"] == []
    assert server.http("GET", f"/api/services?namespace={ns}")["items"] == []


def test_apply_create_update_unchanged_and_conflict(server: ServerProcess) -> None:
    ns = "api-apply"
    text, prod, _ = seed_manifest(ns)
    res = server.http("POST", "/api/apply", {"text": text, "source": "a.yaml"})
    assert [r["result"] for r in res["results"]] == ["created"] * 4
    res = server.http("POST", "/api/apply", {"text": text, "source": "a.yaml"})
    assert [r["result"] for r in res["results"]] == ["unchanged"] * 4
    changed = text.replace("revisionHistoryLimit: 6", "revisionHistoryLimit: 5")
    res = server.http("POST", "/api/apply", {"text": changed, "source": "a.yaml"})
    assert [r["result"] for r in res["results"]] == ["unchanged", "configured", "unchanged", "unchanged"]
    code, body = error_of(
        server, "POST", "/api/apply", {"text": text, "source": "a.yaml", "createOnly": True}
    )
    assert code == 409 and any("already exists" in d for d in body["details"])
    # a Service port another Service holds is refused by the runtime's admission
    clash, _, _ = seed_manifest("api-clash", prod=prod)
    code, body = error_of(server, "POST", "/api/apply", {"text": clash, "source": "clash.yaml"})
    assert code == 422 and any(str(prod) in d for d in body["details"])
    assert server.http("GET", "/api/rollouts?namespace=api-clash")["items"] == []
    # the controller's selector hash survives a re-apply of the Service
    svc = server.wait_for(
        "active selector",
        lambda: (
            (s := server.http("GET", f"/api/services/{ns}/super-hello-prod"))["spec"]["selector"].get(
                "rollouts-pod-template-hash"
            )
            and s
        ),
    )
    server.http("POST", "/api/apply", {"text": changed, "source": "a.yaml"})
    again = server.http("GET", f"/api/services/{ns}/super-hello-prod")
    assert again["spec"]["selector"] == svc["spec"]["selector"]
    server.http("DELETE", f"/api/rollouts/{ns}/super-hello")
    server.wait_for("pods gone", lambda: server.http("GET", f"/api/pods?namespace={ns}")["items"] == [])


def test_actions_and_patch_routes(server: ServerProcess) -> None:
    ns = "api-actions"
    text, _, _ = seed_manifest(ns, replicas=1)
    server.http("POST", "/api/apply", {"text": text, "source": "a.yaml"})
    code, body = error_of(server, "POST", f"/api/rollouts/{ns}/super-hello/promote", {})
    assert code == 409 and body["error"] == "rollout 'super-hello' is not paused"
    res = server.http("POST", f"/api/rollouts/{ns}/super-hello/pause", {})
    assert res["message"] == "rollout 'super-hello' paused" and res["rollout"]["spec"]["paused"] is True
    code, _ = error_of(server, "POST", f"/api/rollouts/{ns}/super-hello/undo", {"toRevision": "two"})
    assert code == 400
    code, body = error_of(server, "POST", f"/api/rollouts/{ns}/super-hello/undo", {"toRevision": 7})
    assert code == 400 and "has no revision 7" in body["error"]  # a bad argument, as on the dashboard
    patched = server.http("PATCH", f"/api/rollouts/{ns}/super-hello", {"spec": {"paused": False}})
    assert not patched["spec"].get("paused")
    st = server.http(
        "PATCH", f"/api/rollouts/{ns}/super-hello?subresource=status", {"status": {"abort": True}}
    )
    assert st["status"]["abort"] is True
    code, _ = error_of(server, "PATCH", f"/api/rollouts/{ns}/super-hello?subresource=scale", {})
    assert code == 400
    items = server.http("GET", f"/api/rollouts?namespace={ns}&labelSelector=none%3Dthere")["items"]
    assert items == []
    code, _ = error_of(server, "GET", f"/api/rollouts?namespace={ns}&labelSelector=a!%3Db")
    assert code == 400
    server.http("DELETE", f"/api/rollouts/{ns}/super-hello")
    code, _ = error_of(server, "DELETE", f"/api/rollouts/{ns}/super-hello")
    assert code == 404
    server.wait_for("pods gone", lambda: server.http("GET", f"/api/pods?namespace={ns}")["items"] == [])


def test_cross_origin_writes_are_refused(server: ServerProcess) -> None:
    code, body = error_of(
        server, "POST", "/api/rollouts/x/y/pause", {}, headers={"Origin": "http://evil.example"}
    )
    assert code == 403 and "cross-origin" in body["error"]
    # the same origin passes the check (and then fails on the missing rollout)
    code, _ = error_of(
        server, "POST", "/api/rollouts/x/y/pause", {}, headers={"Origin": f"http://127.0.0.1:{server.port}"}
    )
    assert code == 404


def test_watch_streams_changes_as_sse(server: ServerProcess) -> None:
    ns = "api-watch"
    got: list[str] = []
    ready = threading.Event()

    def follow() -> None:
        req = urllib.request.Request(f"{server.url}/api/watch?kinds=Service&namespace={ns}")
        with urllib.request.urlopen(req, timeout=20) as resp:
            ready.set()
            for raw in resp:
                line = raw.decode().strip()
                if line.startswith("data:"):
                    got.append(line)
                    return

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    assert ready.wait(10)
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "w", "namespace": ns},
        "spec": {"selector": {"app": "w"}, "ports": [{"port": free_port(), "targetPort": 8080}]},
    }
    created = server.http("POST", f"/api/services?namespace={ns}", svc)
    assert created["metadata"]["uid"]
    t.join(15)
    assert got, "no SSE event received"
    event = json.loads(got[0][5:])
    assert (
        event["type"] == "ADDED" and event["kind"] == "Service" and event["object"]["metadata"]["name"] == "w"
    )
    server.http("DELETE", f"/api/services/{ns}/w")


def test_debug_clock_advances_the_server_clock(server: ServerProcess) -> None:
    before = parse_time(server.http("GET", "/api/version")["now"])
    after = parse_time(server.http("POST", "/api/debug/clock", {"advance": 100})["now"])
    assert before and after and (after - before).total_seconds() >= 100
    code, _ = error_of(server, "POST", "/api/debug/clock", {"advance": "soon"})
    assert code == 400
