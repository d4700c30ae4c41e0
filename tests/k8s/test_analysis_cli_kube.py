"""The analysis verbs of the CLI through its Kubernetes backend, on a real API server:
`get rollout` shows a Rollout's AnalysisRun under its revision, `get analysisrun` its metrics,
`terminate analysisrun` writes spec.terminate, `create analysisrun --from` makes a run from an
AnalysisTemplate (and refuses a missing arg, creating nothing).

The run is written as Argo's controller writes one (owner reference, the revision's hash label,
the step's rollout-type label, then a finished status through the status subresource)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kube_helpers
import pytest
from lightkube.types import PatchType

from harness import verbcases
from harness.k8s_cluster import ControlPlane
from harness.verbcases import NAME
from pyrollouts.cli.kube_backend import KubeBackend
from pyrollouts.cli.main import run_captured
from pyrollouts.runtimes.kubernetes.resources import RESOURCES

_crds = pytest.fixture(name="crds")(kube_helpers.crds_fixture)

TEMPLATE: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "AnalysisTemplate",
    "metadata": {"name": "error-rate"},
    "spec": {
        "args": [{"name": "service"}],
        "metrics": [
            {
                "name": "error-rate",
                "successCondition": "result <= 0.05",
                "provider": {"web": {"url": "http://127.0.0.1:9/{{args.service}}"}},
            }
        ],
    },
}


def _cli(control_plane: ControlPlane, *args: str) -> tuple[int, str, str]:
    return run_captured(["--backend", "kubernetes", "--kubeconfig", str(control_plane.kubeconfig), *args])


def _seed(backend: KubeBackend, ns: str) -> tuple[dict[str, Any], str]:
    """The Rollout (status through the subresource) and its revision-1 ReplicaSet: (Rollout, hash)."""
    ro = verbcases.rollout(ns)
    res = RESOURCES["Rollout"]
    backend.client.create(res({k: v for k, v in ro.items() if k != "status"}), namespace=ns)
    backend.client.patch(res.Status, NAME, {"status": ro["status"]}, namespace=ns, patch_type=PatchType.MERGE)
    stored = backend.get("rollout", ns, NAME)
    rs = verbcases.replicaset(ns, stored, 1)
    backend.client.create(RESOURCES["ReplicaSet"](rs), namespace=ns)
    return stored, rs["metadata"]["labels"]["rollouts-pod-template-hash"]


def _run(backend: KubeBackend, ns: str, ro: dict[str, Any], h: str) -> str:
    name = f"{NAME}-{h}-1-pre"
    run = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {
            "name": name,
            "labels": {"rollouts-pod-template-hash": h, "rollout-type": "PrePromotion"},
            "ownerReferences": [
                {
                    "apiVersion": "argoproj.io/v1alpha1",
                    "kind": "Rollout",
                    "name": NAME,
                    "uid": ro["metadata"]["uid"],
                }
            ],
        },
        "spec": {
            "metrics": [
                {
                    "name": "error-rate",
                    "successCondition": "result <= 0.05",
                    "provider": {"web": {"url": "http://x/"}},
                }
            ]
        },
    }
    backend.create("AnalysisRun", ns, run)
    status = {
        "phase": "Inconclusive",
        "message": "Metric assessed Inconclusive due to inconclusive (1) > inconclusiveLimit (0)",
        "metricResults": [
            {
                "name": "error-rate",
                "phase": "Inconclusive",
                "count": 2,
                "successful": 1,
                "inconclusive": 1,
                "measurements": [
                    {"phase": "Successful", "value": "0.01", "startedAt": "2026-01-01T12:00:00Z"},
                    {"phase": "Inconclusive", "value": "0.07", "startedAt": "2026-01-01T12:00:10Z"},
                ],
            }
        ],
    }
    backend.client.patch(
        RESOURCES["AnalysisRun"].Status, name, {"status": status}, namespace=ns, patch_type=PatchType.MERGE
    )
    return name


def test_analysis_verbs_through_the_kube_backend(
    control_plane: ControlPlane, crds: None, tmp_path: Path
) -> None:
    backend = KubeBackend(str(control_plane.kubeconfig))
    ns = control_plane.create_namespace("ar-cli")
    try:
        ro, h = _seed(backend, ns)
        name = _run(backend, ns, ro, h)

        code, out, err = _cli(control_plane, "get", "rollout", NAME, "-n", ns)
        assert code == 0, err
        line = next(x for x in out.splitlines() if f"\u03b1 {name}" in x)
        cells = re.split(r"(?<=\S)\s{2,}", line.rstrip())
        assert (cells[0], cells[1], cells[2], cells[4]) == (
            f"   └──\u03b1 {name}",
            "AnalysisRun",
            "? Inconclusive",
            "✔ 1,? 1",
        )

        code, out, err = _cli(control_plane, "get", "analysisrun", name, "-n", ns)
        assert code == 0, err
        assert "Status:          ? Inconclusive" in out.splitlines()
        assert "├──#1       ✔ Successful    0.01   2026-01-01T12:00:00Z" in out.splitlines(), out

        code, out, err = _cli(control_plane, "terminate", "analysisrun", name, "-n", ns)
        assert (code, out) == (0, f"analysisRun '{name}' terminated\n"), err
        assert backend.get("analysisrun", ns, name)["spec"]["terminate"] is True

        # the CLI's apply writes analysis kinds too (templates before Rollouts)
        manifest = tmp_path / "template.yaml"
        manifest.write_text(json.dumps(TEMPLATE))
        code, out, err = _cli(control_plane, "apply", "-f", str(manifest), "-n", ns)
        assert (code, out) == (0, "analysistemplate.argoproj.io/error-rate created\n"), err
        assert "skipped" not in err
        code, out, err = _cli(control_plane, "create", "analysisrun", "--from", "error-rate", "-n", ns)
        assert code == 1 and "args.service was not resolved" in err and "-a service=VALUE" in err, err
        assert len(backend.list("analysisrun", ns)) == 1  # nothing created
        code, out, err = _cli(
            control_plane, "create", "analysisrun", "--from", "error-rate", "-a", "service=web", "-n", ns
        )
        assert code == 0, err
        m = re.fullmatch(r"analysisrun\.argoproj\.io/(error-rate-[a-z0-9]{5}) created\n", out)
        assert m, out
        assert backend.get("analysisrun", ns, m.group(1))["spec"]["args"] == [
            {"name": "service", "value": "web"}
        ]
    finally:
        control_plane.delete_namespace(ns)
