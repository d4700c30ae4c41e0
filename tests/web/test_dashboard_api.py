"""The Argo-shaped dashboard API (/api/v1) on a real local server: every route, bad input, SSE."""

from __future__ import annotations

import threading
from typing import Any

from webharness import Deployed, deploy, get_text, sse_messages

from harness.serverharness import ServerProcess
from pyrollouts.web import check_bind


def test_version_namespace_and_openapi(server: ServerProcess) -> None:
    deploy(server, "api-meta")
    v = server.ok("GET", "/api/v1/version")
    assert v["rolloutsVersion"].startswith("pyrollouts v")
    ns = server.ok("GET", "/api/v1/namespace")
    assert ns["namespace"] == "default"
    assert "api-meta" in ns["availableNamespaces"]
    doc = server.ok("GET", "/api/openapi.json")
    assert doc["openapi"].startswith("3.")
    for path in (
        "/api/v1/rollouts/{ns}/info",
        "/api/v1/rollouts/{ns}/info/watch",
        "/api/v1/rollouts/{ns}/{name}/info",
        "/api/v1/rollouts/{ns}/{name}/info/watch",
        "/api/v1/namespace",
        "/api/v1/version",
        "/api/v1/rollouts/{ns}/{name}/promote",
        "/api/v1/rollouts/{ns}/{name}/abort",
        "/api/v1/rollouts/{ns}/{name}/retry",
        "/api/v1/rollouts/{ns}/{name}/restart",
        "/api/v1/rollouts/{ns}/{name}/undo/{revision}",
        "/api/v1/rollouts/{ns}/{name}/set/{container}/{image}",
    ):
        assert path in doc["paths"], path


def test_info_list_and_one(server: ServerProcess) -> None:
    dep = deploy(server, "api-info")
    listed = server.ok("GET", "/api/v1/rollouts/api-info/info")["rollouts"]
    assert [i["objectMeta"]["name"] for i in listed] == ["super-hello"]
    info = dep.info()
    assert info["objectMeta"]["namespace"] == "api-info"
    assert "kubectl.kubernetes.io/last-applied-configuration" not in info["objectMeta"].get("annotations", {})
    assert info["status"] == "Healthy" and info["strategy"] == "BlueGreen"
    assert (info["desired"], info["ready"], info["available"]) == (2, 2, 2)
    assert info["containers"] == [{"name": "super-hello", "image": "ghcr.io/gbaeke/super:1.0.2"}]
    [rs] = info["replicaSets"]
    assert rs["revision"] == 1 and rs["stable"] and rs["active"] and not rs["preview"]
    assert rs["objectMeta"]["name"].startswith("super-hello-")
    assert rs["images"] == ["ghcr.io/gbaeke/super:1.0.2"]
    assert len(rs["pods"]) == 2
    for pod in rs["pods"]:
        assert pod["ready"] == "1/1" and pod["status"] == "Running" and pod["restarts"] == 0
    assert info["actions"] == {
        "promote": False,
        "promoteFull": False,
        "abort": False,
        "retry": False,
        "restart": True,
    }
    events = server.ok("GET", dep.api + "/events")["items"]
    assert any(e["reason"] == "RolloutCompleted" for e in events)


def test_unknown_rollout_is_404_with_a_message(server: ServerProcess) -> None:
    for method, path in [
        ("GET", "/api/v1/rollouts/nowhere/ghost/info"),
        ("GET", "/api/v1/rollouts/nowhere/ghost/info/watch"),
        ("GET", "/api/v1/rollouts/nowhere/ghost/events"),
    ]:
        r = server.request(method, path)
        assert r.status == 404, (path, r.status, r.body)
        assert r.body["error"] == "rollout 'ghost' not found in namespace 'nowhere'"
    for verb in ("promote", "abort", "retry", "restart", "undo/1", "set/app/img:1"):
        r = server.action(f"/api/v1/rollouts/nowhere/ghost/{verb}")
        assert r.status == 404, (verb, r.body)
        assert "rollout 'ghost' not found" in r.body["error"]


def test_bad_input_is_400(server: ServerProcess) -> None:
    dep = deploy(server, "api-bad")
    r = server.action(dep.api + "/undo/7")
    assert r.status == 400 and r.body["error"] == "rollout 'super-hello' has no revision 7 (revisions: 1)"
    r = server.action(dep.api + "/undo/latest")
    assert r.status == 400 and "not a number" in r.body["error"]
    r = server.request("PUT", dep.api + "/promote", raw=b"{full: yes", headers={"Origin": server.url})
    assert r.status == 400 and "not valid JSON" in r.body["error"]
    r = server.action(dep.api + "/promote", [True])
    assert r.status == 400 and "JSON object" in r.body["error"]
    r = server.action(dep.api + "/promote", {"full": "yes"})
    assert r.status == 400 and "'full' must be true or false" in r.body["error"]
    r = server.action(dep.api + "/set/nosuch/ghcr.io/gbaeke/super:1.0.3")
    assert r.status == 400 and "no container named 'nosuch'" in r.body["error"]
    # Not applicable now (Healthy): a conflict that says why, and nothing changed.
    r = server.action(dep.api + "/promote")
    assert r.status == 409 and "is not paused" in r.body["error"]
    assert dep.info()["status"] == "Healthy"


def test_actions_need_origin_or_token_and_a_write_method(server: ServerProcess) -> None:
    dep = deploy(server, "api-sec")
    r = server.request("PUT", dep.api + "/restart", {})
    assert r.status == 403 and "Origin" in r.body["error"]
    r = server.request("PUT", dep.api + "/restart", {}, headers={"Origin": "http://evil.example"})
    assert r.status == 403 and "cross-origin" in r.body["error"]
    r = server.request("GET", dep.api + "/restart")
    assert r.status == 405
    before = dep.info()["restartedAt"]
    r = server.action(dep.api + "/restart")
    assert r.status == 200, r.body
    assert r.body["spec"]["restartAt"]
    assert before == ""


def test_promote_over_the_api_and_the_sse_stream(server: ServerProcess) -> None:
    dep = deploy(server, "api-flow")
    dep.set_welcome("VERSION V3")
    info = dep.wait_paused_with_preview(2)
    assert info["actions"]["promote"] and info["actions"]["promoteFull"] and info["actions"]["abort"]
    assert dep.revision_roles() == {2: {"preview"}, 1: {"stable", "active"}}
    received: list[tuple[str, Any]] = []
    opened, done = threading.Event(), threading.Event()

    def follow() -> None:
        for event, data in sse_messages(server.url + dep.api + "/info/watch", timeout=60):
            received.append((event, data))
            opened.set()
            result = data.get("result") or {}
            if result.get("status") == "Healthy" and any(
                rs["revision"] == 2 and rs["active"] for rs in result["replicaSets"]
            ):
                done.set()
                return

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    assert opened.wait(20), "the stream sent nothing"
    first = received[0]
    assert first[0] == "message" and first[1]["result"]["status"] == "Paused"
    assert [rs["revision"] for rs in first[1]["result"]["replicaSets"] if rs["preview"]] == [2]
    r = server.action(dep.api + "/promote", {"full": False})
    assert r.status == 200, r.body
    assert done.wait(30), f"the stream did not show the promotion: {[e for e, _ in received]}"
    t.join(5)
    kinds = {e for e, _ in received}
    assert "events" in kinds and "traffic" in kinds
    events = [d for e, d in received if e == "events"][-1]["items"]
    assert any(ev["reason"] == "RolloutPaused" for ev in events)
    server.wait_for("prod says VERSION V3", lambda: get_text(dep.prod) == "VERSION V3", 10)
    assert dep.revision_roles()[2] == {"stable", "active"}


def test_abort_retry_undo_and_set_image(server: ServerProcess) -> None:
    dep: Deployed = deploy(server, "api-abort")
    dep.set_welcome("VERSION V4")
    dep.wait_paused_with_preview(2)
    assert server.action(dep.api + "/abort").status == 200
    info = dep.wait_phase("Degraded")
    assert info["actions"] == {
        "promote": False,
        "promoteFull": False,
        "abort": False,
        "retry": True,
        "restart": False,
    }
    server.wait_for("prod says VERSION V2", lambda: get_text(dep.prod) == "VERSION V2", 10)
    assert server.action(dep.api + "/retry").status == 200
    dep.wait_paused_with_preview(2)
    # Undo to revision 1 (the stable one): a fast rollback, back to Healthy at once.
    assert server.action(dep.api + "/undo/1").status == 200
    dep.wait_phase("Healthy")
    server.wait_for("prod says VERSION V2", lambda: get_text(dep.prod) == "VERSION V2", 10)
    r = server.action(dep.api + "/set/super-hello/ghcr.io/gbaeke/super:1.0.3")
    assert r.status == 200, r.body
    assert r.body["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/gbaeke/super:1.0.3"
    server.wait_for(
        "the new image as preview",
        lambda: any(
            rs["preview"] and rs["images"] == ["ghcr.io/gbaeke/super:1.0.3"]
            for rs in dep.info()["replicaSets"]
        ),
    )


def test_namespace_watch_stream(server: ServerProcess) -> None:
    deploy(server, "api-watch")
    for event, data in sse_messages(server.url + "/api/v1/rollouts/api-watch/info/watch", timeout=20):
        assert event == "message"
        assert data["result"]["type"] == "ADDED"
        assert data["result"]["rolloutInfo"]["objectMeta"]["name"] == "super-hello"
        break
    else:
        raise AssertionError("no message on the namespace's watch stream")


def test_beyond_loopback_needs_a_token() -> None:
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    try:
        check_bind("0.0.0.0", None)
    except ValueError as exc:
        assert "needs a token" in str(exc)
    else:
        raise AssertionError("serving beyond loopback without a token was allowed")
    check_bind("0.0.0.0", "secret")
