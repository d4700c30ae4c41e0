"""The proxy process's core: applies a table (snapshot swap, listeners opened and closed), persists
it, and owns the files in the state directory (proxy.pid, proxy-table.json, proxy.lock)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from .l4 import TcpProxyProtocol
from .l7 import HttpProxyProtocol
from .limits import Limits
from .state import ProxyState
from .table import EMPTY_TABLE, Route, TableError, Target, build_routing, validate_table

log = logging.getLogger(__name__)

PID_FILE = "proxy.pid"
SOCKET_FILE = "proxy.sock"
TABLE_FILE = "proxy-table.json"
LOCK_FILE = "proxy.lock"
STANDBY_PID_FILE = "proxy-standby.pid"
STANDBY_LOCK_FILE = "proxy-standby.lock"
LOG_FILE = "proxy.log"


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of a process (clock ticks since boot), which with the pid identifies
    it across pid reuse; None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) may contain spaces, so split after its closing paren.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def _all_targets(route: Route) -> tuple[Target, ...]:
    """A route's endpoints, with its canary side's."""
    return route.targets if route.split is None else route.targets + route.split.canary.targets


def _factory(cls: Any, state: ProxyState, key: tuple[str, int]) -> Any:
    return lambda: cls(state, key)


class ProxyServer:
    """Listeners per table port, fed by ``apply``."""

    def __init__(self, state_dir: Path, default_bind: str, limits: Limits | None = None) -> None:
        self.state_dir = state_dir
        self.default_bind = default_bind
        self.state = ProxyState(limits)
        self.table: dict[str, Any] = EMPTY_TABLE
        # key -> (server, is_tcp)
        self.listeners: dict[tuple[str, int], tuple[asyncio.AbstractServer, bool]] = {}
        self.failed: list[dict[str, Any]] = []
        self.started = time.time()
        self._lock = asyncio.Lock()
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Serve the persisted table, if any, at once (a restarted proxy needs no server)."""
        path = self.state_dir / TABLE_FILE
        if path.exists():
            try:
                table = json.loads(path.read_text())
                await self.apply(table, persist=False)
                log.info("serving persisted table version %s from %s", table.get("version"), path)
            except (OSError, ValueError, TableError) as exc:
                log.error("ignoring unreadable %s: %s", path, exc)
        self._sweeper = asyncio.create_task(self._sweep())

    async def _sweep(self) -> None:
        # The client timeouts (idle, head deadline, upstream response) are checked here rather than
        # with a timer per request, which would cost on every request.
        loop = asyncio.get_running_loop()
        interval = self.state.limits.sweep_interval()
        pool_every = max(1, round(5.0 / interval))
        tick = 0
        while True:
            await asyncio.sleep(interval)
            tick += 1
            if tick % pool_every == 0:
                self.state.pool.sweep()
            now = loop.time()
            for client in list(self.state.clients):
                client.sweep(now)

    async def apply(self, table: Any, *, persist: bool = True) -> dict[str, Any]:
        """Validate and switch to a table; returns {"version", "listening", "failed"}. Raises
        TableError (nothing changed) when the table is malformed."""
        validate_table(table)
        async with self._lock:
            t0 = time.perf_counter()
            routing = build_routing(table, self.default_bind)
            # The switch itself: one assignment, so every request sees one whole snapshot.
            self.state.routing = routing
            switched = time.perf_counter() - t0
            self.table = table
            self.state.pool.retain_only(
                {(t.host, t.port) for r in routing.routes.values() for t in _all_targets(r)}
            )
            failed = [dict(c) for c in routing.conflicts]
            wanted = {key: route.tcp for key, route in routing.routes.items()}
            for key, (server, tcp) in list(self.listeners.items()):
                if key not in wanted or wanted[key] != tcp:
                    # Established connections keep going (they drain); only accepting stops.
                    server.close()
                    del self.listeners[key]
            for key, tcp in wanted.items():
                if key in self.listeners:
                    continue
                route = routing.routes[key]
                factory = _factory(TcpProxyProtocol if tcp else HttpProxyProtocol, self.state, key)
                try:
                    server = await asyncio.get_running_loop().create_server(
                        factory, host=key[0], port=key[1], reuse_address=True, backlog=1024
                    )
                except OSError as exc:
                    failed.append(
                        {
                            "namespace": route.namespace,
                            "name": route.service,
                            "bind": key[0],
                            "port": key[1],
                            "error": f"cannot listen on {key[0]}:{key[1]}: {exc.strerror or exc}",
                        }
                    )
                    continue
                self.listeners[key] = (server, tcp)
            self.failed = failed
            if persist:
                self._persist(table)
        for f in failed:
            log.warning("service %s/%s: %s", f["namespace"], f["name"], f["error"])
        return {
            "version": routing.version,
            "listening": [{"bind": k[0], "port": k[1], "tcp": tcp} for k, (_, tcp) in self.listeners.items()],
            "failed": failed,
            # From the start of apply to the snapshot swap: how long the switch itself took.
            "switchSeconds": switched,
            # Listeners applying a canary split (a proxy older than splits does not answer this).
            "splits": sum(1 for r in routing.routes.values() if r.split is not None),
        }

    def _persist(self, table: dict[str, Any]) -> None:
        path = self.state_dir / TABLE_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(table))
        os.replace(tmp, path)

    def health(self) -> dict[str, Any]:
        """The /healthz payload."""
        return {
            "ok": True,
            "pid": os.getpid(),
            "startTime": process_start_time(os.getpid()),
            "version": self.state.routing.version,
            "listeners": len(self.listeners),
            "failed": self.failed,
        }

    def stats(self) -> dict[str, Any]:
        """The /stats payload: counters per revision plus what each service routes to now."""
        routes = {}
        for (bind, port), r in self.state.routing.routes.items():
            routes[f"{bind}:{port}"] = {
                "service": r.service_key,
                "port": port,
                "tcp": r.tcp,
                "ready": [{"pod": t.pod, "revision": t.revision, "hostPort": t.port} for t in r.targets],
            }
            if r.split is not None:
                routes[f"{bind}:{port}"]["split"] = {
                    "canaryService": r.split.canary_service,
                    "weight": r.split.weight,
                    "headerRoutes": [name for name, _ in r.split.header_routes],
                    "mirrors": [m.name for m in r.split.mirrors],
                    "canaryReady": [
                        {"pod": t.pod, "revision": t.revision, "hostPort": t.port}
                        for t in r.split.canary.targets
                    ],
                }
        return {
            "pid": os.getpid(),
            "uptimeSeconds": time.time() - self.started,
            "version": self.state.routing.version,
            "routes": routes,
            **self.state.metrics.as_json(),
        }

    def counters(self) -> dict[str, Any]:
        """The /counters payload: raw per-revision totals, and who counted them since when."""
        return {
            "pid": os.getpid(),
            "uptimeSeconds": time.time() - self.started,
            **self.state.metrics.counters_json(),
        }

    async def close(self, drain_seconds: float = 2.0) -> None:
        """Stop accepting, give open connections a moment to finish, close the pool."""
        for server, _ in self.listeners.values():
            server.close()
        self.listeners.clear()
        if self._sweeper:
            self._sweeper.cancel()
        deadline = time.monotonic() + drain_seconds
        while self.state.metrics.active_connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self.state.pool.close_all()
        with contextlib.suppress(Exception):
            await asyncio.sleep(0)
