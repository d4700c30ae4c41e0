"""Assembling the dashboard: into the local server's application, or as an application of its own.

``dashboard_context(...)`` says what to serve. ``dashboard_routes(ctx)`` is given to
``server.api.make_app(extra_routes=...)``: the local server then serves the dashboard and /api/v1 at
its own address (its middlewares check the token on /api). ``make_dashboard_app(ctx)`` is the
standalone application ``rollouts dashboard`` serves over any Cluster (the Kubernetes runtime
through the kubeconfig's credentials), with the same rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..model.cluster import Cluster
from ..service import guard
from ..service.guard import is_loopback
from .api import api_routes, bearer_ok, error_response
from .context import WEB_KEY, WebContext
from .pages import page_routes
from .rolloutinfo import InfoBuilder
from .source import ClockLike, Source
from .traffic import TrafficSampler


def dashboard_context(
    cluster: Cluster,
    *,
    clock: ClockLike,
    info: InfoBuilder,
    proxy: Any = None,
    token: str | None = None,
    runtime: str = "local",
    namespace: str = "default",
    scoped: bool = False,
) -> WebContext:
    """What the dashboard serves, over ``cluster``: given to ``dashboard_routes`` or ``make_dashboard_app``.

    ``info``: the info builder (``service.info.rollout_info``). ``proxy``: the local ProxyManager
    (its ``stats()`` feeds the traffic chart), None elsewhere. ``token``: the server's token, None on
    loopback. ``namespace``: where ``/`` leads. ``scoped``: serve that namespace only (the cluster's
    credentials reach no other): the namespace list is that namespace alone, and every page, stream
    and API path of another namespace answers 403 without asking the cluster."""
    traffic = TrafficSampler(proxy.stats) if proxy is not None and hasattr(proxy, "stats") else None
    return WebContext(
        Source(cluster, clock, info, namespace=namespace, scoped=scoped),
        token=token,
        traffic=traffic,
        runtime=runtime,
    )


def install(app: web.Application, ctx: WebContext) -> None:
    """Add the dashboard's routes to ``app`` and keep ``ctx`` on it (before the app starts)."""
    app[WEB_KEY] = ctx
    app.add_routes(api_routes())
    app.add_routes(page_routes())

    async def stop_sampler(_: web.Application) -> None:
        if ctx.traffic is not None:
            await ctx.traffic.close()

    async def end_streams(_: web.Application) -> None:
        ctx.source.close()

    app.on_shutdown.append(end_streams)
    app.on_cleanup.append(stop_sampler)


def dashboard_routes(ctx: WebContext) -> Callable[[web.Application], None]:
    """For ``make_app(extra_routes=...)``: installs the dashboard and /api/v1 on the server's app."""
    return lambda app: install(app, ctx)


#: Whether the standalone dashboard answers loopback Hosts only (see make_dashboard_app).
HOST_CHECK_KEY: web.AppKey[bool] = web.AppKey("pyrollouts_host_check", bool)


@web.middleware
async def _auth(request: web.Request, handler: Any) -> web.StreamResponse:
    # The Host first (DNS rebinding), then the token: pages check it themselves (they can take it
    # once as ?token=); the API needs the header or the cookie the pages set. Writes: a JSON body,
    # and a same-origin Origin (guard.write_problem; check_write also asks for Origin or token).
    ctx = request.app[WEB_KEY]
    if request.app[HOST_CHECK_KEY]:
        # On loopback without a token, the credentials this dashboard holds (the kubeconfig's)
        # serve only the user who started it.
        problem = guard.loopback_problem(request, ctx.token)
        if problem is not None:
            return error_response(403, problem)
    if ctx.token is not None and request.path.startswith("/api/") and not bearer_ok(request, ctx.token):
        return error_response(401, "this dashboard needs a token: send 'Authorization: Bearer <token>'")
    refused = guard.write_problem(request, ctx.token)
    if refused is not None:
        return error_response(*refused)
    resp: web.StreamResponse = await handler(request)
    return resp


def make_dashboard_app(ctx: WebContext, *, host_check: bool = True) -> web.Application:
    """A standalone dashboard application serving ``ctx`` (see the module docstring).

    ``host_check``: answer only requests whose Host is a loopback name or address with the port
    they arrived on (DNS rebinding; docs/security.md). Pass False only when serving beyond
    loopback, which needs the context's token (``check_bind``)."""
    if not host_check and not ctx.token:
        raise ValueError("a dashboard without the Host check needs a token (it is served beyond loopback)")
    app = web.Application(middlewares=[_auth])
    app[HOST_CHECK_KEY] = host_check
    install(app, ctx)
    return app


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve beyond loopback without a token (ValueError saying what to do)."""
    if not is_loopback(host) and not token:
        raise ValueError(
            f"--address {host}: serving the dashboard beyond loopback needs a token; "
            "pass --token-file FILE (open the page once as ?token=TOKEN)"
        )
