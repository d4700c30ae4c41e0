"""The operator's periodic resync (Argo's --rollout-resync) queues every Rollout again."""

from __future__ import annotations

import asyncio

from pyrollouts.daemons.operator import resync_every


class _Counting:
    def __init__(self) -> None:
        self.requeues = 0

    async def requeue_all(self) -> None:
        self.requeues += 1


async def test_each_period_queues_everything_again() -> None:
    ctrl = _Counting()
    task = asyncio.create_task(resync_every(ctrl, 0.01))
    try:
        async with asyncio.timeout(30):
            while ctrl.requeues < 3:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert ctrl.requeues >= 3


async def test_zero_turns_it_off() -> None:
    ctrl = _Counting()
    await asyncio.wait_for(resync_every(ctrl, 0), 5)
    assert ctrl.requeues == 0
