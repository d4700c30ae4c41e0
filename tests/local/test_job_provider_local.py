"""The ``job`` metric provider on the local runtime: its Job is stored like any object and the
runtime's Job controller runs the Job's container as a real process to completion."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

from pyrollouts.controller import providers
from pyrollouts.controller.providers import job as jobprovider
from pyrollouts.model.cluster import NotFound, Obj
from pyrollouts.runtimes.local.runtime import LocalRuntime
from pyrollouts.runtimes.local.supervisor import find_pod_processes

WaitFor = Callable[..., Awaitable[Any]]


def job_metric(script: str, name: str = "check", backoff_limit: int = 0, **container: Any) -> dict[str, Any]:
    return {
        "name": name,
        "provider": {
            "job": {
                "metadata": {"labels": {"team": "a"}, "annotations": {"note": "kept"}},
                "spec": {
                    "backoffLimit": backoff_limit,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [
                                {
                                    "name": "check",
                                    "image": "python",
                                    "command": [sys.executable, "-c", script],
                                }
                                | container
                            ],
                        }
                    },
                },
            }
        },
    }


async def new_run(rt: LocalRuntime, metric: dict[str, Any]) -> Obj:
    return await rt.cluster.create(
        "AnalysisRun",
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AnalysisRun",
            "metadata": {"name": "run-1", "namespace": "default"},
            "spec": {"metrics": [metric]},
        },
    )


async def until_done(
    rt: LocalRuntime, metric: dict[str, Any], m: dict[str, Any], run: Obj, wait_for: WaitFor
) -> Any:
    async def resumed() -> dict[str, Any] | None:
        out = await jobprovider.resume(metric, m, rt.cluster, run)
        return out if out["phase"] != "Running" else None

    return await wait_for(resumed, timeout=60)


async def test_job_succeeds(runtime: LocalRuntime, wait_for: WaitFor) -> None:
    script = "import os, sys; print('checking', os.environ['WANT']); sys.exit(os.environ['WANT'] != 'ok')"
    metric = job_metric(script, env=[{"name": "WANT", "value": "ok"}])
    run = await new_run(runtime, metric)
    m = await providers.measure(metric, providers.Context(cluster=runtime.cluster, run=run))
    uid = run["metadata"]["uid"]
    assert m["phase"] == "Running" and m["resumeAt"] == m["startedAt"], m
    assert m["metadata"] == {"job-name": f"{uid}.check.1", "job-namespace": "default"}
    job = await runtime.cluster.get("Job", "default", f"{uid}.check.1")
    meta = job["metadata"]
    assert meta["labels"] == {"team": "a", "analysisrun.argoproj.io/uid": uid}
    assert meta["annotations"] == {
        "note": "kept",
        "analysisrun.argoproj.io/name": "run-1",
        "analysisrun.argoproj.io/namespace": "default",
        "analysisrun.argoproj.io/metric-name": "check",
    }
    assert meta["ownerReferences"][0] | {"uid": uid} == {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisRun",
        "name": "run-1",
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    ctx = providers.Context(cluster=runtime.cluster, run=run)

    async def finished() -> dict[str, Any] | None:
        out = await providers.resume(metric, m, ctx)
        return out if out["phase"] != "Running" else None

    done = await wait_for(finished, timeout=60)
    assert done["phase"] == "Successful" and done["finishedAt"] and "resumeAt" not in done, done
    job = await runtime.cluster.get("Job", "default", f"{uid}.check.1")
    assert job["status"]["succeeded"] == 1 and job["status"]["conditions"][0]["type"] == "Complete"
    log = runtime.state_dir / "jobs" / "default" / f"{uid}.check.1" / "check.log"
    assert log.read_text() == "checking ok\n"


async def test_job_fails_after_its_backoff_limit(runtime: LocalRuntime, wait_for: WaitFor) -> None:
    metric = job_metric("import sys; print('error rate 0.2 > 0.05'); sys.exit(3)", backoff_limit=1)
    run = await new_run(runtime, metric)
    m = await jobprovider.measure(metric, runtime.cluster, run)
    done = await until_done(runtime, metric, m, run, wait_for)
    assert done["phase"] == "Failed", done
    job = await runtime.cluster.get("Job", "default", m["metadata"]["job-name"])
    cond = job["status"]["conditions"][0]
    assert (cond["type"], cond["reason"], job["status"]["failed"]) == ("Failed", "BackoffLimitExceeded", 2)
    assert cond["message"].endswith("(last attempt: exit code 3: error rate 0.2 > 0.05)"), cond


async def test_a_job_it_cannot_run_fails_with_the_reason(runtime: LocalRuntime, wait_for: WaitFor) -> None:
    metric = job_metric("pass")
    pod_spec = metric["provider"]["job"]["spec"]["template"]["spec"]
    pod_spec["containers"].append({"name": "second", "image": "python", "command": ["true"]})
    run = await new_run(runtime, metric)
    m = await jobprovider.measure(metric, runtime.cluster, run)
    assert (await until_done(runtime, metric, m, run, wait_for))["phase"] == "Failed"
    job = await runtime.cluster.get("Job", "default", m["metadata"]["job-name"])
    assert "exactly one container" in job["status"]["conditions"][0]["message"]


async def test_terminate_stops_the_process(runtime: LocalRuntime, wait_for: WaitFor) -> None:
    metric = job_metric("import time; time.sleep(300)")
    run = await new_run(runtime, metric)
    m = await jobprovider.measure(metric, runtime.cluster, run)
    job = await runtime.cluster.get("Job", "default", m["metadata"]["job-name"])
    job_uid = job["metadata"]["uid"]

    def running() -> bool:
        return any(p.pod_uid == job_uid for p in find_pod_processes(runtime.state_dir))

    await wait_for(running)
    assert (await jobprovider.resume(metric, m, runtime.cluster, run))["phase"] == "Running"
    out = await jobprovider.terminate(metric, m, runtime.cluster, run)
    assert out["phase"] == "Inconclusive" and out["finishedAt"], out
    await wait_for(lambda: not running())
    try:
        await runtime.cluster.get("Job", "default", m["metadata"]["job-name"])
        raise AssertionError("the Job is still there")
    except NotFound:
        pass
    # A terminated measurement's Job is gone: resuming it is an Error naming it.
    again = await jobprovider.resume(metric, m, runtime.cluster, run)
    assert again["phase"] == "Error" and m["metadata"]["job-name"] in again["message"], again


async def test_deleting_the_run_stops_its_job(runtime: LocalRuntime, wait_for: WaitFor) -> None:
    metric = job_metric("import time; time.sleep(300)")
    run = await new_run(runtime, metric)
    m = await jobprovider.measure(metric, runtime.cluster, run)
    job_uid = (await runtime.cluster.get("Job", "default", m["metadata"]["job-name"]))["metadata"]["uid"]
    await wait_for(lambda: any(p.pod_uid == job_uid for p in find_pod_processes(runtime.state_dir)))
    await runtime.cluster.delete("AnalysisRun", "default", "run-1")
    assert await runtime.cluster.list("Job") == []
    await wait_for(lambda: not any(p.pod_uid == job_uid for p in find_pod_processes(runtime.state_dir)))


async def test_garbage_collect_keeps_the_newest(runtime: LocalRuntime, wait_for: WaitFor) -> None:
    metric, other = job_metric("pass"), job_metric("pass", name="other")
    run = await new_run(runtime, metric)
    names = []
    for n in range(3):
        counted = {**run, "status": {"metricResults": [{"name": "check", "count": n}]}}
        names.append((await jobprovider.measure(metric, runtime.cluster, counted))["metadata"]["job-name"])
    await jobprovider.measure(other, runtime.cluster, run)
    assert [n.rsplit(".", 1)[1] for n in names] == ["1", "2", "3"]
    await jobprovider.garbage_collect(metric, runtime.cluster, run, 1)
    left = sorted(j["metadata"]["name"] for j in await runtime.cluster.list("Job"))
    assert left == sorted([names[2], f"{run['metadata']['uid']}.other.1"])


async def test_a_job_interrupted_by_a_restart_runs_again(
    make_runtime: Callable[..., LocalRuntime], wait_for: WaitFor
) -> None:
    rt = make_runtime()
    await rt.start()
    marker = rt.state_dir / "go"
    metric = job_metric(
        f"import pathlib, time\nwhile not pathlib.Path({str(marker)!r}).exists(): time.sleep(0.05)"
    )
    run = await new_run(rt, metric)
    m = await jobprovider.measure(metric, rt.cluster, run)
    job_uid = (await rt.cluster.get("Job", "default", m["metadata"]["job-name"]))["metadata"]["uid"]
    await wait_for(lambda: any(p.pod_uid == job_uid for p in find_pod_processes(rt.state_dir)))
    await rt.stop()
    rt = make_runtime()
    await rt.start()
    try:
        marker.touch()
        assert (await until_done(rt, metric, m, run, wait_for))["phase"] == "Successful"
    finally:
        await rt.stop(terminate_pods=True, grace=0.5)
