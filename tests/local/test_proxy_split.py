"""Canary splits in the local proxy (issue 14): the stable Service's traffic-split annotation ->
the table's ``split`` -> per-request routing in the proxy process. The routing tests run the real
proxy process against backends on 127.0.0.1 and count what reaches each; every test is bounded in
requests and time."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from harness.support import free_port
from pyrollouts.model.traffic import (
    TRAFFIC_SPLIT_ANNOTATION,
    HeaderMatch,
    HeaderRoute,
    MirrorRoute,
    RequestMatch,
    StringMatch,
    TrafficSplit,
)
from pyrollouts.runtimes.local.cluster import LocalCluster
from pyrollouts.runtimes.local.endpoints import PORTS_ANNOTATION, build_table
from pyrollouts.runtimes.local.proxy.split import choose
from pyrollouts.runtimes.local.proxy.table import TableError, build_routing, validate_table
from pyrollouts.runtimes.local.proxymanager import ProxyManager, ServiceProxyController
from pyrollouts.runtimes.local.store import Store

pytestmark = pytest.mark.timeout(180)

NS = "my-app"


# -- the annotation -> the table (pure) -----------------------------------------------------------


def service(name: str, rev: str, port: int, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": NS, "annotations": annotations or {}},
            "spec": {"selector": {"app": "hello", "rollouts-pod-template-hash": rev},
                     "ports": [{"name": "http", "port": port, "targetPort": "http"}]}}  # fmt: skip


def pod(name: str, rev: str, host_port: int, *, ready: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS,
                     "labels": {"app": "hello", "rollouts-pod-template-hash": rev},
                     "annotations": {PORTS_ANNOTATION: json.dumps({"8080": host_port, "http": host_port})}},
        "spec": {"containers": [{"name": "app", "command": ["true"],
                                 "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"podIP": "127.0.0.1", "phase": "Running",
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }  # fmt: skip


def split(weight: int, **kw: Any) -> TrafficSplit:
    return TrafficSplit("hello-stable", "hello-canary", "aaa", "bbb", weight, **kw)


def test_annotation_becomes_the_split_with_canary_endpoints_on_the_stable_port() -> None:
    beta = HeaderRoute("beta", (HeaderMatch("X-Canary", StringMatch(exact="yes")),))
    mirror = MirrorRoute(
        "m", 30, (RequestMatch(method=StringMatch(exact="GET"), path=StringMatch(prefix="/a")),)
    )
    s = split(20, header_routes=(beta,), mirror_routes=(mirror,))
    # The canary Service has its own port (each Service port is a listener); the canary endpoints
    # are resolved for the stable Service's port through the canary port of the same name.
    services = [
        service("hello-stable", "aaa", 8088, {TRAFFIC_SPLIT_ANNOTATION: s.dumps()}),
        service("hello-canary", "bbb", 8089),
    ]
    pods = [pod("a-1", "aaa", 41001), pod("b-1", "bbb", 41002), pod("b-2", "bbb", 41003, ready=False)]
    table = build_table(services, pods, 1, "127.0.0.1")
    validate_table(table)
    stable = table["services"][1]
    assert stable["name"] == "hello-stable"
    assert stable["split"] == {
        "canaryService": "hello-canary",
        "weight": 20,
        "canaryEndpoints": [
            {"pod": "b-1", "revision": "bbb", "host": "127.0.0.1", "ports": {"8088": 41002}, "ready": True},
            {"pod": "b-2", "revision": "bbb", "host": "127.0.0.1", "ports": {"8088": 41003}, "ready": False},
        ],
        "headerRoutes": [{"name": "beta", "match": [{"header": "X-Canary", "exact": "yes"}]}],
        "mirrors": [{"name": "m", "percentage": 30,
                     "match": [{"method": {"exact": "GET"}, "path": {"prefix": "/a"}}]}],
    }  # fmt: skip
    assert "split" not in table["services"][0]
    route = build_routing(table, "127.0.0.1").routes[("127.0.0.1", 8088)]
    assert route.split is not None and route.split.weight == 20
    assert [t.port for t in route.split.canary.targets] == [41002]
    assert route.split.canary.balance != route.balance


@pytest.mark.parametrize(
    ("annotation", "why"),
    [
        ("{not json", "malformed traffic split"),
        (json.dumps({"stableService": "hello-stable", "canaryService": "hello-canary", "canaryWeight": 120}),
         "between 0 and 100"),
        (split(10, header_routes=(HeaderRoute("r", (HeaderMatch("x", StringMatch(regex="(")),)),)).dumps(),
         "headerRoutes[0].match[0].headerValue.regex"),
        (split(10, header_routes=(HeaderRoute("r", (HeaderMatch("x", StringMatch()),)),)).dumps(),
         "set exactly one of exact, prefix, regex"),
        (split(10, mirror_routes=(MirrorRoute("m", 101),)).dumps(), "mirrorRoutes[0].percentage"),
        (TrafficSplit("hello-stable", "nope", "aaa", "bbb", 10).dumps(), "'nope' does not exist"),
    ],
)  # fmt: skip
def test_an_unusable_annotation_is_no_split_and_says_why(annotation: str, why: str) -> None:
    services = [
        service("hello-stable", "aaa", 8088, {TRAFFIC_SPLIT_ANNOTATION: annotation}),
        service("hello-canary", "bbb", 8089),
    ]
    warnings: list[str] = []
    table = build_table(services, [pod("a-1", "aaa", 41001)], 1, "127.0.0.1", warnings.append)
    validate_table(table)
    assert all("split" not in s for s in table["services"])
    (message,) = warnings
    assert "Service my-app/hello-stable" in message and why in message, message


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"weight": 101}, "split.weight: expected a whole number 0-100"),
        ({"canaryEndpoints": [{"host": "127.0.0.1", "ports": {"8088": 0}}]},
         "split.canaryEndpoints[0].ports"),
        ({"headerRoutes": [{"name": "h", "match": [{"header": "x", "exact": "a", "prefix": "b"}]}]},
         "split.headerRoutes[0].match[0]: expected exactly one of exact, prefix, regex"),
        ({"mirrors": [{"name": "m", "match": [{"path": {"regex": "("}}]}]},
         "split.mirrors[0].match[0].path.regex: not a regular expression"),
    ],
)  # fmt: skip
def test_the_proxy_refuses_a_malformed_split_naming_the_field(change: dict[str, Any], field: str) -> None:
    services = [
        service("hello-stable", "aaa", 8088, {TRAFFIC_SPLIT_ANNOTATION: split(10).dumps()}),
        service("hello-canary", "bbb", 8089),
    ]
    table = build_table(services, [pod("a-1", "aaa", 41001)], 1, "127.0.0.1")
    table["services"][1]["split"].update(change)
    with pytest.raises(TableError, match=re.escape(f"table.services[1].{field}")):
        validate_table(table)


def test_smooth_weights_are_exact_over_every_prefix() -> None:
    """Over the first N requests at weight w, the canary gets N*w/100 of them, within one."""
    services = [
        service("hello-stable", "aaa", 8088, {TRAFFIC_SPLIT_ANNOTATION: split(1).dumps()}),
        service("hello-canary", "bbb", 8089),
    ]
    table = build_table(services, [pod("a-1", "aaa", 41001), pod("b-1", "bbb", 41002)], 1, "127.0.0.1")
    for weight in (1, 7, 20, 33, 50, 99):
        table["services"][1]["split"]["weight"] = weight
        route = build_routing(table, "127.0.0.1").routes[("127.0.0.1", 8088)]
        assert route.split is not None
        credits: dict[Any, int] = {}
        canary = 0
        for n in range(1, 2001):
            canary += choose(route.split, route, None, credits) is route.split.canary
            assert abs(canary - n * weight / 100) <= 1, (weight, n, canary)


# -- the proxy process -----------------------------------------------------------------------------


class Backend:
    """An aiohttp app on 127.0.0.1 that answers its name and counts what it got per path; with
    ``holds``, requests to /hold wait until ``release`` is set."""

    def __init__(self, name: str, *, holds: bool = False) -> None:
        self.name = name
        self.holds = holds
        self.port = free_port()
        self.seen: Counter[str] = Counter()
        #: The bodies received, by path (their bytes).
        self.bodies: dict[str, list[bytes]] = {}
        self.release = asyncio.Event()
        self.runner: web.AppRunner | None = None

    async def start(self) -> Backend:
        async def index(request: web.Request) -> web.Response:
            self.bodies.setdefault(request.path, []).append(await request.read())
            self.seen[request.path] += 1
            if self.holds and request.path == "/hold":
                await self.release.wait()
            return web.Response(text=f"{self.name}\n")

        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_route("*", "/{tail:.*}", index)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        self.release.set()
        if self.runner is not None:
            await self.runner.cleanup()


def table(
    version: int,
    port: int,
    stable: Backend,
    canary: Backend,
    weight: int,
    *,
    stable_ready: bool = True,
    canary_ready: bool = True,
    header_routes: list[dict[str, Any]] | None = None,
    mirrors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    def ep(b: Backend, rev: str, ready: bool) -> dict[str, Any]:
        return {"pod": f"{rev}-1", "revision": rev, "host": "127.0.0.1", "ports": {str(port): b.port},
                "ready": ready}  # fmt: skip

    return {
        "version": version,
        "services": [
            {
                "namespace": NS,
                "name": "hello-stable",
                "bind": "127.0.0.1",
                "ports": [{"name": "http", "port": port, "appProtocol": None}],
                "endpoints": [ep(stable, "aaa", stable_ready)],
                "split": {
                    "canaryService": "hello-canary",
                    "weight": weight,
                    "canaryEndpoints": [ep(canary, "bbb", canary_ready)],
                    "headerRoutes": header_routes or [],
                    "mirrors": mirrors or [],
                },
            }
        ],
    }


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


@pytest.fixture
async def backends() -> AsyncIterator[tuple[Backend, Backend]]:
    a, b = await Backend("STABLE").start(), await Backend("CANARY", holds=True).start()
    yield a, b
    await a.stop()
    await b.stop()


async def answers(port: int, n: int, *, path: str = "/", headers: dict[str, str] | None = None,
                  concurrency: int = 1) -> Counter[str]:  # fmt: skip
    """Send n requests (keep-alive, ``concurrency`` at a time); the answers' bodies, counted."""
    seen: Counter[str] = Counter()
    left = iter(range(n))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as s:

        async def worker() -> None:
            for _ in left:
                async with s.get(f"http://127.0.0.1:{port}{path}", headers=headers) as r:
                    seen[f"{r.status} {(await r.text()).strip()}"] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return seen


async def revisions(manager: ProxyManager) -> dict[str, Any]:
    stats = await manager.stats()
    return stats["services"][f"{NS}/hello-stable"]  # type: ignore[no-any-return]


async def test_ten_thousand_requests_at_twenty_percent(
    manager: ProxyManager, backends: tuple[Backend, Backend]
) -> None:
    stable, canary = backends
    port = free_port()
    assert (await manager.push(table(1, port, stable, canary, 20)))["splits"] == 1
    route = (await manager.stats())["routes"][f"127.0.0.1:{port}"]
    assert route["split"] == {
        "canaryService": "hello-canary",
        "weight": 20,
        "headerRoutes": [],
        "mirrors": [],
        "canaryReady": [{"pod": "bbb-1", "revision": "bbb", "hostPort": canary.port}],
    }
    seen = await answers(port, 10_000, concurrency=8)
    print(f"\n10,000 requests at weight 20: {dict(seen)}")
    assert sum(seen.values()) == 10_000
    assert abs(seen["200 CANARY"] - 2_000) <= 1, seen
    assert seen["200 STABLE"] + seen["200 CANARY"] == 10_000
    # The proxy's per-revision counters, which analysis reads, agree with what the clients saw.
    revs = (await revisions(manager))["revisions"]
    assert revs["bbb"]["byClass"]["2xx"] == seen["200 CANARY"]
    assert revs["aaa"]["byClass"]["2xx"] == seen["200 STABLE"]


async def test_a_weight_change_applies_from_the_next_request(
    manager: ProxyManager, backends: tuple[Backend, Backend]
) -> None:
    stable, canary = backends
    port = free_port()
    async with aiohttp.ClientSession() as s:  # one keep-alive connection across the switches

        async def one() -> str:
            async with s.get(f"http://127.0.0.1:{port}/") as r:
                return (await r.text()).strip()

        for version, weight in enumerate([0, 100, 0, 100], start=1):
            await manager.push(table(version, port, stable, canary, weight))
            want = "CANARY" if weight == 100 else "STABLE"
            assert [await one() for _ in range(5)] == [want] * 5, weight
        await manager.push(table(9, port, stable, canary, 50))
        got = Counter([await one() for _ in range(10)])
        assert got == Counter({"STABLE": 5, "CANARY": 5}), got
    # Weight 0 and no routes: the route has no split at all (the path without canary).
    await manager.push(table(10, port, stable, canary, 0))
    stats = await manager.stats()
    assert "split" not in stats["routes"][f"127.0.0.1:{port}"]


async def test_header_routes_send_matching_requests_to_the_canary(
    manager: ProxyManager, backends: tuple[Backend, Backend]
) -> None:
    stable, canary = backends
    port = free_port()
    routes = [
        {"name": "exact", "match": [{"header": "X-Canary", "exact": "yes"}]},
        {"name": "both", "match": [{"header": "x-user", "prefix": "beta-"},
                                   {"header": "x-region", "regex": "eu-[0-9]+"}]},
    ]  # fmt: skip
    await manager.push(table(1, port, stable, canary, 0, header_routes=routes))
    cases = [
        ({}, "STABLE"),
        ({"x-canary": "yes"}, "CANARY"),  # header names match whatever their case
        ({"X-CANARY": "yes"}, "CANARY"),
        ({"X-Canary": "no"}, "STABLE"),
        ({"X-User": "beta-7", "X-Region": "eu-12"}, "CANARY"),
        ({"X-User": "beta-7"}, "STABLE"),  # every condition of a route must hold
        ({"X-User": "beta-7", "X-Region": "eu-12b"}, "STABLE"),  # a regex matches the whole value
        ({"X-User": "alpha", "X-Region": "eu-1"}, "STABLE"),
    ]
    for headers, want in cases:
        assert await answers(port, 3, headers=headers) == Counter({f"200 {want}": 3}), headers
    # Requests routed by header do not move the weight's count: at 20%, ordinary requests still
    # see exactly their share.
    await manager.push(table(2, port, stable, canary, 20, header_routes=routes))
    await answers(port, 7, headers={"X-Canary": "yes"})
    seen = await answers(port, 100)
    assert abs(seen["200 CANARY"] - 20) <= 1, seen


async def test_mirrors_copy_a_share_to_the_canary_and_never_delay_the_client(
    manager: ProxyManager, backends: tuple[Backend, Backend]
) -> None:
    stable, canary = backends
    port = free_port()
    mirrors = [
        {"name": "m", "percentage": 50, "match": [{"method": {"exact": "POST"}, "path": {"prefix": "/m"}}]}
    ]
    await manager.push(table(1, port, stable, canary, 0, mirrors=mirrors))
    async with aiohttp.ClientSession() as s:
        for i in range(40):
            async with s.post(f"http://127.0.0.1:{port}/m/{i % 2}", data=b"x" * 1000) as r:
                assert (r.status, await r.text()) == (200, "STABLE\n")
        for _ in range(10):  # not matching: a GET, and another path
            async with s.get(f"http://127.0.0.1:{port}/m/0") as r:
                assert (await r.text()) == "STABLE\n"
            async with s.post(f"http://127.0.0.1:{port}/other", data=b"y") as r:
                assert (await r.text()) == "STABLE\n"
    assert stable.seen["/m/0"] + stable.seen["/m/1"] == 50
    for _ in range(200):  # copies finish on their own time
        if sum(canary.seen.values()) >= 20:
            break
        await asyncio.sleep(0.05)
    assert sum(canary.seen.values()) == 20, canary.seen
    assert set(canary.seen) <= {"/m/0", "/m/1"}
    svc = await revisions(manager)
    assert svc["mirrored"]["bbb"]["2xx"] == 20
    # Mirrored copies are counted apart: the canary revision answered no client request.
    assert "bbb" not in svc["revisions"]
    assert svc["revisions"]["aaa"]["byClass"]["2xx"] == 60
    text = await manager.metrics_text()
    assert (
        'pyrollouts_proxy_mirrored_requests_total{code="2xx",namespace="my-app",revision="bbb",'
        'service="hello-stable"} 20.0' in text
    ), text


async def test_a_canary_that_hangs_caps_the_copies_in_flight(
    manager: ProxyManager, backends: tuple[Backend, Backend]
) -> None:
    stable, canary = backends
    port = free_port()
    await manager.push(
        table(1, port, stable, canary, 0, mirrors=[{"name": "all", "percentage": 100, "match": []}])
    )
    # The canary never answers a copy of /hold until released: the clients still get every answer
    # from stable, and beyond 64 copies in flight the proxy drops them.
    seen = await answers(port, 100, path="/hold", concurrency=4)
    assert seen == Counter({"200 STABLE": 100}), seen
    svc = await revisions(manager)
    assert svc["mirrorsDropped"] == 36, svc
    text = await manager.metrics_text()
    assert 'pyrollouts_proxy_mirrors_dropped_total{namespace="my-app",service="hello-stable"} 36.0' in text
    assert canary.seen["/hold"] <= 64
    canary.release.set()
    for _ in range(200):
        svc = await revisions(manager)
        if svc.get("mirrored", {}).get("bbb", {}).get("2xx") == 64:
            break
        await asyncio.sleep(0.05)
    assert svc["mirrored"]["bbb"]["2xx"] == 64, svc


async def test_a_side_without_ready_endpoints_gets_nothing(
    manager: ProxyManager, backends: tuple[Backend, Backend]
) -> None:
    stable, canary = backends
    port = free_port()
    routes = [{"name": "h", "match": [{"header": "x-canary", "exact": "1"}]}]
    await manager.push(table(1, port, stable, canary, 100, canary_ready=False, header_routes=routes))
    assert await answers(port, 20) == Counter({"200 STABLE": 20})
    assert await answers(port, 5, headers={"x-canary": "1"}) == Counter({"200 STABLE": 5})
    await manager.push(table(2, port, stable, canary, 0, stable_ready=False, header_routes=routes))
    assert await answers(port, 20) == Counter({"200 CANARY": 20})
    await manager.push(table(3, port, stable, canary, 30, stable_ready=False, canary_ready=False))
    seen = await answers(port, 3)
    assert seen == Counter({"503 no ready pods for service my-app/hello-stable": 3}), seen


async def test_an_l4_port_moves_new_connections_by_the_weight(
    manager: ProxyManager, backends: tuple[Backend, Backend]
) -> None:
    stable, canary = backends
    port = free_port()
    t = table(1, port, stable, canary, 25)
    t["services"][0]["ports"][0]["appProtocol"] = "tcp"
    await manager.push(t)
    seen: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(force_close=True)  # a new connection per request
    async with aiohttp.ClientSession(connector=connector) as s:
        for _ in range(40):
            async with s.get(f"http://127.0.0.1:{port}/") as r:
                seen[(await r.text()).strip()] += 1
    assert abs(seen["CANARY"] - 10) <= 1 and sum(seen.values()) == 40, seen
    revs = (await revisions(manager))["revisions"]
    assert revs["bbb"]["tcpConnections"] == seen["CANARY"]


async def test_a_chunked_body_reaches_the_mirror_whole(
    manager: ProxyManager, backends: tuple[Backend, Backend]
) -> None:
    stable, canary = backends
    port = free_port()
    await manager.push(table(1, port, stable, canary, 0, mirrors=[{"name": "all", "percentage": 100}]))

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(20):
            yield bytes([65 + i]) * 5000

    # An async generator body is sent chunked.
    async with aiohttp.ClientSession() as s, s.post(f"http://127.0.0.1:{port}/up", data=chunks()) as r:
        assert (r.status, await r.text()) == (200, "STABLE\n")
    want = b"".join(bytes([65 + i]) * 5000 for i in range(20))
    assert stable.bodies["/up"] == [want]
    for _ in range(200):
        if canary.seen["/up"]:
            break
        await asyncio.sleep(0.05)
    assert canary.bodies["/up"] == [want]


async def test_a_canary_that_does_not_read_costs_a_bounded_buffer(
    manager: ProxyManager, backends: tuple[Backend, Backend]
) -> None:
    """A canary that accepts the copy and never reads it: the copy is abandoned once 1 MiB waits
    for it (besides what the kernel buffers), and the client's request is not held up."""
    stable, _ = backends
    stuck: list[asyncio.StreamWriter] = []

    async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stuck.append(writer)

    server = await asyncio.start_server(never_read, "127.0.0.1", 0)
    mute = Backend("MUTE")
    mute.port = server.sockets[0].getsockname()[1]
    port = free_port()
    try:
        await manager.push(table(1, port, stable, mute, 0, mirrors=[{"name": "all", "percentage": 100}]))
        body = b"z" * (16 * 2**20)
        async with aiohttp.ClientSession() as s, s.post(f"http://127.0.0.1:{port}/big", data=body) as r:
            assert (r.status, await r.text()) == (200, "STABLE\n")
        assert [len(b) for b in stable.bodies["/big"]] == [len(body)]
        for _ in range(200):
            svc = await revisions(manager)
            if svc.get("mirrored"):
                break
            await asyncio.sleep(0.05)
        assert svc["mirrored"] == {"bbb": {"none": 1}}, svc
    finally:
        for w in stuck:
            w.close()
        server.close()


# -- through the server's controller: the annotation on a stored Service --------------------------


async def test_the_controller_applies_the_annotation_and_ignores_a_malformed_one(
    manager: ProxyManager, backends: tuple[Backend, Backend], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stable, canary = backends
    store = Store(tmp_path / "state.db")
    local = LocalCluster(store)
    sport, cport = free_port(), free_port()
    store.create("Pod", pod("hello-aaa-1", "aaa", stable.port), keep_status=True)
    store.create("Pod", pod("hello-bbb-1", "bbb", canary.port), keep_status=True)
    store.create("Service", service("hello-stable", "aaa", sport))
    store.create("Service", service("hello-canary", "bbb", cport))
    controller = ServiceProxyController(local, manager)
    task = asyncio.create_task(controller.run())

    async def settled(want: str) -> None:
        """Wait until ten requests in a row are answered by ``want`` (the push is asynchronous)."""
        seen: Counter[str] = Counter()
        for _ in range(400):
            with contextlib.suppress(aiohttp.ClientConnectionError):
                seen = await answers(sport, 10)
                if seen == Counter({f"200 {want}": 10}):
                    return
            await asyncio.sleep(0.025)
        raise AssertionError(f"never only {want}: last {seen}")

    try:
        await settled("STABLE")
        ann = {"metadata": {"annotations": {TRAFFIC_SPLIT_ANNOTATION: split(100).dumps()}}}
        await local.patch("Service", NS, "hello-stable", ann)
        await settled("CANARY")
        with caplog.at_level(logging.WARNING, logger="pyrollouts.runtimes.local.proxymanager"):
            bad = {"metadata": {"annotations": {TRAFFIC_SPLIT_ANNOTATION: "{broken"}}}
            await local.patch("Service", NS, "hello-stable", bad)
            await settled("STABLE")
            # Another change of the Service's table: the same problem is not logged again.
            store.create("Pod", pod("hello-aaa-2", "aaa", stable.port), keep_status=True)
            await asyncio.sleep(0.3)
        told = [r for r in caplog.records if TRAFFIC_SPLIT_ANNOTATION in r.getMessage()]
        assert len(told) == 1, [r.getMessage() for r in told]
        # The canary Service keeps its own port, routed as any Service.
        assert await answers(cport, 3) == Counter({"200 CANARY": 3})
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        store.close()


async def test_a_proxy_older_than_splits_is_told_once(caplog: pytest.LogCaptureFixture) -> None:
    class OldProxy:
        """Answers a table push as a proxy from before canary splits did (no "splits")."""

        pid = 4242

        async def push(self, table: dict[str, Any]) -> dict[str, Any]:
            return {"version": table["version"], "listening": [], "failed": []}

    controller = ServiceProxyController(None, OldProxy(), bind="127.0.0.1")  # type: ignore[arg-type]
    stable = service("hello-stable", "aaa", 8088, {TRAFFIC_SPLIT_ANNOTATION: split(20).dumps()})
    services = {(NS, "hello-stable"): stable, (NS, "hello-canary"): service("hello-canary", "bbb", 8089)}
    controller._objects = {"Service": services, "Pod": {(NS, "a-1"): pod("a-1", "aaa", 41001)}}
    with caplog.at_level(logging.WARNING, logger="pyrollouts.runtimes.local.proxymanager"):
        assert await controller.sync_once() is not None
        controller._objects["Pod"][(NS, "b-1")] = pod("b-1", "bbb", 41002)
        assert await controller.sync_once() is not None
    told = [r.getMessage() for r in caplog.records if "predates canary traffic splits" in r.getMessage()]
    assert len(told) == 1 and "pid 4242" in told[0] and "rollouts shutdown --all" in told[0], told
