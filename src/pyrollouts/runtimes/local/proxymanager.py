"""Starting, adopting, feeding and supervising the proxy process; following Services and Pods.

The proxy runs in its own session (``start_new_session=True``) so it outlives the server: traffic
keeps flowing while the server is down. A restarted server finds the live proxy through
<state-dir>/proxy.pid (pid plus kernel start time, so a reused pid is not mistaken for it) and the
control socket, checks that /healthz answers with that pid, and adopts it instead of starting a
second one (the proxy's own lock on proxy.lock would refuse a second one anyway).

While ``watch()`` supervises, a standby proxy process waits beside the serving one (see
proxy/__main__.py): when the serving proxy dies, the standby takes over within milliseconds, and
the supervisor adopts it, pushes the table again and starts a new standby. Without a standby (it
failed to start, or it just took over) the supervisor starts a new proxy itself; a pidfd tells it
of the death at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from ...model.cluster import Cluster, WatchEvent
from .endpoints import build_table
from .proxy.server import LOG_FILE, PID_FILE, SOCKET_FILE, STANDBY_PID_FILE, process_start_time

log = logging.getLogger(__name__)


class ProxyError(RuntimeError):
    """The proxy could not be started, reached, or refused a table (the message says which)."""


class ProxyManager:
    """Owns the proxy process of one state directory."""

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        bind: str = "127.0.0.1",
        *,
        start_timeout: float = 15.0,
        request_timeout: float = 10.0,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.bind = bind
        self.start_timeout = start_timeout
        self.request_timeout = request_timeout
        self.socket_path = self.state_dir / SOCKET_FILE
        self.pid_path = self.state_dir / PID_FILE
        self.log_path = self.state_dir / LOG_FILE
        self.pid: int | None = None
        self._start_time: int | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self._desired: dict[str, Any] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        #: How many times watch() restarted a dead or hung proxy.
        self.restarts = 0
        #: The answer to the last successful push (its "failed" lists ports that could not be bound).
        self.last_result: dict[str, Any] | None = None
        # watch(): a pidfd of the proxy process, readable once it exits (so its death is seen at
        # once, not at the next poll), and the pid it is for.
        self._pidfd: int | None = None
        self._pidfd_pid: int | None = None
        self._gone: asyncio.Event | None = None
        #: The standby proxy process watch() keeps beside the serving one (None: none yet).
        self._standby: subprocess.Popen[bytes] | None = None
        self._standby_failures = 0
        self._standby_next_try = 0.0

    # -- control channel ---------------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=str(self.socket_path)),
                timeout=aiohttp.ClientTimeout(total=self.request_timeout),
            )
            self._session_loop = loop
        return self._session

    async def _call(self, method: str, path: str, body: Any = None) -> aiohttp.ClientResponse:
        session = self._http()
        resp = await session.request(method, f"http://proxy{path}", json=body)
        await resp.read()
        return resp

    async def health(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The proxy's /healthz answer, or None if nothing answers on the control socket."""
        if not self.socket_path.exists():
            return None
        try:
            async with asyncio.timeout(timeout or self.request_timeout):
                resp = await self._call("GET", "/healthz")
                if resp.status != 200:
                    return None
                data: dict[str, Any] = await resp.json()
                return data
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
            return None

    # -- process lifecycle -------------------------------------------------------------------------

    def _read_pid_file(self) -> tuple[int, int | None] | None:
        try:
            data = json.loads(self.pid_path.read_text())
            return int(data["pid"]), data.get("startTime")
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def alive(self) -> bool:
        """Whether the proxy process this manager knows about still runs (reaps it if it was ours)."""
        if self.pid is None:
            return False
        if self._child is not None and self._child.pid == self.pid:
            return self._child.poll() is None
        start = process_start_time(self.pid)
        return start is not None and (self._start_time is None or start == self._start_time)

    async def ensure_running(self) -> int:
        """Adopt the live proxy of this state directory or start one; returns its pid once it
        answers /healthz. Raises ProxyError (with the tail of proxy.log) if it does not come up."""
        if self.pid is not None and self.alive():
            h = await self.health(timeout=2.0)
            if h and h.get("pid") == self.pid:
                return self.pid
        found = self._read_pid_file()
        if found is not None:
            pid, start = found
            if process_start_time(pid) is not None and (start is None or process_start_time(pid) == start):
                h = await self.health(timeout=2.0)
                if h and h.get("pid") == pid:
                    self.pid, self._start_time = pid, start
                    log.info("adopted the running proxy (pid %s)", pid)
                    return pid
        return await self._start()

    def _spawn(self, *, standby: bool = False) -> subprocess.Popen[bytes]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        logf = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        args = [sys.executable, "-m", "pyrollouts.runtimes.local.proxy", "--state-dir", str(self.state_dir),
                "--bind", self.bind, *(["--standby"] if standby else [])]  # fmt: skip
        try:
            return subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        finally:
            logf.close()

    async def _start(self) -> int:
        self._child = self._spawn()
        pid = self._child.pid
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            code = self._child.poll()
            if code is not None:
                # Exit 3: another proxy holds the lock (e.g. it started between our check and now).
                if code == 3:
                    h = await self.health(timeout=2.0)
                    found = self._read_pid_file()
                    if h and found and h.get("pid") == found[0]:
                        self._child = None
                        self.pid, self._start_time = found
                        return found[0]
                raise ProxyError(f"the proxy exited with status {code} at start; {self._log_tail()}")
            h = await self.health(timeout=1.0)
            if h and h.get("pid") == pid:
                self.pid, self._start_time = pid, h.get("startTime")
                log.info("started the proxy (pid %s)", pid)
                return pid
            await asyncio.sleep(0.02)
        self._child.kill()
        raise ProxyError(f"the proxy did not answer within {self.start_timeout}s; {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()[-5:]
        except OSError:
            return f"no log at {self.log_path}"
        return f"last lines of {self.log_path}: " + " | ".join(lines)

    def _ensure_standby(self) -> None:
        """Start a standby proxy if none waits (backing off when standbys keep failing)."""
        sb = self._standby
        if sb is not None:
            code = sb.poll()
            if code is None:
                return
            self._standby = None
            self._standby_failures += 1
            self._standby_next_try = time.monotonic() + min(60.0, 0.5 * 2**self._standby_failures)
            log.warning("the standby proxy exited with status %s; %s", code, self._log_tail())
        if time.monotonic() < self._standby_next_try:
            return
        self._standby = self._spawn(standby=True)

    async def _take_over(self) -> bool:
        """After the serving proxy died: wait for our standby to answer /healthz as the serving
        proxy and adopt it (True), or False if there is no standby or it did not come up."""
        sb, self._standby = self._standby, None
        if sb is None or sb.poll() is not None:
            return False
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline and sb.poll() is None:
            h = await self.health(timeout=1.0)
            if h and h.get("pid") == sb.pid:
                self._child = sb
                self.pid, self._start_time = sb.pid, h.get("startTime")
                self._standby_failures = 0
                return True
            await asyncio.sleep(0.005)
        log.error("the standby proxy (pid %s) did not take over; %s", sb.pid, self._log_tail())
        _end(sb)
        return False

    def _stop_standby(self, *, any_standby: bool = False) -> None:
        """Stop our standby (before the serving proxy is stopped on purpose, or it would take
        over); with ``any_standby``, also the one proxy-standby.pid names (another supervisor's)."""
        sb, self._standby = self._standby, None
        if sb is not None:
            _end(sb)
        if not any_standby:
            return
        try:
            data = json.loads((self.state_dir / STANDBY_PID_FILE).read_text())
            pid, start = int(data["pid"]), data.get("startTime")
        except (OSError, ValueError, KeyError, TypeError):
            return
        if process_start_time(pid) is None or (start is not None and process_start_time(pid) != start):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while process_start_time(pid) == start and time.monotonic() < deadline:
            time.sleep(0.01)

    def _watch_exit(self) -> None:
        """Have the loop wake watch() the moment the current proxy process exits: a pidfd (Linux
        5.3+) becomes readable then. Without pidfds, watch() sees a death at its next poll."""
        if self._pidfd_pid == self.pid:
            return
        self._unwatch_exit()
        if self.pid is None or not hasattr(os, "pidfd_open"):
            return
        try:
            fd = os.pidfd_open(self.pid)
        except OSError:
            return  # already gone (the next poll sees it), or pidfds not supported
        if not self.alive():  # the pid was reused between our check and the open: not ours
            os.close(fd)
            return
        loop = asyncio.get_running_loop()
        gone = self._gone = asyncio.Event()

        def exited() -> None:
            loop.remove_reader(fd)
            gone.set()

        loop.add_reader(fd, exited)
        self._pidfd, self._pidfd_pid = fd, self.pid

    def _unwatch_exit(self) -> None:
        if self._pidfd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
        self._pidfd = self._pidfd_pid = None

    async def watch(self, interval: float = 0.5, health_every: int = 4, unhealthy_after: int = 3) -> None:
        """Supervise forever: restart the proxy (it reloads its persisted table, then gets the last
        pushed one again) when it died, or when it stopped answering /healthz ``unhealthy_after``
        times in a row. A death is seen at once (pidfd); the poll every ``interval`` seconds is the
        fallback, and paces the health checks and the retries of a failed restart."""
        tick = 0
        failures = 0
        try:
            while True:
                if self.alive():
                    self._ensure_standby()
                self._watch_exit()
                gone = self._gone
                if gone is not None and self._pidfd_pid == self.pid and not gone.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(gone.wait(), interval)
                else:
                    await asyncio.sleep(interval)
                tick += 1
                restart = not self.alive()
                if not restart and tick % health_every == 0:
                    h = await self.health(timeout=2.0)
                    failures = 0 if h and h.get("pid") == self.pid else failures + 1
                    if failures >= unhealthy_after:
                        log.error("the proxy (pid %s) stopped answering; killing it", self.pid)
                        self._kill(signal.SIGKILL)
                        restart = True
                if not restart:
                    continue
                failures = 0
                log.error("the proxy (pid %s) is gone; restarting it", self.pid)
                try:
                    if await self._take_over():
                        log.info("the standby proxy (pid %s) took over", self.pid)
                    else:
                        await self._start()
                    self.restarts += 1
                    if self._desired is not None:
                        await self.push(self._desired)
                except (ProxyError, OSError) as exc:
                    log.error("restarting the proxy failed: %s", exc)
        finally:
            self._unwatch_exit()
            self._stop_standby()

    def _kill(self, sig: int) -> None:
        if self.pid is not None and self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the proxy of this state directory (ours or adopted): SIGTERM, then SIGKILL."""
        if self.pid is None:
            found = self._read_pid_file()
            if (
                found is not None
                and process_start_time(found[0]) is not None
                and (found[1] is None or process_start_time(found[0]) == found[1])
            ):
                self.pid, self._start_time = found
        self._stop_standby(any_standby=True)
        if self.pid is None:
            return
        self._kill(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.alive():
            self._kill(signal.SIGKILL)
            while self.alive() and time.monotonic() < deadline + 2:
                time.sleep(0.02)
        self.pid = None
        self._child = None

    async def aclose(self) -> None:
        """Close the control-channel client (the proxy keeps running)."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    # -- table, stats --------------------------------------------------------------------------------

    async def push(self, table: dict[str, Any]) -> dict[str, Any]:
        """Send a whole table; returns {"version", "listening", "failed"}. Raises ProxyError if the
        proxy is unreachable or refuses the table (the message names the bad field)."""
        self._desired = table
        try:
            resp = await self._call("PUT", "/table", table)
            data: dict[str, Any] = await resp.json()
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            raise ProxyError(f"cannot reach the proxy at {self.socket_path}: {exc}") from exc
        if resp.status != 200:
            raise ProxyError(f"the proxy refused the table: {data.get('error', data)}")
        self.last_result = data
        return data

    async def table(self) -> dict[str, Any]:
        """The table the proxy serves now."""
        resp = await self._call("GET", "/table")
        data: dict[str, Any] = await resp.json()
        return data

    async def stats(self) -> dict[str, Any]:
        """The proxy's /stats: per-revision request counts by status class, latency quantiles, routes."""
        resp = await self._call("GET", "/stats")
        if resp.status != 200:
            raise ProxyError(f"the proxy answered /stats with {resp.status}: {await resp.text()}")
        data: dict[str, Any] = await resp.json()
        return data

    async def counters(self) -> dict[str, Any]:
        """The proxy's /counters: raw per-revision totals with its pid and uptime. A proxy that
        predates that route (adopted after an upgrade) is read through /stats instead, which
        carries the same totals (``traffichistory`` reads both)."""
        resp = await self._call("GET", "/counters")
        if resp.status == 404:
            return await self.stats()
        if resp.status != 200:
            raise ProxyError(f"the proxy answered /counters with {resp.status}: {await resp.text()}")
        data: dict[str, Any] = await resp.json()
        return data

    async def metrics_text(self) -> str:
        """The proxy's /metrics in Prometheus text format."""
        resp = await self._call("GET", "/metrics")
        if resp.status != 200:
            raise ProxyError(f"the proxy answered /metrics with {resp.status}: {await resp.text()}")
        return await resp.text()


def _end(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a child process and reap it (SIGKILL if SIGTERM is not enough within 2 s)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class ServiceProxyController:
    """Follows Services and Pods in a Cluster and pushes the table to the proxy on every change.

    It lists Services and Pods once when its watch starts (again only when the watch has to be
    started again), then keeps them up to date from the watch's events: a selector change reaches
    the proxy after one table build and one push, with no relist and no debounce (issue 17; the
    relist of every Service and Pod after a 5 ms debounce was most of a switch's latency). Events
    that arrive while a push is in flight are folded into the next push, so a burst still ends in one
    push of the latest state. An identical table is not pushed again.
    """

    def __init__(
        self,
        cluster: Cluster,
        manager: ProxyManager,
        *,
        bind: str | None = None,
        retry_after: float = 0.5,
    ) -> None:
        self.cluster = cluster
        self.manager = manager
        self.bind = bind or manager.bind
        self.retry_after = retry_after
        self._changed = asyncio.Event()
        self._pushed_services: Any = None
        self._version = 0
        #: Services and Pods by (namespace, name), as the watch last showed them; None until listed.
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] | None = None
        #: The last push's answer (see ProxyManager.push).
        self.last_result: dict[str, Any] | None = None
        #: Problems with Services' traffic splits already logged (each is logged once).
        self._warned: set[str] = set()

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            log.warning("%s", message)

    async def sync_once(self) -> dict[str, Any] | None:
        """Build the table from the objects known now and push it; returns the push result, or None
        if the table was unchanged (or nothing is listed yet)."""
        if self._objects is None:
            return None
        services, pods = list(self._objects["Service"].values()), list(self._objects["Pod"].values())
        self._version = max(self._version + 1, int(time.time() * 1000))
        table = build_table(services, pods, self._version, self.bind, self._warn_once)
        if table["services"] == self._pushed_services:
            return None
        result = await self.manager.push(table)
        self._pushed_services = table["services"]
        self.last_result = result
        if "splits" not in result and any("split" in svc for svc in table["services"]):
            self._warn_once(
                f"the running proxy (pid {self.manager.pid}) predates canary traffic splits and sends "
                "every request to the stable Service; stop it (`rollouts shutdown --all`) and start the "
                "server again to run the current one"
            )
        return result

    async def _relist(self) -> None:
        objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        for kind in ("Service", "Pod"):
            objects[kind] = {_key(o): o for o in await self.cluster.list(kind)}
        self._objects = objects

    def _apply(self, event: WatchEvent) -> None:
        """One watch event into the known objects. The watch starts before the list, so an event
        may be older than what the list gave: an older resourceVersion is not applied."""
        assert self._objects is not None
        known = self._objects.setdefault(event.kind, {})
        key = _key(event.obj)
        if event.type == "DELETED":
            known.pop(key, None)
        elif key not in known or _rv(known[key]) <= _rv(event.obj):
            known[key] = event.obj

    async def _follow(self) -> None:
        while True:
            try:
                events = self.cluster.watch(["Service", "Pod"])  # subscribed from this call on
                await self._relist()
                self._changed.set()
                async for event in events:
                    self._apply(event)
                    self._changed.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("watching Services and Pods failed (%s); listing and watching again", exc)
            await asyncio.sleep(self.retry_after)

    async def run(self) -> None:
        """Run forever (cancel to stop)."""
        follower = asyncio.create_task(self._follow())
        try:
            while True:
                await self._changed.wait()
                self._changed.clear()
                try:
                    await self.sync_once()
                except Exception as exc:
                    log.warning("pushing the routing table failed (%s); retrying", exc)
                    self._pushed_services = None
                    await asyncio.sleep(self.retry_after)
                    self._changed.set()
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "default", meta.get("name") or "")


def _rv(obj: dict[str, Any]) -> int:
    """An object's resourceVersion as a number (the local store's are one global counter)."""
    rv = str((obj.get("metadata") or {}).get("resourceVersion") or "0")
    return int(rv) if rv.isdigit() else 0
