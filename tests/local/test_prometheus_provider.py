"""The prometheus metric provider (controller.providers.prometheus) against a real Prometheus server.

The module starts Debian's ``prometheus`` (``make prometheus`` installs it) on 127.0.0.1 with a temp
config and data dir, scraping a real target: a small HTTP server in a thread whose gauge and counter
the tests set. A Prometheus that cannot start fails the tests with its reason and its log.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from harness.prometheus import WAIT_SECONDS, Target, prometheus_fixture, target_fixture
from harness.support import free_port
from pyrollouts.controller.providers.prometheus import measure

target = pytest.fixture(scope="module", name="target")(target_fixture)
prometheus = pytest.fixture(scope="module", name="prometheus")(prometheus_fixture)


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
    address = f"http://127.0.0.1:{free_port()}"
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
