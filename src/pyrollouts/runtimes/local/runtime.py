"""``LocalRuntime``: the local runtime assembled: the store, its Cluster, the ReplicaSet controller
and the process supervisor, all on one state dir.

State dir layout: ``state.db`` (the store), ``logs/<ns>/<pod>/<container>.log``,
``volumes/<ns>/<pod>/<volume>`` (emptyDir), ``images.yaml`` (the user's image map, optional).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import platformdirs

from .cluster import LocalCluster
from .imagemap import ImageMap
from .podspec import check_service_ports, check_template, template_warnings
from .ports import pod_ports
from .replicaset import ReplicaSetController
from .store import DEFAULT_EVENT_CAP, Store
from .supervisor import Backoff, Supervisor

STATE_DB = "state.db"


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
        self.supervisor = Supervisor(self.store, self.state_dir, self.imagemap,
                                     backoff=backoff, drain_delay=drain_delay)
        self.replicasets = ReplicaSetController(self.store)
        self._started = False

    async def start(self) -> None:
        """Re-adopt live app processes, then run the supervisor and the ReplicaSet controller."""
        if self._started:
            return
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
