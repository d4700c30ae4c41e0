"""The Kubernetes controller at scale (issue 15): N rollouts on the project's control plane.

    .venv/bin/python bench/scale_bench.py --rollouts 100,300 [--docs docs/benchmarks.md]
    .venv/bin/python bench/scale_bench.py --rollouts 100 --profile /tmp/profile.txt

Starts the test harness's control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok from ``~/.cache/pyrollouts/tools``), installs the CRDs, starts one
``rollouts controller`` process for a fresh namespace, then:

1. applies N copies of examples/super-hello.yaml (1 replica, distinct names: Rollout ``hello-NNNN``,
   Services ``hello-NNNN-prod``/``-preview``) and waits until every Rollout is Healthy;
2. changes WELCOME on every Rollout and waits until every one is Paused (autoPromotionEnabled: false);
3. leaves the settled controller alone for ``--idle`` seconds.

Each count in ``--rollouts`` gets a fresh control plane. It reports the time of each phase, the
controller's CPU seconds (user + system, from /proc) at the end of each, its peak RSS and its CPU
over the idle window, as a table row and one JSON line (``--docs`` writes the table between the
scale markers of docs/benchmarks.md). With ``--profile``, py-spy samples the controller for phases
1 and 2 and the top frames (self and
inclusive) are written to that file.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "k8s"))

from lightkube import Client, KubeConfig  # noqa: E402
from lightkube.types import PatchType  # noqa: E402

from harness.k8s_cluster import ControlPlane  # noqa: E402
from harness.support import free_port  # noqa: E402
from pyrollouts.runtimes.kubernetes.resources import RESOURCES  # noqa: E402

BIN = Path(sys.executable).parent
Obj = dict[str, Any]
TICK = os.sysconf("SC_CLK_TCK")


def seed(i: int) -> list[Obj]:
    """The seed's Rollout and two Services, renamed for copy ``i``, 1 replica."""
    import yaml

    docs = [d for d in yaml.safe_load_all((REPO / "examples" / "super-hello.yaml").read_text()) if d]
    name = f"hello-{i:04d}"
    out = []
    for d in docs:
        if d["kind"] == "Namespace":
            continue
        d = copy.deepcopy(d)
        d["metadata"].pop("namespace", None)
        if d["kind"] == "Rollout":
            d["metadata"]["name"] = name
            d["spec"]["replicas"] = 1
            d["spec"]["selector"]["matchLabels"] = {"app": name}
            d["spec"]["template"]["metadata"]["labels"] = {"app": name}
            bg = d["spec"]["strategy"]["blueGreen"]
            bg["activeService"] = f"{name}-prod"
            bg["previewService"] = f"{name}-preview"
        else:
            suffix = d["metadata"]["name"].rsplit("-", 1)[1]
            d["metadata"]["name"] = f"{name}-{suffix}"
            d["spec"]["type"] = "ClusterIP"
            d["spec"]["selector"] = {"app": name}
        out.append(d)
    return sorted(out, key=lambda o: 0 if o["kind"] == "Service" else 1)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mib(pid: int, key: str = "VmHWM") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def phases(client: Client, ns: str) -> collections.Counter[str]:
    items = client.list(RESOURCES["Rollout"], namespace=ns)
    return collections.Counter(
        str(((r.to_dict() if hasattr(r, "to_dict") else r).get("status") or {}).get("phase")) for r in items
    )


def wait_all(
    client: Client, ns: str, phase: str, n: int, limit: float, proc: subprocess.Popen[bytes]
) -> float:
    started = time.monotonic()
    while True:
        got = phases(client, ns)
        if got.get(phase, 0) >= n:
            return time.monotonic() - started
        if proc.poll() is not None:
            raise SystemExit(f"the controller exited with {proc.returncode}")
        if time.monotonic() - started > limit:
            raise SystemExit(f"not all {phase} after {limit:.0f} s: {dict(got)}")
        time.sleep(1.0)


def parallel(fn: Any, items: list[Any], threads: int = 8) -> None:
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(fn, it) for it in items]:
            f.result()


def top_frames(raw: Path, count: int = 25) -> str:
    """The py-spy raw (collapsed) profile as two tables: self samples and inclusive samples per frame."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += int(n)
        own[frames[-1]] += int(n)
        for f in set(frames):
            incl[f] += int(n)
    lines = [f"samples: {total}", "", "self:"]
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in own.most_common(count)]
    lines += ["", "inclusive:"]
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in incl.most_common(count * 2)]
    return "\n".join(lines) + "\n"


def row(r: Obj) -> str:
    """One line of docs/benchmarks.md's table for a result."""
    idle = f"{r['idle_cpu_s']} s / {r['idle_window_s']:g} s"
    cells = [r["rollouts"], r["controller"], f"{r['healthy_s']} s", f"{r['cpu_healthy_s']} s"]
    cells += [f"{r['paused_s']} s", f"{r['cpu_paused_total_s']} s", f"{r['rss_mib']} MiB", idle]
    cells.append(round(float(r.get("load1", 0)), 1))
    return "| " + " | ".join(str(c) for c in cells) + " |"


def run_one(n: int, idle_window: float, limit: float, profile: Path | None, label: str) -> Obj:
    """One fresh control plane, one controller, N rollouts: the figures of one table row."""
    nodes = max(3, (2 * n) // 200 + 2)
    with ControlPlane(nodes=nodes) as cp:
        res = subprocess.run([str(BIN / "rollouts"), "install-crds", "--kubeconfig", str(cp.kubeconfig)],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        if res.returncode:
            raise SystemExit(f"install-crds failed: {res.stderr}")
        ns = cp.create_namespace("scale")
        client = Client(KubeConfig.from_file(str(cp.kubeconfig)), namespace=ns, field_manager="scale-bench")
        log = (cp.root / "logs" / "controller.log").open("ab")
        ctrl = subprocess.Popen(
            [str(BIN / "rollouts"), "controller", "--kubeconfig", str(cp.kubeconfig), "--namespace", ns,
             "--leader-elect=false", "--metrics-port", str(free_port()), "--healthz-port", str(free_port()),
             "--listen-address", "127.0.0.1", "--loglevel", "warning"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        spy = None
        raw = profile.with_suffix(".raw") if profile else None
        try:
            time.sleep(3)
            if raw is not None:
                spy = subprocess.Popen(
                    [str(BIN / "py-spy"), "record", "--pid", str(ctrl.pid), "--format", "raw", "--rate", "25",
                     "--nonblocking", "--output", str(raw)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
            cpu0 = cpu_seconds(ctrl.pid)
            objs = [o for i in range(n) for o in seed(i)]

            def create(o: Obj) -> None:
                client.create(RESOURCES[o["kind"]].from_dict(o))

            t0 = time.monotonic()
            parallel(create, objs)
            wait_all(client, ns, "Healthy", n, limit, ctrl)
            healthy = time.monotonic() - t0
            cpu_healthy = cpu_seconds(ctrl.pid) - cpu0

            def update(i: int) -> None:
                body = {"spec": {"template": {"spec": {"containers": [
                    {"name": "super-hello", "image": "ghcr.io/gbaeke/super:1.0.2",
                     "env": [{"name": "WELCOME", "value": "VERSION V3"}]}]}}}}  # fmt: skip
                name = f"hello-{i:04d}"
                client.patch(RESOURCES["Rollout"], name, body, namespace=ns, patch_type=PatchType.MERGE)

            t1 = time.monotonic()
            parallel(update, list(range(n)))
            wait_all(client, ns, "Paused", n, limit, ctrl)
            paused = time.monotonic() - t1
            cpu_paused = cpu_seconds(ctrl.pid) - cpu0
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
                spy = None
            time.sleep(5)
            idle0 = cpu_seconds(ctrl.pid)
            time.sleep(idle_window)
            idle = cpu_seconds(ctrl.pid) - idle0
            result = {
                "controller": label, "rollouts": n, "healthy_s": round(healthy, 1),
                "cpu_healthy_s": round(cpu_healthy, 1), "paused_s": round(paused, 1),
                "cpu_paused_total_s": round(cpu_paused, 1), "rss_mib": round(rss_mib(ctrl.pid)),
                "idle_cpu_s": round(idle, 2), "idle_window_s": idle_window, "profiled": raw is not None,
                "load1": round(os.getloadavg()[0], 1),
            }  # fmt: skip
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
            ctrl.send_signal(signal.SIGTERM)
            try:
                ctrl.wait(20)
            except subprocess.TimeoutExpired:
                ctrl.kill()
            log.close()
    if raw is not None and profile is not None and raw.exists():
        profile.write_text(top_frames(raw))
    return result


HEADER = (
    "| rollouts | controller | apply -> all Healthy | controller CPU to Healthy | update -> all Paused "
    "| CPU to Paused (total) | peak RSS | idle CPU | machine load |\n|---|---|---|---|---|---|---|---|---|"
)


def write_docs(path: Path, results: list[Obj]) -> None:
    """Replace the section between the scale markers of docs/benchmarks.md with this run's table."""
    begin, end = "<!-- scale:begin -->", "<!-- scale:end -->"
    text = path.read_text()
    if begin not in text or end not in text:
        raise SystemExit(f"{path}: the markers {begin} and {end} are missing; add them where the table goes")
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    table = "\n".join([HEADER, *(row(r) for r in results)])
    section = (
        f"{begin}\n_Written by `bench/scale_bench.py --docs` on {stamp}; a fresh control plane per row;"
        f" machine load: the 1-minute load average at the end of the row (2 cores)._\n\n{table}\n{end}"
    )
    head, _, rest = text.partition(begin)
    path.write_text(head + section + rest.partition(end)[2])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rollouts", default="100", help="comma-separated counts, one fresh control plane each")
    ap.add_argument("--idle", type=float, default=30.0, help="seconds of idle CPU measured at the end")
    ap.add_argument("--limit", type=float, default=1800.0, help="seconds each phase may take")
    ap.add_argument("--profile", type=Path, help="write py-spy's top frames here (and <file>.raw); one count")
    ap.add_argument("--json", type=Path, help="append each result as one JSON line to this file")
    ap.add_argument("--docs", type=Path, help="write the table into this file (docs/benchmarks.md)")
    ap.add_argument("--label", default="pyrollouts")
    args = ap.parse_args()
    results = []
    for n in (int(x) for x in args.rollouts.split(",")):
        result = run_one(n, args.idle, args.limit, args.profile, args.label)
        results.append(result)
        print(row(result), flush=True)
        print(json.dumps(result), flush=True)
        if args.json:
            with args.json.open("a") as fh:
                fh.write(json.dumps(result) + "\n")
    if args.docs:
        write_docs(args.docs, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
