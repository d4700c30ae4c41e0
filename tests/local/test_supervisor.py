"""The local kubelet with real processes: env and ports, probes, crash loops, liveness restarts,
graceful and forced termination, init containers, and re-adoption after the server dies."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from pyrollouts.model.cluster import Conflict
from pyrollouts.runtimes.local.runtime import LocalRuntime
from pyrollouts.runtimes.local.store import Store
from pyrollouts.runtimes.local.supervisor import (
    PROCESSES_ANNOTATION,
    find_pod_processes,
    proc_alive,
    proc_start_time,
)

IMAGE = "ghcr.io/gbaeke/super:1.0.2"


def demo(**extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = {
        "name": "app",
        "image": IMAGE,
        "ports": [{"containerPort": 8080, "name": "http"}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1},
    }
    c.update(extra)
    return c


def replicaset(name: str, containers: list[dict[str, Any]], replicas: int = 1, **spec: Any) -> dict[str, Any]:
    pod_spec = {"terminationGracePeriodSeconds": 2, "containers": containers}
    pod_spec.update(spec.pop("pod", {}))
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
            **spec,
        },
    }


def pods(rt: LocalRuntime, name: str | None = None) -> list[dict[str, Any]]:
    return [p for p in rt.store.list("Pod") if name is None or p["metadata"]["name"].startswith(name + "-")]


def cstatus(pod: dict[str, Any], i: int = 0) -> dict[str, Any]:
    return ((pod.get("status") or {}).get("containerStatuses") or [{}])[i]


def ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in (pod.get("status") or {}).get("conditions", [])
    )


def get(port: int, path: str = "/", method: str = "GET") -> tuple[int, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def pid_of(pod: dict[str, Any], container: str = "app") -> int:
    return int(json.loads(pod["metadata"]["annotations"][PROCESSES_ANNOTATION])[container]["pid"])


async def test_demo_app_gets_env_and_its_own_port(
    runtime: LocalRuntime, wait_for: Any, state_dir: Path
) -> None:
    env = [
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "WELCOME", "value": "hello from $(POD) of $(APP) at $(MISSING)"},
    ]
    await runtime.cluster.create("ReplicaSet", replicaset("web", [demo(env=env)], replicas=2))
    await wait_for(lambda: len(pods(runtime, "web")) == 2 and all(ready(p) for p in pods(runtime, "web")))
    seen = set()
    for p in pods(runtime, "web"):
        port = runtime.pod_ports(p)["http"]
        assert runtime.pod_ports(p)[8080] == port
        assert p["status"]["podIP"] == "127.0.0.1" and p["status"]["phase"] == "Running"
        name = p["metadata"]["name"]
        assert get(port) == (200, f"hello from {name} of web at $(MISSING)")
        assert get(port, "/healthz")[0] == 200
        seen.add(port)
        log = state_dir / "logs" / "default" / name / "app.log"
        assert "listening on 127.0.0.1" in log.read_text()
        env_seen = Path(f"/proc/{pid_of(p)}/environ").read_bytes().split(b"\0")
        assert f"PORT={port}".encode() in env_seen and f"PORT_8080={port}".encode() in env_seen
        assert f"HOSTNAME={name}".encode() in env_seen
        assert os.getsid(pid_of(p)) == pid_of(p)  # its own session: it outlives the server
    assert len(seen) == 2


async def test_readiness_probe_timing_and_thresholds(runtime: LocalRuntime, wait_for: Any) -> None:
    probe = {
        "httpGet": {"path": "/healthz", "port": 8080},
        "initialDelaySeconds": 2,
        "periodSeconds": 1,
        "failureThreshold": 2,
        "successThreshold": 2,
    }
    t0 = time.monotonic()
    await runtime.cluster.create("ReplicaSet", replicaset("probe", [demo(readinessProbe=probe)]))
    await wait_for(
        lambda: pods(runtime, "probe") and pods(runtime, "probe")[0]["status"].get("phase") == "Running"
    )
    await asyncio.sleep(max(0.0, t0 + 1.5 - time.monotonic()))
    assert not ready(pods(runtime, "probe")[0])  # initialDelaySeconds: no probe yet
    await wait_for(lambda: ready(pods(runtime, "probe")[0]), timeout=8)
    # successThreshold 2 with a 1 s period after a 2 s delay: not before ~3 s.
    assert time.monotonic() - t0 >= 2.9
    port = runtime.pod_ports(pods(runtime, "probe")[0])[8080]
    assert get(port, "/admin/unready", "POST")[0] == 200
    t1 = time.monotonic()
    await asyncio.sleep(0.8)
    assert ready(pods(runtime, "probe")[0])  # one failure at most: failureThreshold is 2
    await wait_for(lambda: not ready(pods(runtime, "probe")[0]), timeout=5)
    assert time.monotonic() - t1 >= 1.0
    assert cstatus(pods(runtime, "probe")[0])["restartCount"] == 0  # readiness never restarts


async def test_no_readiness_probe_means_ready_when_running_and_tcp_probe(
    runtime: LocalRuntime, wait_for: Any
) -> None:
    await runtime.cluster.create("ReplicaSet", replicaset("plain", [demo(readinessProbe=None)]))
    await wait_for(lambda: pods(runtime, "plain") and ready(pods(runtime, "plain")[0]), timeout=5)
    tcp = {"tcpSocket": {"port": "http"}, "periodSeconds": 1}
    await runtime.cluster.create("ReplicaSet", replicaset("tcp", [demo(readinessProbe=tcp)]))
    await wait_for(lambda: pods(runtime, "tcp") and ready(pods(runtime, "tcp")[0]), timeout=6)


async def test_crash_loop_backs_off_and_says_so(runtime: LocalRuntime, wait_for: Any) -> None:
    await runtime.cluster.create(
        "ReplicaSet", replicaset("crash", [demo(env=[{"name": "DEMO_FAIL", "value": "crash"}])])
    )
    waiting: list[dict[str, Any]] = []

    def crashed_thrice() -> bool:
        p = pods(runtime, "crash")
        if not p:
            return False
        st = cstatus(p[0])
        if "waiting" in st.get("state", {}):
            waiting.append(st["state"]["waiting"])
        return st.get("restartCount", 0) >= 3

    t0 = time.monotonic()
    await wait_for(crashed_thrice, timeout=15, interval=0.02)
    # Backoff 0.2, 0.4, 0.8 s (plus each start): at least ~1.4 s for three restarts.
    assert time.monotonic() - t0 >= 0.6
    assert any(w.get("reason") == "CrashLoopBackOff" and "back-off" in w.get("message", "") for w in waiting)
    st = cstatus(pods(runtime, "crash")[0])
    assert (
        st["lastState"]["terminated"]["exitCode"] == 1 and st["lastState"]["terminated"]["reason"] == "Error"
    )
    assert not ready(pods(runtime, "crash")[0])
    rs = runtime.store.get("ReplicaSet", "default", "crash")
    assert rs["status"]["replicas"] == 1 and rs["status"]["readyReplicas"] == 0
    reasons = {e["reason"] for e in runtime.store.list("Event", "default")}
    assert {"BackOff", "SuccessfulCreate"} <= reasons


async def test_command_not_found_is_a_start_error(runtime: LocalRuntime, wait_for: Any) -> None:
    c = demo(command=["/nonexistent/app-binary"])
    await runtime.cluster.create("ReplicaSet", replicaset("nocmd", [c]))

    def start_error() -> Any:
        p = pods(runtime, "nocmd")
        return p and cstatus(p[0]).get("lastState", {}).get("terminated", {}).get("reason") == "StartError"

    await wait_for(start_error, timeout=5)
    st = cstatus(pods(runtime, "nocmd")[0])
    assert "/nonexistent/app-binary" in st["lastState"]["terminated"]["message"]


async def test_liveness_failure_restarts_the_container(runtime: LocalRuntime, wait_for: Any) -> None:
    live = {
        "httpGet": {"path": "/healthz", "port": 8080},
        "initialDelaySeconds": 1,
        "periodSeconds": 1,
        "failureThreshold": 1,
    }
    await runtime.cluster.create("ReplicaSet", replicaset("live", [demo(livenessProbe=live)]))
    await wait_for(lambda: pods(runtime, "live") and ready(pods(runtime, "live")[0]), timeout=6)
    p = pods(runtime, "live")[0]
    old_pid = pid_of(p)
    port = runtime.pod_ports(p)[8080]
    get(port, "/admin/unready", "POST")
    await wait_for(lambda: cstatus(pods(runtime, "live")[0])["restartCount"] == 1, timeout=6)
    await wait_for(lambda: ready(pods(runtime, "live")[0]), timeout=6)
    p = pods(runtime, "live")[0]
    assert pid_of(p) != old_pid and runtime.pod_ports(p)[8080] == port  # same host port after restart
    assert not Path(f"/proc/{old_pid}").exists() or proc_start_time(old_pid) is None
    assert get(port)[0] == 200
    messages = [e["message"] for e in runtime.store.list("Event", "default") if e["reason"] == "Unhealthy"]
    assert any("Liveness probe failed" in m for m in messages)


async def test_sigterm_then_sigkill_after_the_grace_period(runtime: LocalRuntime, wait_for: Any) -> None:
    stubborn = demo(env=[{"name": "DEMO_FAIL", "value": "ignore-term"}])
    await runtime.cluster.create(
        "ReplicaSet", replicaset("stub", [stubborn], replicas=1, pod={"terminationGracePeriodSeconds": 1})
    )
    await runtime.cluster.create("ReplicaSet", replicaset("nice", [demo()], replicas=1))
    await wait_for(lambda: len([p for p in pods(runtime) if ready(p)]) == 2, timeout=6)
    stub_pid, nice_pid = pid_of(pods(runtime, "stub")[0]), pid_of(pods(runtime, "nice")[0])
    t0 = time.monotonic()
    await runtime.cluster.patch("ReplicaSet", "default", "stub", {"spec": {"replicas": 0}})
    await runtime.cluster.patch("ReplicaSet", "default", "nice", {"spec": {"replicas": 0}})
    await wait_for(lambda: not pods(runtime, "nice"), timeout=5)
    nice_done = time.monotonic() - t0
    await wait_for(lambda: not pods(runtime, "stub"), timeout=5)
    stub_done = time.monotonic() - t0
    assert nice_done < 1.8  # exits on SIGTERM, well before its 2 s grace
    assert 0.9 <= stub_done < 3.0  # SIGTERM ignored: SIGKILL at the 1 s grace period
    assert proc_start_time(stub_pid) is None and proc_start_time(nice_pid) is None
    rs = runtime.store.get("ReplicaSet", "default", "stub")
    assert rs["status"]["replicas"] == 0


async def test_scale_down_removes_not_ready_pods_first(runtime: LocalRuntime, wait_for: Any) -> None:
    await runtime.cluster.create("ReplicaSet", replicaset("pick", [demo()], replicas=3))
    await wait_for(lambda: len([p for p in pods(runtime, "pick") if ready(p)]) == 3, timeout=8)
    victim = pods(runtime, "pick")[0]  # the oldest: newest-first alone would keep it
    get(runtime.pod_ports(victim)[8080], "/admin/unready", "POST")
    await wait_for(
        lambda: not ready(runtime.store.get("Pod", "default", victim["metadata"]["name"])), timeout=5
    )
    await runtime.cluster.patch("ReplicaSet", "default", "pick", {"spec": {"replicas": 2}})
    await wait_for(lambda: len(pods(runtime, "pick")) == 2, timeout=5)
    assert victim["metadata"]["name"] not in {p["metadata"]["name"] for p in pods(runtime, "pick")}


async def test_init_containers_run_to_completion_first(runtime: LocalRuntime, wait_for: Any) -> None:
    init = {
        "name": "init",
        "image": "busybox",
        "volumeMounts": [{"name": "work", "mountPath": "/work"}],
        "command": [
            sys.executable,
            "-c",
            "import os, time; time.sleep(0.3); "
            "open(os.path.join(os.environ['VOLUME_WORK'], 'seed'), 'w').write('seeded')",
        ],
    }
    app = demo(
        volumeMounts=[{"name": "work", "mountPath": "/work"}],
        command=[
            sys.executable,
            "-c",
            "import os, runpy; os.environ['WELCOME'] = "
            "open(os.path.join(os.environ['VOLUME_WORK'], 'seed')).read(); "
            "runpy.run_module('pyrollouts.runtimes.local.demoapp', run_name='__main__')",
        ],
    )
    await runtime.cluster.create(
        "ReplicaSet",
        replicaset(
            "init", [app], pod={"initContainers": [init], "volumes": [{"name": "work", "emptyDir": {}}]}
        ),
    )
    await wait_for(lambda: pods(runtime, "init") and ready(pods(runtime, "init")[0]), timeout=8)
    p = pods(runtime, "init")[0]
    assert get(runtime.pod_ports(p)[8080]) == (200, "seeded")
    init_st = p["status"]["initContainerStatuses"][0]
    assert init_st["state"]["terminated"]["reason"] == "Completed"
    assert cstatus(p)["restartCount"] == 0


async def test_deleting_the_replicaset_stops_its_processes(runtime: LocalRuntime, wait_for: Any) -> None:
    await runtime.cluster.create("ReplicaSet", replicaset("gone", [demo()], replicas=2))
    await wait_for(lambda: len([p for p in pods(runtime, "gone") if ready(p)]) == 2, timeout=8)
    pids = [pid_of(p) for p in pods(runtime, "gone")]
    await runtime.cluster.delete("ReplicaSet", "default", "gone")
    assert pods(runtime, "gone") == []
    await wait_for(lambda: all(proc_start_time(pid) is None for pid in pids), timeout=5)
    assert find_pod_processes(runtime.state_dir) == []


async def test_labels_patched_on_pods_are_kept(runtime: LocalRuntime, wait_for: Any) -> None:
    await runtime.cluster.create("ReplicaSet", replicaset("meta", [demo()]))
    await wait_for(lambda: pods(runtime, "meta") and ready(pods(runtime, "meta")[0]), timeout=6)
    name = pods(runtime, "meta")[0]["metadata"]["name"]
    await runtime.cluster.patch("Pod", "default", name, {"metadata": {"labels": {"role": "active"}}})
    port = runtime.pod_ports(pods(runtime, "meta")[0])[8080]
    get(port, "/admin/unready", "POST")  # forces status writes after the label patch
    await wait_for(lambda: not ready(runtime.store.get("Pod", "default", name)), timeout=5)
    assert runtime.store.get("Pod", "default", name)["metadata"]["labels"] == {
        "app": "meta",
        "role": "active",
    }


SERVER = textwrap.dedent("""
    import asyncio, sys
    from pyrollouts.runtimes.local.runtime import LocalRuntime
    from pyrollouts.runtimes.local.supervisor import Backoff
    RS = {rs!r}
    async def main():
        rt = LocalRuntime(sys.argv[1], backoff=Backoff(0.2, 1.0), drain_delay=0.05)
        await rt.start()
        if not rt.store.list("ReplicaSet"):
            await rt.cluster.create("ReplicaSet", RS)
        while True:
            ps = rt.store.list("Pod")
            if len(ps) == 2 and all(any(c["type"] == "Ready" and c["status"] == "True"
                                        for c in p.get("status", {{}}).get("conditions", [])) for p in ps):
                print("READY", flush=True)
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(3600)
    asyncio.run(main())
""")


def run_server(state_dir: Path) -> subprocess.Popen[str]:
    code = SERVER.format(rs=replicaset("adopt", [demo()], replicas=2))
    proc = subprocess.Popen([sys.executable, "-c", code, str(state_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "READY", f"server did not get ready (exit {proc.poll()})"
    return proc


async def test_readoption_after_the_server_dies(state_dir: Path, wait_for: Any, make_runtime: Any) -> None:
    server = await asyncio.to_thread(run_server, state_dir)
    server.send_signal(signal.SIGKILL)
    server.wait(5)
    before = {p["metadata"]["name"]: pid_of(p) for p in Store(state_dir / "state.db").list("Pod")}
    assert len(before) == 2 and all(os.path.exists(f"/proc/{pid}") for pid in before.values())
    # The apps kept serving while no server ran.
    for p in Store(state_dir / "state.db").list("Pod"):
        assert get(LocalRuntime.pod_ports(p)[8080])[0] == 200

    # A second server dies too, after re-adopting; then one app is killed while no server runs.
    server = await asyncio.to_thread(run_server, state_dir)
    server.send_signal(signal.SIGKILL)
    server.wait(5)
    assert {p["metadata"]["name"]: pid_of(p) for p in Store(state_dir / "state.db").list("Pod")} == before
    dead_name, dead_pid = sorted(before.items())[0]
    os.killpg(dead_pid, signal.SIGKILL)
    await wait_for(lambda: proc_start_time(dead_pid) is None, timeout=3)

    rt = make_runtime()
    await rt.start()
    try:

        def settled() -> bool:
            ps = rt.store.list("Pod")
            return (
                len(ps) == 2
                and all(ready(p) for p in ps)
                and pid_of(rt.store.get("Pod", "default", dead_name)) != dead_pid
            )

        await wait_for(settled, timeout=8)
        after = {p["metadata"]["name"]: pid_of(p) for p in rt.store.list("Pod")}
        assert set(after) == set(before)  # same pods: no new ones, no duplicates
        live_name = next(n for n in before if n != dead_name)
        assert after[live_name] == before[live_name]  # the live one was re-adopted, not restarted
        assert cstatus(rt.store.get("Pod", "default", live_name))["restartCount"] == 0
        dead_status = cstatus(rt.store.get("Pod", "default", dead_name))
        assert (
            dead_status["restartCount"] == 1 and dead_status["lastState"]["terminated"]["reason"] == "Unknown"
        )
        found = find_pod_processes(state_dir)
        assert sorted(f.pid for f in found) == sorted(after.values())
        # A re-adopted process is still supervised: its liveness is followed without waitpid.
        os.killpg(after[live_name], signal.SIGKILL)
        await wait_for(
            lambda: cstatus(rt.store.get("Pod", "default", live_name))["restartCount"] == 1, timeout=5
        )
        await wait_for(lambda: len(find_pod_processes(state_dir)) == 2, timeout=5)
    finally:
        await rt.stop(terminate_pods=True, grace=0.5)


async def test_unrecorded_and_orphaned_processes_on_restart(
    state_dir: Path, wait_for: Any, make_runtime: Any
) -> None:
    server = await asyncio.to_thread(run_server, state_dir)
    server.send_signal(signal.SIGKILL)
    server.wait(5)
    store = Store(state_dir / "state.db")
    first, second = store.list("Pod")
    # As if the server died right after starting a process, before recording it ...
    store.patch(
        "Pod",
        "default",
        first["metadata"]["name"],
        {"metadata": {"annotations": {PROCESSES_ANNOTATION: None}}},
    )
    # ... and as if a Pod was deleted while its process was still stopping.
    store.delete("Pod", "default", second["metadata"]["name"])
    store.close()
    unrecorded, orphan = pid_of(first), pid_of(second)
    orphan_start = proc_start_time(orphan)
    assert orphan_start is not None

    rt = make_runtime()
    rt.supervisor.orphan_grace = 1.0
    await rt.start()
    try:
        await wait_for(lambda: not proc_alive(orphan, orphan_start), timeout=5)
        await wait_for(
            lambda: len(rt.store.list("Pod")) == 2 and all(ready(p) for p in rt.store.list("Pod")), timeout=8
        )
        assert pid_of(rt.store.get("Pod", "default", first["metadata"]["name"])) == unrecorded
        assert len(find_pod_processes(state_dir)) == 2
    finally:
        await rt.stop(terminate_pods=True, grace=0.5)


async def test_stop_leaves_apps_running(state_dir: Path, wait_for: Any, make_runtime: Any) -> None:
    rt = make_runtime()
    await rt.start()
    await rt.cluster.create("ReplicaSet", replicaset("stay", [demo()]))
    await wait_for(lambda: pods(rt) and ready(pods(rt)[0]), timeout=6)
    pod = pods(rt)[0]
    await rt.stop()
    assert get(LocalRuntime.pod_ports(pod)[8080])[0] == 200
    rt2 = make_runtime()
    await rt2.start()
    try:
        await asyncio.sleep(0.5)
        assert [pid_of(p) for p in pods(rt2)] == [pid_of(pod)]
        assert len(find_pod_processes(state_dir)) == 1
    finally:
        await rt2.stop(terminate_pods=True, grace=0.5)
    with pytest.raises(OSError):
        get(LocalRuntime.pod_ports(pod)[8080])


async def test_one_runtime_per_state_dir(make_runtime: Any) -> None:
    first = make_runtime()
    await first.start()
    second = make_runtime()
    try:
        with pytest.raises(Conflict, match="another pyrollouts server"):
            await second.start()
    finally:
        await second.stop()
        await first.stop()
    third = make_runtime()  # the lock went with the first runtime
    await third.start()
    await third.stop()


async def test_stop_with_terminate_pods_finishes_terminations_under_way(
    make_runtime: Any, wait_for: Any
) -> None:
    rt = make_runtime()
    await rt.start()
    stubborn = demo(env=[{"name": "DEMO_FAIL", "value": "ignore-term"}])
    await rt.cluster.create(
        "ReplicaSet", replicaset("slow", [stubborn], replicas=2, pod={"terminationGracePeriodSeconds": 30})
    )
    await wait_for(lambda: len([p for p in pods(rt, "slow") if ready(p)]) == 2, timeout=6)
    await rt.cluster.patch("ReplicaSet", "default", "slow", {"spec": {"replicas": 1}})
    await wait_for(lambda: any(p["metadata"].get("deletionTimestamp") for p in pods(rt, "slow")), timeout=2)
    await asyncio.sleep(0.3)  # SIGTERM sent and ignored: the 30 s grace period is running
    t0 = time.monotonic()
    await rt.stop(terminate_pods=True, grace=0.5)
    assert time.monotonic() - t0 < 3
    assert find_pod_processes(rt.state_dir) == []
    store = Store(rt.state_dir / "state.db")
    assert len(store.list("Pod")) == 1  # the terminating Pod is gone, the other stays for the next start
    store.close()
