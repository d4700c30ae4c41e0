"""Helpers for the install-path tests: the built helm and tofu, the chart, the Terraform files.

A missing tool fails the test with the reason and the command that builds it (never a skip).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pyrollouts.testing.k8s_cluster import ControlPlaneError, tool_path

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "pyrollouts"
TERRAFORM = REPO / "deploy" / "terraform"
GOLDEN = Path(__file__).resolve().parent / "golden"


def built(name: str) -> Path:
    """The path of a tool `make tools` builds; fails the test (with what to run) if it is missing."""
    try:
        return tool_path(name)
    except ControlPlaneError as exc:
        pytest.fail(str(exc), pytrace=False)


def helm_env(home: Path) -> dict[str, str]:
    """An environment in which helm keeps its cache, config and data under ``home`` only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_") and k != "KUBECONFIG"}
    env.update(
        HELM_CACHE_HOME=str(home / "cache"),
        HELM_CONFIG_HOME=str(home / "config"),
        HELM_DATA_HOME=str(home / "data"),
    )
    return env


def helm(
    home: Path, *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the built helm; with ``check`` a non-zero exit fails the test with its output."""
    cmd = [str(built("helm")), *args]
    res = subprocess.run(cmd, capture_output=True, text=True, env=helm_env(home), timeout=timeout)
    if check and res.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {res.returncode}:\n{res.stdout}\n{res.stderr}", pytrace=False)
    return res
