"""Fixtures for tests against the real control plane (see harness.k8s_cluster).

``control_plane`` (session): one control plane for the whole run. ``namespace``: a fresh namespace per
test, deleted afterwards. ``kube``: a lightkube Client for that namespace. Every test in this folder
is marked ``k8s``. If the tools are not built or a component fails to start, the tests fail with the
reason (never skip): run `make tools`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lightkube import Client, KubeConfig

from harness.k8s_cluster import ControlPlane, ControlPlaneError

_active: ControlPlane | None = None
_HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/k8s with ``k8s`` (so ``-m "not k8s"`` leaves them out)."""
    for item in items:
        if _HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.k8s)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On a failing k8s test, attach the tail of each component's log to the report."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed and _active is not None and "control_plane" in getattr(item, "fixturenames", ()):
        report.sections.append(("control plane logs (tails)", _active.logs_tail()))


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """A running control plane, shared by the session; fails (never skips) if it cannot start."""
    global _active
    cp = ControlPlane(nodes=3)
    try:
        cp.start()
    except ControlPlaneError as exc:
        pytest.fail(f"the Kubernetes control plane did not start: {exc}", pytrace=False)
    print(f"\ncontrol plane up:\n{cp.describe()}")
    _active = cp
    try:
        yield cp
    finally:
        _active = None
        cp.stop()


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    """A fresh namespace (with its default ServiceAccount) for one test; deleted after it."""
    control_plane.check_alive()
    name = control_plane.create_namespace()
    yield name
    control_plane.delete_namespace(name)


@pytest.fixture
def kube(control_plane: ControlPlane, namespace: str) -> Iterator[Client]:
    """A lightkube Client logged in as the admin, defaulting to the test's namespace."""
    client = Client(
        KubeConfig.from_file(str(control_plane.kubeconfig)),
        namespace=namespace,
        field_manager="pyrollouts-tests",
    )
    yield client
    client.close()
