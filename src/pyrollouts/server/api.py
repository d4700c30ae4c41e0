"""The local server's HTTP/JSON API, used by the CLI and the dashboard (docs/api.md).

``make_app`` builds an aiohttp application over any ``Cluster``. Every write goes through the
Cluster; a user action is one call of ``service.verbs`` (the patches Argo's plugin sends), so the
controller needs no API of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from .. import __version__
from ..model import kinds
from ..model.cluster import Cluster, Conflict, Invalid, NotFound, Obj
from ..model.selectors import parse_label_selector
from ..model.timefmt import rfc3339
from ..model.yamlsafe import MAX_BYTES
from ..runtimes.local.store import random_suffix
from ..service import guard, streams, verbs
from ..service.info import read_info
from .admission import AdmissionRefused
from .apply import ApplyRefused, apply_objects, check_text, findings_for_objects
from .traffic import DEFAULT_WINDOW, METRICS_CONTENT_TYPE, TrafficUnavailable, service_traffic

log = logging.getLogger("pyrollouts.server.api")


#: What the info routes follow: any change of these kinds may change a Rollout's tree.
INFO_KINDS = ("Rollout", "ReplicaSet", "Pod", "Service", "AnalysisRun")


class ClockLike(Protocol):
    def now(self) -> datetime: ...

    def advance(self, seconds: float) -> None: ...


Admission = Callable[[list[Obj]], list[str]]


class JsonError(web.HTTPException):
    """An error this API answers, as JSON {"error": ..., "details": [...]} (the CLI reads it back
    as ``cli.client.ApiError``)."""

    def __init__(self, status: int, error: str, details: Sequence[Any] = ()) -> None:
        self.status_code = status
        super().__init__(
            text=json.dumps({"error": error, "details": list(details)}),
            content_type="application/json",
        )


class _Ctx:
    """What the handlers share."""

    def __init__(
        self,
        cluster: Cluster,
        admission: Admission,
        clock: ClockLike,
        token: str | None,
        state_dir: Path | None,
        test_clock: bool,
        host_check: bool = True,
    ) -> None:
        self.cluster = cluster
        self.host_check = host_check
        self.admission = admission
        self.clock = clock
        self.token = token
        self.state_dir = state_dir
        self.test_clock = test_clock


CTX_KEY: web.AppKey[_Ctx] = web.AppKey("pyrollouts_ctx", _Ctx)
PROXY_KEY: web.AppKey[Any] = web.AppKey("pyrollouts_proxy", object)
TRAFFIC_KEY: web.AppKey[Any] = web.AppKey("pyrollouts_traffic", object)


def make_app(
    cluster: Cluster,
    *,
    admission: Admission,
    clock: ClockLike,
    token: str | None = None,
    extra_routes: Iterable[web.AbstractRouteDef] | Callable[[web.Application], None] | None = None,
    state_dir: Path | None = None,
    test_clock: bool | None = None,
    proxy: Any = None,
    traffic: Any = None,
    host_check: bool = True,
) -> web.Application:
    """The API application. ``token``: when set, every /api request needs ``Authorization: Bearer``.
    ``state_dir``: where pod logs live (``logs/<ns>/<pod>/<container>.log``); without it the logs
    route answers 404. ``test_clock``: enable POST /api/debug/clock (default: the clock's
    ``adjustable`` attribute). ``extra_routes``: route definitions (or a function given the app) for
    the dashboard or anything else. ``proxy``: the runtime's proxy manager, kept for routes that
    report on the data plane (``/metrics``). ``traffic``: a ``TrafficHistory`` of the proxy's
    counters, for ``/api/services/{namespace}/{name}/traffic``. ``host_check``: answer only
    requests whose Host is a loopback name or address with the server's port (turn it off only
    for a server listening beyond loopback, which then needs ``token``; docs/security.md)."""
    # A manifest may be up to yamlsafe.MAX_BYTES (what lint reads), and JSON escaping adds to it:
    # aiohttp's 1 MiB default refused files that lint accepted, without naming them.
    app = web.Application(
        middlewares=[_errors_middleware, _auth_middleware], client_max_size=2 * MAX_BYTES + 65536
    )
    if test_clock is None:
        test_clock = bool(getattr(clock, "adjustable", False))
    app[CTX_KEY] = _Ctx(cluster, admission, clock, token, state_dir, test_clock, host_check)
    app[PROXY_KEY] = proxy
    app[TRAFFIC_KEY] = traffic
    app.add_routes(
        [
            web.get("/api/version", version),
            web.post("/api/apply", apply_route),
            web.get("/api/watch", watch),
            web.post("/api/debug/clock", debug_clock),
            web.get("/api/rollouts/{namespace}/{name}/info", info),
            web.get("/api/rollouts/{namespace}/{name}/info/watch", info_watch),
            web.post("/api/rollouts/{namespace}/{name}/{action}", action),
            web.post("/api/analysisruns/{namespace}/{name}/{action}", run_action),
            web.get("/api/pods/{namespace}/{name}/logs", logs),
            web.get("/api/services/{namespace}/{name}/traffic", traffic_route),
            web.get("/metrics", metrics),
            web.get("/api/{plural}", list_objects),
            web.post("/api/{plural}", create_object),
            web.get("/api/{plural}/{namespace}/{name}", get_object),
            web.patch("/api/{plural}/{namespace}/{name}", patch_object),
            web.delete("/api/{plural}/{namespace}/{name}", delete_object),
            # Namespaces have no namespace segment.
            web.get("/api/namespaces/{name}", get_namespace),
        ]
    )
    if extra_routes is not None:
        if callable(extra_routes):
            extra_routes(app)
        else:
            app.add_routes(extra_routes)
    return app


# ---------------------------------------------------------------------------------------------
# middlewares


@web.middleware
async def _errors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        resp: web.StreamResponse = await handler(request)
        return resp
    except JsonError:
        raise
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.status < 400:
            raise
        raise JsonError(exc.status, exc.reason) from exc
    except NotFound as exc:
        raise JsonError(404, str(exc) or "not found") from exc
    except Conflict as exc:
        raise JsonError(409, str(exc) or "conflict") from exc
    except Invalid as exc:
        raise JsonError(422, str(exc) or "invalid") from exc
    except verbs.VerbError as exc:
        raise JsonError(exc.code, exc.message) from exc
    except ApplyRefused as exc:
        raise JsonError(exc.status, exc.error, exc.details) from exc
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception as exc:
        # A bug or a runtime failure: answer JSON the CLI can show, keep the traceback in the log.
        log.exception("%s %s failed", request.method, request.path)
        problem = f"internal error: {type(exc).__name__}: {exc}"
        raise JsonError(500, problem, ["see the server's log"]) from exc


MUTATING = guard.WRITES


@web.middleware
async def _auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every request, in this order (docs/security.md): a loopback Host with the server's port
    (unless the server listens beyond loopback, where the token protects it) and, without a
    token, a client of the server's own user (other users of the machine reach loopback too); the
    bearer token on /api and /metrics when the server has one; then for a write a same-origin Origin or none
    (not checked when the bearer token came with it: no page can add that header) and a JSON body."""
    ctx = request.app[CTX_KEY]
    if ctx.host_check:
        problem = guard.loopback_problem(request, ctx.token)
        if problem is not None:
            raise JsonError(403, problem)
    # /metrics carries Service names and traffic: the token guards it as it guards the API.
    on_api = request.path.startswith("/api/") or request.path == "/metrics"
    if on_api and ctx.token is not None and not guard.bearer_matches(request, ctx.token):
        raise JsonError(
            401,
            "this server needs a token: send 'Authorization: Bearer <token>' "
            "(rollouts --token-file FILE, or ROLLOUTS_TOKEN)",
        )
    refused = guard.write_problem(request, ctx.token if on_api else None)
    if refused is not None:
        raise JsonError(*refused)
    resp: web.StreamResponse = await handler(request)
    return resp


# ---------------------------------------------------------------------------------------------
# helpers


def _ctx(request: web.Request) -> _Ctx:
    return request.app[CTX_KEY]


def _kind(request: web.Request) -> str:
    plural = request.match_info["plural"]
    kind = kinds.by_plural(plural)
    if kind is None:
        known = ", ".join(sorted(k.plural for k in kinds.CLIENT_KINDS))
        raise JsonError(404, f"unknown resource '{plural}' (known: {known})")
    return kind.name


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise JsonError(400, f"the request body is not valid JSON: {exc}") from exc


def _dict_body(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise JsonError(400, f"the request body must be a JSON object ({what})")
    return body


def _labels(selector: str | None) -> dict[str, str] | None:
    try:
        return parse_label_selector(selector)
    except ValueError as exc:
        raise JsonError(400, f"labelSelector: {exc}") from None


@contextlib.contextmanager
def _admitted() -> Any:
    """Answer a write refused by admission (server/admission.py) as 422 with its details."""
    try:
        yield
    except AdmissionRefused as exc:
        raise JsonError(422, exc.error, exc.details) from exc


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str))


# ---------------------------------------------------------------------------------------------
# routes


async def version(request: web.Request) -> web.Response:
    """GET /api/version"""
    ctx = _ctx(request)
    return _json(
        {
            "version": __version__,
            "api": "v1",
            "runtime": "local",
            "testClock": ctx.test_clock,
            "now": rfc3339(ctx.clock.now()),
        }
    )


async def list_objects(request: web.Request) -> web.Response:
    """GET /api/{plural}?namespace=&labelSelector="""
    kind = _kind(request)
    ns = request.query.get("namespace") or None
    items = await _ctx(request).cluster.list(kind, ns, _labels(request.query.get("labelSelector")))
    return _json({"kind": f"{kind}List", "items": items})


async def get_object(request: web.Request) -> web.Response:
    """GET /api/{plural}/{namespace}/{name}"""
    kind = _kind(request)
    ns, name = request.match_info["namespace"], request.match_info["name"]
    try:
        obj = await _ctx(request).cluster.get(kind, ns, name)
    except NotFound:
        raise JsonError(404, f"{kind.lower()} '{name}' not found in namespace '{ns}'") from None
    return _json(obj)


async def get_namespace(request: web.Request) -> web.Response:
    """GET /api/namespaces/{name}"""
    name = request.match_info["name"]
    try:
        obj = await _ctx(request).cluster.get("Namespace", "", name)
    except NotFound:
        raise JsonError(404, f"namespace '{name}' not found") from None
    return _json(obj)


async def create_object(request: web.Request) -> web.Response:
    """POST /api/{plural}: create one object, validated as apply validates."""
    ctx = _ctx(request)
    kind = _kind(request)
    obj = _dict_body(await _json_body(request), "one object")
    obj.setdefault("kind", kind)
    if obj["kind"] != kind:
        raise JsonError(400, f"the body's kind '{obj['kind']}' does not match the URL's '{kind}'")
    ns = request.query.get("namespace") or "default"
    meta = obj.setdefault("metadata", {})
    if isinstance(meta, dict) and not meta.get("name") and meta.get("generateName"):
        # Named here, as an API server names it, so the checks below see the final name; a name
        # taken meanwhile is a 409 like any create conflict.
        meta["name"] = f"{meta.pop('generateName')}{random_suffix()}"
    with _admitted():
        results = await apply_objects(
            ctx.cluster, ctx.admission, [obj], ns, create_only=True, findings=findings_for_objects([obj], ns)
        )
    stored = await ctx.cluster.get(kind, results[0]["namespace"], results[0]["name"])
    return _json(stored, status=201)


async def patch_object(request: web.Request) -> web.Response:
    """PATCH /api/{plural}/{namespace}/{name}?subresource=status: a JSON merge patch. The object
    it makes is checked as apply checks one (on a server, ``ctx.cluster`` admits every write)."""
    kind = _kind(request)
    body = _dict_body(await _json_body(request), "a JSON merge patch")
    sub = request.query.get("subresource") or None
    if sub not in (None, "status"):
        raise JsonError(400, f"unknown subresource '{sub}' (only 'status')")
    with _admitted():
        obj = await _ctx(request).cluster.patch(
            kind,
            request.match_info["namespace"],
            request.match_info["name"],
            body,
            subresource=sub,
            resource_version=request.query.get("resourceVersion") or None,
        )
    return _json(obj)


async def delete_object(request: web.Request) -> web.Response:
    """DELETE /api/{plural}/{namespace}/{name} (cascading)."""
    kind = _kind(request)
    ns, name = request.match_info["namespace"], request.match_info["name"]
    try:
        await _ctx(request).cluster.delete(kind, ns, name)
    except NotFound:
        raise JsonError(404, f"{kind.lower()} '{name}' not found in namespace '{ns}'") from None
    return _json({"deleted": {"kind": kind, "namespace": ns, "name": name}})


async def apply_route(request: web.Request) -> web.Response:
    """POST /api/apply {text, source, namespace, createOnly} or {objects, namespace, createOnly}.

    Everything is validated first (lint errors, admission, create conflicts); nothing is written
    unless all objects pass."""
    ctx = _ctx(request)
    body = _dict_body(await _json_body(request), "{text: ..., source: ...} or {objects: [...]}")
    ns = str(body.get("namespace") or "default")
    create_only = bool(body.get("createOnly"))
    if isinstance(body.get("text"), str):
        source = str(body.get("source") or "<request>")
        # Lint of a large manifest takes a second or more: off the event loop, so the API answers.
        objects, findings = await asyncio.to_thread(check_text, body["text"], source, ns)
    elif isinstance(body.get("objects"), list):
        objects = body["objects"]
        if not all(isinstance(o, dict) for o in objects):
            raise JsonError(400, "'objects' must be a list of JSON objects")
        findings = await asyncio.to_thread(findings_for_objects, objects, ns)
    else:
        raise JsonError(400, "the body needs 'text' (a YAML/JSON manifest) or 'objects' (a list)")
    with _admitted():
        results = await apply_objects(
            ctx.cluster, ctx.admission, objects, ns, create_only=create_only, findings=findings
        )
    return _json({"results": results, "warnings": [f for f in findings if f.get("severity") != "error"]})


async def action(request: web.Request) -> web.Response:
    """POST /api/rollouts/{namespace}/{name}/{action}: a user action (service/verbs.py)."""
    ctx = _ctx(request)
    verb = request.match_info["action"]
    ns, name = request.match_info["namespace"], request.match_info["name"]
    raw = await request.read()
    body = _dict_body(await _json_body(request), f"{verb} options") if raw.strip() else {}
    with _admitted():
        return _json(await verbs.run(ctx.cluster, ns, name, verb, body, ctx.clock.now()))


async def run_action(request: web.Request) -> web.Response:
    """POST /api/analysisruns/{namespace}/{name}/{action}: a verb on an AnalysisRun (terminate;
    service/verbs.py)."""
    ctx = _ctx(request)
    ns, name = request.match_info["namespace"], request.match_info["name"]
    with _admitted():
        return _json(await verbs.run_on_analysis_run(ctx.cluster, ns, name, request.match_info["action"]))


async def _info_of(ctx: _Ctx, ns: str, name: str) -> Obj:
    return await read_info(ctx.cluster, ns, name, ctx.clock.now())


async def info(request: web.Request) -> web.Response:
    """GET /api/rollouts/{namespace}/{name}/info: the header and the revision tree."""
    return _json(await _info_of(_ctx(request), request.match_info["namespace"], request.match_info["name"]))


# ---------------------------------------------------------------------------------------------
# streams (Server-Sent Events)


async def _stop(task: asyncio.Task[Any]) -> None:
    """Cancel a stream's follower task and wait for its end."""
    task.cancel()
    with contextlib.suppress(BaseException):
        await task


async def _changes(
    cluster: Cluster, on: Sequence[str], ns: str | None, flag: asyncio.Event, sink: list[Any] | None = None
) -> None:
    """Follow cluster.watch: set ``flag`` on every change (and keep the events in ``sink``)."""
    async for ev in cluster.watch(on, ns):
        if sink is not None:
            sink.append(ev)
        flag.set()


@streams.limited
async def watch(request: web.Request) -> web.StreamResponse:
    """GET /api/watch?kinds=Rollout,Pod&namespace=: every change as an SSE event."""
    ctx = _ctx(request)
    wanted = [k for k in (request.query.get("kinds") or "Rollout,ReplicaSet,Pod,Service").split(",") if k]
    for k in wanted:
        if k not in {c.name for c in kinds.CLIENT_KINDS}:
            raise JsonError(400, f"unknown kind '{k}' in kinds")
    ns = request.query.get("namespace") or None
    stream = await streams.EventStream.start(request)
    flag = asyncio.Event()
    events: list[Any] = []
    follower = asyncio.create_task(_changes(ctx.cluster, wanted, ns, flag, events))
    try:
        while not follower.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(flag.wait(), streams.HEARTBEAT_SECONDS)
            flag.clear()
            if not events:
                await stream.ping()
            while events:
                ev = events.pop(0)
                await stream.send({"type": ev.type, "kind": ev.kind, "object": ev.obj}, ev.type)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        await _stop(follower)
    return stream.resp


@streams.limited
async def info_watch(request: web.Request) -> web.StreamResponse:
    """GET /api/rollouts/{namespace}/{name}/info/watch: the info view, sent again on every change.

    Also re-checked every second so that nothing missed between a watch and a read can leave the
    view stale; an unchanged view is not sent again."""
    ctx = _ctx(request)
    ns, name = request.match_info["namespace"], request.match_info["name"]
    first = await _info_of(ctx, ns, name)  # a 404 before the stream starts
    stream = await streams.EventStream.start(request)
    flag = asyncio.Event()
    follower = asyncio.create_task(_changes(ctx.cluster, INFO_KINDS, ns, flag))
    last_sent = ""
    try:
        view: Obj | None = first
        while True:
            if view is not None:
                key = json.dumps({k: v for k, v in view.items() if k != "now"}, sort_keys=True, default=str)
                if key != last_sent:
                    await stream.send(view, "info")
                    last_sent = key
            await stream.ping_if_idle()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(flag.wait(), 1.0)
            flag.clear()
            await asyncio.sleep(0.05)  # coalesce a burst of changes into one view
            try:
                view = await _info_of(ctx, ns, name)
            except verbs.VerbError:
                await stream.send({"name": name, "namespace": ns}, "deleted")
                break
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        await _stop(follower)
    return stream.resp


async def logs(request: web.Request) -> web.StreamResponse:
    """GET /api/pods/{namespace}/{name}/logs?container=&follow=1&tail=N&previous=1: a replica's
    output, across its size-rotated files (oldest first); ``previous``: the run before the last
    restart. The tail is found by reading backwards in blocks and everything goes out in chunks,
    so the server's memory stays the same whatever the size of the log."""
    from ..runtimes.local import logfiles as lf

    ctx = _ctx(request)
    ns, name = request.match_info["namespace"], request.match_info["name"]
    try:
        pod = await ctx.cluster.get("Pod", ns, name)
    except NotFound:
        raise JsonError(404, f"pod '{name}' not found in namespace '{ns}'") from None
    if ctx.state_dir is None:
        raise JsonError(404, "this server keeps no log files")
    containers = [c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or []]
    container = request.query.get("container") or (containers[0] if containers else "")
    if container not in containers:  # also keeps the name out of the path unless it is one
        raise JsonError(
            404, f"pod '{name}' has no container '{container}' (containers: {', '.join(containers)})"
        )
    truthy = ("1", "true", "yes")
    previous = request.query.get("previous") in truthy
    follow = request.query.get("follow") in truthy and not previous
    tail_arg = request.query.get("tail")
    tail: int | None = None
    if tail_arg not in (None, "", "-1"):
        if not str(tail_arg).isdigit():
            raise JsonError(400, f"tail={tail_arg!r}: expected a whole number of lines (or -1 for all)")
        tail = int(str(tail_arg))
    log_dir = ctx.state_dir / "logs" / ns / name
    live = lf.live_path(log_dir, container)
    paths = lf.segments(log_dir, container, previous=previous)
    if not paths and previous:
        raise JsonError(
            404, f"pod '{name}' container '{container}' has no previous run (it has not restarted)"
        )
    if not paths and not follow:
        raise JsonError(404, f"no log for pod '{name}' container '{container}' yet")
    resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
    await resp.prepare(request)

    def inode(p: Path) -> int | None:
        try:
            return p.stat().st_ino
        except OSError:
            return None

    async def send(chunks: Iterable[bytes]) -> int:
        n = 0
        for chunk in chunks:
            await resp.write(chunk)
            n += len(chunk)
        return n

    try:
        idx, off = await asyncio.to_thread(lf.tail_start, paths, tail) if tail is not None else (0, 0)
        ino, pos = None, 0
        for i in range(idx, len(paths)):
            start = off if i == idx else 0
            if paths[i] == live:
                ino = inode(live)
                pos = start + await send(lf.read_range(live, start))
            else:
                await send(lf.read_range(paths[i], start))
        if follow:
            checked = 0.0
            loop = asyncio.get_running_loop()
            while True:
                await asyncio.sleep(0.25)
                if request.transport is None or request.transport.is_closing():
                    break  # the client went away (with nothing to write we would not notice)
                try:
                    st = live.stat()
                except OSError:
                    st = None
                if st is not None:
                    if st.st_ino != ino:
                        # A new run: the file followed so far was moved aside; finish it first.
                        prev = lf.previous_path(log_dir, container)
                        if ino is not None and inode(prev) == ino:
                            await send(lf.read_range(prev, pos))
                        ino, pos = st.st_ino, 0
                    elif st.st_size < pos:
                        # Rotated (copied, then truncated): what was not sent yet is in .log.1.
                        rotated = live.with_name(live.name + ".1")
                        await send(lf.read_range(rotated, max(0, pos - lf.rotated_start(rotated))))
                        pos = 0
                    if st.st_size > pos:
                        pos += await send(lf.read_range(live, pos, st.st_size))
                if loop.time() - checked > 2.0:
                    checked = loop.time()
                    try:
                        await ctx.cluster.get("Pod", ns, name)
                    except NotFound:
                        break
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    with contextlib.suppress(ConnectionResetError):
        await resp.write_eof()
    return resp


async def debug_clock(request: web.Request) -> web.Response:
    """POST /api/debug/clock {advance: seconds}: only on a server started with --test-clock."""
    ctx = _ctx(request)
    if not ctx.test_clock:
        raise JsonError(409, "this server runs on the real clock; start it with --test-clock to advance time")
    body = _dict_body(await _json_body(request), "{advance: seconds}")
    secs = body.get("advance")
    if not isinstance(secs, int | float) or isinstance(secs, bool) or secs < 0:
        raise JsonError(400, f"advance must be a non-negative number of seconds, not {secs!r}")
    try:
        ctx.clock.advance(float(secs))
    except PermissionError as exc:
        raise JsonError(409, str(exc)) from exc
    return _json({"now": rfc3339(ctx.clock.now())})


async def traffic_route(request: web.Request) -> web.Response:
    """GET /api/services/{namespace}/{name}/traffic?window=30s&revision=HASH: the Service's traffic
    per revision over the window, from the proxy's counters (server/traffic.py)."""
    ctx = _ctx(request)
    history = request.app[TRAFFIC_KEY]
    ns, name = request.match_info["namespace"], request.match_info["name"]
    if history is None:
        raise JsonError(404, "this server has no proxy, so no traffic counters (local runtime only)")
    try:
        await ctx.cluster.get("Service", ns, name)
    except NotFound:
        raise JsonError(404, f"service '{name}' not found in namespace '{ns}'") from None
    window = request.query.get("window") or DEFAULT_WINDOW
    try:
        body = await service_traffic(history, ns, name, window, request.query.get("revision") or None)
    except ValueError as exc:
        raise JsonError(400, str(exc)) from None
    except TrafficUnavailable as exc:
        raise JsonError(503, str(exc)) from None
    return _json(body)


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: the proxy's counters in Prometheus text format 0.0.4, read when scraped."""
    proxy = request.app[PROXY_KEY]
    if proxy is None or not hasattr(proxy, "metrics_text"):
        return web.Response(status=404, text="this server has no proxy, so no traffic counters\n")
    try:
        text = await proxy.metrics_text()
    except Exception as exc:
        return web.Response(status=503, text=f"cannot read the proxy's counters: {exc}\n")
    return web.Response(body=text.encode(), headers={"Content-Type": METRICS_CONTENT_TYPE})
