"""Every user verb through every client of the local runtime: the HTTP API (the CLI's), Argo's
dashboard API, and the scenario runner. Each starts from the same stored objects and must leave the
same Rollout, or refuse with the same code and message (the kube backend: tests/k8s/test_verbs_kube.py).

Real parts: a SQLite store, the server's aiohttp application with the dashboard routes on it, over
real loopback sockets. No controller runs, so what changes is the verb's patches alone."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from harness import verbcases
from harness.scenarios import Step, user_patches
from harness.verbcases import CASES, NAME, NOW, Case, Obj
from pyrollouts.runtimes.local.cluster import LocalCluster
from pyrollouts.runtimes.local.store import Store
from pyrollouts.server.api import make_app
from pyrollouts.service.info import rollout_info
from pyrollouts.service.verbs import VERBS, VerbError
from pyrollouts.web import dashboard_context, dashboard_routes

NS = "verbs"
TOKEN = "every-client-token"


class FixedClock:
    """The clients' clock: restart writes this time."""

    adjustable = False

    def now(self) -> datetime:
        return NOW

    def advance(self, seconds: float) -> None:
        raise PermissionError("fixed clock")


def seeded(path: Path, case: Case) -> LocalCluster:
    store = Store(path)
    ro = store.create("Rollout", verbcases.rollout(NS, paused=case.paused), keep_status=True)
    for rev in (1, 2):
        store.create("ReplicaSet", verbcases.replicaset(NS, ro, rev))
    return LocalCluster(store)


# One client: (cluster, case) -> ("ok", outcome) or ("error", code, message); None: not offered.
Result = tuple[Any, ...]
Client = Callable[[LocalCluster, Case, str], Coroutine[Any, Any, Result | None]]


async def _request(base: str, method: str, path: str, body: Obj) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as s, s.request(method, base + path, json=body, headers=headers) as r:
        return r.status, await r.json()


async def http_api(cluster: LocalCluster, case: Case, base: str) -> Result | None:
    status, body = await _request(base, "POST", f"/api/rollouts/{NS}/{NAME}/{case.verb}", case.args)
    if status != 200:
        return ("error", status, body["error"])
    assert body["message"].startswith((f"rollout '{NAME}' ", f'rollout "{NAME}" '))
    return ("ok", verbcases.outcome(await cluster.get("Rollout", NS, NAME)))


async def dashboard_api(cluster: LocalCluster, case: Case, base: str) -> Result | None:
    if case.dashboard is None:
        return None
    path, body = case.dashboard
    status, answer = await _request(base, "PUT", f"/api/v1/rollouts/{NS}/{NAME}/{path}", body)
    if status != 200:
        return ("error", status, answer["error"])
    assert answer["metadata"]["name"] == NAME  # Argo's dashboard answers the Rollout
    return ("ok", verbcases.outcome(await cluster.get("Rollout", NS, NAME)))


async def scenario_runner(cluster: LocalCluster, case: Case, base: str) -> Result | None:
    if case.scenario is None:
        return None
    ro = await cluster.get("Rollout", NS, NAME)
    rss = await cluster.list("ReplicaSet", NS)
    step = Step(index=0, do=case.scenario["do"], raw=case.scenario)
    try:
        patches = user_patches(step, ro, rss, NOW)
    except VerbError as exc:
        return ("error", exc.code, exc.message)
    for p in patches:  # as every scenario driver applies them
        await cluster.patch("Rollout", NS, NAME, p.body, subresource=p.subresource)
    return ("ok", verbcases.outcome(await cluster.get("Rollout", NS, NAME)))


CLIENTS: dict[str, Client] = {
    "http-api": http_api,
    "dashboard-api": dashboard_api,
    "scenarios": scenario_runner,
}


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Callable[[Case, str], Coroutine[Any, Any, Result | None]]]:
    """Run one client on a freshly seeded store behind a real server."""
    servers: list[TestServer] = []
    counter = iter(range(1000))

    async def run(case: Case, client: str) -> Result | None:
        cluster = seeded(tmp_path / f"store-{next(counter)}.db", case)
        clock = FixedClock()
        app = make_app(
            cluster,
            admission=lambda objs: [],
            clock=clock,
            token=TOKEN,
            host_check=False,
            extra_routes=dashboard_routes(
                dashboard_context(cluster, clock=clock, info=rollout_info, token=TOKEN)
            ),
        )
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        try:
            return await CLIENTS[client](cluster, case, str(server.make_url("")).rstrip("/"))
        finally:
            cluster.store.close()

    yield run
    for s in servers:
        await s.close()


def test_the_cases_cover_every_verb() -> None:
    assert {c.verb for c in CASES} == set(VERBS)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_every_client_leaves_the_same_rollout(
    case: Case, serve: Callable[[Case, str], Coroutine[Any, Any, Result | None]]
) -> None:
    results = {name: await serve(case, name) for name in CLIENTS}
    offered = {name: r for name, r in results.items() if r is not None}
    assert "http-api" in offered
    reference = offered["http-api"]
    if case.error is not None:
        code, message = case.error
        assert reference == ("error", code, message), reference
    else:
        assert reference[0] == "ok", reference
        before = verbcases.outcome(verbcases.rollout(NS, paused=case.paused))
        assert reference[1] != before, f"{case.id} changed nothing"
    for name, result in offered.items():
        assert result == reference, f"{case.id}: {name} gave {result}, the HTTP API {reference}"
