"""Fixtures of the CLI tests: a real `rollouts server` per module (harness.serverharness).

The server runs as a subprocess exactly as a user starts it; teardown asks it to stop with its pods
and proxy (POST /api/shutdown {"all": true}), then makes sure no process it started is left.
Helpers the tests import live in cli_support.py (a conftest is not importable by name: two of them
clash when pytest collects several test directories at once)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.serverharness import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real local server shared by the tests of one module (each test uses its own namespace)."""
    s = ServerProcess(tmp_path_factory.mktemp("cli") / "state")
    try:
        yield s
    finally:
        s.stop()
