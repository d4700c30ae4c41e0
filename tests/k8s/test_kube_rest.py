"""``rest.RestClient``, the operator's single-object requests straight over aiohttp: URLs, bodies,
headers, the API server's refusals and transport failures against a real server on 127.0.0.1; the
auth flows of lightkube (a token file re-read after a 401); then every verb ``KubeCluster`` sends
through it against the real API server, with the User-Agent the audit log records."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
from aiohttp import web
from lightkube.config.client_adapter import BearerTokenFileAuth

from harness.k8s_cluster import ControlPlane
from harness.support import free_port
from pyrollouts.model.cluster import ClusterError, Conflict, Invalid, NotFound
from pyrollouts.runtimes.kubernetes.cluster import KubeCluster, make_client
from pyrollouts.runtimes.kubernetes.rest import RestClient, path_of
from pyrollouts.runtimes.kubernetes.transport import AiohttpTransport


def _status(code: int, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code}
    return web.json_response(body, status=code)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[str, list[dict[str, object]], Path]]:
    """A server that records each request and answers by path; /auth/* wants the token in a file."""
    seen: list[dict[str, object]] = []
    token_file = tmp_path / "token"
    token_file.write_text("first\n")

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "body": json.loads(body) if body else None,
                "content_type": request.headers.get("Content-Type"),
                "accept": request.headers.get("Accept"),
                "agent": request.headers.get("User-Agent"),
                "auth": request.headers.get("Authorization"),
            }
        )
        tail = request.match_info["tail"]
        if tail.startswith("auth/"):
            if request.headers.get("Authorization") != f"Bearer {token_file.read_text().strip()}":
                return _status(401, "Unauthorized")
            return web.json_response({"kind": "Thing", "ok": True})
        for code, message in ((404, "not found"), (409, "the object has been modified"), (422, "bad field")):
            if tail == f"code/{code}":
                return _status(code, message)
        if tail == "code/503":
            return web.Response(status=503, text="upstream unavailable")
        if tail == "list":
            return web.json_response([1, 2])
        return web.json_response({"kind": "Thing", "echo": json.loads(body) if body else None}, status=201)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", seen, token_file
    await runner.cleanup()


def test_paths_follow_the_kinds_registry() -> None:
    assert path_of("Event", "ns1") == "/api/v1/namespaces/ns1/events"
    assert path_of("ReplicaSet", "ns1", "web-abc") == "/apis/apps/v1/namespaces/ns1/replicasets/web-abc"
    assert (
        path_of("Rollout", "ns1", "web", "status")
        == "/apis/argoproj.io/v1alpha1/namespaces/ns1/rollouts/web/status"
    )
    assert (
        path_of("ClusterAnalysisTemplate", None, "t")
        == "/apis/argoproj.io/v1alpha1/clusteranalysistemplates/t"
    )
    assert path_of("HTTPRoute", "n", "r") == "/apis/gateway.networking.k8s.io/v1/namespaces/n/httproutes/r"
    with pytest.raises(ValueError, match=r"unknown kind 'Widget'.*ReplicaSet"):
        path_of("Widget", "n")


async def test_a_write_carries_its_body_field_manager_and_agent(server: tuple[str, list, Path]) -> None:
    base, seen, _ = server
    transport = AiohttpTransport(None, "pyrollouts/test")
    rest = RestClient(base + "/", transport, None, "rollouts-controller")
    try:
        out = await rest.request(
            "PATCH",
            "/apis/x/v1/things/a",
            "Thing a",
            body={"a": 1},
            content_type="application/merge-patch+json",
        )
        assert out == {"kind": "Thing", "echo": {"a": 1}}
        got = await rest.request("GET", "/apis/x/v1/things/a", "Thing a")
        await rest.request(
            "DELETE", "/apis/x/v1/things/a", "Thing a", params={"propagationPolicy": "Background"}
        )
    finally:
        await transport.aclose()
    patch, get, delete = seen
    assert patch["method"] == "PATCH" and patch["path"] == "/apis/x/v1/things/a"
    assert patch["query"] == {"fieldManager": "rollouts-controller"}
    assert patch["content_type"] == "application/merge-patch+json" and patch["body"] == {"a": 1}
    assert patch["agent"] == "pyrollouts/test" and patch["accept"] == "application/json"
    assert patch["auth"] is None
    assert get["query"] == {} and get["content_type"] is None and got["echo"] is None  # no body, no manager
    assert delete["query"] == {"propagationPolicy": "Background"}


async def test_refusals_are_the_protocols_errors_with_the_servers_message(
    server: tuple[str, list, Path],
) -> None:
    base, _, _ = server
    transport = AiohttpTransport(None)
    rest = RestClient(base, transport, None, None)
    try:
        with pytest.raises(NotFound, match=r"^ReplicaSet n/a: not found$"):
            await rest.request("GET", "/code/404", "ReplicaSet n/a")
        with pytest.raises(Conflict, match="the object has been modified"):
            await rest.request("PATCH", "/code/409", "patch Rollout n/a", body={})
        with pytest.raises(Invalid, match=r"^bad field$"):
            await rest.request("POST", "/code/422", "create Rollout n/a", body={})
        with pytest.raises(ClusterError, match="HTTP 503: upstream unavailable"):
            await rest.request("GET", "/code/503", "Rollout n/a")
        with pytest.raises(ClusterError, match="answered with a JSON list"):
            await rest.request("GET", "/list", "Rollout n/a")
    finally:
        await transport.aclose()
    transport = AiohttpTransport(None)
    rest = RestClient(f"http://127.0.0.1:{free_port()}", transport, None, None)
    try:
        # What lightkube's verbs raised for an unreachable server: the controller retries it.
        with pytest.raises(httpx2.ConnectError):
            await rest.request("GET", "/x", "Rollout n/a")
    finally:
        await transport.aclose()


async def test_a_rotated_token_file_is_read_again_after_a_401(server: tuple[str, list, Path]) -> None:
    base, seen, token_file = server
    transport = AiohttpTransport(None)
    rest = RestClient(base, transport, BearerTokenFileAuth(str(token_file)), None)
    try:
        assert (await rest.request("GET", "/auth/a", "Thing a"))["ok"] is True
        token_file.write_text("second\n")  # rotated, as the kubelet rotates a service account's token
        assert (await rest.request("POST", "/auth/b", "Thing b", body={"b": 1}))["ok"] is True
    finally:
        await transport.aclose()
    assert [(s["path"], s["auth"]) for s in seen] == [
        ("/auth/a", "Bearer first"),
        ("/auth/b", "Bearer first"),  # refused with 401 ...
        ("/auth/b", "Bearer second"),  # ... and sent again, body and all, with the file's new token
    ]
    assert seen[2]["body"] == {"b": 1}


async def test_every_verb_against_the_api_server(control_plane: ControlPlane, namespace: str) -> None:
    client = make_client(str(control_plane.kubeconfig))
    cluster = KubeCluster(client, namespace=namespace, cache=False)
    svc = {"metadata": {"name": "r", "namespace": namespace}, "spec": {"ports": [{"port": 80}]}}
    try:
        created = await cluster.create("Service", svc)
        assert created["kind"] == "Service" and created["metadata"]["uid"]
        with pytest.raises(Conflict, match=f"create Service {namespace}/r"):
            await cluster.create("Service", svc)
        with pytest.raises(Invalid, match=r"spec\.ports"):
            await cluster.create("Service", {"metadata": {"name": "bad", "namespace": namespace}, "spec": {}})
        rv = created["metadata"]["resourceVersion"]
        patched = await cluster.patch("Service", namespace, "r", {"metadata": {"labels": {"x": "1"}}})
        assert patched["metadata"]["labels"] == {"x": "1"}
        with pytest.raises(Conflict):  # the precondition rides in the merge patch's body
            await cluster.patch(
                "Service", namespace, "r", {"metadata": {"labels": {"x": "2"}}}, resource_version=rv
            )
        assert (await cluster.get("Service", namespace, "r"))["metadata"]["labels"] == {"x": "1"}
        await cluster.delete("Service", namespace, "r")
        with pytest.raises(NotFound, match=f"Service {namespace}/r"):
            await cluster.get("Service", namespace, "r")
        with pytest.raises(NotFound):
            await cluster.delete("Service", namespace, "r")
    finally:
        await cluster.close()
    assert cluster.requests["create Service"] == 3 and cluster.requests["patch Service"] == 2
    # The audit log names the operator's client as pyrollouts, not as the HTTP library under it.
    agents = set()
    for line in control_plane.audit_log.read_text(errors="replace").splitlines():
        if f'"{namespace}"' in line:
            e = json.loads(line)
            ref = e.get("objectRef") or {}
            if ref.get("namespace") == namespace and ref.get("resource") == "services":
                agents.add(str(e.get("userAgent", "")))
    assert any(a.startswith("pyrollouts/") for a in agents), agents
    assert not any(a.startswith("python-httpx") for a in agents), agents
