"""The provider registry (controller.providers): dispatch by the metric's provider key, and an Error
measurement naming an unsupported provider."""

from __future__ import annotations

import socket
from pathlib import Path

from pyrollouts.controller import providers
from pyrollouts.runtimes.local.cluster import LocalCluster
from pyrollouts.runtimes.local.store import Store


def ctx(tmp_path: Path) -> providers.Context:
    return providers.Context(cluster=LocalCluster(Store(tmp_path / "state.db")), run={"metadata": {}})


async def test_unsupported_provider_is_an_error(tmp_path: Path) -> None:
    m = await providers.measure({"name": "dd", "provider": {"datadog": {"query": "x"}}}, ctx(tmp_path))
    assert m["phase"] == "Error" and m["startedAt"] and m["finishedAt"], m
    assert m["message"] == (
        "metric 'dd': provider 'datadog' is not supported by pyrollouts; use one of prometheus, web, job"
    )
    m = await providers.measure({"name": "none", "provider": {}}, ctx(tmp_path))
    assert "the metric has no provider" in m["message"], m


async def test_dispatch_by_provider_key(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = ctx(tmp_path)
    m = await providers.measure({"name": "w", "provider": {"web": {"url": f"http://127.0.0.1:{port}/"}}}, c)
    assert m["phase"] == "Error" and m["message"].startswith(f'Get "http://127.0.0.1:{port}/"'), m
    prom = {"prometheus": {"address": f"http://127.0.0.1:{port}", "query": "up"}}
    m = await providers.measure({"name": "p", "provider": prom}, c)
    assert m["phase"] == "Error" and m["message"].startswith(
        f'Post "http://127.0.0.1:{port}/api/v1/query"'
    ), m
    # Providers that finish in measure: resume and terminate hand the measurement back unchanged.
    assert await providers.resume({"name": "p", "provider": prom}, m, c) == m
    assert await providers.terminate({"name": "p", "provider": prom}, m, c) == m
    await providers.garbage_collect({"name": "p", "provider": prom}, c, 1)


def test_result_metadata() -> None:
    prom = {"name": "p", "provider": {"prometheus": {"query": 'sum(x{svc="a"})'}}}
    assert providers.result_metadata(prom) == {"ResolvedPrometheusQuery": 'sum(x{svc="a"})'}
    assert providers.result_metadata({"name": "w", "provider": {"web": {"url": "http://x"}}}) == {}
