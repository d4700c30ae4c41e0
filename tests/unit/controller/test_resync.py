"""The operator's periodic resync (Argo's --rollout-resync) queues every Rollout again, and its
caches hold every kind the rollout controller watches."""

from __future__ import annotations

import asyncio

from pyrollouts.controller.controller import ANALYSIS_KINDS, WATCHED_KINDS, WORKLOAD_KINDS
from pyrollouts.daemons.operator import resync_every
from pyrollouts.runtimes.kubernetes.cluster import CONTROLLER_CACHED_KINDS


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


def test_the_operator_caches_every_kind_the_controller_follows() -> None:
    """The rollout controller falls back to fewer watches when the cluster's caches lack a kind; the
    operator's must hold them all, or a workloadRef Deployment change waits for the resync
    (tests/k8s/test_kube_runtime.py shows the change arriving through the watch)."""
    assert {*WATCHED_KINDS, *WORKLOAD_KINDS, *ANALYSIS_KINDS} <= set(CONTROLLER_CACHED_KINDS)
