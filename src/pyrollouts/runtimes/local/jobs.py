"""The local Job controller: runs each stored ``batch/v1`` Job's container as a process to completion
and writes the Job's status as Kubernetes' Job controller would (what a ``job`` metric reads).

One machine, one attempt at a time, no Pod object: the Job's one container (``command``/``args``
or the image map, ``env`` with value and fieldRef, ``workingDir``) runs as a process in its own
session, with its output in ``<state-dir>/jobs/<ns>/<job>/<container>.log``. Exit code 0 is the
``Complete`` condition (``succeeded: 1``); anything else is a failed attempt, retried after a
backoff (1 s doubling, at most 30 s) until ``spec.backoffLimit`` (6 by default) failures, then the
``Failed`` condition (``BackoffLimitExceeded``, with the last exit code and output line).
``spec.activeDeadlineSeconds`` stops it as ``Failed`` (``DeadlineExceeded``). Deleting the Job
(or its owner, the AnalysisRun) stops its process: SIGTERM, SIGKILL after the pod template's
``terminationGracePeriodSeconds``. A Job with more than one container, init containers, or no
command is ``Failed`` at once with the reason. A Job that was running when the server stopped runs
again from the start when it restarts (its old process is stopped: it carries the state dir's
process markers, so ``rollouts server --stop-all`` finds it too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...model.cluster import ClusterError, Obj
from .imagemap import ImageMap
from .store import Store, Subscription, now_rfc3339
from .supervisor import (
    DEFAULT_GRACE,
    Proc,
    container_env,
    expand,
    find_pod_processes,
    proc_start_time,
    spawn,
    stop_process,
)

log = logging.getLogger(__name__)

DEFAULT_BACKOFF_LIMIT = 6
BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0


def finished(job: Mapping[str, Any]) -> bool:
    """True when the Job has a Complete or Failed condition."""
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


def _key(job: Mapping[str, Any]) -> tuple[str, str]:
    meta = job.get("metadata") or {}
    return str(meta.get("namespace") or "default"), str(meta.get("name"))


class _Refused(Exception):
    """The Job cannot run here: it fails with this message."""


class JobController:
    """Follows Jobs in the store and runs each unfinished one (see the module docstring)."""

    def __init__(self, store: Store, state_dir: str | Path, imagemap: ImageMap) -> None:
        self.store = store
        self.state_dir = Path(state_dir)
        self.imagemap = imagemap
        self.runs: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Stop processes of an earlier server's Jobs, run every unfinished Job, follow changes."""
        self._sub = self.store.subscribe(["Job"])
        jobs = self.store.list("Job")
        uids = {str(j["metadata"].get("uid")) for j in jobs}
        for f in find_pod_processes(self.state_dir):
            if f.pod_uid in uids:
                await stop_process(Proc(f.pid, f.start), 5.0)
        for job in jobs:
            self._ensure(job)
        self._task = asyncio.create_task(self._follow(), name="local jobs")

    async def stop(self) -> None:
        """Stop following and stop every running Job's process (it runs again on the next start)."""
        if self._sub is not None:
            self._sub.close()
        tasks = [t for t in (self._task, *self.runs.values()) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self.runs.clear()

    def _ensure(self, job: Obj) -> None:
        key = _key(job)
        if finished(job) or key in self.runs or (job.get("metadata") or {}).get("deletionTimestamp"):
            return
        task = asyncio.create_task(self._run(job), name=f"job {key[0]}/{key[1]}")
        self.runs[key] = task
        task.add_done_callback(lambda _t, key=key: self.runs.pop(key, None))  # type: ignore[misc]

    async def _follow(self) -> None:
        assert self._sub is not None
        async for ev in self._sub:
            key = _key(ev.obj)
            if ev.type == "DELETED":
                task = self.runs.pop(key, None)
                if task is not None:
                    task.cancel()  # the run stops its process on cancellation
            else:
                self._ensure(ev.obj)

    # -- one Job --------------------------------------------------------------------------------

    async def _run(self, job: Obj) -> None:
        ns, name = _key(job)
        deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
        self._status(ns, name, {"startTime": now_rfc3339(self.store.clock), "active": 1})
        try:
            await asyncio.wait_for(self._attempts(job), timeout=deadline)
        except _Refused as e:
            self._finish(ns, name, "Failed", "NotSupported", str(e), failed=1)
        except TimeoutError:
            self._finish(
                ns, name, "Failed", "DeadlineExceeded", "Job was active longer than specified deadline"
            )

    async def _attempts(self, job: Obj) -> None:
        """Run the container until it succeeds or has failed more than backoffLimit times."""
        ns, name = _key(job)
        spec = job.get("spec") or {}
        limit = spec.get("backoffLimit")
        limit = DEFAULT_BACKOFF_LIMIT if limit is None else int(limit)
        container = self._container(job)
        failures = 0
        while True:
            code, tail = await self._attempt(job, container)
            if code == 0:
                self._finish(ns, name, "Complete", None, None, succeeded=1, failed=failures)
                return
            failures += 1
            if failures > limit:
                why = f"exit code {code}" + (f": {tail}" if tail else "")
                message = f"Job has reached the specified backoff limit (last attempt: {why})"
                self._finish(ns, name, "Failed", "BackoffLimitExceeded", message, failed=failures)
                return
            self._status(ns, name, {"failed": failures, "active": 0})
            await asyncio.sleep(min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (failures - 1)))
            self._status(ns, name, {"active": 1})

    def _container(self, job: Mapping[str, Any]) -> Mapping[str, Any]:
        pod_spec = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
        containers = pod_spec.get("containers") or []
        if len(containers) != 1 or pod_spec.get("initContainers"):
            raise _Refused(
                "the local runtime runs a Job's pod template with exactly one container and no "
                "initContainers: put the check in one container (a script that runs the steps)"
            )
        return containers[0]  # type: ignore[no-any-return]

    def _env(self, job: Mapping[str, Any], c: Mapping[str, Any]) -> dict[str, str]:
        ns, name = _key(job)
        uid = str((job.get("metadata") or {}).get("uid"))
        return container_env(job, c, self.state_dir, {}, ns=ns, name=name, uid=uid)

    async def _attempt(self, job: Mapping[str, Any], c: Mapping[str, Any]) -> tuple[int | None, str]:
        """Run the container once: its exit code and the last line of its output."""
        ns, name = _key(job)
        env = self._env(job, c)
        argv = self.imagemap.argv(c)
        if argv is None:
            raise _Refused(
                f"image {c.get('image')} has no command: add `command:` to the job's container or "
                f"map the image in {self.imagemap.where_to_map()}"
            )
        argv = [expand(a, env) for a in argv]
        logfile = self.state_dir / "jobs" / ns / name / f"{c.get('name')}.log"
        logfile.parent.mkdir(parents=True, exist_ok=True)
        with open(logfile, "ab") as out:
            try:
                popen = spawn(argv, env, c.get("workingDir"), out)
            except OSError as e:
                return 127, f"cannot run {argv[0]}: {e.strerror or e}"
        start = proc_start_time(popen.pid)
        proc = Proc(popen.pid, start if start is not None else -1, popen)
        try:
            code = await proc.wait()
        except asyncio.CancelledError:
            grace = (
                ((job.get("spec") or {}).get("template") or {})
                .get("spec", {})
                .get("terminationGracePeriodSeconds", DEFAULT_GRACE)
            )
            await asyncio.shield(stop_process(proc, float(grace)))
            raise
        return code, _last_line(logfile)

    # -- status ---------------------------------------------------------------------------------

    def _status(self, ns: str, name: str, status: dict[str, Any]) -> None:
        try:
            self.store.patch("Job", ns, name, {"status": status}, subresource="status")
        except ClusterError as e:  # deleted meanwhile: the watch cancels the run
            log.info("job %s/%s: status not written: %s", ns, name, e)

    def _finish(
        self,
        ns: str,
        name: str,
        type_: str,
        reason: str | None,
        message: str | None,
        *,
        succeeded: int = 0,
        failed: int = 0,
    ) -> None:
        now = now_rfc3339(self.store.clock)
        cond: dict[str, Any] = {
            "type": type_,
            "status": "True",
            "lastProbeTime": now,
            "lastTransitionTime": now,
        }
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        status: dict[str, Any] = {"conditions": [cond], "active": 0, "ready": 0}
        if succeeded:
            status["succeeded"] = succeeded
            status["completionTime"] = now
        if failed:
            status["failed"] = failed
        self._status(ns, name, status)


def _last_line(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 4096))
            lines = f.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


__all__ = ["JobController", "finished"]
