"""Side by side with Argo Rollouts' own controller (issue 16): the same blue-green story, step by
step, against Argo's `rollouts-controller` (built from its module by `make tools`) and against ours,
on the one control plane, each in a namespace of its own (both controllers are namespaced, so they
never see each other's Rollouts). After each step both worlds must settle to the same view: phase,
message, conditions (status and reason), the revisions the Services, stableRS and currentPodHash
name, replica counts per revision, the scale-down deadlines, pause conditions, abort, the status's
replica counts and fields, and the events of the step in order. Hashes, times and object names are
left out (the revisions stand for the hashes). Argo's controller is the reference: a difference
fails the test, unless docs/argo-compat.md lists it as intended (``INTENDED`` below, each with its
reason there).

The stories are in ``argo_stories/`` in the scenario format (tests/scenarios/README.md); their
``expect`` says when a step has settled on both sides. User actions (promote, promote --full,
abort, retry, pause, restart, undo, set image) are sent with Argo's own kubectl plugin on both
sides, so every verb of it is also proven against our operator. Time is real time on both sides (Argo's
controller has no test clock): a ``wait`` step lets its seconds pass, then polls.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kube_helpers
import pytest
from kube_helpers import REPO, ControllerProc, admin_client, http_get
from test_scenarios_k8s import KubeDriver

from harness.k8s_cluster import ControlPlane, tool_path
from harness.scenarios import (
    USER_ACTIONS,
    Scenario,
    Snapshot,
    Step,
    check,
    load_scenario,
    scenario_files,
    snapshot,
    user_patches,
)

Obj = dict[str, Any]
STORIES = scenario_files(REPO / "tests" / "k8s" / "argo_stories")
#: How long one step may take to settle on both sides (the machine is shared and loaded).
STEP_TIMEOUT = 180.0
#: Both sides must show the same view this long before a step counts as settled.
STABLE_FOR = 2.0
pytestmark = pytest.mark.timeout(1200)

#: User actions go through Argo's own kubectl plugin on both sides (its verb and arguments before
#: the Rollout's name); the others (``patch``, ``resume``) are the scenario's own patches.
ARGO_PLUGIN_VERBS: dict[str, tuple[str, ...]] = {
    "promote": ("promote",),
    "promote-full": ("promote", "--full"),
    "abort": ("abort",),
    "retry": ("retry", "rollout"),
    "pause": ("pause",),
    "restart": ("restart",),
    "undo": ("undo",),
    "image": ("set", "image"),
}
#: The status fields compared as values (the rest are compared by presence: ``status_fields``).
STATUS_COUNTS = ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "HPAReplicas")
#: Status fields whose values are hashes, times or names: compared by presence only.
#: Intended differences (docs/argo-compat.md, "Side by side with Argo's controller"): status fields
#: only one side writes. Each is left out of the comparison, with its reason in the doc.
INTENDED_STATUS_FIELDS = frozenset(
    {
        # Argo's workload-reference bookkeeping (workloadRef), written on every Rollout.
        "workloadObservedGeneration",
    }
)


class ArgoControllerProc(ControllerProc):
    """Argo Rollouts' own controller as a subprocess, namespaced to one namespace (its leases,
    informers and notification settings all stay there)."""

    def __init__(self, kubeconfig: Path | str, namespace: str, log_path: Path) -> None:
        super().__init__(
            kubeconfig, namespace, log_path, env={"POD_NAMESPACE": namespace}, identity_name="argo"
        )

    def args(self) -> list[str]:
        return [
            str(tool_path("rollouts-controller")),
            "--kubeconfig",
            self.kubeconfig,
            "--namespaced",
            "--namespace",
            self.namespace,
            "--leader-elect=false",
            f"--metricsPort={self.metrics_port}",
            f"--healthzPort={self.healthz_port}",
            "--rollout-threads=2",
            "--loglevel=info",
        ]

    def ready(self) -> bool:
        """Its healthz answers and its informers have synced (it logs "Started controller")."""
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"Argo's controller exited with {self.proc.returncode}:\n{self.log_tail()}")
        try:
            if http_get(f"http://127.0.0.1:{self.healthz_port}/healthz", 1.0)[0] != 200:
                return False
        except OSError:
            return False
        return "Started controller" in self.log_tail(400)

    def advance(self, seconds: float) -> None:
        raise AssertionError("Argo's controller has no test clock: a side-by-side story uses `wait`")


class ArgoDriver(KubeDriver):
    """The scenario driver with Argo's controller in place of ours."""

    async def start(self, objects: Any) -> None:
        self.name = next(o for o in objects if o["kind"] == "Rollout")["metadata"]["name"]
        self.ctrl = ArgoControllerProc(self.cp.kubeconfig, self.ns, self.log_dir / "argo-controller.log")
        self.procs.append(self.ctrl)
        await asyncio.to_thread(self.ctrl.start)
        await self._start_enforcer()


# -- the compared view -------------------------------------------------------------------------


def _hashless(text: str, snap: Snapshot, namespace: str = "") -> str:
    """``text`` with each ReplicaSet hash replaced by its revision (``{rev:N}``) and the namespace
    (each side has its own) by ``NS``."""
    if namespace:
        text = text.replace(namespace, "NS")
    for h, rev in snap.revisions.items():
        if h:
            text = text.replace(h, f"{{rev:{rev}}}")
    return text


def _occurrences(events: list[Obj]) -> dict[str, int]:
    """How many times each Event object has happened (client-go folds repeats into ``count``)."""
    return {e["metadata"]["uid"]: int(e.get("count") or 1) for e in events}


def _events_since(before: dict[str, int], events: list[Obj], snap: Snapshot, namespace: str) -> list[str]:
    """The events that happened since ``before``, oldest first, as ``reason: message``."""
    out: list[tuple[str, int, str]] = []
    for e in events:
        n = int(e.get("count") or 1) - before.get(e["metadata"]["uid"], 0)
        when = str(e.get("lastTimestamp") or e.get("eventTime") or e["metadata"].get("creationTimestamp"))
        text = f"{e.get('reason')}: {_hashless(str(e.get('message') or ''), snap, namespace)}"
        out.extend((when, int(e["metadata"]["resourceVersion"]), text) for _ in range(max(n, 0)))
    return [t for _, _, t in sorted(out)]


def view(snap: Snapshot, events: list[str]) -> dict[str, Any]:
    """What is compared: everything in the snapshot but hashes, times and names."""
    st = snap.status
    bg = st.get("blueGreen") or {}
    return {
        "phase": snap.phase,
        "message": _hashless(snap.message, snap),
        "active": snap.active,
        "preview": snap.preview,
        "stable": snap.stable,
        "current": snap.current,
        "replicas per revision": snap.replicas,
        "available per revision": snap.available,
        "scale-down deadline on revisions": snap.deadline,
        "pauseConditions": snap.pause_conditions,
        "controllerPause": bool(st.get("controllerPause")),
        "abort": st.get("abort"),
        "promoteFull": st.get("promoteFull"),
        "conditions": {t: list(v) for t, v in sorted(snap.conditions.items())},
        "status counts": {k: st.get(k) for k in STATUS_COUNTS},
        "status fields": sorted(set(st) - INTENDED_STATUS_FIELDS),
        "blueGreen fields": sorted(bg),
        "spec.paused": bool(snap.spec.get("paused")),
        "events": events,
    }


def differences(argo: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    """Each key whose value differs, with Argo's (the reference) and ours."""
    return [f"{k}: argo {argo[k]!r}, ours {ours.get(k)!r}" for k in argo if argo[k] != ours.get(k)]


# -- the lockstep runner -----------------------------------------------------------------------


@dataclasses.dataclass
class Side:
    name: str
    driver: KubeDriver
    before: dict[str, int] = dataclasses.field(default_factory=dict)

    async def look(self, step: Step) -> tuple[dict[str, Any] | None, list[str]]:
        """This side's view and the step's unmet expectations (None while no Rollout exists)."""
        try:
            ro, rss, svcs, evs = await self.driver.objects()
        except LookupError:
            return None, ["no Rollout yet"]
        snap = snapshot(ro, rss, svcs, evs)
        step_events = _events_since(self.before, evs, snap, self.driver.ns)
        return view(snap, step_events), check(step.expect, dataclasses.replace(snap, events=[]))

    async def do(self, step: Step) -> None:
        try:
            _, _, _, evs = await self.driver.objects()
            self.before = _occurrences(evs)
        except LookupError:
            self.before = {}
        if step.do in ARGO_PLUGIN_VERBS:
            await asyncio.to_thread(self.argo_plugin, step)
            return
        if step.do in USER_ACTIONS:
            ro, rss, _, _ = await self.driver.objects()
            step = dataclasses.replace(
                step, patches=tuple(user_patches(step, ro, rss, await self.driver.now()))
            )
        await self.driver.do(step)

    def argo_plugin(self, step: Step) -> None:
        """The user action as a user of Argo sends it: Argo's own kubectl plugin, on both sides."""
        args = list(ARGO_PLUGIN_VERBS[step.do])
        name = self.driver.name
        if step.do == "image":
            container = self.driver._objects()[0]["spec"]["template"]["spec"]["containers"][0]["name"]
            args += [name, f"{container}={step.raw['image']}"]
        else:
            args.append(name)
        if step.do == "undo" and step.raw.get("toRevision") is not None:
            args.append(f"--to-revision={step.raw['toRevision']}")
        cmd = [str(tool_path("kubectl-argo-rollouts")), *args, "-n", self.driver.ns]
        cmd += ["--kubeconfig", str(self.driver.cp.kubeconfig)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (
            f"{self.name}: {' '.join(cmd)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
        )


async def run_side_by_side(story: Scenario, argo: Side, ours: Side) -> list[str]:
    """Run every step on both sides; returns a line per step with the settled view, and raises
    AssertionError naming the step and every difference when the two do not agree."""
    await asyncio.gather(argo.driver.start(story.manifest), ours.driver.start(story.manifest))
    transcript: list[str] = []
    for step in story.steps:
        await asyncio.gather(argo.do(step), ours.do(step))
        deadline = time.monotonic() + STEP_TIMEOUT
        stable_since: float | None = None
        last: tuple[Any, Any] | None = None
        while True:
            (va, ea), (vo, eo) = await asyncio.gather(argo.look(step), ours.look(step))
            settled = va is not None and vo is not None and not ea and not eo and va == vo
            now = time.monotonic()
            if settled and last == (va, vo):
                if stable_since is not None and now - stable_since >= STABLE_FOR:
                    break
            else:
                stable_since = now if settled else None
            last = (va, vo)
            if now >= deadline:
                lines = [f"argo's controller did not reach the step's expectation: {ea}"] if ea else []
                lines += [f"ours did not reach the step's expectation: {eo}"] if eo else []
                if va is not None and vo is not None:
                    lines += differences(va, vo)
                raise AssertionError(
                    f"{story.path.name}: step {step.index} (do: {step.do}) did not settle to the same "
                    f"state within {STEP_TIMEOUT}s:\n  " + "\n  ".join(lines)
                )
            await asyncio.sleep(0.5)
        transcript.append(f"step {step.index} ({step.do}): {va}")
    return transcript


async def _run_story(cp: ControlPlane, path: Path, log_dir: Path) -> tuple[str | None, list[str]]:
    story = load_scenario(path)
    sides: list[Side] = []
    clients = []
    namespaces = []
    try:
        for name, cls in (("argo", ArgoDriver), ("ours", KubeDriver)):
            ns = await asyncio.to_thread(cp.create_namespace, f"sbs-{name}")
            namespaces.append(ns)
            client = admin_client(cp, ns)
            clients.append(client)
            d = log_dir / path.stem / name
            d.mkdir(parents=True, exist_ok=True)
            sides.append(Side(name, cls(cp, ns, client, [], d)))
        try:
            return None, await run_side_by_side(story, sides[0], sides[1])
        except Exception as exc:
            logs = "\n".join(
                f"--- {s.name}'s controller log ({s.driver.log_dir}) ---\n"
                + (s.driver.ctrl.log_tail(30) if s.driver.ctrl else "")
                for s in sides
            )
            return f"{type(exc).__name__}: {exc}\n{logs}", []
    finally:
        for s in sides:
            await s.driver.close()
            for p in s.driver.procs:
                p.kill()
        for c in clients:
            c.close()
        for ns in namespaces:
            await asyncio.to_thread(cp.delete_namespace, ns)


@pytest.fixture(scope="module")
def story_results(
    request: pytest.FixtureRequest, control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, tuple[str | None, list[str]]]]:
    """Every selected story's outcome (None: both sides agreed), the stories side by side."""
    selected = {item.name for item in request.session.items}
    stories = [p for p in STORIES if f"test_side_by_side[{p.stem}]" in selected]
    kube_helpers.crds_fixture(control_plane)
    log_dir = tmp_path_factory.mktemp("side-by-side")

    async def run_all() -> list[tuple[str | None, list[str]]]:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=16))
        return await asyncio.gather(*(_run_story(control_plane, p, log_dir) for p in stories))

    outcomes = asyncio.run(run_all())
    yield {p.stem: o for p, o in zip(stories, outcomes, strict=True)}


@pytest.mark.parametrize("path", STORIES, ids=[p.stem for p in STORIES])
def test_side_by_side(path: Path, story_results: dict[str, tuple[str | None, list[str]]]) -> None:
    """Argo's controller (the reference) and ours settle to the same state after every step."""
    failure, transcript = story_results[path.stem]
    if failure is not None:
        pytest.fail(failure, pytrace=False)
    print("\n".join(transcript))


def test_stories_are_well_formed() -> None:
    """Every story loads, uses no `advance` (Argo's controller runs on real time) and says when
    each step has settled."""
    assert len(STORIES) >= 5
    for p in STORIES:
        story = load_scenario(p)
        assert all(s.do != "advance" for s in story.steps), p
        assert all(s.expect for s in story.steps if s.do != "pods"), p
    assert re.search(r"side by side", (REPO / "docs" / "argo-compat.md").read_text(), re.IGNORECASE)
