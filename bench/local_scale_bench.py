"""The local runtime's controller at scale (issue 15): N rollouts on one `rollouts server`.

    .venv/bin/python bench/local_scale_bench.py --rollouts 100,300 [--json docs/bench/local-scale.jsonl]
    .venv/bin/python bench/local_scale_bench.py --smoke

The same story as bench/scale_bench.py, on the local runtime: for each count a fresh state dir and
server (the store, the controller, the supervisor that runs each replica as a process, the proxy),
then

1. applies N copies of examples/super-hello.yaml (``--replicas`` each: Rollout ``hello-NNNN`` and its
   two Services, each Service on a port of its own) and waits until every Rollout is Healthy;
2. sets WELCOME on every Rollout and waits until every one is Paused (each now has its old and its
   new replicas running: 2N processes at 1 replica);
3. leaves the settled server alone for ``--idle`` seconds (its readiness probes go on: the seed probes
   every second).

It reports the time of each phase; the CPU seconds (user + system, from /proc) of the server process
(store, controller, supervisor, probes and API in one process) and of the proxy process, counted
from the first apply; the server's peak RSS; the number of app processes at the end; and the
server's CPU over the idle window. Then it shuts everything down (POST /api/shutdown) and checks
that no process of the state dir is left.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from scale_bench import LoadSampler, cpu_seconds, rss_mib, seed  # noqa: E402

from harness.serverharness import ServerProcess, app_processes, state_dir_processes  # noqa: E402
from harness.support import free_port  # noqa: E402

Obj = dict[str, Any]
NS = "scale"


def objects(i: int, replicas: int, taken: set[int]) -> list[Obj]:
    """Copy ``i`` of the seed (bench/scale_bench.py's), in namespace NS, each Service on a free port
    that no other copy has (a port is free until the proxy listens on it: ``taken`` keeps them apart)."""
    out = []
    for o in seed(i, replicas):
        o["metadata"]["namespace"] = NS
        if o["kind"] == "Service":
            port = free_port()
            while port in taken:
                port = free_port()
            taken.add(port)
            o["spec"]["ports"][0]["port"] = port
        out.append(o)
    return out


def phases(server: ServerProcess) -> collections.Counter[str]:
    items = server.http("GET", f"/api/rollouts?namespace={NS}", timeout=60)["items"]
    return collections.Counter(str((r.get("status") or {}).get("phase")) for r in items)


def wait_all(server: ServerProcess, phase: str, n: int, limit: float) -> tuple[float, dict[str, int]]:
    """Seconds until all ``n`` Rollouts are in ``phase``, or ``limit`` (then the phases reached)."""
    started = time.monotonic()
    while True:
        got = phases(server)
        if got.get(phase, 0) >= n or time.monotonic() - started > limit:
            return time.monotonic() - started, dict(got)
        if not server.alive():
            raise SystemExit(f"the server exited:\n{server.log_tail()}")
        time.sleep(1.0)


def proxy_pid(server: ServerProcess) -> int | None:
    """The proxy: the process of the state dir that is neither the server nor an app process."""
    apps = {pid for pids in app_processes(server.state_dir).values() for pid in pids}
    rest = [p for p in state_dir_processes(server.state_dir) if p != server.proc.pid and p not in apps]
    return min(rest) if rest else None


def cpu_of(pid: int | None) -> float:
    try:
        return cpu_seconds(pid) if pid else 0.0
    except FileNotFoundError:
        return 0.0


def run_one(n: int, opts: argparse.Namespace) -> Obj:
    root = Path(tempfile.mkdtemp(prefix="pyrollouts-local-scale-"))
    sampler = LoadSampler()
    server = ServerProcess(root / "state", test_clock=False, env={"PYROLLOUTS_MAX_REPLICAS": "100"})
    try:
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
        server.http("POST", "/api/apply", {"text": json.dumps(namespace), "source": "ns"})
        cpu0 = cpu_seconds(server.proc.pid)
        taken: set[int] = set()
        docs = [objects(i, opts.replicas, taken) for i in range(n)]
        t0 = time.monotonic()
        for start in range(0, n, opts.batch):
            text = "\n---\n".join(json.dumps(o) for d in docs[start : start + opts.batch] for o in d)
            body = {"text": text, "source": f"scale-{start}", "namespace": NS}
            reply = server.request("POST", "/api/apply", body, timeout=300)
            if reply.status >= 300:
                raise SystemExit(
                    f"apply of rollouts {start}..: HTTP {reply.status}: {str(reply.body)[:2000]}"
                )
        _, at_healthy = wait_all(server, "Healthy", n, opts.limit)
        healthy = time.monotonic() - t0
        cpu_healthy = cpu_seconds(server.proc.pid) - cpu0
        proxy = proxy_pid(server)
        proxy0 = cpu_of(proxy)

        def update(i: int) -> None:
            body = {"container": "*", "name": "WELCOME", "value": "VERSION V3"}
            server.http("POST", f"/api/rollouts/{NS}/hello-{i:04d}/set-env", body, timeout=120)

        t1 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for f in [pool.submit(update, i) for i in range(n)]:
                f.result()
        _, at_paused = wait_all(server, "Paused", n, opts.limit)
        paused = time.monotonic() - t1
        cpu_paused = cpu_seconds(server.proc.pid) - cpu0
        apps = sum(len(p) for p in app_processes(server.state_dir).values())
        time.sleep(5)
        idle0 = cpu_seconds(server.proc.pid)
        time.sleep(opts.idle)
        idle = cpu_seconds(server.proc.pid) - idle0
        result = {
            "controller": "pyrollouts local server", "rollouts": n, "replicas": opts.replicas,
            "healthy_s": round(healthy, 1), "cpu_healthy_s": round(cpu_healthy, 1),
            "paused_s": round(paused, 1), "cpu_paused_total_s": round(cpu_paused, 1),
            "proxy_cpu_update_s": round(cpu_of(proxy) - proxy0, 1), "app_processes": apps,
            "rss_mib": round(rss_mib(server.proc.pid)), "idle_cpu_s": round(idle, 2),
            "idle_window_s": opts.idle, "load1": round(os.getloadavg()[0], 1),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "phases_at_healthy": at_healthy, "phases_at_paused": at_paused,
            "complete": at_healthy.get("Healthy", 0) >= n and at_paused.get("Paused", 0) >= n,
        }  # fmt: skip
    finally:
        result_load = sampler.stop()
        left = server.stop(check=False, timeout=300, linger=30)
    result["load_peak"] = round(result_load, 1)
    result["left_after_shutdown"] = len(left)
    return result


def row(r: Obj) -> str:
    def took(key: str, at: str) -> str:
        """The seconds; when the limit cut the phase short, with the phases reached by then."""
        return f"{r[key]} s" if r.get("complete", True) else f"{r[key]} s (limit: {r[at]})"

    cells = [r["rollouts"], r["app_processes"], took("healthy_s", "phases_at_healthy"),
             f"{r['cpu_healthy_s']} s", took("paused_s", "phases_at_paused"), f"{r['cpu_paused_total_s']} s",
             f"{r['proxy_cpu_update_s']} s", f"{r['rss_mib']} MiB",
             f"{r['idle_cpu_s']} s / {r['idle_window_s']:g} s",
             f"{r['load1']:.1f} (peak {r['load_peak']:.1f})"]  # fmt: skip
    return "| " + " | ".join(str(c) for c in cells) + " |"


HEADER = (
    "| rollouts | app processes when Paused | apply -> all Healthy | server CPU to Healthy "
    "| update -> all Paused | server CPU to Paused (total) | proxy CPU during the update | server peak RSS "
    "| server idle CPU | machine load (end, peak) |\n|---|---|---|---|---|---|---|---|---|---|"
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rollouts", default="100", help="comma-separated counts, one fresh server each")
    ap.add_argument("--replicas", type=int, default=1, help="replicas (processes) per Rollout")
    ap.add_argument("--batch", type=int, default=25, help="Rollouts per POST /api/apply")
    ap.add_argument("--idle", type=float, default=30.0, help="seconds of idle CPU measured at the end")
    ap.add_argument(
        "--limit", type=float, default=1800.0, help="seconds each phase may take (then: what it reached)"
    )
    ap.add_argument("--json", type=Path, help="append each result as one JSON line to this file")
    ap.add_argument("--smoke", action="store_true", help="seconds: 2 rollouts, 1 s idle")
    opts = ap.parse_args()
    if opts.smoke:
        opts.rollouts, opts.idle, opts.limit = "2", 1.0, 300.0
    print(HEADER, flush=True)
    for n in (int(x) for x in opts.rollouts.split(",")):
        result = run_one(n, opts)
        print(row(result), flush=True)
        print(json.dumps(result), flush=True)
        if opts.json:
            with opts.json.open("a") as fh:
                fh.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
