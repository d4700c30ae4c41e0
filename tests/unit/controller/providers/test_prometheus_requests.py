"""The prometheus provider's request and answer handling against a real aiohttp server on 127.0.0.1
that records the request and answers in Prometheus' API shape (tests/local/test_prometheus_provider.py
runs it against a real Prometheus)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from pyrollouts.controller.providers.prometheus import go_float, measure


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    release = asyncio.Event()

    async def query(request: web.Request) -> web.Response:
        form = dict(await request.post())
        seen.append({"method": request.method, "headers": dict(request.headers), "form": form})
        if form.get("query") == "slow":
            await release.wait()
        if form.get("query") == "warn":
            return web.json_response(
                {
                    "status": "success",
                    "warnings": ["w1", "w2"],
                    "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "2"]}]},
                }
            )
        if form.get("query") == "html":
            return web.Response(status=502, text="<html>bad gateway</html>")
        return web.json_response(
            {"status": "success", "data": {"resultType": "scalar", "result": [1, "1e21"]}}
        )

    app = web.Application()
    app.add_routes([web.post("/prom/api/v1/query", query)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/prom", seen
    finally:
        release.set()
        await runner.cleanup()


def metric(address: str, query: str, **fields: Any) -> dict[str, Any]:
    return {"name": "m", "provider": {"prometheus": {"address": address, "query": query, **fields}}}


async def test_headers_basic_auth_and_form(server: tuple[str, list[dict[str, Any]]]) -> None:
    base, seen = server
    m = await measure(
        metric(
            base,
            "up",
            headers=[{"key": "X-Scope-OrgID", "value": "team-a"}],
            authentication={"basicAuth": {"username": "u", "password": "p"}},
        )
    )
    assert (m["phase"], m["value"]) == ("Successful", "1000000000000000000000"), m
    req = seen[-1]
    assert req["headers"]["X-Scope-OrgID"] == "team-a"
    assert req["headers"]["Authorization"] == "Basic dTpw"
    assert req["form"]["query"] == "up" and req["form"]["timeout"] == "30s"


async def test_warnings_are_metadata(server: tuple[str, list[dict[str, Any]]]) -> None:
    base, _ = server
    m = await measure(metric(base, "warn"))
    assert m["metadata"] == {"warnings": '"w1", "w2"'} and m["value"] == "[2]", m


async def test_timeout(server: tuple[str, list[dict[str, Any]]]) -> None:
    base, _ = server
    m = await measure(metric(base, "slow", timeout=1))
    assert m["phase"] == "Error" and m["message"].endswith("timed out after 1s"), m


async def test_not_json_and_unsupported(server: tuple[str, list[dict[str, Any]]]) -> None:
    base, _ = server
    m = await measure(metric(base, "html"))
    assert m["phase"] == "Error" and m["message"].startswith("prometheus answered HTTP 502"), m
    m = await measure(metric(base, "up", authentication={"oauth2": {"tokenUrl": "x"}}))
    assert m["phase"] == "Error" and "oauth2 is not supported" in m["message"], m
    m = await measure(metric(base, "up", authentication={"basicAuth": {"username": "u"}}))
    assert m["message"] == "missing mandatory parameter in metric for basic auth setup: password", m
    m = await measure(metric(base, "up", rangeQuery={"start": "now()", "end": "now()", "step": "1m"}))
    assert m["phase"] == "Error" and "rangeQuery" in m["message"], m


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (0.01, "0.01"),
        (1.0, "1"),
        (-0.0, "-0"),
        (1e21, "1000000000000000000000"),
        (1.5e-7, "0.00000015"),
        (math.nan, "NaN"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
    ],
)
def test_go_float(x: float, text: str) -> None:
    assert go_float(x) == text
