"""The scenario driver for the local runtime: a real ``LocalServer`` with real pod processes.

``LocalDriver`` implements the ``scenarios.Driver`` protocol (see ``harness.scenarios``)
over a ``LocalServer`` run in this process (its own event-loop tasks, the proxy and every pod as
child processes) on a fresh temporary state dir, with the test clock. One driver runs one scenario;
``close()`` stops every process it started, whatever state the run ended in.

How the scenario's world is mapped onto real processes:

- The manifest is adjusted before every apply, the same way each time (so the pod-template hash is
  stable and the three-way apply sees only the scenario's own changes): container 0 learns its
  pod-template hash through a ``fieldRef`` on the ``rollouts-pod-template-hash`` label and gets
  ``DEMO_UNREADY_FILE`` / ``DEMO_CRASH_FILE`` paths keyed by that hash (``$(VAR)`` expansion), the
  readiness probe first checks after half a second and fails after 2 misses instead of 3 (pods
  are ready in about 0.5 s, and ``unready`` takes 2 s), the grace period is
  short, and every Service port is replaced by a free port of this machine (keyed by Service name
  and port, so Services copied from one another do not clash and parallel runs never collide).
- ``pods`` creates or removes the per-hash files: ``unready`` makes /healthz answer 503, ``crash``
  makes the demo app exit (and so restart with backoff, counted in restartCount), ``ready`` removes
  both. A revision resolves to the hash of the ReplicaSet whose revision annotation is that number
  now; one not created yet is kept pending and resolved the moment its ReplicaSet appears (a watch
  on ReplicaSets), before its pods can turn ready. ``unready`` and ``crash`` on pods that exist
  return once their ReplicaSet reports none ready (the simulated pods turn at once; a step after
  it, a promote say, must find them unready).
- ``apply`` uses the API's own all-or-nothing three-way apply (``server/apply.py``) with the
  runtime's admission; lint findings are not checked, because the InvalidSpec scenarios store
  manifests that lint refuses and expect the controller to report them.
- User actions are the ``useractions`` patches, written straight to the store (status patches
  through the status subresource), as the API's PATCH does.
- ``advance`` moves the controller's clock and requeues every Rollout; pods do not age.
- ``wait`` sleeps for real.
- ``settle`` returns once the controller has taken in the last change (its work queue is empty and
  nothing is being reconciled for a short quiet period); ``run_scenario`` then polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.scenarios import Step
from harness.support import free_port, owned_replicasets, wait_until_async
from pyrollouts.daemons.local_server import LocalServer
from pyrollouts.model import names
from pyrollouts.model.cluster import NotFound
from pyrollouts.runtimes.local.store import Subscription
from pyrollouts.runtimes.local.supervisor import Backoff, kill_all_pod_processes
from pyrollouts.server.apply import apply_objects

Obj = dict[str, Any]

#: The pod-template hash as an env var of container 0 (the files below are keyed by it).
HASH_ENV = "SCENARIO_POD_HASH"
#: Restart backoff for crashing pods: short, so a `crash` then `ready` recovers within a second.
TEST_BACKOFF = Backoff(base=0.2, cap=1.0, reset_after=600.0)
#: Pod readiness misses before it is unready (Kubernetes' default 3 makes `unready` take 3 s).
FAILURE_THRESHOLD = 2
#: When the readiness probe first checks a new pod (the demo app listens within ~0.2 s).
FIRST_CHECK = 0.5
#: terminationGracePeriodSeconds for scenario pods: the demo app exits at once on SIGTERM anyway.
GRACE_SECONDS = 2
#: How long ``settle`` waits at most for the controller to go idle, and how long idle must last.
SETTLE_TIMEOUT = 5.0
SETTLE_QUIET = 0.1
POLL = 0.02


class LocalDriver:
    """Runs a scenario against the local runtime (module docstring). ``ready_after`` (the scenario's
    ``pods.readyAfter``) becomes the readiness probe's initialDelaySeconds when it is not 1 (the
    default, which gets the quick first check)."""

    def __init__(self, *, ready_after: float = 1.0, work_dir: Path | None = None) -> None:
        self.ready_after = ready_after
        self._own_dir = work_dir is None
        # Short and under /tmp: unix socket paths inside the state dir must stay under 108 bytes.
        self.dir = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="lsc", dir="/tmp"))
        self.state_dir = self.dir / "state"
        self.flags = self.dir / "pods"
        self.flags.mkdir(parents=True, exist_ok=True)
        self.server: LocalServer | None = None
        self.namespace = "default"
        self.rollout_name: str | None = None
        self._ports: dict[tuple[str, int], int] = {}  # (Service name, manifest port) -> local port
        self._pending: dict[int, str] = {}  # revision not created yet -> pod state
        self._watch: asyncio.Task[None] | None = None

    # -- the protocol ---------------------------------------------------------------------------
    async def start(self, objects: Sequence[Obj]) -> None:
        """Start a LocalServer (store, supervisor, proxy, controller, API on a free port)."""
        for obj in objects:
            if obj.get("kind") == "Rollout":
                meta = obj.get("metadata") or {}
                self.namespace = str(meta.get("namespace") or "default")
                self.rollout_name = str(meta["name"])
        self.server = LocalServer(
            self.state_dir,
            f"127.0.0.1:{free_port()}",
            test_clock=True,
            runtime_options={"backoff": TEST_BACKOFF, "drain_delay": 0.05},
        )
        await self.server.start()
        # Subscribed here, not in the task: no ReplicaSet written after start() returns is missed.
        sub = self.server.runtime.store.subscribe(["ReplicaSet"], self.namespace)
        self._watch = asyncio.create_task(self._follow_replicasets(sub), name="scenario-rs-watch")

    async def now(self) -> datetime:
        """The wall clock, as a user's client has it (``restart`` stamps spec.restartAt with it).

        Not the controller's clock: that one runs ahead by whatever ``advance`` added, while the
        runtime stamps pods with the wall clock, so a restartAt from the controller's clock would
        lie in the future of every new pod and the restart would replace pods over and over until
        real time caught up. A user's restartAt is never ahead of the controller, and so is this."""
        return datetime.now(UTC)

    async def do(self, step: Step) -> None:
        """Carry out one ``scenarios.Step`` (see the protocol in ``scenarios``)."""
        server = self._server()
        cluster = server.runtime.cluster
        if step.do == "apply":
            for name in step.deleted:
                with contextlib.suppress(NotFound):
                    await cluster.delete("Service", self.namespace, name)
            objects = self.map_objects(step.objects)
            await apply_objects(cluster, server.admission, objects, self.namespace, create_only=False)
        elif step.patches:
            name = self._name()
            for p in step.patches:
                await cluster.patch("Rollout", self.namespace, name, p.body, subresource=p.subresource)
        elif step.do == "advance":
            server.clock.advance(step.seconds)
            await server.controller.requeue_all()
        elif step.do == "wait":
            await asyncio.sleep(step.seconds)
        elif step.do == "pods":
            if step.revision is None or step.state is None:
                raise ValueError(f"step {step.index}: `pods` needs a revision and a state")
            self._pending[step.revision] = step.state
            self._resolve_pending()
            if step.state != "ready":
                # The simulated pods turn unready at once; real ones after the probe misses. Later
                # steps (a promote) must see them unready, as the scenario means.
                await self._wait_unready(step.revision)
        else:
            raise ValueError(f"step {step.index}: nothing to do for {step.do!r}")

    async def objects(self) -> tuple[Obj, list[Obj], list[Obj], list[Obj]]:
        """The Rollout, its ReplicaSets, the namespace's Services and the Rollout's Events (oldest
        first)."""
        store = self._server().runtime.store
        if self.rollout_name is None:
            raise LookupError("no Rollout in the scenario")
        try:
            rollout = store.get("Rollout", self.namespace, self.rollout_name)
        except NotFound:
            raise LookupError("no Rollout applied yet") from None
        rss = owned_replicasets(rollout, store.list("ReplicaSet", self.namespace))
        services = sorted(store.list("Service", self.namespace), key=lambda s: s["metadata"]["name"])
        # Only the Rollout's own: run_scenario counts them to tell this step's events from earlier ones.
        events = [
            e
            for e in store.list("Event", self.namespace)
            if (e.get("involvedObject") or {}).get("kind") == "Rollout"
            and (e.get("involvedObject") or {}).get("name") == self.rollout_name
        ]
        return rollout, rss, services, events

    async def settle(self) -> None:
        """Return once the controller has taken in the last change (module docstring)."""
        controller = self._server().controller
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_TIMEOUT
        quiet_since: float | None = None
        while loop.time() < deadline:
            await asyncio.sleep(POLL)
            queue = controller.queue
            # _processing is the work queue's in-flight set: nothing else says "reconciling now".
            busy = len(queue) > 0 or bool(queue._processing)
            if busy:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = loop.time()
            elif loop.time() - quiet_since >= SETTLE_QUIET:
                return

    async def close(self) -> None:
        """Stop the server, every pod process and the proxy, and remove the temporary dir."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watch
        try:
            if self.server is not None:
                self.server.stop_everything = True  # terminate the pods and stop the proxy too
                await self.server.stop()
        finally:
            # Backstops: whatever a failed start or stop left behind.
            kill_all_pod_processes(self.state_dir)
            proxy = getattr(self.server, "proxy", None)
            if proxy is not None and proxy.alive():
                with contextlib.suppress(Exception):
                    proxy.stop()
            if self._own_dir:
                shutil.rmtree(self.dir, ignore_errors=True)

    # -- the manifest mapping -------------------------------------------------------------------
    def map_objects(self, objects: Iterable[Obj]) -> list[Obj]:
        """The scenario's objects made to run here (module docstring); always the same mapping."""
        out = []
        for obj in objects:
            obj = copy.deepcopy(obj)
            if obj.get("kind") in ("Rollout", "Deployment"):  # a workloadRef's template runs too
                self._map_rollout(obj)
            elif obj.get("kind") == "Service":
                self._map_service(obj)
            out.append(obj)
        return out

    def _map_rollout(self, obj: Obj) -> None:
        spec = ((obj.get("spec") or {}).get("template") or {}).get("spec")
        if not isinstance(spec, dict) or not spec.get("containers"):
            return  # nothing to run: leave it to the controller to report
        spec.setdefault("terminationGracePeriodSeconds", GRACE_SECONDS)
        container = spec["containers"][0]
        hash_path = f"metadata.labels['{names.POD_TEMPLATE_HASH_LABEL}']"
        ours: list[Obj] = [
            {"name": HASH_ENV, "valueFrom": {"fieldRef": {"fieldPath": hash_path}}},
            {"name": "DEMO_UNREADY_FILE", "value": f"{self.flags}/unready-$({HASH_ENV})"},
            {"name": "DEMO_CRASH_FILE", "value": f"{self.flags}/crash-$({HASH_ENV})"},
        ]
        mine = {str(e["name"]) for e in ours}
        # First, so the $(VAR) references resolve; the scenario's own variables follow.
        container["env"] = ours + [e for e in container.get("env") or [] if e.get("name") not in mine]
        probe = container.get("readinessProbe")
        if isinstance(probe, dict):
            probe.setdefault("failureThreshold", FAILURE_THRESHOLD)
            # The first check at once would find the app not listening yet and the next one comes a
            # period later; checking first after the app's start-up time makes pods ready in about
            # half a second. (A fraction Kubernetes would refuse; the local runtime takes it, and
            # this manifest never leaves the driver.)
            probe["initialDelaySeconds"] = FIRST_CHECK if self.ready_after == 1.0 else self.ready_after

    def _map_service(self, obj: Obj) -> None:
        name = str((obj.get("metadata") or {}).get("name"))
        for port in (obj.get("spec") or {}).get("ports") or []:
            n = port.get("port")
            if isinstance(n, int):
                key = (name, n)
                if key not in self._ports:
                    self._ports[key] = free_port()
                port["port"] = self._ports[key]

    # -- pods -----------------------------------------------------------------------------------
    def set_hash_state(self, pod_hash: str, state: str) -> None:
        """Make the pods of one pod-template hash ready, unready or crash, from now on."""
        unready = self.flags / f"unready-{pod_hash}"
        crash = self.flags / f"crash-{pod_hash}"
        if state == "ready":
            unready.unlink(missing_ok=True)
            crash.unlink(missing_ok=True)
        elif state == "unready":
            unready.touch()
            crash.unlink(missing_ok=True)
        elif state == "crash":
            crash.touch()
            unready.unlink(missing_ok=True)
        else:
            raise ValueError(f"pod state must be ready, unready or crash, not {state!r}")

    def _resolve_pending(self) -> None:
        """Turn pending revisions whose ReplicaSet now exists into per-hash files."""
        if not self._pending or self.server is None or self.rollout_name is None:
            return
        store = self.server.runtime.store
        for rs in store.list("ReplicaSet", self.namespace):
            meta = rs.get("metadata") or {}
            try:
                rev = int((meta.get("annotations") or {}).get(names.REVISION_ANNOTATION, "0"))
            except ValueError:
                continue
            h = (meta.get("labels") or {}).get(names.POD_TEMPLATE_HASH_LABEL)
            if rev in self._pending and h:
                self.set_hash_state(str(h), self._pending.pop(rev))

    async def _wait_unready(self, revision: int, timeout: float = 15.0) -> None:
        """Wait until the ReplicaSet of this revision (if it exists) reports no ready pod."""
        store = self._server().runtime.store

        async def unready() -> bool:
            rs = next(
                (
                    r
                    for r in store.list("ReplicaSet", self.namespace)
                    if ((r.get("metadata") or {}).get("annotations") or {}).get(names.REVISION_ANNOTATION)
                    == str(revision)
                ),
                None,
            )
            status = (rs or {}).get("status") or {}
            return rs is None or not (status.get("readyReplicas") or status.get("availableReplicas"))

        await wait_until_async(unready, timeout, f"the pods of revision {revision} to be unready", POLL)

    async def _follow_replicasets(self, sub: Subscription) -> None:
        try:
            async for _ in sub:
                self._resolve_pending()
        finally:
            sub.close()

    # -- helpers --------------------------------------------------------------------------------
    def _server(self) -> LocalServer:
        if self.server is None:
            raise RuntimeError("the driver is not started")
        return self.server

    def _name(self) -> str:
        if self.rollout_name is None:
            raise LookupError("no Rollout in the scenario")
        return self.rollout_name
