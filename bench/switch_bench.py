"""The local runtime's switch, end to end: from a Service selector write in the store to the first
response from the new revision's backend (issue 17).

    .venv/bin/python bench/switch_bench.py [--switches 50]

The real parts: the SQLite store, its watch, the Service proxy controller, the proxy process and two
backends on 127.0.0.1; a client polls the Service's port on one keep-alive connection. What the
bench does not include is the HTTP API call that leads to the write (promote -> engine -> Service
patch). To compare two versions, run it with ``PYTHONPATH`` pointing at each tree's ``src``.
Prints p50, p99 and max in milliseconds, and one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from pyrollouts.runtimes.local.cluster import LocalCluster
from pyrollouts.runtimes.local.endpoints import PORTS_ANNOTATION
from pyrollouts.runtimes.local.proxymanager import ProxyManager, ServiceProxyController
from pyrollouts.runtimes.local.store import Store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def backend(name: str) -> tuple[web.AppRunner, int]:
    async def index(request: web.Request) -> web.Response:
        return web.Response(text=name)

    app = web.Application()
    app.router.add_get("/", index)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


def pod(name: str, rev: str, host_port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "bench",
                     "labels": {"app": "b", "rollouts-pod-template-hash": rev},
                     "annotations": {PORTS_ANNOTATION: json.dumps({"http": host_port})}},
        "spec": {"containers": [{"name": "app", "command": ["true"],
                                 "ports": [{"name": "http", "containerPort": 1}]}]},
        "status": {"podIP": "127.0.0.1", "phase": "Running",
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }  # fmt: skip


async def body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(b"GET / HTTP/1.1\r\nHost: b\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = next(
        int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")
    )
    return await asyncio.wait_for(reader.readexactly(length), 10)


async def run(switches: int) -> list[float]:
    work = Path(tempfile.mkdtemp(prefix="swb", dir="/tmp"))
    store = Store(work / "state.db")
    local = LocalCluster(store)
    manager = ProxyManager(work / "proxy")
    await manager.ensure_running()
    (ra, pa), (rb, pb) = await backend("a"), await backend("b")
    port = free_port()
    store.create("Pod", pod("b-a", "a", pa), keep_status=True)
    store.create("Pod", pod("b-b", "b", pb), keep_status=True)
    store.create("Service", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "b", "namespace": "bench"},
        "spec": {"selector": {"app": "b", "rollouts-pod-template-hash": "a"},
                 "ports": [{"name": "http", "port": port, "targetPort": "http"}]},
    })  # fmt: skip
    controller = ServiceProxyController(local, manager)
    task = asyncio.create_task(controller.run())
    took: list[float] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                if await body(reader, writer) == b"a":
                    break
            except (OSError, asyncio.IncompleteReadError, StopIteration):
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the proxy never routed the Service")
            await asyncio.sleep(0.05)
        for i in range(switches):
            rev = b"b" if i % 2 == 0 else b"a"
            await local.patch(
                "Service", "bench", "b", {"spec": {"selector": {"rollouts-pod-template-hash": rev.decode()}}}
            )
            t0 = time.perf_counter()
            while await body(reader, writer) != rev:
                if time.perf_counter() - t0 > 30:
                    raise SystemExit(f"switch {i}: no response from {rev!r} within 30 s")
            took.append(time.perf_counter() - t0)
        writer.close()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await manager.aclose()
        manager.stop()
        await ra.cleanup()
        await rb.cleanup()
        store.close()
        shutil.rmtree(work, ignore_errors=True)
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--switches", type=int, default=50)
    args = ap.parse_args()
    took = sorted(asyncio.run(run(args.switches)))
    q = {
        "p50_ms": statistics.median(took) * 1000,
        "p99_ms": took[min(len(took) - 1, int(0.99 * len(took)))] * 1000,
        "max_ms": took[-1] * 1000,
        "n": len(took),
    }
    print(f"selector write -> first response from the new backend: p50 {q['p50_ms']:.1f} ms, "
          f"p99 {q['p99_ms']:.1f} ms, max {q['max_ms']:.1f} ms over {q['n']} switches")  # fmt: skip
    print(json.dumps(q))
    return 0


if __name__ == "__main__":
    sys.exit(main())
