"""WorkQueue: each key queued once, never worked on twice at a time, timed and backed-off adds.

Real asyncio throughout; every wait is on a condition with a generous limit, never a bare sleep.
"""

from __future__ import annotations

import asyncio

import pytest

from pyrollouts.controller.workqueue import WorkQueue

LIMIT = 10.0  # seconds: generous, a condition that holds returns long before


async def _get(queue: WorkQueue) -> str | None:
    return await asyncio.wait_for(queue.get(), LIMIT)


async def test_a_key_is_queued_once_and_keys_come_out_in_order() -> None:
    queue = WorkQueue()
    for key in ("ns/a", "ns/b", "ns/a", "ns/c", "ns/b"):
        await queue.add(key)
    assert len(queue) == 3
    assert [await _get(queue) for _ in range(3)] == ["ns/a", "ns/b", "ns/c"]
    assert len(queue) == 0


async def test_get_waits_for_an_add() -> None:
    queue = WorkQueue()
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)  # let it start waiting: nothing is queued, so it must still wait
    assert not getter.done()
    await queue.add("ns/a")
    assert await asyncio.wait_for(getter, LIMIT) == "ns/a"


async def test_a_key_added_while_worked_on_comes_back_once_done() -> None:
    queue = WorkQueue()
    await queue.add("ns/a")
    assert await _get(queue) == "ns/a"
    await queue.add("ns/a")
    await queue.add("ns/a")
    # Not handed out while a worker holds it: the queue is empty until done().
    assert len(queue) == 0
    await queue.add("ns/b")
    assert await _get(queue) == "ns/b"
    await queue.done("ns/a")
    assert len(queue) == 1
    assert await _get(queue) == "ns/a"
    await queue.done("ns/a")
    assert len(queue) == 0  # the two adds meanwhile made one more turn, not two


async def test_two_workers_never_hold_the_same_key() -> None:
    queue = WorkQueue()
    holding: set[str] = set()
    overlaps: list[str] = []
    turns: dict[str, int] = {"ns/a": 0, "ns/b": 0}
    all_done = asyncio.Event()

    async def worker() -> None:
        while (key := await queue.get()) is not None:
            if key in holding:
                overlaps.append(key)
            holding.add(key)
            turns[key] += 1
            if turns[key] < 5:
                await queue.add(key)  # re-added while held: must wait for done()
            await asyncio.sleep(0)  # give the other worker a chance to take the same key
            holding.discard(key)
            await queue.done(key)
            if all(n >= 5 for n in turns.values()):
                all_done.set()

    workers = [asyncio.create_task(worker()) for _ in range(2)]
    await queue.add("ns/a")
    await queue.add("ns/b")
    await asyncio.wait_for(all_done.wait(), LIMIT)
    await queue.shutdown()
    await asyncio.wait_for(asyncio.gather(*workers), LIMIT)
    assert overlaps == []
    assert turns == {"ns/a": 5, "ns/b": 5}


async def test_add_after_queues_the_key_once_the_delay_has_passed() -> None:
    queue = WorkQueue()
    loop = asyncio.get_running_loop()
    started = loop.time()
    queue.add_after("ns/later", 0.2)
    queue.add_after("ns/now", 0)
    assert await _get(queue) == "ns/now"
    assert await _get(queue) == "ns/later"
    assert loop.time() - started >= 0.2
    await queue.shutdown()


async def test_timed_adds_come_out_in_deadline_order() -> None:
    queue = WorkQueue()
    queue.add_after("ns/c", 0.3)
    queue.add_after("ns/a", 0.1)
    queue.add_after("ns/b", 0.2)
    got = [await _get(queue) for _ in range(3)]
    assert got == ["ns/a", "ns/b", "ns/c"]
    await queue.shutdown()


async def test_backoff_doubles_per_failure_up_to_the_cap_and_forget_resets_it() -> None:
    queue = WorkQueue(base_backoff=0.001, max_backoff=0.004)
    delays = [queue.add_rate_limited("ns/a") for _ in range(4)]
    assert delays == [0.001, 0.002, 0.004, 0.004]
    assert queue.failures("ns/a") == 4
    assert queue.failures("ns/b") == 0
    assert await _get(queue) == "ns/a"  # four timed adds of one key: queued once
    await queue.done("ns/a")
    queue.forget("ns/a")
    assert queue.failures("ns/a") == 0
    assert queue.add_rate_limited("ns/a") == 0.001
    await queue.shutdown()


async def test_shutdown_releases_waiting_workers_and_ignores_later_adds() -> None:
    queue = WorkQueue()
    getters = [asyncio.create_task(queue.get()) for _ in range(3)]
    await asyncio.sleep(0)
    await queue.shutdown()
    assert await asyncio.wait_for(asyncio.gather(*getters), LIMIT) == [None, None, None]
    await queue.add("ns/a")
    assert len(queue) == 0
    assert await _get(queue) is None


@pytest.mark.parametrize("delay", [-1.0, 0.0])
async def test_add_after_with_no_delay_queues_at_once(delay: float) -> None:
    queue = WorkQueue()
    queue.add_after("ns/a", delay)
    assert await _get(queue) == "ns/a"
    await queue.shutdown()


async def test_add_soon_gathers_a_keys_changes_into_one_add_after_the_window() -> None:
    """The controller's watch events (issue 15): a burst of changes to one Rollout is one reconcile."""
    queue = WorkQueue(coalesce=0.2)
    for key in ("ns/a", "ns/b", "ns/a", "ns/a", "ns/b"):
        await queue.add_soon(key)
    assert len(queue) == 0  # nothing before the window has passed
    assert [await _get(queue) for _ in range(2)] == ["ns/a", "ns/b"]
    for key in ("ns/a", "ns/b"):
        await queue.done(key)
    with pytest.raises(TimeoutError):  # and each came once: no second timer for the repeats
        await asyncio.wait_for(queue.get(), 1.0)


async def test_add_soon_without_a_window_queues_at_once() -> None:
    queue = WorkQueue()
    await queue.add_soon("ns/a")
    assert len(queue) == 1 and await _get(queue) == "ns/a"


async def test_add_soon_while_worked_on_comes_back_once_after_done() -> None:
    queue = WorkQueue(coalesce=0.05)
    await queue.add("ns/a")
    assert await _get(queue) == "ns/a"
    for _ in range(3):
        await queue.add_soon("ns/a")  # changes while the reconcile runs
    await asyncio.sleep(0.2)  # the window passes while the key is still worked on: it waits
    assert len(queue) == 0
    await queue.done("ns/a")
    assert await _get(queue) == "ns/a"
    await queue.done("ns/a")
    assert len(queue) == 0
