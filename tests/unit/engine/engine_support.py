"""Helpers of the engine's table tests: the corrected seed manifest, and edits of a simulated
cluster's Rollout (reach a state on the simulated cluster, then plan once)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from harness.simcluster import SimCluster
from pyrollouts.model.hash import pod_template_hash
from pyrollouts.model.useractions import apply_merge_patch, set_env

MANIFEST = Path(__file__).resolve().parents[2] / "scenarios" / "manifests" / "super-hello.yaml"


def manifest(rollout_patch: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The corrected seed manifest, with an optional merge patch on the Rollout."""
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
    if rollout_patch:
        docs = [apply_merge_patch(d, rollout_patch) if d["kind"] == "Rollout" else d for d in docs]
    return docs


def template_hash(sim: SimCluster) -> str:
    """The pod-template hash of the simulated cluster's Rollout as it is now."""
    assert sim.rollout is not None
    return pod_template_hash(sim.rollout["spec"]["template"])


def set_welcome(sim: SimCluster, value: str) -> None:
    """A new revision on the simulated cluster: WELCOME=value in every container."""
    assert sim.rollout is not None
    for p in set_env(copy.deepcopy(sim.rollout), "*", "WELCOME", value):
        sim.patch_rollout(p.body, p.subresource)
