"""The analysis kinds on the local runtime: a manifest's AnalysisTemplate, ClusterAnalysisTemplate
and AnalysisRun are applied (all or nothing, linted first) into the real SQLite store like any other
kind; an AnalysisRun's status is a subresource."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pyrollouts.model.cluster import Obj
from pyrollouts.runtimes.local.cluster import LocalCluster
from pyrollouts.runtimes.local.store import Store
from pyrollouts.server.apply import ApplyRefused, apply_objects, check_text

MANIFEST = """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: error-rate}
spec:
  args: [{name: service}]
  metrics:
  - name: error-rate
    interval: 10s
    count: 3
    successCondition: result <= 0.01
    provider:
      web: {url: "http://127.0.0.1:9/{{args.service}}", jsonPath: "{$.errorRate}"}
---
apiVersion: argoproj.io/v1alpha1
kind: ClusterAnalysisTemplate
metadata: {name: always, namespace: ignored}
spec:
  metrics:
  - name: ok
    provider: {web: {url: "http://127.0.0.1:9/"}}
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata: {name: run-1}
spec:
  metrics:
  - name: ok
    provider: {web: {url: "http://127.0.0.1:9/"}}
status: {phase: Successful}
"""


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    store = Store(tmp_path / "state.db")
    yield LocalCluster(store)
    store.close()


def no_refusals(objects: list[Obj]) -> list[str]:
    return []


async def test_apply_stores_the_analysis_kinds(cluster: LocalCluster) -> None:
    objects, findings = check_text(MANIFEST, "analysis.yaml", "shop")
    assert [f for f in findings if f["severity"] == "error"] == []
    assert not any("not acted on" in f["text"] for f in findings)
    results = await apply_objects(cluster, no_refusals, objects, "shop", create_only=False, findings=findings)
    assert [(r["kind"], r["result"]) for r in results] == [
        ("AnalysisTemplate", "created"),
        ("ClusterAnalysisTemplate", "created"),
        ("AnalysisRun", "created"),
    ]
    template = await cluster.get("AnalysisTemplate", "shop", "error-rate")
    assert template["apiVersion"] == "argoproj.io/v1alpha1" and template["metadata"]["uid"]
    assert template["spec"]["metrics"][0]["provider"]["web"]["jsonPath"] == "{$.errorRate}"
    cat = await cluster.get("ClusterAnalysisTemplate", "", "always")
    assert "namespace" not in cat["metadata"]
    run = await cluster.get("AnalysisRun", "shop", "run-1")
    assert "status" not in run  # a manifest's status is not the user's to set
    # the status is a subresource: the controller writes it, an object write leaves it
    await cluster.patch(
        "AnalysisRun", "shop", "run-1", {"status": {"phase": "Running"}}, subresource="status"
    )
    await cluster.patch(
        "AnalysisRun", "shop", "run-1", {"spec": {"terminate": True}, "status": {"phase": "x"}}
    )
    run = await cluster.get("AnalysisRun", "shop", "run-1")
    assert run["status"] == {"phase": "Running"} and run["spec"]["terminate"] is True
    # a second apply of the same manifest changes nothing
    again = await apply_objects(cluster, no_refusals, objects, "shop", create_only=False, findings=findings)
    assert {r["result"] for r in again} == {"unchanged"}
    assert [o["metadata"]["name"] for o in await cluster.list("AnalysisTemplate", "shop")] == ["error-rate"]


async def test_a_bad_template_is_refused_with_nothing_stored(cluster: LocalCluster) -> None:
    bad = MANIFEST.replace("successCondition: result <= 0.01", "successCondition: result <=")
    objects, findings = check_text(bad, "analysis.yaml", "shop")
    with pytest.raises(ApplyRefused) as refused:
        await apply_objects(cluster, no_refusals, objects, "shop", create_only=False, findings=findings)
    assert "analysis.yaml:10" in str(refused.value) and "successCondition does not parse" in str(
        refused.value
    )
    for kind in ("AnalysisTemplate", "ClusterAnalysisTemplate", "AnalysisRun"):
        assert await cluster.list(kind) == []
