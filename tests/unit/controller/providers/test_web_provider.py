"""The web metric provider (controller.providers.web) against a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from pyrollouts.controller.providers.web import measure


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP server: /ok (JSON), /text, /fail (500), /slow (answers when the test ends), /echo (records
    the request)."""
    seen: list[dict[str, Any]] = []
    release = asyncio.Event()

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"data": {"ok": True, "errorRate": 0.02, "items": [1.5, 2]}})

    async def text(request: web.Request) -> web.Response:
        return web.Response(text="healthy")

    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=500, text="boom")

    async def slow(request: web.Request) -> web.Response:
        # answers only once the test is over (well after the client's timeout)
        await release.wait()
        return web.json_response({})

    async def echo(request: web.Request) -> web.Response:
        seen.append(
            {"method": request.method, "headers": dict(request.headers), "body": await request.text()}
        )
        return web.json_response({"echoed": True})

    app = web.Application()
    app.add_routes(
        [
            web.get("/ok", ok),
            web.get("/text", text),
            web.get("/fail", fail),
            web.get("/slow", slow),
            web.route("*", "/echo", echo),
        ]
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        release.set()
        await runner.cleanup()


def web_metric(url: str, **web_fields: Any) -> dict[str, Any]:
    conditions = {k: web_fields.pop(k) for k in ("successCondition", "failureCondition") if k in web_fields}
    return {"name": "m", **conditions, "provider": {"web": {"url": url, **web_fields}}}


async def test_success_with_json_path(server: tuple[str, list[Any]]) -> None:
    base, _ = server
    m = await measure(
        web_metric(f"{base}/ok", jsonPath="{$.data}", successCondition="result.ok && result.errorRate < 0.05")
    )
    assert m["phase"] == "Successful", m
    assert json.loads(m["value"]) == {"ok": True, "errorRate": 0.02, "items": [1.5, 2]}
    assert m["startedAt"] and m["finishedAt"] and "message" not in m
    m = await measure(web_metric(f"{base}/ok", jsonPath="{$.data.items[0]}", successCondition="result > 1"))
    assert (m["phase"], m["value"]) == ("Successful", "1.5")
    # no condition: every answer succeeds, the value is the whole document
    m = await measure(web_metric(f"{base}/ok"))
    assert m["phase"] == "Successful" and json.loads(m["value"])["data"]["ok"] is True


async def test_failure_and_inconclusive_conditions(server: tuple[str, list[Any]]) -> None:
    base, _ = server
    m = await measure(
        web_metric(f"{base}/ok", jsonPath="{$.data.errorRate}", failureCondition="result > 0.01")
    )
    assert (m["phase"], m["value"]) == ("Failed", "0.02")
    m = await measure(
        web_metric(
            f"{base}/ok",
            jsonPath="{$.data.errorRate}",
            successCondition="result < 0.01",
            failureCondition="result > 0.1",
        )
    )
    assert m["phase"] == "Inconclusive"


async def test_text_response_is_the_result(server: tuple[str, list[Any]]) -> None:
    base, _ = server
    m = await measure(web_metric(f"{base}/text", successCondition="result == 'healthy'"))
    assert (m["phase"], m["value"]) == ("Successful", "healthy")


async def test_non_2xx_is_an_error(server: tuple[str, list[Any]]) -> None:
    base, _ = server
    m = await measure(web_metric(f"{base}/fail", successCondition="true"))
    assert m == {
        "phase": "Error",
        "message": "received non 2xx response code: 500",
        "startedAt": m["startedAt"],
        "finishedAt": m["finishedAt"],
    }


async def test_timeout_is_an_error(server: tuple[str, list[Any]]) -> None:
    base, _ = server
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    m = await measure(web_metric(f"{base}/slow", timeoutSeconds=1))
    assert m["phase"] == "Error" and m["message"] == f'Get "{base}/slow": timed out after 1s'
    assert loop.time() - t0 < 4.5  # the request was cut, not waited for


async def test_connection_refused_is_an_error(server: tuple[str, list[Any]]) -> None:
    base, _ = server
    port = int(base.rsplit(":", 1)[1])
    # a port nothing listens on: bind one and close it
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    free = s.getsockname()[1]
    s.close()
    assert free != port
    m = await measure(web_metric(f"http://127.0.0.1:{free}/x"))
    assert m["phase"] == "Error" and m["message"].startswith(f'Get "http://127.0.0.1:{free}/x": ')


async def test_bad_json_path(server: tuple[str, list[Any]]) -> None:
    base, _ = server
    m = await measure(web_metric(f"{base}/ok", jsonPath="{$.data.nope}"))
    assert (m["phase"], m["message"]) == ("Error", "Could not find JSONPath in body: nope is not found")
    m = await measure(web_metric(f"{base}/ok", jsonPath="{$.data.items[*].x[?(@)]}"))
    assert m["phase"] == "Error" and "is not supported" in m["message"]
    m = await measure(web_metric(f"{base}/ok", jsonPath="{$.data.items[5]}"))
    assert m["message"] == "Could not find JSONPath in body: array index out of bounds: index 5, length 2"


async def test_condition_error(server: tuple[str, list[Any]]) -> None:
    base, _ = server
    m = await measure(web_metric(f"{base}/ok", jsonPath="{$.data.ok}", successCondition="result > 1"))
    assert m["phase"] == "Error"
    assert m["message"].startswith('could not evaluate successCondition "result > 1"')
    assert m["value"] == "true"


async def test_method_headers_and_bodies(server: tuple[str, list[dict[str, Any]]]) -> None:
    base, seen = server
    headers = [{"key": "Authorization", "value": "Bearer t"}]
    m = await measure(web_metric(f"{base}/echo", method="POST", headers=headers, body="hello"))
    assert m["phase"] == "Successful"
    assert seen[-1]["method"] == "POST" and seen[-1]["body"] == "hello"
    assert seen[-1]["headers"]["Authorization"] == "Bearer t"
    m = await measure(web_metric(f"{base}/echo", method="PUT", jsonBody={"a": [1]}))
    assert seen[-1]["method"] == "PUT" and json.loads(seen[-1]["body"]) == {"a": [1]}
    assert seen[-1]["headers"]["Content-Type"] == "application/json"
    count = len(seen)
    m = await measure(web_metric(f"{base}/echo", body="x"))
    assert m["message"] == "Body/JSONBody can only be used with POST or PUT WebMetric Method types"
    m = await measure(web_metric(f"{base}/echo", method="POST", body="x", jsonBody={}))
    assert m["message"] == "use either Body or JSONBody; both cannot exists for WebMetric payload"
    assert len(seen) == count  # refused before any request
