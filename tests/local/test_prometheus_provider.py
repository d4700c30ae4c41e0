"""The prometheus metric provider (controller.providers.prometheus) against a real Prometheus server.

The module starts Debian's ``prometheus`` (``make prometheus`` installs it) on 127.0.0.1 with a temp
config and data dir, scraping a real target: a small HTTP server in a thread whose gauge and counter
the tests set. A Prometheus that cannot start fails the tests with its reason and its log.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from pyrollouts.controller.providers.prometheus import measure

PROMETHEUS = "/usr/bin/prometheus"
#: How long Prometheus may take to start and to scrape a new value (generous: a loaded CI machine).
WAIT_SECONDS = 90.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Target:
    """A scrape target serving ``demo_error_ratio`` (a gauge) and ``demo_requests_total`` (a counter)."""

    values: dict[str, float] = field(default_factory=lambda: {"ratio": 0.01, "requests": 0.0})
    port: int = 0
    loop: asyncio.AbstractEventLoop | None = None
    runner: web.AppRunner | None = None

    def text(self) -> str:
        self.values["requests"] += 1
        return (
            "# HELP demo_error_ratio Share of 5xx answers.\n"
            "# TYPE demo_error_ratio gauge\n"
            f"demo_error_ratio {self.values['ratio']!r}\n"
            "# HELP demo_requests_total Requests served.\n"
            "# TYPE demo_requests_total counter\n"
            f'demo_requests_total{{code="200"}} {self.values["requests"]!r}\n'
        )

    def start(self) -> None:
        ready = threading.Event()

        async def metrics(request: web.Request) -> web.Response:
            return web.Response(text=self.text(), content_type="text/plain")

        async def serve() -> None:
            app = web.Application()
            app.add_routes([web.get("/metrics", metrics)])
            self.runner = web.AppRunner(app)
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()

        def run() -> None:
            self.loop = asyncio.new_event_loop()
            self.loop.run_until_complete(serve())
            self.loop.run_forever()

        threading.Thread(target=run, name="scrape target", daemon=True).start()
        assert ready.wait(30), "the scrape target did not start"

    def stop(self) -> None:
        if self.loop is not None and self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
            self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    t = Target()
    t.start()
    yield t
    t.stop()


@pytest.fixture(scope="module")
def prometheus(target: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus on 127.0.0.1 scraping ``target`` every 200 ms; its address."""
    binary = shutil.which("prometheus") or PROMETHEUS
    if not Path(binary).is_file():
        pytest.fail(f"{PROMETHEUS} is missing: run `make prometheus` (apt-get install prometheus)")
    root = tmp_path_factory.mktemp("prometheus")
    (root / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 200ms\n  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "- job_name: demo\n"
        f"  static_configs:\n  - targets: ['127.0.0.1:{target.port}']\n"
    )
    port = _free_port()
    log = open(root / "prometheus.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    address = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, address, root / "prometheus.log")
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_ready(proc: subprocess.Popen[bytes], address: str, log: Path) -> None:
    """Until Prometheus answers the target's series (the first scrape is in)."""

    async def series() -> bool:
        try:
            async with (
                aiohttp.ClientSession() as s,
                s.get(f"{address}/api/v1/query", params={"query": "demo_error_ratio"}) as r,
            ):
                body = await r.json()
        except (aiohttp.ClientError, ValueError):
            return False
        return bool(body.get("data", {}).get("result"))

    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"prometheus exited with {proc.returncode}: {log.read_text()[-3000:]}")
        if asyncio.run(series()):
            return
        time.sleep(0.2)
    pytest.fail(
        f"prometheus did not answer the target's series in {WAIT_SECONDS:g}s: {log.read_text()[-3000:]}"
    )


def prom_metric(address: str, query: str, **fields: Any) -> dict[str, Any]:
    conditions = {k: fields.pop(k) for k in ("successCondition", "failureCondition") if k in fields}
    return {
        "name": "m",
        **conditions,
        "provider": {"prometheus": {"address": address, "query": query, **fields}},
    }


async def _until_value(address: str, query: str, want: str) -> dict[str, Any]:
    """Measure until Prometheus has scraped the value the test set (condition-based, generous)."""
    deadline = time.monotonic() + WAIT_SECONDS
    m: dict[str, Any] = {}
    while time.monotonic() < deadline:
        m = await measure(prom_metric(address, query))
        if m.get("value") == want:
            return m
        await asyncio.sleep(0.2)
    raise AssertionError(f"{query} never read {want} (last: {m})")


async def test_vector_success_then_failure(prometheus: str, target: Target) -> None:
    target.values["ratio"] = 0.01
    await _until_value(prometheus, "demo_error_ratio", "[0.01]")
    m = await measure(prom_metric(prometheus, "demo_error_ratio", successCondition="result[0] < 0.05"))
    assert (m["phase"], m["value"]) == ("Successful", "[0.01]"), m
    assert m["startedAt"] and m["finishedAt"] and "message" not in m

    target.values["ratio"] = 0.25
    await _until_value(prometheus, "demo_error_ratio", "[0.25]")
    m = await measure(prom_metric(prometheus, "demo_error_ratio", successCondition="result[0] < 0.05"))
    assert (m["phase"], m["value"]) == ("Failed", "[0.25]"), m
    m = await measure(
        prom_metric(
            prometheus,
            "demo_error_ratio",
            successCondition="result[0] < 0.05",
            failureCondition="result[0] > 0.5",
        )
    )
    assert m["phase"] == "Inconclusive", m
    target.values["ratio"] = 0.01


async def test_counter_with_a_label_match(prometheus: str) -> None:
    m = await measure(
        prom_metric(
            prometheus, 'sum(demo_requests_total{code="200"}) > 0', successCondition="all(result, {# > 0})"
        )
    )
    assert m["phase"] == "Successful", m
    assert m["value"].startswith("[") and float(m["value"][1:-1]) > 0


async def test_scalar(prometheus: str) -> None:
    m = await measure(prom_metric(prometheus, "scalar(vector(1.5)) * 2", successCondition="result == 3"))
    assert (m["phase"], m["value"]) == ("Successful", "3"), m


async def test_matrix_is_every_sample(prometheus: str) -> None:
    m = await measure(prom_metric(prometheus, "demo_error_ratio[10s]", successCondition="len(result) >= 1"))
    assert m["phase"] == "Successful", m
    assert m["value"].startswith("[") and m["value"].endswith("]")


async def test_empty_vector(prometheus: str) -> None:
    m = await measure(prom_metric(prometheus, "demo_no_such_metric", successCondition="len(result) == 0"))
    assert (m["phase"], m["value"]) == ("Successful", "[]"), m
    m = await measure(prom_metric(prometheus, "demo_no_such_metric", successCondition="result[0] < 0.05"))
    assert (m["phase"], m["value"]) == ("Error", "[]"), m
    assert "no data returned from the metric provider" in m["message"]


async def test_nan_and_inf(prometheus: str) -> None:
    m = await measure(prom_metric(prometheus, "scalar(vector(0)) / 0", successCondition="isNaN(result)"))
    assert (m["phase"], m["value"]) == ("Successful", "NaN"), m
    m = await measure(prom_metric(prometheus, "demo_error_ratio / 0", successCondition="isInf(result[0])"))
    assert (m["phase"], m["value"]) == ("Successful", "[+Inf]"), m
    m = await measure(prom_metric(prometheus, "-demo_error_ratio / 0", failureCondition="isInf(result[0])"))
    assert (m["phase"], m["value"]) == ("Failed", "[-Inf]"), m


async def test_bad_query_is_an_error(prometheus: str) -> None:
    m = await measure(prom_metric(prometheus, "sum(demo_error_ratio", successCondition="true"))
    assert m["phase"] == "Error", m
    assert m["message"].startswith("bad_data: "), m
    assert "value" not in m and m["finishedAt"]


async def test_string_result_is_an_error(prometheus: str) -> None:
    m = await measure(prom_metric(prometheus, '"hello"'))
    assert (m["phase"], m["message"]) == ("Error", "Prometheus metric type not supported: string"), m


async def test_unreachable_address_is_an_error() -> None:
    address = f"http://127.0.0.1:{_free_port()}"
    m = await measure(prom_metric(address, "up", timeout=5))
    assert m["phase"] == "Error", m
    assert m["message"].startswith(f'Post "{address}/api/v1/query": '), m


async def test_bad_configuration_is_an_error() -> None:
    m = await measure(prom_metric("not a url", "up"))
    assert m["phase"] == "Error" and "not in url format" in m["message"], m
    m = await measure({"name": "m", "provider": {"prometheus": {"query": "up"}}})
    assert m["phase"] == "Error" and "address is not configured" in m["message"], m
    m = await measure(prom_metric("http://127.0.0.1:1", "up", timeout=-1))
    assert (m["phase"], m["message"]) == ("Error", "prometheus timeout should not be negative"), m
