"""Kubernetes faults (issue 11): kube-apiserver stopped in the middle of an update and started
again, and two writers on one Rollout.

- The API server goes away (SIGKILL, then SIGTERM) after the new ReplicaSet is created and before
  the promote, and again right behind a promote (during the active switch). The controller keeps
  running through each outage and converges when the server is back: Paused with preview on the
  new revision, then Healthy on it with both Services' selectors on its hash, exactly two
  ReplicaSets, the new one at 3 and the old one at 0 once the scale-down delay (passed on the
  controller's test clock) is over.
- Two writers lose no update: a watch records every version of the Rollout; after each write a
  user's client made (and the API server acknowledged), every later version keeps what it wrote
  until the user's next write of that field, whatever the controller writes meanwhile. The user
  takes spec.replicas away (the controller then writes back the default, as Argo) and sets it again
  at once, while a second client keeps writing an annotation of its own: the controller's default
  must never land on the user's value, and neither client's write is lost.
"""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Any

import kube_helpers
import pytest
import runtime_support
from kube_helpers import admin_client, merge_patch, owned_replicasets, plain, rs_hash, wait_for
from runtime_support import ACTIVE, NAME, PREVIEW, RuntimeEnv, manifest, with_env

from pyrollouts.model import names
from pyrollouts.runtimes.kubernetes.resources import RESOURCES

Obj = dict[str, Any]

_crds = pytest.fixture(name="crds")(kube_helpers.crds_fixture)
_client = pytest.fixture(name="client")(kube_helpers.client_fixture)
_controllers = pytest.fixture(name="controllers")(kube_helpers.controllers_fixture)
_rt = pytest.fixture(name="rt")(runtime_support.runtime_env_fixture)

APISERVER = "kube-apiserver"


def _outage(rt: RuntimeEnv, *, kill: bool, down_for: float) -> None:
    """Stop kube-apiserver (SIGKILL with ``kill``), keep it down ``down_for`` s, start it again."""
    rt.cp.stop_component(APISERVER, kill=kill)
    time.sleep(down_for)
    took = rt.cp.start_component(APISERVER)
    print(
        f"kube-apiserver {'killed' if kill else 'stopped'}, down {down_for:g} s, ready again in {took:.1f} s"
    )


def _converged(rt: RuntimeEnv, rev: int) -> bool:
    """Healthy on ``rev`` (status and both Services), one ReplicaSet per revision up to ``rev``
    (revisions 1..rev, or the newest of them once revisionHistoryLimit, 10, pruned the oldest),
    ``rev`` at 3 ready replicas and every other one at 0."""
    if not rt.healthy_on(rev):
        return False
    rss = rt.revisions()
    owned = owned_replicasets(rt.client, rt.rollout())
    if len(owned) != len(rss) or max(rss) != rev or sorted(rss) != list(range(rev - len(rss) + 1, rev + 1)):
        return False
    for n, rs in rss.items():
        want = 3 if n == rev else 0
        if rs["spec"]["replicas"] != want or (rs.get("status") or {}).get("readyReplicas", 0) != want:
            return False
    return True


def _state(rt: RuntimeEnv) -> str:
    """What a convergence wait saw last: phase, Services and each revision's replicas and deadline."""
    rss = rt.revisions()
    per_rev = {
        n: (
            rs["spec"]["replicas"],
            (rs.get("status") or {}).get("readyReplicas", 0),
            (rs["metadata"].get("annotations") or {}).get(names.SCALE_DOWN_DEADLINE_ANNOTATION),
        )
        for n, rs in sorted(rss.items())
    }
    return (
        f"phase={rt.phase()} active={rt.svc_hash(ACTIVE)} preview={rt.svc_hash(PREVIEW)} "
        f"revisions (spec, ready, deadline)={per_rev}"
    )


def _wait_converged(rt: RuntimeEnv, rev: int, ctrl: Any, context: str = "") -> None:
    """Wait for _converged; on a timeout, say what was seen last (a rare CI flake left no trace)."""
    seen: list[str] = []

    def check() -> bool:
        ok = _converged(rt, rev)
        if not ok:
            seen[:] = [_state(rt)]
        return ok

    try:
        wait_for(check, 300, f"converged on revision {rev}\n{ctrl.log_tail()}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nlast seen: {seen[0] if seen else '-'}\n{context}") from None


@pytest.mark.timeout(900)  # two outages, and Kubernetes' own components reconnecting after each
def test_apiserver_stopped_mid_update_converges(rt: RuntimeEnv) -> None:
    objs = manifest(scale_down_delay=600)
    ctrl = rt.deploy(objs)
    rt.wait_healthy(1, 120, f"Healthy on revision 1\n{ctrl.log_tail()}")

    # The update: the new ReplicaSet is created, then the API server dies before anything else.
    rt.apply_all(with_env(objs, "VERSION V3"))
    # Wait for the create's audit event too: a list can see the new ReplicaSet (from the watch cache)
    # before the create's handler has written its audit line, and a SIGKILL in that gap loses the line
    # the last assertion counts (CI: 1 create in the log for 2 revisions).
    wait_for(
        lambda: 2 in rt.revisions() and len(rt.replicaset_writes("create")) == 2,
        120,
        f"the new ReplicaSet and its create in the audit log\n{ctrl.log_tail()}",
    )
    _outage(rt, kill=True, down_for=4)
    assert ctrl.alive(), f"the controller died with the API server\n{ctrl.log_tail()}"

    def paused() -> bool:
        rss = rt.revisions()
        return (
            rt.phase() == "Paused"
            and sorted(rss) == [1, 2]
            and rt.svc_hash(PREVIEW) == rs_hash(rss[2])
            and rt.svc_hash(ACTIVE) == rs_hash(rss[1])
            and (rss[2].get("status") or {}).get("availableReplicas") == 3
        )

    wait_for(paused, 300, f"Paused with preview on revision 2 after the outage\n{ctrl.log_tail()}")

    # The promote, and the API server stopped right behind it (the active switch in flight).
    merge_patch(rt.client, "Rollout", NAME, rt.ns, {"status": {"pauseConditions": None}}, status=True)
    _outage(rt, kill=False, down_for=4)
    assert ctrl.alive(), f"the controller died with the API server\n{ctrl.log_tail()}"
    rt.wait_healthy(2, 120, f"Healthy on revision 2 after the outage\n{ctrl.log_tail()}")
    rss = rt.revisions()
    assert sorted(rss) == [1, 2] and rss[1]["spec"]["replicas"] == 3, "the old RS waits for its deadline"

    # The old ReplicaSet's deadline (now + 600 s on the controller's clock) may be written after
    # Healthy: a write cut by the outage is retried once the server is back. Advance the clock
    # only once it is there, or a late write would count 600 s from the advanced clock.
    def deadline() -> str | None:
        annotations = rt.revisions()[1]["metadata"].get("annotations") or {}
        return annotations.get(names.SCALE_DOWN_DEADLINE_ANNOTATION)

    wait_for(lambda: deadline() is not None, 120, f"the old ReplicaSet's deadline\n{ctrl.log_tail()}")
    written = deadline()
    ctrl.advance(660)
    # Removing the old pods is kube-controller-manager's and kwok's work, after their own
    # reconnects: measured at up to ~55 s after an outage on a loaded machine.
    _wait_converged(rt, 2, ctrl, f"the deadline before the clock moved 660 s: {written}")
    assert ctrl.alive()
    st = rt.status()
    assert st["stableRS"] == st["currentPodHash"] == rs_hash(rt.revisions()[2]), st
    assert len(rt.replicaset_writes("create")) == 2, "one create per revision, none repeated"


@pytest.mark.soak
@pytest.mark.timeout(7200)  # many rounds: far past the suite's 300 s per test
def test_apiserver_outages_at_random_moments_soak(rt: RuntimeEnv) -> None:
    """SOAK_OUTAGE_CYCLES updates (default 10), each with an outage (SIGKILL or SIGTERM, 1-4 s) at a
    random moment after the apply and another right behind the promote; each converges."""
    seed = int(os.environ.get("SOAK_SEED", str(random.randrange(1 << 30))))
    rng = random.Random(seed)
    cycles = int(os.environ.get("SOAK_OUTAGE_CYCLES", "10"))
    objs = manifest(scale_down_delay=600)
    ctrl = rt.deploy(objs)
    rt.wait_healthy(1, 120, f"Healthy on revision 1\n{ctrl.log_tail()}")
    started, outages = time.monotonic(), 0
    for i in range(cycles):
        rev = i + 2
        rt.apply_all(with_env(objs, f"VERSION V{rev + 1}"))
        for moment in ("after the apply", "behind the promote"):
            if moment == "behind the promote":
                wait_for(
                    lambda rev=rev: (
                        rt.phase() == "Paused"
                        and max(rt.revisions()) == rev
                        and rt.svc_hash(PREVIEW) == rs_hash(rt.revisions()[rev])
                    ),
                    300,
                    f"cycle {i}: Paused on revision {rev}\n{ctrl.log_tail()}",
                )
                merge_patch(
                    rt.client, "Rollout", NAME, rt.ns, {"status": {"pauseConditions": None}}, status=True
                )
            time.sleep(rng.uniform(0, 1.0))
            _outage(rt, kill=rng.random() < 0.5, down_for=rng.uniform(1, 4))
            outages += 1
            assert ctrl.alive(), f"the controller died with the API server\n{ctrl.log_tail()}"
        rt.wait_healthy(rev, 120, f"cycle {i}: Healthy on revision {rev}\n{ctrl.log_tail()}")
        ctrl.advance(660)
        # The controller's part (every old ReplicaSet at 0), then Kubernetes' (its pods gone, which
        # kube-controller-manager and kwok do after their own reconnects): timed apart.
        wait_for(
            lambda rev=rev: all(rs["spec"]["replicas"] == 0 for n, rs in rt.revisions().items() if n != rev),
            120,
            f"cycle {i}: the controller scaled the old revisions to 0\n{ctrl.log_tail()}",
        )
        _wait_converged(rt, rev, ctrl, f"cycle {i} (seed {seed})")
    print(
        "apiserver outages:",
        {"seed": seed, "cycles": cycles, "outages": outages, "seconds": round(time.monotonic() - started)},
    )


class _Versions:
    """Every version of the Rollout from a watch (resourceVersion order), from ``rv`` on."""

    def __init__(self, rt: RuntimeEnv, rv: str) -> None:
        self.items: list[Obj] = []
        self.stop = threading.Event()
        self.client = admin_client(rt.cp, rt.ns)
        self.thread = threading.Thread(target=self._run, args=(rt.ns, rv), daemon=True)
        self.thread.start()

    def _run(self, ns: str, rv: str) -> None:
        while not self.stop.is_set():
            try:
                for _, item in self.client.watch(
                    RESOURCES["Rollout"], namespace=ns, resource_version=rv, server_timeout=5
                ):
                    obj = plain(item)
                    self.items.append(obj)
                    rv = obj["metadata"]["resourceVersion"]
                    if self.stop.is_set():
                        return
            except Exception:
                time.sleep(0.2)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(15)
        self.client.close()


def _field(obj: Obj, path: tuple[str, ...]) -> Any:
    cur: Any = obj
    for p in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(p)
    return cur


def _lost_updates(versions: list[Obj], writes: list[tuple[int, tuple[str, ...], Any]]) -> list[str]:
    """Each acknowledged write (rv, field path, value): every version after it, up to the next
    write of the same field, must hold the value."""
    lost = []
    by_field: dict[tuple[str, ...], list[tuple[int, Any]]] = {}
    for rv, path, value in writes:
        by_field.setdefault(path, []).append((rv, value))
    for path, ws in by_field.items():
        ws.sort(key=lambda w: w[0])
        for i, (rv, value) in enumerate(ws):
            if value is None:
                # The user took the field away: the controller's default may fill it (as Argo's
                # does) until the user's next write, which is then checked.
                continue
            until = ws[i + 1][0] if i + 1 < len(ws) else None
            for v in versions:
                vrv = int(v["metadata"]["resourceVersion"])
                if vrv > rv and (until is None or vrv < until) and _field(v, path) != value:
                    lost.append(
                        f"{'.'.join(path)}={value!r} written at rv {rv}, rv {vrv} has {_field(v, path)!r}"
                    )
                    break
    return lost


def _two_writers(rt: RuntimeEnv, rounds: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    objs = manifest(scale_down_delay=600)
    ctrl = rt.deploy(objs)
    rt.wait_healthy(1, 120, f"Healthy on revision 1\n{ctrl.log_tail()}")
    start_rv = rt.rollout()["metadata"]["resourceVersion"]
    versions = _Versions(rt, start_rv)
    writes: list[tuple[int, tuple[str, ...], Any]] = []
    lock = threading.Lock()
    stop = threading.Event()
    other_writes = [0]

    def other_writer() -> None:
        c = admin_client(rt.cp, rt.ns)
        i = 0
        try:
            while not stop.is_set():
                i += 1
                out = merge_patch(
                    c, "Rollout", NAME, rt.ns, {"metadata": {"annotations": {"test/other": str(i)}}}
                )
                with lock:
                    writes.append(
                        (
                            int(out["metadata"]["resourceVersion"]),
                            ("metadata", "annotations", "test/other"),
                            str(i),
                        )
                    )
                    other_writes[0] += 1
                time.sleep(rng.uniform(0, 0.05))
        finally:
            c.close()

    t = threading.Thread(target=other_writer, daemon=True)
    t.start()
    try:
        for i in range(rounds):
            want = 2 + i % 2
            out = merge_patch(rt.client, "Rollout", NAME, rt.ns, {"spec": {"replicas": None}})
            with lock:
                writes.append((int(out["metadata"]["resourceVersion"]), ("spec", "replicas"), None))
            time.sleep(rng.uniform(0, 0.03))
            out = merge_patch(rt.client, "Rollout", NAME, rt.ns, {"spec": {"replicas": want}})
            with lock:
                writes.append((int(out["metadata"]["resourceVersion"]), ("spec", "replicas"), want))
            time.sleep(rng.uniform(0.1, 0.3))
    finally:
        stop.set()
        t.join(30)
    last = rounds and 2 + (rounds - 1) % 2
    wait_for(
        lambda: (
            rt.rollout()["spec"].get("replicas") == last
            and rt.status().get("availableReplicas") == last
            and rt.phase() == "Healthy"
        ),
        120,
        f"the user's last replicas ({last}) in force\n{ctrl.log_tail()}",
    )
    time.sleep(2)  # the watch catches up
    versions.close()
    lost = _lost_updates(versions.items, writes)
    figures = {
        "seed": seed,
        "rounds": rounds,
        "user writes": 2 * rounds,
        "other client's writes": other_writes[0],
        "versions seen": len(versions.items),
        "lost": len(lost),
    }
    print("two writers:", figures)
    assert versions.items, "the watch saw nothing"
    assert not lost, f"lost updates: {lost[:10]}\n{ctrl.log_tail()}"
    return figures


def test_two_writers_lose_no_update(rt: RuntimeEnv) -> None:
    _two_writers(rt, rounds=15, seed=11)


@pytest.mark.soak
@pytest.mark.timeout(7200)  # many rounds: far past the suite's 300 s per test
def test_two_writers_lose_no_update_soak(rt: RuntimeEnv) -> None:
    seed = int(os.environ.get("SOAK_SEED", str(random.randrange(1 << 30))))
    _two_writers(rt, rounds=int(os.environ.get("SOAK_WRITER_ROUNDS", "200")), seed=seed)
