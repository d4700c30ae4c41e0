"""Helpers for the install-path tests: the built helm and tofu, the chart, the Terraform files.

A missing tool fails the test with the reason and the command that builds it (never a skip).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from harness.k8s_cluster import ControlPlaneError, tool_path

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


def tofu_rc() -> Path:
    """The CLI config `make tools` writes beside tofu: providers only from its filesystem mirror."""
    rc = built("tofu").parent / "tofu.rc"
    if not rc.is_file():
        pytest.fail(
            f"{rc} is missing: run `make tools` (it writes it with the provider mirror)", pytrace=False
        )
    return rc


def terraform_providers() -> Path:
    """The provider mirror, with hashicorp/helm and hashicorp/kubernetes in it; fails the test with the
    recorded reason (the build's command and the module proxy's answer) when one could not be built."""
    mirror = built("tofu").parent / "providers"
    problems = []
    for name in ("helm", "kubernetes"):
        found = sorted((mirror / "registry.opentofu.org" / "hashicorp" / name).glob("*/linux_amd64/*"))
        if found:
            continue
        reason = mirror / f"{name}.unavailable"
        if reason.is_file():
            problems.append(reason.read_text())
        else:
            problems.append(f"terraform-provider-{name} is not in {mirror}: run `make tools`")
    if problems:
        pytest.fail("the Terraform providers are not built:\n" + "\n".join(problems), pytrace=False)
    return mirror


def tofu(
    workdir: Path, *args: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the built tofu in ``workdir`` with the mirror-only CLI config and no prompts."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "KUBE"))}
    full.update(TF_CLI_CONFIG_FILE=str(tofu_rc()), TF_IN_AUTOMATION="1", TF_INPUT="0", CHECKPOINT_DISABLE="1")
    full.update(env or {})
    cmd = [str(built("tofu")), *args]
    res = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=full, timeout=timeout)
    if check and res.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} (in {workdir}) exited {res.returncode}:\n{res.stdout}\n{res.stderr}",
            pytrace=False,
        )
    return res
