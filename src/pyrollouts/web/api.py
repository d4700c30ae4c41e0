"""Argo Rollouts' dashboard API under /api/v1, over any ``Cluster`` (docs/argo-compat.md, "Dashboard API").

Reads: ``GET rollouts/{ns}/info``, ``rollouts/{ns}/{name}/info`` and their ``/watch`` streams
(Server-Sent Events; each message's data is ``{"result": ...}`` as Argo's gateway wraps stream
items), ``namespace``, ``version``. Writes (PUT, or POST): ``promote`` (body ``{"full": bool}``),
``abort``, ``retry``, ``restart``, ``undo/{revision}``, ``set/{container}/{image}``; each is the
one call of ``service.verbs``: the patches Argo's plugin sends. Writes need the bearer token,
or an ``Origin`` header naming this server (a browser page of ours); anything else is refused, so a
page from another site cannot drive a rollout.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .. import __version__
from ..model.cluster import Conflict, Invalid, NotFound
from ..service import guard, streams, verbs
from ..service.verbs import VerbError
from .context import WEB_KEY, WebContext
from .openapi import openapi_document
from .source import fingerprint

log = logging.getLogger("pyrollouts.web.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, message: str) -> web.Response:
    """The JSON error body every route answers with: {"error", "code", "message"} (Argo's gateway
    says "error" and "message"; both carry the text)."""
    return web.json_response({"error": message, "message": message, "code": status}, status=status)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str))


def _handles_errors(fn: Handler) -> Handler:
    """Answer our errors as JSON here, so the routes behave the same in any host application."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await fn(request)
        except VerbError as exc:
            return error_response(exc.code, exc.message)
        except NotFound as exc:
            return error_response(404, str(exc) or "not found")
        except Conflict as exc:
            return error_response(409, str(exc) or "conflict: try again")
        except Invalid as exc:
            return error_response(422, str(exc) or "invalid")

    wrapper.__doc__ = fn.__doc__
    wrapper.__name__ = fn.__name__
    return wrapper


def connected(request: web.Request) -> Callable[[], bool]:
    """Whether the client of a stream is still there (its connection not closing)."""

    def alive() -> bool:
        transport = request.transport
        return transport is not None and not transport.is_closing()

    return alive


async def stream_changes(
    request: web.Request,
    ns: str,
    each: Callable[[streams.EventStream], Awaitable[bool]],
    *,
    heartbeat: bool = True,
) -> web.StreamResponse:
    """Open an event stream and call ``each`` with it once at the start and again on every change
    in ``ns``, until ``each`` returns False or the client leaves; the stream's response. With
    ``heartbeat``, a stream idle for a while gets its ping after each call."""
    stream = await streams.EventStream.start(request)
    try:
        async for _ in _ctx(request).source.changes(ns, connected(request)):
            if not await each(stream):
                break
            if heartbeat:
                await stream.ping_if_idle()
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return stream.resp


def _ctx(request: web.Request) -> WebContext:
    return request.app[WEB_KEY]


def bearer_ok(request: web.Request, token: str | None) -> bool:
    """Whether the request carries the server's token (header, or the dashboard's cookie)."""
    given = guard.bearer(request) or request.cookies.get(COOKIE, "")
    return guard.token_matches(given, token)


COOKIE = "pyrollouts_token"


def check_write(request: web.Request) -> None:
    """Refuse a write without the token in the Authorization header or a same-origin Origin, and
    any write whose body is not JSON (guard.write_problem; the host application's middleware has
    checked the Host)."""
    ctx = _ctx(request)
    by_token = guard.bearer_matches(request, ctx.token)
    if not by_token and request.headers.get("Origin") is None:
        raise VerbError(
            403,
            "actions need an Origin header naming this server (sent by the dashboard page) "
            "or 'Authorization: Bearer <token>'",
        )
    refused = guard.write_problem(request, ctx.token)
    if refused is not None:
        raise VerbError(*refused)


async def _body(request: web.Request, what: str) -> dict[str, Any]:
    """The JSON object body; {} when empty; VerbError 400 when malformed or not an object."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise VerbError(400, f"the request body is not valid JSON ({exc}); send {what}") from exc
    if not isinstance(body, dict):
        raise VerbError(400, f"the request body must be a JSON object: {what}")
    return body


# ---------------------------------------------------------------------------------------------
# reads


@_handles_errors
async def version(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/version"""
    ctx = _ctx(request)
    return _json({"rolloutsVersion": f"pyrollouts v{__version__}", "runtime": ctx.runtime})


@_handles_errors
async def namespace(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/namespace: the default namespace and those the user may switch to."""
    ctx = _ctx(request)
    return _json(
        {"namespace": ctx.source.default_namespace, "availableNamespaces": await ctx.source.namespaces()}
    )


@_handles_errors
async def list_info(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/rollouts/{ns}/info"""
    return _json({"rollouts": await _ctx(request).source.infos(request.match_info["ns"])})


@_handles_errors
async def get_info(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/rollouts/{ns}/{name}/info"""
    return _json(await _ctx(request).source.info(request.match_info["ns"], request.match_info["name"]))


@_handles_errors
async def get_events(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/rollouts/{ns}/{name}/events (ours): the rollout's events, oldest first."""
    ctx = _ctx(request)
    ns, name = request.match_info["ns"], request.match_info["name"]
    await ctx.source.rollout(ns, name)
    return _json({"items": await ctx.source.events(ns, name)})


@_handles_errors
async def get_traffic(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/rollouts/{ns}/{name}/traffic (ours, local runtime): rps and error rate per revision."""
    ctx = _ctx(request)
    info = await ctx.source.info(request.match_info["ns"], request.match_info["name"])
    return _json({"available": ctx.traffic is not None, "revisions": await ctx.traffic_of(info)})


@_handles_errors
async def openapi(request: web.Request) -> web.StreamResponse:
    """GET /api/openapi.json"""
    return _json(openapi_document())


# ---------------------------------------------------------------------------------------------
# streams


@streams.limited
@_handles_errors
async def watch_info(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/rollouts/{ns}/{name}/info/watch: RolloutInfo as ``{"result": info}`` messages,
    again on every change; also named events ``events`` (the event log) and ``traffic`` (local)."""
    ctx = _ctx(request)
    ns, name = request.match_info["ns"], request.match_info["name"]
    await ctx.source.rollout(ns, name)  # a 404 before the stream starts
    sent = {"info": "", "events": "", "traffic": ""}

    async def each(stream: streams.EventStream) -> bool:
        try:
            info = await ctx.source.info(ns, name)
        except VerbError:
            await stream.send({"name": name, "namespace": ns}, "deleted")
            return False
        parts: list[tuple[str, Any, str | None]] = [
            ("info", {"result": info}, None),
            ("events", {"items": await ctx.source.events(ns, name)}, "events"),
        ]
        if ctx.traffic is not None:
            parts.append(("traffic", {"revisions": await ctx.traffic_of(info)}, "traffic"))
        for key, data, event in parts:
            fp = fingerprint(data["result"] if key == "info" else data)
            if fp != sent[key]:
                await stream.send(data, event)
                sent[key] = fp
        return True

    return await stream_changes(request, ns, each)


@streams.limited
@_handles_errors
async def watch_list(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/rollouts/{ns}/info/watch: ``{"result": {"type", "rolloutInfo"}}`` per change."""
    ctx = _ctx(request)
    ns = request.match_info["ns"]
    ctx.source.check_namespace(ns)  # a 403 before the stream starts
    known: dict[str, str] = {}

    async def each(stream: streams.EventStream) -> bool:
        infos = {str(i["objectMeta"]["name"]): i for i in await ctx.source.infos(ns)}
        for name, info in infos.items():
            fp = fingerprint(info)
            if known.get(name) != fp:
                kind = "MODIFIED" if name in known else "ADDED"
                await stream.send({"result": {"type": kind, "rolloutInfo": info}})
                known[name] = fp
        for name in [n for n in known if n not in infos]:
            gone = {"objectMeta": {"name": name, "namespace": ns}}
            await stream.send({"result": {"type": "DELETED", "rolloutInfo": gone}})
            del known[name]
        return True

    return await stream_changes(request, ns, each)


# ---------------------------------------------------------------------------------------------
# actions


async def _args(request: web.Request, verb: str) -> dict[str, Any]:
    """The verb's arguments (service/verbs.py) from the body and the URL."""
    body = await _body(request, '{"full": true|false}' if verb == "promote" else "{}")
    if verb == "promote":
        return {"full": body.get("full", False)}
    if verb == "undo":
        raw = request.match_info["revision"]
        try:
            return {"toRevision": int(raw)}
        except ValueError:
            problem = f"revision '{raw}' is not a number; use one of the rollout's revisions"
            raise VerbError(400, problem) from None
    if verb == "set-image":
        return {"container": request.match_info["container"], "image": request.match_info["image"]}
    return {}


def _action(verb: str) -> Handler:
    @_handles_errors
    async def handler(request: web.Request) -> web.StreamResponse:
        check_write(request)
        ctx = _ctx(request)
        ns, name = request.match_info["ns"], request.match_info["name"]
        args = await _args(request, verb)
        ctx.source.check_namespace(ns)
        log.info("%s %s/%s", verb, ns, name)
        done = await verbs.run(ctx.source.cluster, ns, name, verb, args, ctx.clock.now())
        return _json(done["rollout"])

    handler.__name__ = f"action_{verb.replace('-', '_')}"
    return handler


def api_routes() -> list[web.AbstractRouteDef]:
    """Every /api/v1 route and /api/openapi.json (they read the WebContext stored on the app)."""
    base = "/api/v1/rollouts/{ns}/{name}"
    routes: list[web.AbstractRouteDef] = [
        web.get("/api/openapi.json", openapi),
        web.get("/api/v1/version", version),
        web.get("/api/v1/namespace", namespace),
        web.get("/api/v1/rollouts/{ns}/info", list_info),
        web.get("/api/v1/rollouts/{ns}/info/watch", watch_list),
        web.get(base + "/info", get_info),
        web.get(base + "/info/watch", watch_info),
        web.get(base + "/events", get_events),
        web.get(base + "/traffic", get_traffic),
    ]
    actions = {
        "promote": "/promote",
        "abort": "/abort",
        "retry": "/retry",
        "restart": "/restart",
        "undo": "/undo/{revision}",
        # An image holds '/' and ':'; the rest of the path is the image.
        "set-image": "/set/{container}/{image:.+}",
    }
    for verb, path in actions.items():
        h = _action(verb)
        routes += [web.put(base + path, h), web.post(base + path, h)]
    return routes
