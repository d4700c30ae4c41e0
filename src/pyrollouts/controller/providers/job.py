"""The ``job`` metric provider, as Argo's: a measurement is a Kubernetes Job that runs to completion.

Over the ``Cluster`` protocol, so the same code runs on both runtimes (Kubernetes: the API server's
Job controller makes its Pod; local: the runtime's Job controller runs its container as a process).

- ``measure`` creates the Job and returns a ``Running`` measurement whose ``metadata`` names it
  (``job-name``, ``job-namespace``) and whose ``resumeAt`` is now. The Job is named as Argo names
  it, ``<run uid>.<metric>.<n>`` (n: the metric's measurements so far, count + error, plus one;
  the metric name is cut so the name fits 63 characters), in the run's namespace, owned by the
  AnalysisRun (a controller reference), labelled ``analysisrun.argoproj.io/uid`` (its pods too) and
  annotated with the run's name, namespace and the metric's name. ``provider.job.metadata``'s
  labels and annotations are kept. A Job of that name that the run already owns (a create retried
  after a lost answer) is taken as the measurement's; any other is an Error.
- ``resume`` reads the Job: a ``Complete`` condition is ``Successful``, ``Failed`` is ``Failed``;
  a Pod of the Job whose container cannot start (ErrImagePull, ImagePullBackOff, InvalidImageName)
  is ``Inconclusive`` with the reason; otherwise still ``Running``, to be resumed after a delay that
  grows with the time it has run (sqrt(2 * elapsed) seconds, Argo's).
- ``terminate`` deletes the Job (its Pods follow) and ends the measurement ``Inconclusive``.
- ``garbage_collect`` deletes the run's oldest Jobs of the metric beyond a limit.

Nothing is raised for what the cluster refuses: that is an Error measurement with the reason.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from ...model import names
from ...model.analysis import PHASE_ERROR, PHASE_FAILED, PHASE_INCONCLUSIVE, PHASE_RUNNING, PHASE_SUCCESSFUL
from ...model.cluster import Cluster, ClusterError, Conflict, NotFound, Obj
from ...model.timefmt import parse_time, rfc3339
from .common import utc_now

#: Measurement metadata keys naming the measurement's Job (Argo's).
JOB_NAME_KEY = "job-name"
JOB_NAMESPACE_KEY = "job-namespace"
#: The Job's annotations and label tying it to its AnalysisRun and metric (Argo's).
RUN_NAME_ANNOTATION = "analysisrun.argoproj.io/name"
RUN_NAMESPACE_ANNOTATION = "analysisrun.argoproj.io/namespace"
METRIC_NAME_ANNOTATION = "analysisrun.argoproj.io/metric-name"
RUN_UID_LABEL = "analysisrun.argoproj.io/uid"
#: A Job's name ends up in its Pods' ``job-name`` label: at most 63 characters.
NAME_LIMIT = 63
#: Waiting reasons of a Pod's container after which the Job never progresses on its own.
TERMINAL_WAITING_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName"})


def job_name(run: Mapping[str, Any], metric_name: str) -> str:
    """The name of the metric's next Job in this run (Argo's ``newJobName``)."""
    uid = str((run.get("metadata") or {}).get("uid") or "")
    n = _next_id(run, metric_name)
    name = f"{uid}.{metric_name}.{n}"
    over = len(name) - NAME_LIMIT
    if over > 0:
        name = f"{uid}.{metric_name[: max(0, len(metric_name) - over)]}.{n}"
    return name


def _next_id(run: Mapping[str, Any], metric_name: str) -> int:
    for result in (run.get("status") or {}).get("metricResults") or []:
        if result.get("name") == metric_name:
            return int(result.get("count") or 0) + int(result.get("error") or 0) + 1
    return 1


def new_job(metric: Mapping[str, Any], run: Mapping[str, Any]) -> Obj:
    """The Job a measurement of ``metric`` creates for ``run`` (see the module docstring)."""
    job = (metric.get("provider") or {}).get("job") or {}
    meta = run.get("metadata") or {}
    spec = copy.deepcopy(dict(job.get("spec") or {}))
    given = job.get("metadata") or {}
    labels = {**(given.get("labels") or {}), RUN_UID_LABEL: str(meta.get("uid") or "")}
    annotations = {
        **(given.get("annotations") or {}),
        RUN_NAME_ANNOTATION: str(meta.get("name") or ""),
        RUN_NAMESPACE_ANNOTATION: str(meta.get("namespace") or ""),
        METRIC_NAME_ANNOTATION: str(metric.get("name") or ""),
    }
    template = spec.setdefault("template", {})
    pod_meta = template.setdefault("metadata", {})
    pod_meta["labels"] = {**(pod_meta.get("labels") or {}), RUN_UID_LABEL: labels[RUN_UID_LABEL]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(run, str(metric.get("name") or "")),
            "namespace": meta.get("namespace") or "default",
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": f"{names.GROUP}/{names.VERSION}",
                    "kind": "AnalysisRun",
                    "name": meta.get("name"),
                    "uid": meta.get("uid"),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }


def _error(measurement: Mapping[str, Any], message: str, now: datetime) -> dict[str, Any]:
    out = dict(measurement)
    out["phase"] = PHASE_ERROR
    out["message"] = message
    out.setdefault("finishedAt", rfc3339(now))
    return out


def _owner_uid(job: Mapping[str, Any]) -> str | None:
    for ref in (job.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


async def measure(
    metric: Mapping[str, Any],
    cluster: Cluster,
    run: Mapping[str, Any],
    *,
    clock: Callable[[], datetime] = utc_now,
) -> dict[str, Any]:
    """Start one measurement of a ``job`` metric: create its Job; a ``Running`` measurement naming
    the Job (``metadata``) with ``resumeAt`` now, or an Error measurement when it cannot be made."""
    now = clock()
    measurement: dict[str, Any] = {"phase": PHASE_RUNNING, "startedAt": rfc3339(now)}
    job = new_job(metric, run)
    ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
    try:
        created = await cluster.create("Job", job)
    except Conflict as e:
        try:
            existing = await cluster.get("Job", ns, name)
        except ClusterError:
            return _error(measurement, str(e), now)
        if _owner_uid(existing) != str((run.get("metadata") or {}).get("uid")):
            return _error(measurement, f"{e} (and it belongs to another AnalysisRun)", now)
        created = existing
    except ClusterError as e:
        return _error(measurement, f"job {ns}/{name}: {e}", now)
    meta = created.get("metadata") or {}
    measurement["metadata"] = {
        JOB_NAME_KEY: meta.get("name", name),
        JOB_NAMESPACE_KEY: meta.get("namespace", ns),
    }
    measurement["resumeAt"] = rfc3339(now)
    return measurement


def _job_ref(measurement: Mapping[str, Any], run: Mapping[str, Any]) -> tuple[str, str] | None:
    meta = measurement.get("metadata") or {}
    if not meta.get(JOB_NAME_KEY):
        return None
    default_ns = (run.get("metadata") or {}).get("namespace") or "default"
    return str(meta.get(JOB_NAMESPACE_KEY) or default_ns), str(meta[JOB_NAME_KEY])


def _finished_phase(job: Mapping[str, Any]) -> str | None:
    phase = None
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") not in (None, "True"):
            continue
        if cond.get("type") == "Complete":
            phase = PHASE_SUCCESSFUL
        elif cond.get("type") == "Failed":
            phase = PHASE_FAILED
    return phase


def _stuck_pod(pods: list[Obj]) -> str | None:
    """Why a Pod of the Job will never run (a container that cannot start), else None."""
    for pod in pods:
        status = pod.get("status") or {}
        for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in TERMINAL_WAITING_REASONS:
                return (
                    f"Pod {(pod.get('metadata') or {}).get('name')}, container {cs.get('name')} has "
                    f"terminal error ({waiting['reason']}): {waiting.get('message') or ''}"
                ).rstrip(": ")
    return None


async def resume(
    metric: Mapping[str, Any],
    measurement: Mapping[str, Any],
    cluster: Cluster,
    run: Mapping[str, Any],
    *,
    clock: Callable[[], datetime] = utc_now,
) -> dict[str, Any]:
    """The measurement once more: Successful or Failed when its Job has finished, Inconclusive when
    its Pod can never start, else still Running with a later ``resumeAt``."""
    now = clock()
    ref = _job_ref(measurement, run)
    if ref is None:
        return _error(measurement, "job metadata reference missing", now)
    ns, name = ref
    try:
        job = await cluster.get("Job", ns, name)
    except ClusterError as e:
        return _error(measurement, str(e), now)
    out = dict(measurement)
    phase = _finished_phase(job)
    if phase is not None:
        out["phase"] = phase
        out["finishedAt"] = rfc3339(now)
        out.pop("resumeAt", None)
        return out
    try:
        pods = await cluster.list("Pod", ns, {"job-name": name})
    except ClusterError as e:
        return _error(measurement, str(e), now)
    stuck = _stuck_pod(pods)
    if stuck is not None:
        out.update(phase=PHASE_INCONCLUSIVE, message=stuck, finishedAt=rfc3339(now))
        out.pop("resumeAt", None)
        return out
    started = parse_time(str(measurement.get("startedAt") or "")) or now
    elapsed = max(0.0, (now - started).total_seconds())
    out["resumeAt"] = rfc3339(now + timedelta(seconds=math.sqrt(2 * elapsed)))
    return out


async def terminate(
    metric: Mapping[str, Any],
    measurement: Mapping[str, Any],
    cluster: Cluster,
    run: Mapping[str, Any],
    *,
    clock: Callable[[], datetime] = utc_now,
) -> dict[str, Any]:
    """Stop an in-flight measurement: delete its Job; the measurement ends Inconclusive (the caller
    writes Argo's "Metric Terminated" message)."""
    now = clock()
    ref = _job_ref(measurement, run)
    if ref is None:
        return _error(measurement, "job metadata reference missing", now)
    try:
        await cluster.delete("Job", *ref)
    except NotFound:
        pass
    except ClusterError as e:
        return _error(measurement, str(e), now)
    out = dict(measurement)
    out.update(phase=PHASE_INCONCLUSIVE, finishedAt=rfc3339(now))
    out.pop("resumeAt", None)
    return out


async def garbage_collect(
    metric: Mapping[str, Any], cluster: Cluster, run: Mapping[str, Any], limit: int
) -> None:
    """Delete the run's Jobs of this metric but the newest ``limit`` (oldest first). Raises
    ClusterError when the cluster refuses a list or a delete (the caller retries on its next pass)."""
    meta = run.get("metadata") or {}
    jobs = [
        j
        for j in await cluster.list(
            "Job", meta.get("namespace") or "default", {RUN_UID_LABEL: str(meta.get("uid"))}
        )
        if ((j.get("metadata") or {}).get("annotations") or {}).get(METRIC_NAME_ANNOTATION)
        == metric.get("name")
    ]
    jobs.sort(key=lambda j: (str(j["metadata"].get("creationTimestamp") or ""), _suffix(j)))
    for j in jobs[: max(0, len(jobs) - max(0, limit))]:
        try:
            await cluster.delete("Job", j["metadata"].get("namespace") or "default", j["metadata"]["name"])
        except NotFound:
            pass


def _suffix(job: Mapping[str, Any]) -> int:
    # Jobs made in the same second sort by their measurement number (the name's last part).
    tail = str(job["metadata"]["name"]).rsplit(".", 1)[-1]
    return int(tail) if tail.isdigit() else 0


__all__ = [
    "JOB_NAMESPACE_KEY",
    "JOB_NAME_KEY",
    "METRIC_NAME_ANNOTATION",
    "RUN_UID_LABEL",
    "garbage_collect",
    "job_name",
    "measure",
    "new_job",
    "resume",
    "terminate",
]
