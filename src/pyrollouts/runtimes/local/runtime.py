"""``LocalRuntime``: the local runtime assembled: the store, its Cluster, the ReplicaSet controller
and the process supervisor, all on one state dir.

State dir layout: ``state.db`` (the store), ``logs/<ns>/<pod>/<container>.log``,
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
from .podspec import check_service_ports, check_template, template_warnings
from .ports import pod_ports
from .replicaset import ReplicaSetController
from .store import DEFAULT_EVENT_CAP, Store
from .supervisor import Backoff, Supervisor

STATE_DB = "state.db"
LOCK_FILE = "runtime.lock"
#: Kinds whose pod template the local runtime runs, and where the template is in each.
_TEMPLATE_KINDS = {"Rollout": "spec.template", "ReplicaSet": "spec.template", "Deployment": "spec.template"}


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
    ) -> None:
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
        self.replicasets = ReplicaSetController(self.store)
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

    async def start(self) -> None:
        """Re-adopt live app processes, then run the supervisor and the ReplicaSet controller.
        Raises Conflict when another runtime holds this state dir."""
        if self._started:
            return
        self._take_lock()
        self._started = True
        await self.supervisor.start()
        await self.replicasets.start()

    async def stop(self, terminate_pods: bool = False, grace: float | None = None) -> None:
        """Stop the controllers and close the store. App processes keep running unless
        ``terminate_pods`` (SIGTERM, SIGKILL after ``grace`` or each Pod's grace period)."""
        if self._started:
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
        return check_service_ports(service, self.store.list("Service"))

    def admission(self, objects: Iterable[Mapping[str, Any]]) -> list[str]:
        """Refusals for a batch of manifest objects about to be applied: each pod template's
        features one machine cannot provide, and Service ports that clash (with stored Services,
        other than the ones the batch replaces, or within the batch) or cannot be bound. Each
        message starts with the object (``Rollout shop/web: spec.template.spec...``)."""
        objects = list(objects)
        errors: list[str] = []
        for obj in objects:
            found = _template_of(obj)
            if found is not None:
                prefix, tmpl = found
                errors += [f"{_name(obj)}: {prefix}{e}" for e in check_template(tmpl, self.imagemap)]
        batch = [o for o in objects if o.get("kind") == "Service"]
        keys = {_name(o) for o in batch}
        stored = [s for s in self.store.list("Service") if _name(s) not in keys]
        for i, svc in enumerate(batch):
            others = stored + batch[:i]
            errors += [f"{_name(svc)}: {e}" for e in check_service_ports(svc, others)]
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
