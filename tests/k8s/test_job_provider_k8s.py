"""The ``job`` metric provider on the real control plane: its Job is made into a Pod by
kube-controller-manager's Job controller, kwok's Stages finish the Pod (succeeded, or failed with
the ``pyrollouts.test/job-fail`` annotation), and the Job's conditions end the measurement."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import kube_helpers
import pytest

from harness.k8s_cluster import ControlPlane
from harness.kwok_stages import ANNOTATION_JOB_FAIL
from pyrollouts.controller import providers
from pyrollouts.model.cluster import NotFound, Obj
from pyrollouts.runtimes.kubernetes.cluster import KubeCluster, make_client

pytestmark = pytest.mark.k8s

_crds = pytest.fixture(name="crds")(kube_helpers.crds_fixture)

WAIT_SECONDS = 120.0


def job_metric(name: str, fail: bool = False) -> dict[str, Any]:
    annotations = {ANNOTATION_JOB_FAIL: "true"} if fail else {}
    return {
        "name": name,
        "provider": {
            "job": {
                "metadata": {"labels": {"team": "a"}},
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "metadata": {"annotations": annotations},
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "check", "image": "busybox", "command": ["true"]}],
                        },
                    },
                },
            }
        },
    }


async def _until(predicate: Any, what: str) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    last = None
    while time.monotonic() < deadline:
        last = await predicate()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} within {WAIT_SECONDS:g}s (last: {last!r})")


async def _finish(metric: dict[str, Any], m: dict[str, Any], ctx: providers.Context) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        out = await providers.resume(metric, m, ctx)
        return out if out["phase"] != "Running" else None

    result: dict[str, Any] = await _until(done, f"the measurement of {metric['name']} to finish")
    return result


def test_job_provider_on_kubernetes(control_plane: ControlPlane, namespace: str, crds: None) -> None:
    async def go() -> None:
        cluster = KubeCluster(make_client(str(control_plane.kubeconfig)), namespace=namespace)
        await cluster.start(timeout=120)
        try:
            run: Obj = await cluster.create(
                "AnalysisRun",
                {
                    "apiVersion": "argoproj.io/v1alpha1",
                    "kind": "AnalysisRun",
                    "metadata": {"name": "run-1", "namespace": namespace},
                    "spec": {"metrics": [job_metric("ok"), job_metric("bad", fail=True)]},
                },
            )
            uid = run["metadata"]["uid"]
            ctx = providers.Context(cluster=cluster, run=run)

            ok = job_metric("ok")
            m = await providers.measure(ok, ctx)
            assert m["phase"] == "Running" and m["metadata"] == {
                "job-name": f"{uid}.ok.1",
                "job-namespace": namespace,
            }, m
            job = await cluster.get("Job", namespace, f"{uid}.ok.1")
            assert job["metadata"]["labels"]["analysisrun.argoproj.io/uid"] == uid
            assert job["metadata"]["ownerReferences"][0]["uid"] == uid
            assert job["spec"]["template"]["metadata"]["labels"]["analysisrun.argoproj.io/uid"] == uid
            done = await _finish(ok, m, ctx)
            assert done["phase"] == "Successful", done
            # A create retried after a lost answer finds the run's own Job and takes it.
            again = await providers.measure(ok, ctx)
            assert again["phase"] == "Running" and again["metadata"] == m["metadata"], again

            bad = job_metric("bad", fail=True)
            m = await providers.measure(bad, ctx)
            done = await _finish(bad, m, ctx)
            assert done["phase"] == "Failed", done

            # terminate deletes the Job; the garbage collector removes its Pod
            m = await providers.measure(ok, providers.Context(cluster=cluster, run=_counted(run, "ok", 1)))
            name = m["metadata"]["job-name"]
            assert name == f"{uid}.ok.2"
            out = await providers.terminate(ok, m, ctx)
            assert out["phase"] == "Inconclusive", out

            async def gone() -> bool:
                try:
                    await cluster.get("Job", namespace, name)
                except NotFound:
                    return True
                return False

            await _until(gone, f"Job {name} to be deleted")

            # garbage collection keeps the newest Job of the metric (the other metric's stay)
            m = await providers.measure(ok, providers.Context(cluster=cluster, run=_counted(run, "ok", 2)))
            await providers.garbage_collect(ok, ctx, 1)
            left = sorted(j["metadata"]["name"] for j in await cluster.list("Job", namespace))
            assert left == sorted([f"{uid}.bad.1", f"{uid}.ok.3"]), left

            # deleting the AnalysisRun deletes its Jobs (owner references, kube's garbage collector)
            await cluster.delete("AnalysisRun", namespace, "run-1")

            async def no_jobs() -> bool:
                return not await cluster.list("Job", namespace)

            await _until(no_jobs, "the run's Jobs to be deleted with it")
        finally:
            await cluster.close()

    asyncio.run(go())


def _counted(run: Obj, metric: str, count: int) -> Obj:
    return {**run, "status": {"metricResults": [{"name": metric, "count": count}]}}
