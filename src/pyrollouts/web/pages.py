"""The dashboard's pages and their live streams (server-rendered fragments over SSE).

``/`` goes to the default namespace's list; ``/rollouts/{ns}`` lists rollouts; ``/rollouts/{ns}/{name}``
shows one. Each page opens an EventSource on ``/ui/...stream``, whose messages carry HTML fragments
rendered here, so there is one renderer and the script stays small. When the server has a token,
pages need it once as ``?token=`` (it becomes an HttpOnly, SameSite=Strict cookie).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from importlib import resources
from typing import Any
from urllib.parse import quote

from aiohttp import web

from ..service import guard, streams
from ..service.verbs import VerbError
from . import analysisview, render
from .api import COOKIE, bearer_ok, stream_changes
from .context import WEB_KEY, WebContext
from .escape import e

STATIC = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}


def _ctx(request: web.Request) -> WebContext:
    return request.app[WEB_KEY]


def _authorize(request: web.Request) -> web.Response | None:
    """None when the request may see pages; else the answer to give (a redirect setting the cookie,
    or a 401 page saying what to do)."""
    ctx = _ctx(request)
    if ctx.token is None or bearer_ok(request, ctx.token):
        return None
    given = request.query.get("token", "")
    if guard.token_matches(given, ctx.token):
        rest = {k: v for k, v in request.rel_url.query.items() if k != "token"}
        resp = web.Response(status=302, headers={"Location": str(request.rel_url.with_query(rest))})
        resp.set_cookie(COOKIE, given, httponly=True, samesite="Strict", path="/")
        return resp
    return web.Response(
        status=401,
        content_type="text/html",
        text=render.page(
            "Token needed",
            "<h1>Token needed</h1><p>This dashboard is served beyond loopback, so it needs the server's "
            "token: open it once as <code>?token=TOKEN</code> (the token in the server's --token-file).</p>",
            data={"page": "none"},
        ),
    )


def _authorized(handler: streams.Handler) -> streams.Handler:
    """Wrap a page or stream handler: it runs only for a request ``_authorize`` lets through."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        denied = _authorize(request)
        if denied is not None:
            return denied
        return await handler(request)

    return wrapper


def _error_page(exc: VerbError) -> web.Response:
    body = f'<h1>{exc.code}</h1><p class="error">{e(exc.message)}</p><p><a href="/">All rollouts</a></p>'
    return web.Response(
        status=exc.code, content_type="text/html", text=render.page("Error", body, data={"page": "none"})
    )


def _stream_refused(exc: VerbError) -> web.Response:
    """A stream's answer when what it would follow is missing or not allowed (before it starts)."""
    return web.json_response({"error": exc.message}, status=exc.code)


def _changed(last: dict[str, str], parts: Mapping[str, str]) -> dict[str, str]:
    """The page fragments that differ from ``last``, which now records them."""
    changed = {k: v for k, v in parts.items() if last.get(k) != v}
    last.update(changed)
    return changed


def _token_for_page(request: web.Request) -> str | None:
    """The token the page's script sends actions with: only to a browser that logged in with it
    (its cookie), never to a client that sent it as a header (the relay of `rollouts dashboard`
    adds the header itself, and its users need not see the token)."""
    token = _ctx(request).token
    given = request.cookies.get(COOKIE, "")
    if guard.token_matches(given, token):
        return token
    return None


@_authorized
async def index(request: web.Request) -> web.StreamResponse:
    """GET /: the default namespace's list."""
    raise web.HTTPFound(f"/rollouts/{_ctx(request).source.default_namespace}")


@_authorized
async def list_page(request: web.Request) -> web.StreamResponse:
    """GET /rollouts/{ns}"""
    ctx = _ctx(request)
    ns = request.match_info["ns"]
    try:
        infos = await ctx.source.infos(ns)
    except VerbError as exc:
        return _error_page(exc)
    html = render.list_page(ns, await ctx.source.namespaces(), infos, _token_for_page(request))
    return web.Response(text=html, content_type="text/html")


async def _fragments(ctx: WebContext, ns: str, name: str) -> tuple[dict[str, Any], dict[str, str]]:
    info = await ctx.source.info(ns, name)
    items = await ctx.source.events(ns, name)
    series = await ctx.traffic_of(info) if ctx.traffic is not None else None
    return info, render.rollout_fragments(info, items, series)


@_authorized
async def rollout_page(request: web.Request) -> web.StreamResponse:
    """GET /rollouts/{ns}/{name}"""
    ctx = _ctx(request)
    ns, name = request.match_info["ns"], request.match_info["name"]
    try:
        info = await ctx.source.info(ns, name)
        items = await ctx.source.events(ns, name)
    except VerbError as exc:
        return _error_page(exc)
    series = await ctx.traffic_of(info) if ctx.traffic is not None else None
    return web.Response(
        text=render.rollout_page(info, items, series, _token_for_page(request)), content_type="text/html"
    )


@streams.limited
@_authorized
async def rollout_stream(request: web.Request) -> web.StreamResponse:
    """GET /ui/rollouts/{ns}/{name}/stream: ``fragments`` events {phase, now, parts: {id: html}}."""
    ctx = _ctx(request)
    ns, name = request.match_info["ns"], request.match_info["name"]
    try:
        await ctx.source.rollout(ns, name)
    except VerbError as exc:
        return _stream_refused(exc)
    last: dict[str, str] = {}

    async def each(stream: streams.EventStream) -> bool:
        try:
            info, parts = await _fragments(ctx, ns, name)
        except VerbError:
            await stream.send({"name": name}, "deleted")
            return False
        # Only the fragments that changed: the traffic chart moves every second, the rest
        # rarely, and replacing an unchanged fragment would reset what the user is hovering.
        changed = _changed(last, parts)
        if changed:
            data = {"phase": info["status"], "now": info["now"], "parts": changed}
            await stream.send(data, "fragments")
        else:
            # Keeps the page's clock in step (countdowns) and the connection known to be alive.
            await stream.send({"now": info["now"]}, "tick")
        return True

    return await stream_changes(request, ns, each)


@_authorized
async def run_page(request: web.Request) -> web.StreamResponse:
    """GET /rollouts/{ns}/{name}/analysisruns/{run}: one AnalysisRun of a rollout."""
    ctx = _ctx(request)
    ns, name, run_name = request.match_info["ns"], request.match_info["name"], request.match_info["run"]
    try:
        run = await ctx.source.analysis_run(ns, name, run_name)
    except VerbError as exc:
        return _error_page(exc)
    data = {
        "stream": f"/ui/rollouts/{quote(ns)}/{quote(name)}/analysisruns/{quote(run_name)}/stream",
        "page": "analysisrun",
        "phase": str((run.get("status") or {}).get("phase") or ""),
    }
    html = render.page(f"{run_name} · {name} · {ns}", analysisview.run_page_body(ns, name, run), data=data)
    return web.Response(text=html, content_type="text/html")


@streams.limited
@_authorized
async def run_stream(request: web.Request) -> web.StreamResponse:
    """GET /ui/rollouts/{ns}/{name}/analysisruns/{run}/stream: ``fragments`` events {phase, parts}
    with the parts of the run's page that changed; ``deleted`` when the run (or rollout) is gone."""
    ctx = _ctx(request)
    ns, name, run_name = request.match_info["ns"], request.match_info["name"], request.match_info["run"]
    try:
        await ctx.source.analysis_run(ns, name, run_name)
    except VerbError as exc:
        return _stream_refused(exc)
    last: dict[str, str] = {}

    async def each(stream: streams.EventStream) -> bool:
        try:
            run = await ctx.source.analysis_run(ns, name, run_name)
        except VerbError as exc:
            await stream.send({"name": run_name, "message": exc.message}, "deleted")
            return False
        changed = _changed(last, analysisview.run_fragments(run))
        if changed:
            phase = str((run.get("status") or {}).get("phase") or "")
            await stream.send({"phase": phase, "parts": changed}, "fragments")
        return True

    return await stream_changes(request, ns, each)


@streams.limited
@_authorized
async def list_stream(request: web.Request) -> web.StreamResponse:
    """GET /ui/rollouts/{ns}/stream: ``rows`` events {html} with the list's table rows."""
    ctx = _ctx(request)
    ns = request.match_info["ns"]
    try:
        ctx.source.check_namespace(ns)
    except VerbError as exc:
        return _stream_refused(exc)
    last = [""]

    async def each(stream: streams.EventStream) -> bool:
        rows = render.list_rows(await ctx.source.infos(ns))
        if rows != last[0]:
            await stream.send({"html": rows}, "rows")
            last[0] = rows
        return True

    return await stream_changes(request, ns, each, heartbeat=False)


async def static(request: web.Request) -> web.StreamResponse:
    """GET /ui/static/{file}: the page's script and stylesheet (shipped in the package)."""
    name = request.match_info["file"]
    if name not in STATIC:
        raise web.HTTPNotFound()
    text = resources.files("pyrollouts.web").joinpath("static", name).read_text(encoding="utf-8")
    return web.Response(text=text, content_type=STATIC[name], headers={"Cache-Control": "no-cache"})


def page_routes() -> list[web.AbstractRouteDef]:
    """The pages, their streams and the static files."""
    return [
        web.get("/", index),
        web.get("/rollouts/{ns}", list_page),
        web.get("/rollouts/{ns}/{name}", rollout_page),
        web.get("/ui/rollouts/{ns}/stream", list_stream),
        web.get("/ui/rollouts/{ns}/{name}/stream", rollout_stream),
        web.get("/rollouts/{ns}/{name}/analysisruns/{run}", run_page),
        web.get("/ui/rollouts/{ns}/{name}/analysisruns/{run}/stream", run_stream),
        web.get("/ui/static/{file}", static),
    ]
