"""`rollouts dashboard` on the local runtime: a loopback relay to the local server's dashboard.

The local server already serves the dashboard (with the proxy's traffic chart, which only it can
read). ``rollouts dashboard`` therefore relays the dashboard's paths (pages, their streams, /api/v1,
/api/openapi.json) to that server, adding the CLI's bearer token, so the browser never needs it.
Because the relay adds a credential, it checks everything itself before passing a request on: the
Host must be a loopback name or address with the relay's port (after DNS rebinding a page of another
site reaches the relay with its own name as Host; without this check the relay would add the token
to that page's requests), the client must be the user who started the relay (or root), and a write
must carry an Origin naming the relay and a JSON body, else it is refused here and never reaches
the server (service/guard.py, docs/security.md).
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from ..service import guard
from .api import error_response

#: Paths relayed; anything else (the server's own API, /api/shutdown) is not reachable through it.
RELAYED_PREFIXES = ("/api/v1/", "/rollouts/", "/ui/")
RELAYED_EXACT = ("/", "/api/openapi.json")
#: Request headers passed on; the rest (cookies, Origin, hop-by-hop headers) stay here.
PASSED_HEADERS = ("Accept", "Content-Type", "Last-Event-ID", "Cache-Control")
WRITES = guard.WRITES


def relayed(path: str) -> bool:
    """Whether the relay passes this path on."""
    return path in RELAYED_EXACT or path.startswith(RELAYED_PREFIXES)


def make_relay_app(upstream: str, token: str | None) -> web.Application:
    """The relay application to the server at ``upstream`` (``http://127.0.0.1:7390``)."""
    app = web.Application()
    session_key: web.AppKey[aiohttp.ClientSession] = web.AppKey("session", aiohttp.ClientSession)

    async def start(app: web.Application) -> None:
        app[session_key] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=5))

    async def stop(app: web.Application) -> None:
        await app[session_key].close()

    async def relay(request: web.Request) -> web.StreamResponse:
        # The relay adds its user's token: it serves that user only (not the machine's others).
        problem = guard.host_problem(request) or guard.peer_problem(request)
        if problem is not None:
            return error_response(403, problem)
        if not relayed(request.path):
            return error_response(404, f"{request.path}: not part of the dashboard")
        if request.method in WRITES:
            if request.headers.get("Origin") is None:
                return error_response(403, "actions need an Origin header naming this dashboard")
            refused = guard.write_problem(request)
            if refused is not None:
                return error_response(*refused)
        headers = {k: v for k, v in request.headers.items() if k in PASSED_HEADERS}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if request.method in WRITES:
            # Checked above against the relay; the server checks it against itself.
            up = urlsplit(upstream)
            headers["Origin"] = f"{up.scheme}://{up.netloc}"
        body = await request.read() if request.can_read_body else None
        try:
            upstream_resp = await app[session_key].request(
                request.method,
                upstream.rstrip("/") + request.rel_url.path_qs,
                headers=headers,
                data=body,
                allow_redirects=False,
            )
        except aiohttp.ClientError as exc:
            return error_response(
                502,
                f"the pyrollouts server at {upstream} does not answer ({exc}); is `rollouts server` running?",
            )
        async with upstream_resp:
            resp = web.StreamResponse(status=upstream_resp.status)
            for key in ("Content-Type", "Cache-Control", "Location"):
                if key in upstream_resp.headers:
                    resp.headers[key] = upstream_resp.headers[key]
            await resp.prepare(request)
            try:
                # Streams (SSE) are passed on as they come, chunk by chunk.
                async for chunk in upstream_resp.content.iter_any():
                    await resp.write(chunk)
            except (ConnectionResetError, asyncio.CancelledError, aiohttp.ClientPayloadError):
                return resp
        return resp

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_route("*", "/{tail:.*}", relay)
    return app
