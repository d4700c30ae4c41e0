"""`kill -9` of the proxy process under traffic (issue 11, item 6): the supervisor the server runs
(ProxyManager.watch with its defaults) brings a new proxy up, and it serves the last table again.
With the standby proxy that watch() keeps, the standby takes over as soon as the kernel releases
the dead proxy's lock; the supervisor adopts it and starts the next standby.

Requests fail between the kill and the moment the new proxy listens: that gap is the outage, and
each test prints it. It asserts recovery, not a time (the machine is shared and loaded).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import signal
import statistics
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_proxy import Backend, free_port, proxies_for, table

from pyrollouts.runtimes.local.proxy.server import STANDBY_PID_FILE
from pyrollouts.runtimes.local.proxymanager import ProxyManager

pytestmark = pytest.mark.timeout(300)


class Prober:
    """A thread sending GET / on a new connection every few milliseconds, recording (time, ok)."""

    def __init__(self, port: int, expect: bytes = b"A GET") -> None:
        self.port = port
        self.expect = expect
        self.results: list[tuple[float, bool]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 240  # bounded whatever happens
        while not self.stop.is_set() and time.monotonic() < deadline:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                conn.request("GET", "/", headers={"Connection": "close"})
                resp = conn.getresponse()
                ok = resp.status == 200 and resp.read().startswith(self.expect)
            except (OSError, http.client.HTTPException):
                ok = False
            finally:
                conn.close()
            self.results.append((time.monotonic(), ok))
            time.sleep(0.003)

    def outage_after(self, t_kill: float) -> tuple[float, int, int]:
        """(seconds from the kill to the first success after the last failure following it,
        failed requests, requests) over the results after ``t_kill``."""
        after = [(t, ok) for t, ok in self.results if t >= t_kill]
        failed = [t for t, ok in after if not ok]
        if not failed:
            return 0.0, 0, len(after)
        back = next(t for t, ok in after if ok and t > failed[-1])
        return back - t_kill, len(failed), len(after)


@pytest.fixture
async def supervised(state_dir: Path) -> AsyncIterator[tuple[ProxyManager, int]]:
    """A proxy routing a port to a Backend, supervised as the server supervises it."""
    backend = await Backend("A").start()
    m = ProxyManager(state_dir)
    await m.ensure_running()
    port = free_port()
    await m.push(table(1, port, [("a-1", "aaa", backend.port, True)]))
    supervisor = asyncio.create_task(m.watch())
    yield m, port
    supervisor.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await supervisor
    assert proxies_for(state_dir, standby=True) == [], "the standby outlived its supervisor"
    await m.aclose()
    m.stop()
    await backend.stop()


async def standby_ready(manager: ProxyManager) -> None:
    """Wait (generously) until the supervisor's standby proxy waits for the lock: it wrote
    proxy-standby.pid, which it does once everything is loaded."""
    deadline = time.monotonic() + 60
    while True:
        standbys = proxies_for(manager.state_dir, standby=True)
        pid_file = manager.state_dir / STANDBY_PID_FILE
        if len(standbys) == 1 and pid_file.exists() and str(standbys[0]) in pid_file.read_text():
            return
        assert time.monotonic() < deadline, f"no standby proxy after 60 s: {standbys}"
        await asyncio.sleep(0.02)


async def kill_and_measure(manager: ProxyManager, port: int, kills: int) -> list[float]:
    prober = Prober(port)
    prober.thread.start()
    outages: list[float] = []
    try:
        for _ in range(kills):
            await asyncio.sleep(0.5)
            await standby_ready(manager)
            pid = manager.pid
            assert pid is not None
            restarts = manager.restarts
            t_kill = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 60
            while manager.restarts == restarts or manager.pid == pid:
                assert time.monotonic() < deadline, "the supervisor did not restart the proxy in 60 s"
                await asyncio.sleep(0.02)
            # Served again: wait for the prober to see successes after the restart.
            while not any(ok and t > t_kill for t, ok in prober.results[-20:]):
                assert time.monotonic() < deadline, "the restarted proxy does not serve"
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)
            outage, failed, total = prober.outage_after(t_kill)
            outages.append(outage)
            print(
                f"\nkill -9 of the proxy: outage {outage * 1000:.0f} ms, {failed} of {total} requests failed"
            )
    finally:
        prober.stop.set()
        await asyncio.to_thread(prober.thread.join, 10)
    # One serving proxy, one standby: nothing duplicated, nothing left behind.
    await standby_ready(manager)
    assert proxies_for(manager.state_dir) == [manager.pid]
    return outages


async def test_proxy_kill9_under_traffic_recovers(supervised: tuple[ProxyManager, int]) -> None:
    manager, port = supervised
    outages = await kill_and_measure(manager, port, 3)
    print(f"\nproxy kill -9 outages: {', '.join(f'{o * 1000:.0f} ms' for o in outages)}")
    assert manager.restarts == 3


@pytest.mark.soak
async def test_soak_proxy_kill9_many_times(supervised: tuple[ProxyManager, int]) -> None:
    manager, port = supervised
    outages = await kill_and_measure(manager, port, 20)
    print(
        f"\nproxy kill -9 x20: outage median {statistics.median(outages) * 1000:.0f} ms, "
        f"max {max(outages) * 1000:.0f} ms"
    )
    assert manager.restarts == 20
