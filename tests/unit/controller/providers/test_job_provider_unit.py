"""The job provider's names and its reading of a Job and its Pods, on the local store (no processes:
tests/local/test_job_provider_local.py and tests/k8s/test_job_provider_k8s.py run real Jobs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyrollouts.controller.providers import job as jobprovider
from pyrollouts.runtimes.local.cluster import LocalCluster
from pyrollouts.runtimes.local.store import Store

UID = "0b6c5a52-3f7e-4f43-9d0b-0f4f8e0c2a11"
RUN: dict[str, Any] = {"metadata": {"name": "run-1", "namespace": "default", "uid": UID}}


def metric(name: str = "check") -> dict[str, Any]:
    pod = {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}
    return {"name": name, "provider": {"job": {"spec": {"backoffLimit": 0, "template": pod}}}}


def test_names_fit_63_characters() -> None:
    assert jobprovider.job_name(RUN, "check") == f"{UID}.check.1"
    counted = {**RUN, "status": {"metricResults": [{"name": "check", "count": 3, "error": 2}]}}
    assert jobprovider.job_name(counted, "check") == f"{UID}.check.6"
    long = "a-very-long-metric-name-that-goes-on-and-on"
    name = jobprovider.job_name(RUN, long)
    assert len(name) == 63 and name == f"{UID}.{long[: 63 - len(UID) - 3]}.1"


async def test_a_pod_that_cannot_start_is_inconclusive(tmp_path: Path) -> None:
    cluster = LocalCluster(Store(tmp_path / "state.db"))
    m = await jobprovider.measure(metric(), cluster, RUN)
    name = m["metadata"]["job-name"]
    pod = await cluster.create(
        "Pod",
        {"metadata": {"name": "p1", "namespace": "default", "labels": {"job-name": name}}, "spec": {}},
    )
    waiting = {"reason": "ImagePullBackOff", "message": "Back-off pulling image busybox"}
    await cluster.patch(
        "Pod",
        "default",
        pod["metadata"]["name"],
        {"status": {"containerStatuses": [{"name": "c", "state": {"waiting": waiting}}]}},
        subresource="status",
    )
    out = await jobprovider.resume(metric(), m, cluster, RUN)
    assert out["phase"] == "Inconclusive", out
    assert out["message"] == (
        "Pod p1, container c has terminal error (ImagePullBackOff): Back-off pulling image busybox"
    )


async def test_a_running_job_is_resumed_later_and_a_missing_reference_is_an_error(tmp_path: Path) -> None:
    cluster = LocalCluster(Store(tmp_path / "state.db"))
    m = await jobprovider.measure(metric(), cluster, RUN)
    out = await jobprovider.resume(metric(), {**m, "startedAt": "2020-01-01T00:00:00Z"}, cluster, RUN)
    assert out["phase"] == "Running" and out["resumeAt"] > m["resumeAt"], out
    out = await jobprovider.resume(metric(), {"phase": "Running"}, cluster, RUN)
    assert (out["phase"], out["message"]) == ("Error", "job metadata reference missing")


async def test_a_job_of_another_run_is_an_error(tmp_path: Path) -> None:
    cluster = LocalCluster(Store(tmp_path / "state.db"))
    await jobprovider.measure(metric(), cluster, RUN)
    other = {"metadata": {**RUN["metadata"], "name": "run-2", "uid": UID}}
    job = (await cluster.list("Job"))[0]
    await cluster.patch(
        "Job",
        "default",
        job["metadata"]["name"],
        {"metadata": {"ownerReferences": [{**job["metadata"]["ownerReferences"][0], "uid": "someone-else"}]}},
    )
    out = await jobprovider.measure(metric(), cluster, other)
    assert out["phase"] == "Error" and "another AnalysisRun" in out["message"], out
