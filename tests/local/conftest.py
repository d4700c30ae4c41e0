"""Fixtures for local-runtime tests: a temp state dir and a started LocalRuntime, with every pod
process they started killed at teardown.

``state_dir``: a fresh directory under /tmp (short, so unix socket paths inside it fit).
``runtime``: a started ``LocalRuntime`` on it with test timings (restart backoff 0.2 s doubling to
1 s, drain delay 0.05 s); stopped at teardown with its pods terminated.
``wait_for(predicate, timeout)``: poll an (async or plain) predicate until it returns a truthy
value; fails the test with the last value when the timeout passes.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pyrollouts.runtimes.local.runtime import LocalRuntime
from pyrollouts.runtimes.local.supervisor import Backoff, kill_all_pod_processes

TEST_BACKOFF = Backoff(base=0.2, cap=1.0, reset_after=600.0)


@pytest.fixture
def state_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="lrt", dir="/tmp"))
    yield d
    kill_all_pod_processes(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
async def runtime(state_dir: Path) -> AsyncIterator[LocalRuntime]:
    rt = LocalRuntime(state_dir, backoff=TEST_BACKOFF, drain_delay=0.05)
    await rt.start()
    yield rt
    await rt.stop(terminate_pods=True, grace=0.5)
    kill_all_pod_processes(state_dir)


async def _wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    loop = asyncio.get_running_loop()
    # At least 60 s whatever the test says: a loaded 2-core machine can be many times slower than
    # the test's own limit assumes, and the wait ends as soon as the condition holds.
    timeout = max(timeout, 60.0)
    deadline = loop.time() + timeout
    last: Any = None
    while True:
        last = predicate()
        if isinstance(last, Awaitable):
            last = await last
        if last:
            return last
        if loop.time() > deadline:
            pytest.fail(f"condition not met within {timeout}s (last value: {last!r})")
        await asyncio.sleep(interval)


@pytest.fixture
def wait_for() -> Callable[..., Awaitable[Any]]:
    return _wait_for


@pytest.fixture
def make_runtime(state_dir: Path) -> Iterator[Callable[..., LocalRuntime]]:
    """A factory of (not yet started) LocalRuntimes on ``state_dir`` with test timings; the test
    stops what it started, the fixture kills any pod process left behind."""

    def make(**kwargs: Any) -> LocalRuntime:
        kwargs.setdefault("backoff", TEST_BACKOFF)
        kwargs.setdefault("drain_delay", 0.05)
        return LocalRuntime(state_dir, **kwargs)

    yield make
    kill_all_pod_processes(state_dir)
