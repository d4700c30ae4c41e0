"""``LocalRuntime``: the local runtime assembled: the store, its Cluster, the ReplicaSet controller,
the Job controller and the process supervisor, all on one state dir.

State dir layout: ``state.db`` (the store), ``logs/<ns>/<pod>/<container>.log``,
``jobs/<ns>/<job>/<container>.log`` (a Job's output: jobs.py),
``volumes/<ns>/<pod>/<volume>`` (emptyDir), ``images.yaml`` (the user's image map, optional).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

import platformdirs

from ...model.cluster import Conflict
from .cluster import LocalCluster
from .imagemap import ImageMap
from .jobs import JobController
from .podspec import check_service_ports, check_template, template_warnings
from .ports import pod_ports, recorded_ports
from .replicaset import DEFAULT_MAX_REPLICAS, ReplicaSetController, check_counts
from .store import DEFAULT_EVENT_CAP, Store
from .supervisor import Backoff, Supervisor

STATE_DB = "state.db"
LOCK_FILE = "runtime.lock"
#: Kinds whose pod template the local runtime runs, and where the template is in each.
_TEMPLATE_KINDS = {"Rollout": "spec.template", "ReplicaSet": "spec.template", "Deployment": "spec.template"}
#: Annotations the local runtime writes and reads back (host ports, process records): a client
#: that wrote them could point a Service's traffic at any port of this machine (the API's) or
#: have the server adopt and signal a process that is not a replica.
OWNED_ANNOTATION_PREFIX = "local.pyrollouts.io/"
#: Kinds whose status only the local runtime writes (the kubelet's and the ReplicaSet
#: controller's part): a client status write would mark a dead replica Ready.
RUNTIME_STATUS_KINDS = {
    "Pod": "the supervisor",
    "ReplicaSet": "the ReplicaSet controller",
    "Job": "the Job controller",
}


def _name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{obj.get('kind')} {meta.get('namespace') or 'default'}/{meta.get('name')}"


def _template_of(obj: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    kind = str(obj.get("kind"))
    if kind == "Pod":
        return "", obj
    if kind in _TEMPLATE_KINDS:
        tmpl = (obj.get("spec") or {}).get("template")
        if isinstance(tmpl, Mapping):
            return "spec.template.", tmpl
    return None


def default_state_dir() -> Path:
    """The default --state-dir: the user's state directory for pyrollouts."""
    return Path(platformdirs.user_state_dir("pyrollouts"))


class LocalRuntime:
    """The local runtime on one state dir. ``cluster`` is usable from construction; ``start()``
    begins running Pods (re-adopting live processes); ``stop()`` leaves them running by default."""

    def __init__(
        self,
        state_dir: str | Path,
        *,
        image_map: str | Path | ImageMap | None = None,
        backoff: Backoff | None = None,
        drain_delay: float = 1.0,
        event_cap: int = DEFAULT_EVENT_CAP,
        max_replicas: int = DEFAULT_MAX_REPLICAS,
    ) -> None:
        self.max_replicas = int(max_replicas)
        #: Ports of this machine the runtime's Services may not take: port -> who holds it.
        self.reserved_ports: dict[int, str] = {}
        self.state_dir = Path(state_dir).resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if isinstance(image_map, ImageMap):
            self.imagemap = image_map
        else:
            self.imagemap = ImageMap.load(image_map, state_dir=self.state_dir)
        self.store = Store(self.state_dir / STATE_DB, event_cap=event_cap)
        self.cluster = LocalCluster(self.store)
        self.supervisor = Supervisor(
            self.store, self.state_dir, self.imagemap, backoff=backoff, drain_delay=drain_delay
        )
        self.replicasets = ReplicaSetController(self.store, max_replicas=self.max_replicas)
        self.jobs = JobController(self.store, self.state_dir, self.imagemap)
        self._started = False
        self._lock: TextIO | None = None

    def _take_lock(self) -> None:
        # Two runtimes on one state dir would both start every Pod: refuse the second. The lock
        # goes with the process, so a killed server never leaves it behind.
        f = open(self.state_dir / LOCK_FILE, "a+")  # noqa: SIM115 - held for the runtime's life
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise Conflict(
                f"{self.state_dir}: another pyrollouts server (pid {holder}) runs on this state dir; "
                "stop it first or pass another --state-dir"
            ) from None
        f.truncate(0)
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._lock = f

    def lock(self) -> None:
        """Take this state dir (done by ``start`` too): a server calls it before it listens, so
        a second server on the same state dir stops before it answers anything.
        Raises Conflict when another runtime holds it."""
        if self._lock is None:
            self._take_lock()

    def reserve_port(self, port: int, owner: str) -> None:
        """Refuse Services on this port from now on (``owner``: who holds it, for the message,
        e.g. "the pyrollouts server's API port")."""
        self.reserved_ports[int(port)] = owner

    async def start(self) -> None:
        """Re-adopt live app processes, then run the supervisor and the ReplicaSet controller.
        Raises Conflict when another runtime holds this state dir."""
        if self._started:
            return
        self.lock()
        self._started = True
        await self.supervisor.start()
        await self.replicasets.start()
        await self.jobs.start()

    async def stop(self, terminate_pods: bool = False, grace: float | None = None) -> None:
        """Stop the controllers and close the store. App processes keep running unless
        ``terminate_pods`` (SIGTERM, SIGKILL after ``grace`` or each Pod's grace period)."""
        if self._started:
            await self.jobs.stop()
            await self.replicasets.stop()
            await self.supervisor.stop(terminate_pods=terminate_pods, grace=grace)
            self._started = False
        self.store.close()
        if self._lock is not None:
            self._lock.close()  # closing releases the flock
            self._lock = None

    @staticmethod
    def pod_ports(pod: Mapping[str, Any]) -> dict[int | str, int]:
        """A Pod's host ports by container port number and by port name."""
        return pod_ports(pod)

    def check_template(self, template: Mapping[str, Any]) -> list[str]:
        """Errors that stop a Pod template from running here (paths relative to the template)."""
        return check_template(template, self.imagemap)

    def template_warnings(self, template: Mapping[str, Any]) -> list[str]:
        """What the template asks for that is recorded but not enforced here."""
        return template_warnings(template)

    def check_service_ports(self, service: Mapping[str, Any]) -> list[str]:
        """Errors for Service ports that clash with stored Services or cannot be bound."""
        return check_service_ports(service, self.store.list("Service"), reserved=self._held_ports())

    def _held_ports(self) -> dict[int, str]:
        """Ports of this machine taken by something other than a Service: the server's own
        (reserved) and every Pod's host ports."""
        held = dict(self.reserved_ports)
        for pod in self.store.list("Pod"):
            meta = pod.get("metadata") or {}
            for container_port, host_port in recorded_ports(pod).items():
                held.setdefault(
                    host_port,
                    f"held by Pod {meta.get('namespace') or 'default'}/{meta.get('name')} "
                    f"(the host port of its container port {container_port})",
                )
        return held

    def check_write(self, kind: str, live: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[str]:
        """Refusals for a client's write that turns ``live`` (None: a create) into ``new``: the
        annotations the runtime owns (``local.pyrollouts.io/...``) cannot be set, changed or
        removed by a client, nor the deletion marks, a Pod's spec, or Events."""

        def owned(obj: Mapping[str, Any] | None) -> dict[str, Any]:
            ann = ((obj or {}).get("metadata") or {}).get("annotations") or {}
            if not isinstance(ann, Mapping):
                return {}
            return {k: v for k, v in ann.items() if str(k).startswith(OWNED_ANNOTATION_PREFIX)}

        before, after = owned(live), owned(new)
        errors: list[str] = []
        if kind == "Event":
            return [
                f"{_name(new)}: Events are recorded by the server's controllers and runtime; "
                "clients read them (rollouts get events)"
            ]
        live_meta = (live or {}).get("metadata") or {}
        new_meta = new.get("metadata") or {}
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            if live_meta.get(key) != new_meta.get(key):
                errors.append(
                    f"{_name(new)}: metadata.{key}: set by the server when an object is deleted; "
                    "delete it instead (rollouts delete, or DELETE /api/...)"
                )
        if kind == "Pod" and live is not None and live.get("spec") != new.get("spec"):
            errors.append(
                f"{_name(new)}: spec: a Pod's spec cannot change once it exists (as on Kubernetes: "
                "its processes run from it); change the Rollout's spec.template, or delete the Pod "
                "and let its ReplicaSet replace it"
            )
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key):
                errors.append(
                    f"{_name(new)}: metadata.annotations[{key!r}]: written by the local runtime "
                    "only (it records host ports and processes of replicas); leave it out of "
                    "the patch or manifest"
                )
        return errors

    def status_owner(self, kind: str) -> str | None:
        """Who alone writes this kind's status here (None: clients may write it)."""
        return RUNTIME_STATUS_KINDS.get(kind)

    def audit(self) -> list[tuple[dict[str, Any], str]]:
        """Stored objects this runtime refuses to act on, each with why and what to do (objects
        written before these checks, or straight into the store): (object, message)."""
        out: list[tuple[dict[str, Any], str]] = []
        for kind in ("Rollout", "ReplicaSet", "Deployment"):
            for obj in self.store.list(kind):
                for e in check_counts(obj, self.max_replicas):
                    out.append((obj, f"{_name(obj)}: {e}"))
        for svc in self.store.list("Service"):
            for e in check_service_ports(svc, [], may_bind=lambda _port: True, reserved=self.reserved_ports):
                out.append((svc, f"{_name(svc)}: {e} (change the Service's port: rollouts apply)"))
        return out

    def admission(self, objects: Iterable[Mapping[str, Any]]) -> list[str]:
        """Refusals for a batch of manifest objects about to be applied: each pod template's
        features one machine cannot provide, and Service ports that clash (with stored Services,
        other than the ones the batch replaces, or within the batch) or cannot be bound. Each
        message starts with the object (``Rollout shop/web: spec.template.spec...``)."""
        objects = list(objects)
        errors: list[str] = []
        for obj in objects:
            errors += [f"{_name(obj)}: {e}" for e in check_counts(obj, self.max_replicas)]
            found = _template_of(obj)
            if found is not None:
                prefix, tmpl = found
                errors += [f"{_name(obj)}: {prefix}{e}" for e in check_template(tmpl, self.imagemap)]
        batch = [o for o in objects if o.get("kind") == "Service"]
        keys = {_name(o) for o in batch}
        stored = [s for s in self.store.list("Service") if _name(s) not in keys]
        held = self._held_ports() if batch else {}
        for i, svc in enumerate(batch):
            others = stored + batch[:i]
            errors += [f"{_name(svc)}: {e}" for e in check_service_ports(svc, others, reserved=held)]
        return errors

    def admission_warnings(self, objects: Iterable[Mapping[str, Any]]) -> list[str]:
        """What the batch's pod templates ask for that is recorded but not enforced here."""
        out: list[str] = []
        for obj in objects:
            found = _template_of(obj)
            if found is not None:
                prefix, tmpl = found
                out += [f"{_name(obj)}: {prefix}{w}" for w in template_warnings(tmpl)]
        return out
