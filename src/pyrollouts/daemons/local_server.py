"""The local server: assembles the local runtime, the proxy, the rollout controller and the API.

``rollouts server --state-dir DIR --listen 127.0.0.1:7390`` runs:
- the SQLite store and the ReplicaSet controller/supervisor that runs Pods as processes
  (runtimes/local), re-adopting processes left by an earlier server;
- the proxy process (the data plane), adopted if already running, fed its routing table from the
  store's Services and Pods;
- the rollout controller (controller/) over the local Cluster;
- the HTTP API (server/api.py) used by the CLI and the dashboard, with the proxy's traffic counters
  (``/metrics``, and per Service over a window, read every second: runtimes/local/traffichistory.py).
App processes and the proxy do not depend on this process: if it dies, traffic keeps flowing, and a
restarted server picks everything up again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import stat
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from ..controller import Clock, RolloutController
from ..controller.analysisruns import AnalysisRunController
from ..service.guard import is_loopback

log = logging.getLogger("pyrollouts.server")  # the name the docs and log readers know


class ServerError(Exception):
    """A server that cannot start (message says why and what to do)."""


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ServerError(f"--listen {listen!r}: expected HOST:PORT, for example 127.0.0.1:7390")
    return (host.strip("[]") or "127.0.0.1"), int(port)


#: The state dir holds env values (in the store, the logs): only its owner reads it.
PRIVATE_UMASK = 0o077


def make_private(state_dir: Path) -> list[str]:
    """Create the state dir 0700 and take group and other permissions off everything already in
    it (an apps' emptyDir volumes keep their own modes inside); from now on this process creates
    files 0600 and dirs 0700 (umask 077, inherited by the proxy; app processes get 022 back).
    Returns what had to be tightened (paths relative to the state dir)."""
    os.umask(PRIVATE_UMASK)
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    tightened: list[str] = []

    def tighten(p: Path) -> None:
        try:
            st = p.lstat()
        except OSError:
            return
        if stat.S_ISLNK(st.st_mode) or not stat.S_IMODE(st.st_mode) & PRIVATE_UMASK:
            return
        try:
            p.chmod(stat.S_IMODE(st.st_mode) & ~PRIVATE_UMASK)
            tightened.append(str(p.relative_to(state_dir)) if p != state_dir else ".")
        except OSError as exc:
            log.warning("cannot make %s private: %s", p, exc.strerror)

    tighten(state_dir)
    for root, dirs, files in os.walk(state_dir):
        here = Path(root)
        if here.parent.parent == state_dir / "volumes":
            dirs[:] = []  # a pod's volumes: the app's files
        for n in [*dirs, *files]:
            tighten(here / n)
    return tightened


class ControllerClock:
    """The clock the API may advance (test mode); advancing requeues every rollout."""

    def __init__(
        self,
        clock: Clock,
        controller: RolloutController | None,
        adjustable: bool,
        analysis: AnalysisRunController | None = None,
    ) -> None:
        self._clock = clock
        self.controller = controller
        self.adjustable = adjustable
        self.analysis = analysis
        self._requeues: set[asyncio.Task[None]] = set()

    def now(self) -> datetime:
        return self._clock.now()

    def advance(self, seconds: float) -> None:
        if not self.adjustable:
            raise PermissionError("the clock can be advanced only on a server started with --test-clock")
        self._clock.advance(seconds)
        for controller in (self.controller, self.analysis):
            if controller is not None:
                task = asyncio.get_running_loop().create_task(controller.requeue_all())
                self._requeues.add(task)  # held until done (the loop keeps only a weak reference)
                task.add_done_callback(self._requeues.discard)


class LocalServer:
    """All the parts of a local server, started and stopped together (also used by tests)."""

    def __init__(
        self,
        state_dir: Path,
        listen: str = "127.0.0.1:7390",
        *,
        token_file: Path | None = None,
        image_map: Path | None = None,
        test_clock: bool = False,
        proxy_bind: str = "127.0.0.1",
        runtime_options: dict[str, Any] | None = None,
        log_policy: Any = None,
        traffic_options: dict[str, Any] | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.host, self.port = parse_listen(listen)
        self.token: str | None = None
        if token_file is not None:
            try:
                self.token = Path(token_file).read_text().strip()
            except OSError as exc:
                raise ServerError(f"--token-file {token_file}: cannot read it ({exc.strerror})") from exc
            if not self.token:
                raise ServerError(f"--token-file {token_file}: the file is empty; put a token in it")
            mode = Path(token_file).stat().st_mode & 0o777
            if mode & 0o077:
                log.warning(
                    "--token-file %s is readable by other users (mode %o): anyone who reads it can "
                    "drive this server; chmod 600 %s",
                    token_file,
                    mode,
                    token_file,
                )
        if not is_loopback(self.host) and not self.token:
            raise ServerError(
                f"--listen {listen}: listening beyond loopback needs a token; "
                "pass --token-file FILE (clients send it as a bearer token)"
            )
        self.image_map = image_map
        self.test_clock = test_clock
        self.proxy_bind = proxy_bind
        # Extra LocalRuntime keyword arguments (tests pass a short restart backoff and drain delay).
        self.runtime_options = dict(runtime_options or {})
        self.log_policy = log_policy  # runtimes.local.logfiles.LogPolicy: rotation of pod logs
        # TrafficHistory keyword arguments (interval, keep): how often and how long counters are kept.
        self.traffic_options = dict(traffic_options or {})
        self.clock = Clock()
        self._tasks: list[asyncio.Task[Any]] = []
        self._runner: web.AppRunner | None = None
        self.stopped = asyncio.Event()
        self._umask: int | None = None
        self.stop_everything = False

    async def start(self) -> None:
        """Open the store, listen and answer, then start the work: the API answers before any
        sync of stored objects (which may be large, or refused: see ``report_refused``)."""
        from ..runtimes.local.proxymanager import ProxyManager, ServiceProxyController
        from ..runtimes.local.runtime import LocalRuntime
        from ..runtimes.local.traffichistory import TrafficHistory
        from ..server import api
        from ..server.admission import AdmittedCluster

        self._umask = os.umask(PRIVATE_UMASK)  # given back by stop() (a test runs servers in-process)
        tightened = make_private(self.state_dir)
        if tightened:
            log.warning(
                "%s was readable by others: tightened %d path(s) to owner-only (%s)",
                self.state_dir,
                len(tightened),
                ", ".join(tightened[:5]) + (", ..." if len(tightened) > 5 else ""),
            )
        self.runtime = LocalRuntime(self.state_dir, image_map=self.image_map, **self.runtime_options)
        self.runtime.store.clock = self.clock.now  # one clock for timestamps and the controller
        if self.log_policy is not None:
            self.runtime.supervisor.logfiles.policy = self.log_policy
        self.runtime.lock()  # a second server on this state dir stops here, before it listens
        self.runtime.reserve_port(self.port, "the pyrollouts server's API port (--listen)")
        self.proxy = ProxyManager(self.state_dir, bind=self.proxy_bind)
        self.service_proxy = ServiceProxyController(self.runtime.cluster, self.proxy)
        # Readings of the proxy's counters, for traffic over a window (analysis: docs/analysis.md).
        self.traffic = TrafficHistory(self.proxy.counters, **self.traffic_options)
        self.controller = RolloutController(self.runtime.cluster, self.clock)
        self.analysis = AnalysisRunController(self.runtime.cluster, self.clock)
        api_clock = ControllerClock(self.clock, self.controller, self.test_clock, self.analysis)
        # Every client write (API, dashboard, verbs) goes through admission; controllers do not.
        self.client_cluster = AdmittedCluster(self.runtime.cluster, self.runtime, admission=self.admission)
        app = api.make_app(
            self.client_cluster,
            admission=self.admission,
            clock=api_clock,
            token=self.token,
            state_dir=self.state_dir,
            extra_routes=self._extra_routes(api_clock),
            proxy=self.proxy,
            traffic=self.traffic,
            # Beyond loopback a token is required (checked above) and protects the server instead.
            host_check=is_loopback(self.host),
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            holders = [
                f"{s['metadata'].get('namespace')}/{s['metadata'].get('name')}"
                for s in self.runtime.store.list("Service")
                if any(p.get("port") == self.port for p in (s.get("spec") or {}).get("ports") or [])
            ]
            await self.stop()
            if holders:
                # Stored before the API's port was refused to Services; the running proxy holds it.
                raise ServerError(
                    f"cannot listen on {self.host}:{self.port}: {exc.strerror}; Service "
                    f"{', '.join(holders)} holds this port on the proxy: start the server once on "
                    "another --listen port and change or delete that Service"
                ) from exc
            raise ServerError(
                f"cannot listen on {self.host}:{self.port}: {exc.strerror}; "
                "is another server running? pick another port with --listen"
            ) from exc
        (self.state_dir / "server.pid").write_text(f"{os.getpid()}\n{self.host}:{self.port}\n")
        log.info("pyrollouts server listening on http://%s:%d", self.host, self.port)
        if self.token is None:
            log.info(
                "no token: only this user (uid %d) and root are answered, where Linux tells who "
                "connects; to share the server or listen beyond loopback use --token-file FILE "
                "(docs/security.md)",
                os.geteuid(),
            )
        self.report_refused()
        await self.runtime.start()
        await self.proxy.ensure_running()
        self._tasks = [
            asyncio.create_task(self.controller.run(), name="rollout-controller"),
            asyncio.create_task(self.analysis.run(), name="analysisrun-controller"),
            asyncio.create_task(self.service_proxy.run(), name="service-proxy"),
            asyncio.create_task(self.proxy.watch(), name="proxy-supervisor"),
            asyncio.create_task(self.traffic.run(), name="traffic-history"),
        ]

    def report_refused(self) -> None:
        """Say which stored objects this server will not act on (they reached the store before
        today's checks, or straight into it): a warning in the log and a Warning Event on each."""
        from ..runtimes.local.supervisor import record_event

        for obj, message in self.runtime.audit():
            log.warning("%s", message)
            record_event(
                self.runtime.store, obj, "Warning", "RefusedByLocalRuntime", message, "pyrollouts-server"
            )

    def _extra_routes(self, clock: ControllerClock) -> Any:
        """The shutdown route, and the dashboard with Argo's /api/v1 (web/)."""
        from ..service.info import rollout_info
        from ..web import dashboard_context, dashboard_routes

        dashboard = dashboard_routes(
            dashboard_context(
                self.client_cluster, clock=clock, info=rollout_info, proxy=self.proxy, token=self.token
            )
        )

        def install(app: web.Application) -> None:
            app.add_routes([web.post("/api/shutdown", self._shutdown)])
            dashboard(app)

        return install

    def admission(self, objects: list[dict[str, Any]]) -> list[str]:
        """Refusals specific to one machine: pod features it cannot do, replica counts above
        --max-replicas, Service ports that clash (with the API's port, a replica's, another
        Service's)."""
        return list(self.runtime.admission(objects))

    async def _shutdown(self, request: web.Request) -> web.Response:
        """POST /api/shutdown {"all": true}: stop the server; with all, also the pods and proxy."""
        body: dict[str, Any] = {}
        with contextlib.suppress(Exception):
            body = await request.json()
        self.stop_everything = bool(body.get("all"))
        asyncio.get_running_loop().call_later(0.05, self.stopped.set)
        return web.json_response({"stopping": True, "all": self.stop_everything})

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
        runtime = getattr(self, "runtime", None)
        if runtime is not None:
            await runtime.stop(terminate_pods=self.stop_everything)
        proxy = getattr(self, "proxy", None)
        if proxy is not None and self.stop_everything:
            proxy.stop()  # synchronous (SIGTERM, then SIGKILL): awaiting its None was a TypeError
        if proxy is not None:
            await proxy.aclose()  # the control-channel client session; the proxy itself keeps running
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / "server.pid").unlink()
        if self._umask is not None:
            os.umask(self._umask)
            self._umask = None


def default_state_dir() -> Path:
    from platformdirs import user_state_dir

    return Path(user_state_dir("pyrollouts"))


def serve(state_dir: Path | None, build: Callable[[Path], LocalServer]) -> None:
    """Run the local server ``build`` makes over the state directory (``state_dir``, or the user's
    default) until SIGTERM/SIGINT (or POST /api/shutdown). ``build`` runs once logging is set up,
    inside the event loop."""
    state = Path(state_dir) if state_dir else default_state_dir()
    os.umask(PRIVATE_UMASK)  # before server.log exists
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    logging.basicConfig(
        level=os.environ.get("PYROLLOUTS_LOGLEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[logging.FileHandler(state / "server.log"), logging.StreamHandler(sys.stderr)],
    )

    async def main() -> None:
        server = build(state)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, server.stopped.set)
        await server.start()
        await server.stopped.wait()
        await server.stop()

    try:
        import uvloop
    except ImportError:  # uvloop is optional on platforms without it
        asyncio.run(main())
    else:
        uvloop.run(main())
