"""The scenario corpus (tests/scenarios/*.yaml) on the Kubernetes runtime.

The driver applies objects with server-side apply, sends user actions as Argo's patches, advances
the controller's clock through its --test-clock endpoint, and makes pods unready, ready or crashing
the way kwok lets a test: a revision declared unready/crashing before it exists gets kwok's
annotation in its pod template (so its pods never become ready at all); pods that exist already
get their status written directly (kwok leaves a Running pod's status alone), and so do pods of that
revision created later.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kube_helpers
import pytest
from kube_helpers import (
    REPO,
    ControllerProc,
    admin_client,
    apply,
    by_revision,
    events,
    get,
    list_objs,
    merge_patch,
    owned_replicasets,
    revision,
)
from lightkube import ApiError, Client

from harness import kwok_stages
from harness.k8s_cluster import ControlPlane
from harness.scenarios import Step, load_scenario, run_scenario, scenario_files
from harness.support import wait_until
from pyrollouts.runtimes.kubernetes.resources import RESOURCES

Obj = dict[str, Any]
SCENARIOS = scenario_files(REPO / "tests" / "scenarios")
# The whole corpus runs in the first test's setup (see scenario_results): give it room.
pytestmark = pytest.mark.timeout(900)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pod_status(state: str, pod: Obj) -> Obj:
    ready = "True" if state == "ready" else "False"
    conds = [
        {"type": "Initialized", "status": "True", "lastTransitionTime": _now()},
        {"type": "Ready", "status": ready, "lastTransitionTime": _now()},
        {"type": "ContainersReady", "status": ready, "lastTransitionTime": _now()},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": _now()},
    ]
    containers = []
    for c in pod["spec"]["containers"]:
        cs: Obj = {
            "name": c["name"],
            "image": c["image"],
            "ready": state == "ready",
            "restartCount": 0,
            "started": state != "crash",
            "state": {"running": {"startedAt": _now()}},
        }
        if state == "crash":
            cs["restartCount"] = 1
            cs["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": "scenario: crash"}}
        containers.append(cs)
    return {"status": {"phase": "Running", "conditions": conds, "containerStatuses": containers}}


class KubeDriver:
    """The scenario Driver over the real control plane and a `rollouts controller` subprocess."""

    def __init__(
        self, cp: ControlPlane, namespace: str, client: Client, procs: list[ControllerProc], log_dir: Path
    ) -> None:
        self.cp = cp
        self.ns = namespace
        self.client = client
        self.procs = procs
        self.log_dir = log_dir
        self.offset = 0.0
        self.name = ""
        self.services: list[str] = []
        self.policy: dict[int, str] = {}  # revision -> ready | unready | crash
        self.ctrl: ControllerProc | None = None
        self._stop = threading.Event()
        self._enforcer: threading.Thread | None = None

    async def start(self, objects: Sequence[Obj]) -> None:
        self.name = next(o for o in objects if o["kind"] == "Rollout")["metadata"]["name"]
        self.ctrl = ControllerProc(self.cp.kubeconfig, self.ns, self.log_dir / "controller.log")
        self.procs.append(self.ctrl)
        await asyncio.to_thread(self.ctrl.start)
        await self._start_enforcer()

    async def _start_enforcer(self) -> None:
        """Start the thread that keeps pods in their policy's state (see ``_enforce``)."""
        self._enforcer = threading.Thread(target=self._enforce, daemon=True)
        self._enforcer.start()

    async def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset)

    # -- pods ----------------------------------------------------------------------------------
    def _enforce(self) -> None:
        """Keep the pods of revisions with a policy in that state (new pods too)."""
        c = admin_client(self.cp, self.ns)
        try:
            while not self._stop.is_set():
                if self.policy:
                    try:
                        self._apply_policy(c)
                    except Exception:
                        pass  # the rollout may not exist yet; try again
                self._stop.wait(0.2)
        finally:
            c.close()

    def _apply_policy(self, c: Client) -> None:
        ro = get(c, "Rollout", self.name, self.ns)
        revs = {rs["metadata"]["uid"]: revision(rs) for rs in owned_replicasets(c, ro)}
        for pod in list_objs(c, "Pod", self.ns):
            owner = next((r.get("uid") for r in pod["metadata"].get("ownerReferences") or []), None)
            state = self.policy.get(revs.get(owner, -1))
            if state is None or pod["metadata"].get("deletionTimestamp"):
                continue
            if (pod.get("status") or {}).get("phase") not in ("Running",):
                continue  # kwok has not started it yet
            ready = any(
                x.get("type") == "Ready" and x.get("status") == "True"
                for x in (pod.get("status") or {}).get("conditions") or []
            )
            crashed = any(
                ((cs.get("state") or {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
                for cs in (pod.get("status") or {}).get("containerStatuses") or []
            )
            want_ready = state == "ready"
            if ready == want_ready and (state != "crash" or crashed):
                continue
            try:
                merge_patch(c, "Pod", pod["metadata"]["name"], self.ns, _pod_status(state, pod), status=True)
            except ApiError:
                pass

    def _template_for(self, rollout: Obj) -> Obj:
        """The Rollout to apply: kwok's annotation in the template when the revision it will create has
        a not-ready policy already (so its pods never flicker to ready)."""
        try:
            current = get(self.client, "Rollout", self.name, self.ns)
            rss = by_revision(self.client, current)
        except ApiError:
            rss = {}
        next_rev = max(rss, default=0) + 1
        state = self.policy.get(next_rev)
        if state in ("unready", "crash"):
            rollout = copy.deepcopy(rollout)
            ann = rollout["spec"]["template"].setdefault("metadata", {}).setdefault("annotations", {})
            if state == "unready":
                ann[kwok_stages.ANNOTATION_READY] = "never"
            else:
                ann[kwok_stages.ANNOTATION_CRASH] = "true"
        return rollout

    # -- steps ---------------------------------------------------------------------------------
    async def do(self, step: Step) -> None:
        await asyncio.to_thread(self._do, step)

    def _do(self, step: Step) -> None:
        if step.do == "apply":
            for name in step.deleted:
                try:
                    self.client.delete(RESOURCES["Service"], name, namespace=self.ns)
                except ApiError:
                    pass
            objs = sorted(step.objects, key=lambda o: 0 if o["kind"] == "Service" else 1)
            for o in objs:
                if o["kind"] == "Namespace":
                    continue
                o = copy.deepcopy(o)
                o["metadata"].pop("namespace", None)
                if o["kind"] == "Service":
                    o["spec"]["type"] = "ClusterIP"
                    self.services.append(o["metadata"]["name"])
                if o["kind"] == "Rollout":
                    o = self._template_for(o)
                apply(self.client, o, self.ns, manager="scenario")
        elif step.patches:
            for p in step.patches:
                merge_patch(
                    self.client, "Rollout", self.name, self.ns, p.body, status=p.subresource == "status"
                )
        elif step.do == "advance":
            self.offset += step.seconds
            assert self.ctrl is not None
            self.ctrl.advance(step.seconds)
        elif step.do == "pods":
            assert step.revision is not None and step.state is not None
            self.policy[step.revision] = step.state
            if step.state != "ready":
                # The enforcer thread makes the pods unready a moment later; the next step (a
                # promote, say) must find them so, as the local driver does. Under load a promote
                # once came first and rightly switched to the then-ready revision.
                self._wait_not_ready(step.revision)
        elif step.do == "wait":
            time.sleep(step.seconds)
        else:
            raise AssertionError(f"the Kubernetes driver does not know step {step.do!r}")

    def _wait_not_ready(self, rev: int, timeout: float = 120.0) -> None:
        """Until the ReplicaSet of revision ``rev`` reports no ready replica (the controller reads
        ReplicaSet status, which kube-controller-manager takes from the pods); at once when that
        revision has no ReplicaSet yet (its pods will start unready)."""

        def unready() -> bool:
            try:
                rs = by_revision(self.client, get(self.client, "Rollout", self.name, self.ns)).get(rev)
            except ApiError:
                rs = None
            return rs is None or not int((rs.get("status") or {}).get("readyReplicas") or 0)

        wait_until(unready, timeout, f"revision {rev}'s pods to be unready after `pods`")

    async def objects(self) -> tuple[Obj, list[Obj], list[Obj], list[Obj]]:
        return await asyncio.to_thread(self._objects)

    def _objects(self) -> tuple[Obj, list[Obj], list[Obj], list[Obj]]:
        try:
            ro = get(self.client, "Rollout", self.name, self.ns)
        except ApiError as exc:
            raise LookupError(str(exc)) from None
        rss = owned_replicasets(self.client, ro)
        strategy = (ro.get("spec") or {}).get("strategy") or {}
        bg = strategy.get("blueGreen") or {}
        canary = strategy.get("canary") or {}
        svcs = []
        named = (
            bg.get("activeService"),
            bg.get("previewService"),
            canary.get("stableService"),
            canary.get("canaryService"),
        )
        for n in named:
            if n:
                try:
                    svcs.append(get(self.client, "Service", n, self.ns))
                except ApiError:
                    pass
        return ro, rss, svcs, events(self.client, self.ns, self.name)

    async def settle(self) -> None:
        await asyncio.sleep(0.2)

    async def close(self) -> None:
        self._stop.set()
        if self._enforcer is not None:
            await asyncio.to_thread(self._enforcer.join, 5)
        if self.ctrl is not None:
            await asyncio.to_thread(self.ctrl.stop)


#: Scenarios run this many at a time, each in its own namespace with its own controller process:
#: they spend their time waiting for the control plane, so running them side by side keeps the
#: suite quick; each still reports as its own test.
CONCURRENCY = 6


async def _run_one(cp: ControlPlane, path: Path, log_dir: Path, sem: asyncio.Semaphore) -> str | None:
    async with sem:
        ns = await asyncio.to_thread(cp.create_namespace, "scn")
        client = admin_client(cp, ns)
        procs: list[ControllerProc] = []
        scenario_dir = log_dir / path.stem
        scenario_dir.mkdir(parents=True, exist_ok=True)
        driver = KubeDriver(cp, ns, client, procs, scenario_dir)
        try:
            await run_scenario(load_scenario(path), driver, poll_timeout=120.0, poll_interval=0.2)
            return None
        except Exception as exc:
            log = driver.ctrl.log_tail(60) if driver.ctrl else ""
            return f"{type(exc).__name__}: {exc}\n--- controller log ({scenario_dir}) ---\n{log}"
        finally:
            await driver.close()
            for p in procs:
                p.kill()
            client.close()
            await asyncio.to_thread(cp.delete_namespace, ns)


@pytest.fixture(scope="module")
def scenario_results(
    request: pytest.FixtureRequest, control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str | None]]:
    """Every selected scenario's outcome (None: passed; else the failure), run CONCURRENCY at a
    time. Only the scenarios this session selected run (`-k first-deploy` runs one)."""
    selected = {item.name for item in request.session.items}
    scenarios = [p for p in SCENARIOS if f"test_scenario[{p.stem}]" in selected]
    kube_helpers.crds_fixture(control_plane)
    added = kube_helpers.ensure_nodes(control_plane, 6)  # anti-affinity-required: more nodes than pods
    log_dir = tmp_path_factory.mktemp("scenarios")

    async def run_all() -> list[str | None]:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=4 * CONCURRENCY))
        sem = asyncio.Semaphore(CONCURRENCY)
        return await asyncio.gather(*(_run_one(control_plane, p, log_dir, sem) for p in scenarios))

    try:
        outcomes = asyncio.run(run_all())
    finally:
        kube_helpers.remove_nodes(control_plane, added)
    yield {p.stem: o for p, o in zip(scenarios, outcomes, strict=True)}


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario(path: Path, scenario_results: dict[str, str | None]) -> None:
    failure = scenario_results[path.stem]
    if failure is not None:
        pytest.fail(failure, pytrace=False)
