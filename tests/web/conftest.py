"""Fixtures of the web tests: a real local server per module (see webharness.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from webharness import web_server

from harness.serverharness import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real local server shared by one module's tests (each test uses its own namespace)."""
    s = web_server(tmp_path_factory.mktemp("web") / "state")
    try:
        yield s
    finally:
        s.stop()
