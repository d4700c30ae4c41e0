"""The Kubernetes controller at scale (issue 15): N rollouts on the project's control plane, for our
controller and for Argo Rollouts' own, in the same run.

    .venv/bin/python bench/scale_bench.py --rollouts 100,300 [--docs docs/benchmarks.md --plots docs/img]
    .venv/bin/python bench/scale_bench.py --rollouts 100 --controllers pyrollouts --profile /tmp/profile.txt
    .venv/bin/python bench/scale_bench.py --smoke        # seconds: 2 rollouts, both controllers

Starts the test harness's control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok from ``~/.cache/pyrollouts/tools``) and installs our CRDs (Argo's controller
reads them too). Then, for each controller in ``--controllers`` one after the other (Argo's
``rollouts-controller`` built by ``make tools``, then ours), in a namespace of its own with the
other controller stopped:

1. applies N copies of examples/super-hello.yaml (``--replicas`` each, distinct names: Rollout
   ``hello-NNNN``, Services ``hello-NNNN-prod``/``-preview``) and waits until every Rollout is Healthy;
2. changes WELCOME on every Rollout and waits until every one is Paused (autoPromotionEnabled: false);
3. leaves the settled controller alone for ``--idle`` seconds;
4. stops the controller and deletes its namespace (bounded wait), so the next one starts on the
   same control plane with the same load.

Both controllers run with their defaults (10 rollout threads, resync every 900 s: ours has Argo's
``--rollout-resync``), so the idle window compares like for like. Each count in ``--rollouts`` gets
a fresh control plane. It reports the time of each phase, the controller's CPU seconds (user +
system, from /proc) at the end of each, its peak RSS and its CPU over the idle window, as table rows,
the ratios ours/Argo's, and one JSON line per row (``--docs`` writes the table between the scale
markers of docs/benchmarks.md; ``--plots`` writes time and CPU against N as PNGs). With
``--profile``, py-spy samples our controller for phases 1 and 2 and the top frames (self and
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
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "k8s"))

import httpx2  # noqa: E402
from lightkube import Client, KubeConfig  # noqa: E402
from lightkube.core.exceptions import ApiError  # noqa: E402
from lightkube.types import PatchType  # noqa: E402

from harness.k8s_cluster import ControlPlane, tool_path, tool_versions  # noqa: E402
from harness.support import free_port  # noqa: E402
from pyrollouts.runtimes.kubernetes.resources import RESOURCES  # noqa: E402

BIN = Path(sys.executable).parent
Obj = dict[str, Any]
TICK = os.sysconf("SC_CLK_TCK")


def seed(i: int, replicas: int = 1) -> list[Obj]:
    """The seed's Rollout and two Services, renamed for copy ``i``, with ``replicas`` pods."""
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
            d["spec"]["replicas"] = replicas
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


class LoadSampler:
    """The machine's 1-minute load average, sampled every 5 s in a thread: the highest seen."""

    def __init__(self) -> None:
        self.peak = os.getloadavg()[0]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(5.0):
            self.peak = max(self.peak, os.getloadavg()[0])

    def stop(self) -> float:
        self._stop.set()
        return max(self.peak, os.getloadavg()[0])


def wait_all(
    client: Client, ns: str, phase: str, n: int, limit: float, proc: subprocess.Popen[bytes]
) -> float:
    started = last_report = time.monotonic()
    # A list of every Rollout each poll: once a second up to 1,000, then less often, so the bench's
    # own reads do not load the API server it measures (at 10,000 a list is tens of megabytes).
    every = max(1.0, n / 1000)
    while True:
        got = phases(client, ns)
        if got.get(phase, 0) >= n:
            return time.monotonic() - started
        if proc.poll() is not None:
            raise SystemExit(f"the controller exited with {proc.returncode}")
        now = time.monotonic()
        if now - started > limit:
            raise SystemExit(
                f"not all {phase} after {limit:.0f} s: {dict(got)}; controller CPU so far "
                f"{cpu_seconds(proc.pid):.1f} s, RSS {rss_mib(proc.pid):.0f} MiB"
            )
        if now - last_report >= 30:
            last_report = now
            print(
                f"  {now - started:5.0f} s: {got.get(phase, 0)}/{n} {phase} {dict(got)}; controller CPU "
                f"{cpu_seconds(proc.pid):.1f} s",
                file=sys.stderr,
                flush=True,
            )
        time.sleep(every)


def retrying(call: Any, *, done_if_exists: bool = False, tries: int = 5) -> None:
    """Call; again after a timeout or a 429/5xx of a busy API server (at 1,000 Rollouts and more a
    create could time out and end the run). A create retried after a first try that did land meets
    409 AlreadyExists: with ``done_if_exists`` that is success. Both calls of the bench are idempotent."""
    for attempt in range(tries):
        try:
            call()
            return
        except ApiError as exc:
            if done_if_exists and exc.status.code == 409:
                return
            if exc.status.code not in (429, 500, 503, 504) or attempt == tries - 1:
                raise
        except httpx2.TransportError:
            if attempt == tries - 1:
                raise
        time.sleep(1.0 + attempt)


def parallel(fn: Any, items: list[Any], threads: int = 8) -> None:
    started = last_report = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for done, f in enumerate([pool.submit(fn, it) for it in items], 1):
            f.result()
            if time.monotonic() - last_report >= 30:
                last_report = time.monotonic()
                print(
                    f"  {last_report - started:5.0f} s: {done}/{len(items)} sent", file=sys.stderr, flush=True
                )


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
    load = r.get("load_peak")
    end = f"{r.get('load1', 0):.1f}"
    cells.append(f"{end} (peak {load:.1f})" if load is not None else end)
    return "| " + " | ".join(str(c) for c in cells) + " |"


ARGO = "argo"
OURS = "pyrollouts"


def argo_label() -> str:
    return f"Argo Rollouts v{tool_versions()['rollouts-controller'].lstrip('v')}"


def http_ok(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1.0) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def start_controller(which: str, kubeconfig: Path, ns: str, log: Any) -> subprocess.Popen[bytes]:
    """Our ``rollouts controller`` or Argo's ``rollouts-controller``, scoped to ``ns``, with their
    defaults (10 rollout threads, resync 900 s), logging warnings only; returns once /healthz answers."""
    metrics, healthz = free_port(), free_port()
    env = dict(os.environ)
    if which == ARGO:
        argv = [str(tool_path("rollouts-controller")), "--kubeconfig", str(kubeconfig), "--namespaced",
                "--namespace", ns, "--leader-elect=false", f"--metricsPort={metrics}",
                f"--healthzPort={healthz}", "--loglevel=warn"]  # fmt: skip
        env["POD_NAMESPACE"] = ns
    else:
        argv = [str(BIN / "rollouts"), "controller", "--kubeconfig", str(kubeconfig), "--namespace", ns,
                "--leader-elect=false", "--metrics-port", str(metrics), "--healthz-port", str(healthz),
                "--listen-address", "127.0.0.1", "--loglevel", "warning"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while not http_ok(healthz):
        if proc.poll() is not None:
            raise SystemExit(f"the {which} controller exited with {proc.returncode} (log: {log.name})")
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"the {which} controller's /healthz did not answer in 120 s (log: {log.name})")
        time.sleep(0.5)
    time.sleep(3)  # its informers' first lists (both answer /healthz before they have synced)
    proc.metrics_port = metrics  # type: ignore[attr-defined]
    return proc


def reconciles(proc: subprocess.Popen[bytes]) -> int | None:
    """The controller's reconciles so far: the sum of ``rollout_reconcile_count`` on its /metrics
    (both controllers export Argo's histogram), or None when the page cannot be read."""
    url = f"http://127.0.0.1:{proc.metrics_port}/metrics"  # type: ignore[attr-defined]
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    return round(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                     if line.startswith("rollout_reconcile_count")))  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def delete_namespace(client: Client, ns: str, limit: float) -> float | None:
    """Delete ``ns`` and wait (at most ``limit`` s) until it is gone; the seconds it took, or None."""
    from lightkube.core.exceptions import ApiError
    from lightkube.resources.core_v1 import Namespace

    started = time.monotonic()
    client.delete(Namespace, ns)
    while time.monotonic() - started < limit:
        try:
            client.get(Namespace, ns)
        except ApiError as exc:
            if exc.status.code == 404:
                return round(time.monotonic() - started, 1)
            raise
        time.sleep(2.0)
    return None


#: The bench's own client announces itself so that the audit log tells its requests apart.
BENCH_AGENT = "pyrollouts-scale-bench"
#: The control plane's own agents (their requests in the namespace are not the controller's).
PLATFORM_AGENTS = ("kube-controller-manager", "kube-scheduler", "kwok", BENCH_AGENT)


def tally_requests(audit_log: Path, ns: str) -> dict[str, dict[str, int]]:
    """The API requests on objects of ``ns`` in the audit log, by user agent (its product token)
    and by "verb resource[/subresource]", the bench's and the control plane's own left out: what
    each controller asked of the API server (a watch counts once, when it ends). The API server
    rotates its audit log at 100 MB (its log library's default size), so the rotated files
    (``audit-<time>.log`` beside it) are read too."""
    out: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for path in sorted(audit_log.parent.glob(f"{audit_log.stem}*{audit_log.suffix}")):
        _tally_file(path, ns, out)
    return {agent: dict(c.most_common()) for agent, c in out.items()}


def _tally_file(path: Path, ns: str, out: dict[str, collections.Counter[str]]) -> None:
    with path.open(errors="replace") as f:
        for line in f:
            if f'"{ns}"' not in line:
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            ref = ev.get("objectRef") or {}
            agent = str(ev.get("userAgent", "")).split("/")[0]
            if ref.get("namespace") != ns or ev.get("stage") != "ResponseComplete":
                continue
            if agent in PLATFORM_AGENTS:
                continue
            what = ref.get("resource", "") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
            out[agent][f"{ev.get('verb')} {what}"] += 1


def run_controller(
    cp: ControlPlane, which: str, n: int, opts: argparse.Namespace, profile: Path | None
) -> Obj:
    """One controller alone on the control plane, in a namespace of its own: one table row."""
    ns = cp.create_namespace(f"scale-{which}")
    client = Client(KubeConfig.from_file(str(cp.kubeconfig)), namespace=ns, field_manager="scale-bench")
    # lightkube has no user-agent option: set it on its httpx client (tally_requests reads it).
    client._client._client.headers["User-Agent"] = f"{BENCH_AGENT}/1"
    log = (cp.root / "logs" / f"{which}-controller.log").open("ab")
    sampler = LoadSampler()
    ctrl = start_controller(which, cp.kubeconfig, ns, log)
    spy = None
    raw = profile.with_suffix(".raw") if profile and which == OURS else None
    try:
        if raw is not None:
            spy = subprocess.Popen(
                [str(BIN / "py-spy"), "record", "--pid", str(ctrl.pid), "--format", "raw", "--rate", "25",
                 "--nonblocking", "--output", str(raw)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        cpu0 = cpu_seconds(ctrl.pid)
        objs = [o for i in range(n) for o in seed(i, opts.replicas)]

        def create(o: Obj) -> None:
            retrying(lambda: client.create(RESOURCES[o["kind"]].from_dict(o)), done_if_exists=True)

        t0 = time.monotonic()
        parallel(create, objs)
        wait_all(client, ns, "Healthy", n, opts.limit, ctrl)
        healthy = time.monotonic() - t0
        cpu_healthy = cpu_seconds(ctrl.pid) - cpu0
        reconciles_healthy = reconciles(ctrl)

        def update(i: int) -> None:
            body = {"spec": {"template": {"spec": {"containers": [
                {"name": "super-hello", "image": "ghcr.io/gbaeke/super:1.0.2",
                 "env": [{"name": "WELCOME", "value": "VERSION V3"}]}]}}}}  # fmt: skip
            name = f"hello-{i:04d}"
            retrying(
                lambda: client.patch(
                    RESOURCES["Rollout"], name, body, namespace=ns, patch_type=PatchType.MERGE
                )
            )

        t1 = time.monotonic()
        parallel(update, list(range(n)))
        wait_all(client, ns, "Paused", n, opts.limit, ctrl)
        paused = time.monotonic() - t1
        cpu_paused = cpu_seconds(ctrl.pid) - cpu0
        reconciles_paused = reconciles(ctrl)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
            spy = None
        time.sleep(5)
        idle0 = cpu_seconds(ctrl.pid)
        time.sleep(opts.idle)
        idle = cpu_seconds(ctrl.pid) - idle0
        result = {
            "controller": argo_label() if which == ARGO else OURS, "which": which, "rollouts": n,
            "replicas": opts.replicas, "healthy_s": round(healthy, 1),
            "cpu_healthy_s": round(cpu_healthy, 1), "paused_s": round(paused, 1),
            "cpu_paused_total_s": round(cpu_paused, 1), "rss_mib": round(rss_mib(ctrl.pid)),
            "idle_cpu_s": round(idle, 2), "idle_window_s": opts.idle, "profiled": raw is not None,
            "reconciles_healthy": reconciles_healthy, "reconciles_paused": reconciles_paused,
            "load1": round(os.getloadavg()[0], 1), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }  # fmt: skip
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        stop(ctrl)
        log.close()
        result_load = sampler.stop()
    result["load_peak"] = round(result_load, 1)
    result["requests"] = tally_requests(cp.audit_log, ns)
    result["ns_deleted_s"] = delete_namespace(client, ns, opts.delete_limit)
    if raw is not None and profile is not None and raw.exists():
        profile.write_text(top_frames(raw))
    return result


def run_count(n: int, opts: argparse.Namespace, profile: Path | None, done: Any) -> list[Obj]:
    """One fresh control plane; each controller of ``--controllers`` in turn, alone on it; ``done``
    gets each row as soon as it is measured (a long count cut short keeps its finished rows)."""
    # Room for the old and the new pod of every Rollout at kwok's default of 110 pods per node.
    nodes = max(3, (2 * n * opts.replicas) // 200 + 2)
    with ControlPlane(nodes=nodes) as cp:
        res = subprocess.run([str(BIN / "rollouts"), "install-crds", "--kubeconfig", str(cp.kubeconfig)],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        if res.returncode:
            raise SystemExit(f"install-crds failed: {res.stderr}")
        rows = []
        for which in opts.controllers:
            rows.append(run_controller(cp, which, n, opts, profile))
            done(rows[-1])
        return rows


RATIO_KEYS = (
    ("healthy_s", "time to Healthy"),
    ("cpu_healthy_s", "CPU to Healthy"),
    ("paused_s", "time to Paused"),
    ("cpu_paused_total_s", "CPU to Paused"),
    ("rss_mib", "RSS"),
)


def ratios(results: list[Obj]) -> dict[int, dict[str, float]]:
    """Ours over Argo's, per count, for each figure of RATIO_KEYS (where both ran)."""
    out: dict[int, dict[str, float]] = {}
    for n in sorted({r["rollouts"] for r in results}):
        ours = next((r for r in results if r["rollouts"] == n and r.get("which", OURS) == OURS), None)
        argo = next((r for r in results if r["rollouts"] == n and r.get("which") == ARGO), None)
        if ours and argo:
            out[n] = {k: round(ours[k] / argo[k], 2) if argo[k] else float("inf") for k, _ in RATIO_KEYS}
    return out


def ratio_line(n: int, rs: dict[str, float]) -> str:
    parts = ", ".join(f"{label} {rs[k]:.2f}x" for k, label in RATIO_KEYS)
    return f"At {n:,} rollouts, pyrollouts / Argo: {parts}."


def reconcile_line(n: int, results: list[Obj]) -> str | None:
    """Reconciles per Rollout (to Healthy, and in all to Paused) and CPU per reconcile, per
    controller at count ``n``, from the rows that read them (``rollout_reconcile_count``)."""
    parts = []
    for r in results:
        if r["rollouts"] != n or not r.get("reconciles_paused"):
            continue
        per_h, per_all = r["reconciles_healthy"] / n, r["reconciles_paused"] / n
        ms = 1000 * r["cpu_paused_total_s"] / r["reconciles_paused"]
        parts.append(
            f"{r['controller']} {per_h:.1f} to Healthy and {per_all:.1f} in all"
            f" ({ms:.2f} ms of controller CPU per reconcile)"
        )
    return f"At {n:,} rollouts, reconciles per Rollout: " + "; ".join(parts) + "." if parts else None


def requests_line(n: int, results: list[Obj]) -> str | None:
    """API requests per Rollout at count ``n`` for each controller, from the audit tally (the user
    agent with the most requests in the row: the controller's), Event creates apart."""
    parts = []
    for r in results:
        tally = {a: c for a, c in (r.get("requests") or {}).items() if a not in ("", "kube-apiserver")}
        if r["rollouts"] != n or not tally:
            continue
        mine = max(tally.values(), key=lambda c: sum(c.values()))
        total, events = sum(mine.values()) / n, mine.get("create events", 0) / n
        parts.append(f"{r['controller']} {total:.1f} ({events:.1f} Event creates)")
    return f"At {n:,} rollouts, API requests per Rollout: " + "; ".join(parts) + "." if parts else None


HEADER = (
    "| rollouts | controller | apply -> all Healthy | controller CPU to Healthy | update -> all Paused "
    "| CPU to Paused (total) | peak RSS | idle CPU | machine load (end, peak) |"
    "\n|---|---|---|---|---|---|---|---|---|"
)


def write_docs(path: Path, results: list[Obj]) -> None:
    """Replace the section between the scale markers of docs/benchmarks.md with the table and ratios."""
    begin, end = "<!-- scale:begin -->", "<!-- scale:end -->"
    text = path.read_text()
    if begin not in text or end not in text:
        raise SystemExit(f"{path}: the markers {begin} and {end} are missing; add them where the table goes")
    dates = sorted({r.get("date", "") for r in results} - {""})
    when = f"{dates[0]} to {dates[-1]}" if len(dates) > 1 else (dates[0] if dates else "")
    table = "\n".join([HEADER, *(row(r) for r in results)])
    lines = [ratio_line(n, rs) for n, rs in ratios(results).items()]
    lines += [x for n in sorted({r["rollouts"] for r in results}) if (x := reconcile_line(n, results))]
    lines += [x for n in sorted({r["rollouts"] for r in results}) if (x := requests_line(n, results))]
    replicas = " or ".join(str(x) for x in sorted({r.get("replicas", 1) for r in results}))
    section = (
        f"{begin}\n_Written by `bench/scale_bench.py --docs` ({when}); a fresh control plane per count,"
        f" the controllers one after the other on it, each alone in its own namespace;"
        f" replicas per Rollout: {replicas}; machine load: the 1-minute load average at the end of the"
        f" row and the highest seen during it (2 cores, shared)._\n\n{table}\n\n"
        + "\n".join(f"- {x}" for x in lines)
        + "\n\n![scale-time](img/scale-time.png)\n![scale-cpu](img/scale-cpu.png)"
        + f"\n{end}"
    )
    head, _, rest = text.partition(begin)
    path.write_text(head + section + rest.partition(end)[2])


def write_plots(out: Path, results: list[Obj]) -> list[Path]:
    """Time and controller CPU against N for each controller: scale-time.png and scale-cpu.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, keys, ylabel in (
        ("scale-time.png", (("healthy_s", "apply -> all Healthy"), ("paused_s", "update -> all Paused")),
         "seconds (wall)"),
        ("scale-cpu.png", (("cpu_healthy_s", "CPU to Healthy"),
                           ("cpu_paused_total_s", "CPU to Paused (total)")),
         "controller CPU seconds"),
    ):  # fmt: skip
        fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
        for i, ctrl in enumerate(sorted({r["controller"] for r in results})):
            color = f"C{i}"
            rows = sorted((r for r in results if r["controller"] == ctrl), key=lambda r: r["rollouts"])
            xs = [r["rollouts"] for r in rows]
            for (key, label), style in zip(keys, ("-o", "--s"), strict=True):
                ax.plot(xs, [r[key] for r in rows], style, color=color, label=f"{ctrl}: {label}")
        ax.set_xlabel("rollouts (N)")
        ax.set_ylabel(ylabel)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
        ax.set_title(f"{ylabel} against N (bench/scale_bench.py)", fontsize=10)
        fig.tight_layout()
        path = out / name
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def series(path: Path, name: str, fresh: list[Obj]) -> list[Obj]:
    """The rows of series ``name`` in the JSON-lines file (the last per count and controller), so that
    counts run separately (100,300 then 1,000) end in one table and one plot."""
    rows: dict[tuple[int, str], Obj] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            r = json.loads(line) if line.strip() else {}
            if r.get("series") == name:
                rows[(r["rollouts"], r["controller"])] = r
    for r in fresh:
        rows[(r["rollouts"], r["controller"])] = r
    return sorted(rows.values(), key=lambda r: (r["rollouts"], r.get("which") != ARGO))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rollouts", default="100", help="comma-separated counts, one fresh control plane each")
    ap.add_argument("--controllers", default=f"{ARGO},{OURS}", help=f"comma-separated: {ARGO},{OURS} or one")
    ap.add_argument("--replicas", type=int, default=1, help="pods per Rollout (0: no pods)")
    ap.add_argument("--idle", type=float, default=30.0, help="seconds of idle CPU measured at the end")
    ap.add_argument("--limit", type=float, default=1800.0, help="seconds each phase may take")
    ap.add_argument("--delete-limit", type=float, default=300.0, help="seconds to wait for a namespace to go")
    ap.add_argument("--profile", type=Path, help="write py-spy's top frames here (and <file>.raw); one count")
    ap.add_argument("--json", type=Path, help="append each result as one JSON line to this file")
    ap.add_argument("--series", default="same-run", help="the tag of this run's rows in --json")
    ap.add_argument("--docs", type=Path, help="write the table (this series) into this file (benchmarks.md)")
    ap.add_argument("--plots", type=Path, help="write scale-time.png and scale-cpu.png (this series) here")
    ap.add_argument("--smoke", action="store_true", help="seconds: 2 rollouts, 1 s idle")
    ap.add_argument("--report-only", action="store_true", help="run nothing: --docs/--plots from --json")
    opts = ap.parse_args()
    if opts.smoke:
        opts.rollouts, opts.idle, opts.limit, opts.delete_limit = "2", 1.0, 300.0, 60.0
    opts.controllers = [c.strip() for c in opts.controllers.split(",") if c.strip()]
    bad = [c for c in opts.controllers if c not in (ARGO, OURS)]
    if bad:
        raise SystemExit(f"--controllers: unknown {bad}; use {ARGO}, {OURS} or both")
    results: list[Obj] = []
    counts = [] if opts.report_only else [int(x) for x in opts.rollouts.split(",")]

    def done(result: Obj) -> None:
        result["series"] = opts.series
        results.append(result)
        print(row(result), flush=True)
        print(json.dumps(result), flush=True)
        if opts.json:
            with opts.json.open("a") as fh:
                fh.write(json.dumps(result) + "\n")

    for n in counts:
        run_count(n, opts, opts.profile, done)
        for m, rs in ratios([r for r in results if r["rollouts"] == n]).items():
            print(ratio_line(m, rs), flush=True)
    shown = series(opts.json, opts.series, []) if opts.json else results
    if opts.docs:
        write_docs(opts.docs, shown)
    if opts.plots:
        for path in write_plots(opts.plots, shown):
            print(f"wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
