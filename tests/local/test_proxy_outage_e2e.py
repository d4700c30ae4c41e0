"""`kill -9` of the proxy of a real `rollouts server` (a subprocess, as a user runs it) under
traffic on a production Service port: the server's supervisor brings the proxy back (its standby
takes over), traffic flows again, and no process is duplicated or left behind. The outage is
printed, not asserted (the machine is shared and loaded)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator

import pytest
from e2e_support import Servers, check_processes, seed_docs, servers_fixture
from test_proxy import proxies_for
from test_proxy_outage import Prober

from harness.serverharness import free_port, http_body
from pyrollouts.runtimes.local.proxy.server import PID_FILE, STANDBY_PID_FILE

pytestmark = pytest.mark.timeout(300)
NS = "e2e-proxy-kill"


@pytest.fixture
def servers() -> Iterator[Servers]:
    yield from servers_fixture()


def serving_pid(state_dir: object) -> int:
    return int(json.loads((state_dir / PID_FILE).read_text())["pid"])  # type: ignore[operator]


async def test_kill9_of_the_servers_proxy_under_traffic(servers: Servers) -> None:
    srv = servers.start()
    state_dir = servers.state_dir
    prod, preview = free_port(), free_port()
    docs = seed_docs(NS, prod, preview, replicas=2, welcome="V2")
    assert srv.apply(docs, state_dir.parent / "m.yaml").code == 0
    srv.wait_for("revision 1 healthy", lambda: srv.info(NS)["status"] == "Healthy", timeout=60)
    assert http_body(prod) == "V2"
    prober = Prober(prod, expect=b"V2")
    prober.thread.start()
    outages = []
    try:
        for _ in range(3):
            # The server's supervisor keeps a standby proxy beside the serving one.
            srv.wait_for(
                "a standby proxy",
                lambda: (
                    len(proxies_for(state_dir, standby=True)) == 1 and (state_dir / STANDBY_PID_FILE).exists()
                ),
                timeout=60,
            )
            await asyncio.sleep(0.5)
            pid = serving_pid(state_dir)
            t_kill = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            srv.wait_for("a new proxy", lambda: serving_pid(state_dir) != pid, timeout=60)  # noqa: B023
            srv.wait_for(
                "traffic again",
                lambda: any(ok and t > t_kill for t, ok in prober.results[-20:]),  # noqa: B023
                timeout=60,
            )
            await asyncio.sleep(0.3)
            outage, failed, total = prober.outage_after(t_kill)
            outages.append(outage)
            print(
                f"\nkill -9 of the server's proxy: outage {outage * 1000:.0f} ms, {failed} of {total} failed"
            )
    finally:
        prober.stop.set()
        await asyncio.to_thread(prober.thread.join, 10)
    print(f"\nserver's proxy kill -9 outages: {', '.join(f'{o * 1000:.0f} ms' for o in outages)}")
    assert http_body(prod) == "V2"
    srv.wait_for("one serving proxy", lambda: proxies_for(state_dir) == [serving_pid(state_dir)], timeout=60)
    check_processes(state_dir, srv)
