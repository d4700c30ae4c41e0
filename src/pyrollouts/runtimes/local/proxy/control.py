"""The control channel: an HTTP server on the unix socket <state-dir>/proxy.sock.

- ``PUT /table``: the whole table (format in ``table.py``); answers
  ``{"version", "listening": [{"bind", "port", "tcp"}], "failed": [{"namespace", "name", "bind",
  "port", "error"}]}``, or 400 ``{"error": "..."}`` naming the bad field (nothing changed then).
- ``GET /table``: the table being served. ``GET /healthz``: pid, start time, version, failed ports.
- ``GET /metrics``: Prometheus text. ``GET /stats``: the same counters as JSON, plus current routes.

aiohttp is used here (not on the data path): this side is low-rate and benefits from a full server.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from .server import ProxyServer
from .table import TableError


def make_app(proxy: ProxyServer) -> web.Application:
    """The aiohttp application for the control socket."""

    async def put_table(request: web.Request) -> web.Response:
        try:
            table: Any = await request.json()
        except ValueError as exc:
            return web.json_response({"error": f"table: not JSON: {exc}"}, status=400)
        try:
            result = await proxy.apply(table)
        except TableError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(result)

    async def get_table(request: web.Request) -> web.Response:
        return web.json_response(proxy.table)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response(proxy.health())

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=proxy.state.metrics.prometheus_text(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(proxy.stats(), dumps=lambda o: json.dumps(o, allow_nan=False, default=str))

    app = web.Application(client_max_size=64 * 2**20)
    app.router.add_put("/table", put_table)
    app.router.add_get("/table", get_table)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/stats", stats)
    return app
