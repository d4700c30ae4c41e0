"""The standalone dashboard process of `rollouts dashboard`: on the local backend a relay to the
local server's own dashboard (web/relay.py), which adds the CLI's token; on Kubernetes the dashboard
over a KubeCluster with the kubeconfig's credentials, its caches watching Rollouts, ReplicaSets,
Services and Pods in every namespace, or in one namespace alone (``namespace``)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

import aiohttp
from aiohttp import web

from ..web import check_bind, dashboard_context, is_loopback, make_dashboard_app
from ..web.relay import make_relay_app


class DashboardError(Exception):
    """A dashboard that cannot start: ``message``, then ``details`` (what to do)."""

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


async def _check_server(url: str, token: str | None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
            session.get(url.rstrip("/") + "/api/v1/version", headers=headers) as resp,
        ):
            if resp.status == 401:
                raise DashboardError(
                    f"the server at {url} needs a token: pass --token-file FILE (or ROLLOUTS_TOKEN)"
                )
            if resp.status != 200:
                problem = f"the server at {url} has no dashboard (GET /api/v1/version: {resp.status})"
                raise DashboardError(problem)
    except aiohttp.ClientError as exc:
        raise DashboardError(
            f"cannot reach a pyrollouts server at {url} ({exc})",
            ["start one with:  rollouts server", "or point at one with --server URL (or ROLLOUTS_SERVER)"],
        ) from None


async def _kube_app(
    kubeconfig: str | None,
    context: str | None,
    token: str | None,
    scope: str | None = None,
    host_check: bool = True,
) -> tuple[web.Application, Any]:
    from ..controller.clock import Clock
    from ..model.cluster import ClusterError
    from ..runtimes.kubernetes.cluster import KubeCluster, load_config, make_client
    from ..service.info import rollout_info

    try:
        config = load_config(kubeconfig, context)
        # Scoped, the caches list and watch that namespace only (namespace=None: all of them).
        cluster = KubeCluster(make_client(kubeconfig, context), namespace=scope, cache=True)
    except ClusterError as exc:
        raise DashboardError(str(exc)) from None
    try:
        await cluster.start(timeout=30)
    except ClusterError as exc:
        await cluster.close()
        raise DashboardError(str(exc)) from None
    except TimeoutError:
        await cluster.close()
        where = f"namespace '{scope}'" if scope else "all namespaces"
        raise DashboardError(
            f"the Kubernetes API did not answer the first list ({where}) within 30 s",
            ["check that the kubeconfig's user may list and watch Rollouts, ReplicaSets, Services and Pods"],
        ) from None
    namespace = scope or str(getattr(config, "namespace", None) or "default")
    context = dashboard_context(
        cluster,
        clock=Clock(),
        info=rollout_info,
        token=token,
        runtime="kubernetes",
        namespace=namespace,
        scoped=scope is not None,
    )
    app = make_dashboard_app(
        context,
        # On loopback only loopback Hosts are answered (DNS rebinding); beyond it the token
        # (required by check_bind) protects the dashboard instead.
        host_check=host_check,
    )
    return app, cluster


async def serve(
    backend: str,
    *,
    host: str,
    port: int,
    server: str,
    token: str | None,
    kubeconfig: str | None = None,
    context: str | None = None,
    namespace: str | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve the dashboard until ``stop`` is set (or SIGINT/SIGTERM). ``namespace``: on the
    Kubernetes backend, serve that namespace only (None: every namespace)."""
    try:
        check_bind(host, token)
    except ValueError as exc:
        raise DashboardError(str(exc)) from None
    closer: Any = None
    if backend == "kubernetes":
        app, closer = await _kube_app(kubeconfig, context, token, namespace, host_check=is_loopback(host))
    else:
        if namespace is not None:
            raise DashboardError(
                "--namespace scopes the Kubernetes backend's dashboard; the local server's dashboard "
                "serves every namespace (drop --namespace, or add --backend kubernetes)"
            )
        if not is_loopback(host):
            raise DashboardError(
                "on the local runtime the dashboard relays to the server on loopback only; to reach it "
                "from elsewhere, start the server itself with --listen HOST:PORT --token-file FILE"
            )
        await _check_server(server, token)
        app = make_relay_app(server, token)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise DashboardError(
                f"cannot listen on {host}:{port}: {exc.strerror}; pick another port with -p"
            ) from None
        shown = f"[{host}]" if ":" in host else host
        print(f"dashboard of the {backend} backend at http://{shown}:{port}/ (Ctrl-C stops it)", flush=True)
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
        if closer is not None:
            await closer.close()
