"""The chart's tests need the helm that `make tools` builds: they are marked ``k8s`` with the rest of
what needs those tools (so `make test-fast`, which does not build them, leaves them out)."""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/deploy with ``k8s``."""
    for item in items:
        if _HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.k8s)
