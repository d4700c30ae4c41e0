"""The ReplicaSet controller's own guard (issue 11): a count above the local cap that reached the
store around admission gets no Pods, and says so; a sane count runs again. Pods are created a
few per sync, so a scale-up does not hold the event loop."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

from pyrollouts.runtimes.local.runtime import LocalRuntime


def sleepers(name: str, replicas: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "c", "image": "sleep", "command": ["sleep", "600"]}],
                },
            },
        },
    }


def pods(rt: LocalRuntime, name: str) -> list[dict[str, Any]]:
    return [p for p in rt.store.list("Pod", "default") if p["metadata"]["name"].startswith(name + "-")]


async def test_a_count_above_the_cap_in_the_store_is_refused_and_reported(
    make_runtime: Callable[..., LocalRuntime], wait_for: Any
) -> None:
    rt = make_runtime(max_replicas=3)
    await rt.start()
    try:
        for name, replicas in (("huge", 2147483648), ("four", 4), ("word", "abc")):
            rt.store.create("ReplicaSet", sleepers(name, replicas))  # straight into the store

        def warning(name: str) -> dict[str, Any] | None:
            return next(
                (
                    e
                    for e in rt.store.list("Event", "default")
                    if e["involvedObject"]["name"] == name and e["reason"] == "TooManyReplicas"
                ),
                None,
            )

        for name, value in (("huge", "2147483648"), ("four", "4"), ("word", "'abc'")):
            ev = await wait_for(lambda name=name: warning(name), timeout=30)
            assert ev["type"] == "Warning" and f"spec.replicas: {value}" in ev["message"], ev
            assert "--max-replicas" in ev["message"] or "whole number" in ev["message"], ev
            cond = next(
                c
                for c in rt.store.get("ReplicaSet", "default", name)["status"]["conditions"]
                if c["type"] == "ReplicaFailure"
            )
            assert cond["reason"] == "TooManyReplicas", cond
        await asyncio.sleep(0.5)
        assert [p for n in ("huge", "four", "word") for p in pods(rt, n)] == []
        # Said once, not on every sync.
        assert sum(1 for e in rt.store.list("Event", "default") if e["reason"] == "TooManyReplicas") == 3
        # The way out: a count within the cap runs, and the condition goes away.
        rt.store.patch("ReplicaSet", "default", "four", {"spec": {"replicas": 3}})
        await wait_for(lambda: len(pods(rt, "four")) == 3, timeout=30)
        await wait_for(
            lambda: (
                not any(
                    c["type"] == "ReplicaFailure"
                    for c in rt.store.get("ReplicaSet", "default", "four")["status"].get("conditions") or []
                )
            ),
            timeout=30,
        )
    finally:
        await rt.stop(terminate_pods=True, grace=0.5)


async def test_pods_are_created_a_batch_per_turn_of_the_event_loop(
    make_runtime: Callable[..., LocalRuntime], wait_for: Any
) -> None:
    rt = make_runtime()  # the default cap (100) allows 40
    await rt.start()
    seen: list[int] = []
    stop = asyncio.Event()

    async def watch_counts() -> None:
        # Runs once per turn of the event loop while the Pods are being created.
        while not stop.is_set():
            seen.append(len(pods(rt, "many")))
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch_counts())
    try:
        rt.store.create("ReplicaSet", sleepers("many", 40))
        await wait_for(lambda: len(pods(rt, "many")) == 40, timeout=60)
    finally:
        stop.set()
        await watcher
        await rt.stop(terminate_pods=True, grace=0.5)
    steps = [b - a for a, b in itertools.pairwise(seen) if b > a]
    # Before the batches, all 40 appeared between two turns of the loop (a step of 40).
    assert steps and max(steps) <= 10, steps
    assert len({n for n in seen if 0 < n < 40}) >= 4, seen
