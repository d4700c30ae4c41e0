"""ServiceProxyController over the real local store: selector and readiness changes reach the proxy."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from harness.support import free_port
from pyrollouts.runtimes.local.cluster import LocalCluster
from pyrollouts.runtimes.local.endpoints import PORTS_ANNOTATION
from pyrollouts.runtimes.local.proxymanager import ProxyManager, ServiceProxyController
from pyrollouts.runtimes.local.store import Store

pytestmark = pytest.mark.timeout(180)


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.text()


@pytest.fixture
async def manager() -> AsyncIterator[ProxyManager]:
    # A short state dir: the control socket path must fit in a unix socket address.
    d = Path(tempfile.mkdtemp(prefix="pxy", dir="/tmp"))
    m = ProxyManager(d)
    await m.ensure_running()
    yield m
    await m.aclose()
    m.stop()
    shutil.rmtree(d, ignore_errors=True)


async def backend(name: str) -> tuple[web.AppRunner, int]:
    async def index(request: web.Request) -> web.Response:
        return web.Response(text=f"{name}\n")

    app = web.Application()
    app.router.add_get("/", index)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


def pod(name: str, rev: str, host_port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "my-app",
                     "labels": {"app": "hello", "rollouts-pod-template-hash": rev},
                     "annotations": {PORTS_ANNOTATION: json.dumps({"8080": host_port, "http": host_port})}},
        "spec": {"containers": [{"name": "app", "command": ["true"],
                                 "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"podIP": "127.0.0.1", "phase": "Running",
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }  # fmt: skip


async def wait_for_body(url: str, want: str, timeout: float = 30.0) -> float:
    start = time.perf_counter()
    status, body = 0, ""
    while time.perf_counter() - start < timeout:
        try:
            status, body = await get(url)
        except aiohttp.ClientConnectionError as exc:  # the listener is not open yet
            status, body = 0, str(exc)
        if (status == 200 and body == want) or (want.startswith("503") and status == 503):
            return time.perf_counter() - start
        await asyncio.sleep(0.005)
    raise AssertionError(f"{url} never answered {want!r} (last: {status} {body!r})")


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[Store, LocalCluster]]:
    store = Store(tmp_path / "state.db")
    yield store, LocalCluster(store)
    store.close()


async def two_backends_and_a_service(store: Store) -> tuple[web.AppRunner, web.AppRunner, int]:
    """Backends A and B, a Pod for each (revisions aaa and bbb), and the Service my-app/hello-prod
    selecting aaa on a free port; returns (A's runner, B's runner, the Service's port)."""
    (ra, pa), (rb, pb) = await backend("A"), await backend("B")
    port = free_port()
    store.create("Pod", pod("hello-aaa-1", "aaa", pa), keep_status=True)
    store.create("Pod", pod("hello-bbb-1", "bbb", pb), keep_status=True)
    store.create(
        "Service",
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hello-prod", "namespace": "my-app"},
         "spec": {"selector": {"app": "hello", "rollouts-pod-template-hash": "aaa"},
                  "ports": [{"name": "http", "port": port, "targetPort": "http"}]}},
    )  # fmt: skip
    return ra, rb, port


async def test_controller_follows_selector_and_readiness(
    manager: ProxyManager,
    cluster: tuple[Store, LocalCluster],
) -> None:
    store, local = cluster
    ra, rb, port = await two_backends_and_a_service(store)
    controller = ServiceProxyController(local, manager)
    task = asyncio.create_task(controller.run())
    url = f"http://127.0.0.1:{port}/"
    try:
        await wait_for_body(url, "A\n")
        await local.patch(
            "Service", "my-app", "hello-prod", {"spec": {"selector": {"rollouts-pod-template-hash": "bbb"}}}
        )
        took = await wait_for_body(url, "B\n")
        print(f"\nselector patch -> traffic on B after {took * 1000:.1f} ms (store, controller, proxy)")
        await local.patch(
            "Pod", "my-app", "hello-bbb-1",
            {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}, subresource="status",
        )  # fmt: skip
        await wait_for_body(url, "503")
        status, body = await get(url)
        assert (status, body) == (503, "no ready pods for service my-app/hello-prod\n")
        assert controller.last_result is not None and controller.last_result["failed"] == []
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await ra.cleanup()
        await rb.cleanup()


class CountingCluster:
    """The local cluster, counting the list calls made through it."""

    def __init__(self, inner: LocalCluster) -> None:
        self.inner = inner
        self.lists: list[str] = []

    async def list(self, kind: str, namespace: str | None = None, **kw: Any) -> Any:
        self.lists.append(kind)
        return await self.inner.list(kind, namespace, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_switches_reach_the_proxy_without_a_relist(
    manager: ProxyManager,
    cluster: tuple[Store, LocalCluster],
) -> None:
    """Issue 17: the controller lists Services and Pods once, then follows the watch; ten selector
    switches are ten pushes and no list call."""
    store, local = cluster
    ra, rb, port = await two_backends_and_a_service(store)
    counting = CountingCluster(local)
    controller = ServiceProxyController(counting, manager)  # type: ignore[arg-type]
    task = asyncio.create_task(controller.run())
    url = f"http://127.0.0.1:{port}/"
    took = []
    try:
        await wait_for_body(url, "A\n")
        assert sorted(counting.lists) == ["Pod", "Service"]
        for i in range(10):
            rev, body = ("bbb", "B\n") if i % 2 == 0 else ("aaa", "A\n")
            await local.patch(
                "Service", "my-app", "hello-prod", {"spec": {"selector": {"rollouts-pod-template-hash": rev}}}
            )
            took.append(await wait_for_body(url, body))
        # A Pod created after the start is known from its watch event alone.
        (rc, pc) = await backend("C")
        store.create("Pod", pod("hello-ccc-1", "ccc", pc), keep_status=True)
        await local.patch(
            "Service", "my-app", "hello-prod", {"spec": {"selector": {"rollouts-pod-template-hash": "ccc"}}}
        )
        await wait_for_body(url, "C\n")
        await rc.cleanup()
        assert sorted(counting.lists) == ["Pod", "Service"], counting.lists
        print(f"\nselector patch -> traffic: median {sorted(took)[5] * 1000:.1f} ms of 10 switches")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await ra.cleanup()
        await rb.cleanup()


def test_an_event_older_than_the_list_is_not_applied() -> None:
    """The watch starts before the list, so its first events can be older than the listed state."""
    from pyrollouts.model.cluster import WatchEvent

    controller = ServiceProxyController(None, None, bind="127.0.0.1")  # type: ignore[arg-type]
    svc = {"kind": "Service", "metadata": {"namespace": "n", "name": "s", "resourceVersion": "7"}}
    older = {"kind": "Service", "metadata": {"namespace": "n", "name": "s", "resourceVersion": "5"}}
    newer = {"kind": "Service", "metadata": {"namespace": "n", "name": "s", "resourceVersion": "9"}}
    controller._objects = {"Service": {("n", "s"): svc}, "Pod": {}}
    controller._apply(WatchEvent("MODIFIED", "Service", older))
    assert controller._objects["Service"][("n", "s")] is svc
    controller._apply(WatchEvent("MODIFIED", "Service", newer))
    assert controller._objects["Service"][("n", "s")] is newer
    controller._apply(WatchEvent("DELETED", "Service", newer))
    assert controller._objects["Service"] == {}
