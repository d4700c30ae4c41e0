"""The operator's HTTP transport (aiohttp under lightkube's httpx): answers, streamed bodies, gzip,
errors and timeouts against a real server on 127.0.0.1, then lightkube's own verbs and a watch
against the real API server over TLS with the kubeconfig's client certificate."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator

import httpx2
import pytest
from aiohttp import web

from harness.k8s_cluster import ControlPlane
from harness.support import free_port
from pyrollouts.runtimes.kubernetes.cluster import KubeCluster, make_client
from pyrollouts.runtimes.kubernetes.transport import AiohttpTransport


async def _server(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)  # the kernel's free port: no race with another bind
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def served() -> AsyncIterator[str]:
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "method": request.method,
                "path": request.path_qs,
                "body": body.decode(),
                "content_type": request.headers.get("Content-Type"),
                "user_agent": request.headers.get("User-Agent"),
                "authorization": request.headers.get("Authorization"),
            },
            status=201 if request.method == "POST" else 200,
            headers={"X-Seen": "yes"},
        )

    async def zipped(request: web.Request) -> web.Response:
        data = gzip.compress(json.dumps({"items": list(range(1000))}).encode())
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        return web.Response(body=data, headers=headers)

    async def lines(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for i in range(3):
            await resp.write(json.dumps({"type": "ADDED", "n": i}).encode() + b"\n")
            await asyncio.sleep(0.05)
        return resp

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/zipped", zipped)
    app.router.add_get("/lines", lines)
    app.router.add_get("/slow", slow)
    runner, base = await _server(app)
    yield base
    await runner.cleanup()


async def test_requests_and_answers_cross_unchanged(served: str) -> None:
    async with httpx2.AsyncClient(transport=AiohttpTransport(None), auth=("u", "p")) as client:
        r = await client.post(f"{served}/echo?x=1", json={"a": 1}, headers={"User-Agent": "mine"})
        assert r.status_code == 201 and r.headers["X-Seen"] == "yes"
        seen = r.json()
        assert seen["method"] == "POST" and seen["path"] == "/echo?x=1"
        assert json.loads(seen["body"]) == {"a": 1}
        assert seen["content_type"] == "application/json"
        assert seen["user_agent"] == "mine"  # httpx's headers win, aiohttp adds none of its own
        assert seen["authorization"].startswith("Basic ")  # httpx's auth flow still runs
        # The connection is reused for the next request (the body was read to its end).
        r2 = await client.patch(f"{served}/echo", content=b"{}", headers={"Content-Type": "x/y"})
        assert r2.json()["content_type"] == "x/y" and r2.json()["method"] == "PATCH"


async def test_gzip_is_decoded_once_by_httpx(served: str) -> None:
    async with httpx2.AsyncClient(transport=AiohttpTransport(None)) as client:
        r = await client.get(f"{served}/zipped")
        assert r.json() == {"items": list(range(1000))}


async def test_a_streamed_body_arrives_line_by_line(served: str) -> None:
    async with httpx2.AsyncClient(transport=AiohttpTransport(None)) as client:
        async with client.stream("GET", f"{served}/lines") as r:
            got = [json.loads(line)["n"] async for line in r.aiter_lines() if line]
        assert got == [0, 1, 2]


async def test_errors_are_httpx_errors(served: str) -> None:
    async with httpx2.AsyncClient(transport=AiohttpTransport(None)) as client:
        with pytest.raises(httpx2.ReadTimeout):
            await client.get(f"{served}/slow", timeout=httpx2.Timeout(10, read=0.3))
        closed = free_port()
        with pytest.raises(httpx2.ConnectError):
            await client.get(f"http://127.0.0.1:{closed}/")
        # Both are what the informer's retry loop catches.
        assert issubclass(httpx2.ReadTimeout, httpx2.HTTPError)


async def test_lightkube_over_the_transport_against_the_api_server(
    control_plane: ControlPlane, namespace: str
) -> None:
    client = make_client(str(control_plane.kubeconfig))
    assert isinstance(client._client._client._transport, AiohttpTransport)  # type: ignore[attr-defined]
    cluster = KubeCluster(client, namespace=namespace, cached_kinds=("Service",))
    await cluster.start()  # the informer's list and watch run over the transport too
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "t", "namespace": namespace},
        "spec": {"ports": [{"port": 80}], "selector": {"app": "t"}},
    }
    try:
        watch = cluster.watch(["Service"], namespace)
        created = await cluster.create("Service", svc)
        patched = await cluster.patch("Service", namespace, "t", {"metadata": {"labels": {"x": "1"}}})
        assert patched["metadata"]["labels"] == {"x": "1"}
        assert int(patched["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
        seen = []
        async with asyncio.timeout(60):
            async for ev in watch:
                if ev.obj["metadata"]["name"] == "t":
                    seen.append(ev.type)
                if (ev.obj["metadata"].get("labels") or {}).get("x") == "1":
                    break
        assert seen[0] == "ADDED" and seen[-1] == "MODIFIED"
        got = await cluster.get("Service", namespace, "t")  # from the cache the watch filled
        assert got["metadata"]["labels"] == {"x": "1"}
        await cluster.delete("Service", namespace, "t")
    finally:
        await cluster.close()
