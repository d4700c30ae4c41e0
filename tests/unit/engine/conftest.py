"""Fixtures of the engine's table tests (helpers the tests import live in engine_support.py: a
conftest is not importable by name, two of them clash when pytest collects several directories)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from engine_support import manifest

from harness.simcluster import SimCluster


@pytest.fixture
def new_sim() -> Callable[..., SimCluster]:
    def make(rollout_patch: dict[str, Any] | None = None, *, settle: bool = True) -> SimCluster:
        sim = SimCluster()
        sim.apply_objects(manifest(rollout_patch))
        if settle:
            sim.settle()
        return sim

    return make
