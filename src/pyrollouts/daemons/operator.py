"""The operator process: caches, leader election, metrics, health, and the controller's workers.

``run_operator`` assembles the Kubernetes runtime around a controller. The controller itself is
handed in as a factory (the app layer passes ``RolloutController``): the runtime layer sits below
the controller and never imports it. Only the replica holding the Lease runs the controller's
workers; every replica keeps its caches warm and serves /healthz, /readyz and /metrics, so a
follower takes over within one lease duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from aiohttp import web

from ..model import names
from ..model.cluster import ClusterError, Obj
from ..runtimes.kubernetes.cluster import CONTROLLER_CACHED_KINDS, KubeCluster, make_client
from ..runtimes.kubernetes.leader import DEFAULT_LEASE_NAME, LeaderElector, LeaseTimings
from ..runtimes.kubernetes.logs import configure_logging
from ..runtimes.kubernetes.metrics import ControllerMetrics, health_app, metrics_app, serve

log = logging.getLogger("pyrollouts.operator")


class ControllerLike(Protocol):
    """What the operator needs of a controller: run until cancelled; requeue every Rollout."""

    async def run(self) -> None: ...

    async def requeue_all(self) -> None: ...


#: factory(cluster, namespace, instance_id, workers, on_reconcile) -> a controller
ControllerFactory = Callable[
    [KubeCluster, str | None, str | None, int, Callable[[Obj, float, Exception | None], None]], ControllerLike
]


def in_scope(rollout: Obj, instance_id: str | None) -> bool:
    """Argo's sharding rule: a Rollout labelled with an instance id belongs to that controller only."""
    labels = (rollout.get("metadata") or {}).get("labels") or {}
    if instance_id:
        return labels.get(names.INSTANCE_ID_LABEL) == instance_id
    return names.INSTANCE_ID_LABEL not in labels


#: Argo's default --rollout-resync: every Rollout is reconciled again every 15 minutes.
DEFAULT_RESYNC_SECONDS = 900.0


async def resync_every(ctrl: Any, seconds: float) -> None:
    """Queue every object of ``ctrl`` again each ``seconds`` (0 or less: never)."""
    if seconds <= 0:
        return
    while True:
        await asyncio.sleep(seconds)
        await ctrl.requeue_all()


def default_identity() -> str:
    """hostname_uuid, as client-go names leader-election candidates."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


async def operate(
    factory: ControllerFactory,
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    namespace: str | None = None,
    instance_id: str | None = None,
    leader_elect: bool = True,
    metrics_port: int = 8090,
    healthz_port: int = 8080,
    rollout_threads: int = 10,
    listen_address: str = "0.0.0.0",
    lease_namespace: str | None = None,
    lease_name: str | None = None,
    timings: LeaseTimings | None = None,
    identity: str | None = None,
    advance_clock: Callable[[float], None] | None = None,
    resync_seconds: float = DEFAULT_RESYNC_SECONDS,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the operator until ``stop`` is set or the task is cancelled. While leading, every
    Rollout is queued again each ``resync_seconds`` (0: never), as Argo's --rollout-resync does:
    the backstop for a change whose event was lost."""
    client = make_client(kubeconfig, context)
    lease_ns = lease_namespace or os.environ.get("POD_NAMESPACE") or namespace or "default"
    lease = lease_name or (f"{DEFAULT_LEASE_NAME}-{instance_id}" if instance_id else DEFAULT_LEASE_NAME)
    ident = identity or default_identity()
    cluster: KubeCluster

    def rollouts() -> list[Obj]:
        if cluster.informers is None:
            return []
        inf = cluster.informers.informers["Rollout"]
        return [r for r in inf.list(namespace) if in_scope(r, instance_id)]

    metrics = ControllerMetrics(rollouts)
    cluster = KubeCluster(
        client,
        namespace=namespace,
        on_event=metrics.count_event,
        cached_kinds=CONTROLLER_CACHED_KINDS,
        cached_rollout_reads=True,
    )
    state: dict[str, Any] = {"leader": not leader_elect, "controller": None}

    def on_reconcile(obj: Obj, seconds: float, err: Exception | None) -> None:
        metrics.observe_reconcile(str(obj.get("key", "")), seconds, err)

    def ready() -> bool:
        return cluster.informers is not None and cluster.informers.synced

    def details() -> dict[str, Any]:
        return {"leader": state["leader"], "identity": ident}

    health = health_app(ready, details)
    if advance_clock is not None:
        # --test-clock: tests skip long delays (scale-down deadlines) without waiting for them.
        async def debug_clock(request: web.Request) -> web.Response:
            body = await request.json()
            advance_clock(float(body.get("advance", 0)))
            ctrl = state["controller"]
            if ctrl is not None:
                await ctrl.requeue_all()
            return web.json_response({"advanced": body.get("advance", 0)})

        health.router.add_post("/debug/clock", debug_clock)

    runners = [
        await serve(health, listen_address, healthz_port),
        await serve(metrics_app(metrics), listen_address, metrics_port),
    ]
    log.info(
        "starting rollouts controller",
        extra={
            "namespace": namespace or "(all)",
            "instanceID": instance_id or "",
            "leaderElect": leader_elect,
            "identity": ident,
            "metricsPort": metrics_port,
            "healthzPort": healthz_port,
        },
    )

    async def lead() -> None:
        ctrl = factory(cluster, namespace, instance_id, rollout_threads, on_reconcile)
        state["controller"] = ctrl
        resync = asyncio.create_task(resync_every(ctrl, resync_seconds), name="resync")
        try:
            await ctrl.run()
        finally:
            resync.cancel()
            state["controller"] = None

    def on_change(leading: bool) -> None:
        state["leader"] = leading
        log.info("leadership changed", extra={"leader": leading, "identity": ident})

    try:
        await cluster.start(timeout=120)
        log.info("caches synced")
        if leader_elect:
            elector = LeaderElector(client, lease_ns, lease, ident, lead, timings, on_change=on_change)
            work = asyncio.create_task(elector.run(), name="leader-election")
        else:
            work = asyncio.create_task(lead(), name="controller")
        waiters = {work}
        if stop is not None:
            waiters.add(asyncio.create_task(stop.wait(), name="stop"))
        done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for t in waiters - done:
            t.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        if work in done:
            work.result()
    finally:
        for r in runners:
            with contextlib.suppress(Exception):
                await r.cleanup()
        with contextlib.suppress(Exception):
            await cluster.close()


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop where it is installed (Linux and macOS), else on asyncio's own loop.
    The operator is a loop of small HTTPS requests and watch reads: uvloop does the socket and TLS
    work in C where asyncio's selector loop and TLS protocol are Python, which took about a tenth
    off the controller's CPU at 1,000 Rollouts (docs/benchmarks.md)."""
    try:
        import uvloop
    except ImportError:  # optional: asyncio's loop runs the same code
        asyncio.run(main)
    else:
        uvloop.run(main)


def run_operator(
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    instance_id: str | None,
    leader_elect: bool,
    metrics_port: int,
    healthz_port: int,
    rollout_threads: int,
    loglevel: str,
    logformat: str,
    *,
    factory: ControllerFactory,
    **options: Any,
) -> int:
    """Run the operator in this process until SIGTERM/SIGINT; returns the exit code.

    ``options`` are passed to ``operate`` (listen_address, lease_namespace, lease_name, timings,
    identity, advance_clock, resync_seconds)."""
    configure_logging(loglevel, logformat)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await operate(
            factory,
            kubeconfig=kubeconfig,
            context=context,
            namespace=namespace or None,
            instance_id=instance_id or None,
            leader_elect=leader_elect,
            metrics_port=metrics_port,
            healthz_port=healthz_port,
            rollout_threads=rollout_threads,
            stop=stop,
            **options,
        )

    try:
        _run_loop(main())
    except ClusterError as exc:  # a configuration problem the message explains: no traceback
        log.error("controller failed: %s", exc)
        return 1
    except Exception as exc:
        log.error("controller failed: %s", exc, exc_info=True)
        return 1
    return 0
