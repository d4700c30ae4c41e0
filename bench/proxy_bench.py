"""The local runtime's proxy against nginx and HAProxy, measured in the same run (issue 17).

    .venv/bin/python bench/proxy_bench.py [--seconds 5] [--connections 1,32,256] [--switches 100]
                                          [--out docs] [--smoke]

Targets, each loaded in turn by the same bounded load generator (its own process, uvloop, N
keep-alive connections each sending GET / back to back, for a fixed time and at most a fixed number
of requests), all on 127.0.0.1, all in front of the same backend:

- direct: the backend itself (a minimal uvloop HTTP server answering a fixed 13-byte body);
- proxy: the pyrollouts proxy process, HTTP (L7) mode;
- proxy-tcp: the same process with the Service port in ``appProtocol: tcp`` (a byte pipe);
- nginx: nginx (one worker, upstream keep-alive), if /usr/sbin/nginx exists;
- haproxy: HAProxy (``nbthread 1``, ``http-reuse always``), if /usr/sbin/haproxy exists.

For each target and connection count: requests/s, p50 and p99, the CPU time the proxy process spent
per request (the steadiest figure on a shared machine) and the connections the backend accepted.
Then the switch: a second backend answers another body, and the route is moved between the two
``--switches`` times, through the proxy's control socket (the table push the local runtime makes)
and through HAProxy's runtime API (server states); the latency is from the call's return to the
first response from the new backend, seen by a client polling on a keep-alive connection.

Prints the tables; with ``--out DIR`` also writes DIR/bench/latest.json (the raw figures), PNG plots
in DIR/img/ and the section between the ``bench:begin``/``bench:end`` markers of DIR/benchmarks.md.
``--smoke`` is the seconds-long mode ``make test`` runs so that the harness cannot rot (it asserts
nothing about speed). Exits 1 if any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

NGINX = "/usr/sbin/nginx"
HAPROXY = "/usr/sbin/haproxy"
MARK_BEGIN, MARK_END = "<!-- bench:begin -->", "<!-- bench:end -->"

# The backend counts the connections it accepts into a file (one write per connection, none per
# request), so the bench can say how many each target opened.
BACKEND = r"""
import asyncio, sys, uvloop
port, tag, counts = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3]
body = tag + b"\n"
RESP = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: text/plain\r\n\r\n%s" % (len(body), body)
accepted = 0
class P(asyncio.Protocol):
    def connection_made(self, t):
        global accepted
        self.t = t; self.buf = b""; accepted += 1
        with open(counts, "w") as f: f.write(str(accepted))
    def data_received(self, d):
        self.buf += d
        n = self.buf.count(b"\r\n\r\n")  # GET requests without bodies only: enough for a benchmark
        if n:
            self.buf = self.buf[self.buf.rindex(b"\r\n\r\n") + 4:]
            self.t.write(RESP * n)
async def main():
    srv = await asyncio.get_running_loop().create_server(P, "127.0.0.1", port, backlog=4096)
    print("ready", flush=True)
    await srv.serve_forever()
uvloop.run(main())
"""

LOADGEN = r"""
import asyncio, json, sys, time, uvloop
port, conns, seconds, max_requests = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
REQ = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
lat = []
errors = 0
class C(asyncio.Protocol):
    def __init__(self): self.buf = b""; self.waiter = None
    def connection_made(self, t): self.t = t
    def data_received(self, d):
        self.buf += d
        i = self.buf.find(b"\r\n\r\n")
        if i < 0: return
        head = self.buf[:i].lower()
        j = head.find(b"content-length:")
        n = int(head[j + 15:].split(b"\r\n", 1)[0]) if j >= 0 else 0
        if len(self.buf) >= i + 4 + n:
            ok = self.buf.startswith(b"HTTP/1.1 200")
            self.buf = self.buf[i + 4 + n:]
            if self.waiter and not self.waiter.done(): self.waiter.set_result(ok)
    def connection_lost(self, exc):
        if self.waiter and not self.waiter.done(): self.waiter.set_result(False)
async def worker(loop, deadline, budget):
    global errors
    t, p = await loop.create_connection(C, "127.0.0.1", port)
    while time.perf_counter() < deadline and budget[0] > 0:
        budget[0] -= 1
        p.waiter = loop.create_future()
        t0 = time.perf_counter()
        t.write(REQ)
        ok = await p.waiter
        lat.append(time.perf_counter() - t0)
        if not ok:
            errors += 1
            if t.is_closing():
                t, p = await loop.create_connection(C, "127.0.0.1", port)
    t.close()
async def main():
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    budget = [max_requests]
    await asyncio.gather(*(worker(loop, start + seconds, budget) for _ in range(conns)))
    took = time.perf_counter() - start
    lat.sort()
    q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] if lat else None
    print(json.dumps({"requests": len(lat), "errors": errors, "seconds": took,
                      "rps": len(lat) / took, "p50": q(0.5), "p99": q(0.99)}))
uvloop.run(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def cpu_seconds(pids: list[int]) -> float:
    """User+system CPU time of these processes and their children (nginx's workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    seen: set[int] = set()
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
        todo += [int(c) for c in children]
    return total


class Backend:
    """One backend process answering ``tag``; counts the connections it accepted."""

    def __init__(self, work: Path, tag: str) -> None:
        self.port = free_port()
        self.counts = work / f"accepted-{tag}"
        self.counts.write_text("0")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", BACKEND, str(self.port), tag, str(self.counts)], stdout=subprocess.PIPE
        )
        wait_port(self.port)

    def accepted(self) -> int:
        text = self.counts.read_text().strip()
        return int(text) if text else 0


async def run_load(port: int, conns: int, seconds: float, max_requests: int) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LOADGEN, str(port), str(conns), str(seconds), str(max_requests),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"the load generator failed on port {port}: {err.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(out)
    return result


async def measure(
    port: int, conns: int, args: argparse.Namespace, backend: Backend, pids: list[int]
) -> dict[str, Any]:
    """Warm up, then the bounded load; the CPU the target's processes used per request (a steadier
    figure than req/s on a shared machine) and the connections the backend accepted meanwhile."""
    await run_load(port, conns, min(1.0, args.seconds), 20000)
    cpu0, acc0 = cpu_seconds(pids), backend.accepted()
    result = await run_load(port, conns, args.seconds, args.max_requests)
    result["cpu_us_per_request"] = (
        (cpu_seconds(pids) - cpu0) / result["requests"] * 1e6 if pids and result["requests"] else None
    )
    result["backend_connections"] = backend.accepted() - acc0
    return result


def service_table(port: int, backend_port: int, tag: str, *, tcp: bool = False) -> dict[str, Any]:
    return {
        "namespace": "bench",
        "name": "backend-tcp" if tcp else "backend",
        "bind": "127.0.0.1",
        "ports": [{"name": "http", "port": port, "appProtocol": "tcp" if tcp else None}],
        "endpoints": [
            {"pod": f"backend-{tag}", "revision": tag, "host": "127.0.0.1",
             "ports": {str(port): backend_port}, "ready": True},
        ],
    }  # fmt: skip


def nginx_conf(work: Path, port: int, backend_port: int) -> Path:
    conf = work / "nginx.conf"
    conf.write_text(
        textwrap.dedent(
            f"""
            worker_processes 1;
            pid {work}/nginx.pid;
            error_log {work}/nginx-error.log warn;
            events {{ worker_connections 4096; }}
            http {{
                access_log off;
                client_body_temp_path {work}/body;
                proxy_temp_path {work}/proxy;
                fastcgi_temp_path {work}/fastcgi;
                uwsgi_temp_path {work}/uwsgi;
                scgi_temp_path {work}/scgi;
                # The load generator keeps its connections for the whole run.
                keepalive_requests 100000000;
                upstream backend {{
                    server 127.0.0.1:{backend_port};
                    keepalive 512;
                    keepalive_requests 100000000;
                }}
                server {{
                    listen 127.0.0.1:{port};
                    location / {{
                        proxy_pass http://backend;
                        proxy_http_version 1.1;
                        proxy_set_header Connection "";
                        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                    }}
                }}
            }}
            """
        )
    )
    return conf


def haproxy_conf(work: Path, port: int, a_port: int, b_port: int) -> Path:
    conf = work / "haproxy.cfg"
    conf.write_text(
        textwrap.dedent(
            f"""
            global
                nbthread 1
                maxconn 8192
                stats socket {work}/haproxy.sock mode 600 level admin
            defaults
                mode http
                timeout connect 5s
                timeout client 60s
                timeout server 60s
                http-reuse always
                option forwardfor
            frontend fe
                bind 127.0.0.1:{port}
                default_backend be
            backend be
                server a 127.0.0.1:{a_port}
                server b 127.0.0.1:{b_port} disabled
            """
        )
    )
    return conf


def haproxy_command(work: Path, command: str) -> str:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(work / "haproxy.sock"))
        s.sendall(command.encode() + b"\n")
        out = b""
        while chunk := s.recv(4096):
            out += chunk
    return out.decode()


class Poller:
    """A client on one keep-alive connection: the body of each GET, as fast as answers come."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self) -> bytes:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return await asyncio.wait_for(self.reader.readexactly(length), 10)

    async def until(self, tag: bytes, timeout: float = 10.0) -> float:
        """Seconds until a response from ``tag``'s backend."""
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            if (await self.get()).strip() == tag:
                return time.perf_counter() - t0
        raise SystemExit(f"no response from backend {tag!r} within {timeout}s of the switch")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def quantiles(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {
        "p50": statistics.median(values),
        "p99": values[min(len(values) - 1, int(0.99 * len(values)))],
        "max": values[-1],
        "n": len(values),
    }


async def switch_proxy(manager: Any, port: int, a: Backend, b: Backend, n: int) -> dict[str, float]:
    poller, took = Poller(port), []
    try:
        for i in range(n):
            to, tag = (b, "b") if i % 2 == 0 else (a, "a")
            result = await manager.push({"version": 100 + i, "services": [service_table(port, to.port, tag)]})
            if result["failed"]:
                raise SystemExit(f"the proxy refused a switch: {result['failed']}")
            took.append(await poller.until(tag.encode()))
    finally:
        poller.close()
    return quantiles(took)


async def switch_haproxy(work: Path, port: int, n: int) -> dict[str, float]:
    poller, took = Poller(port), []
    try:
        for i in range(n):
            to, off = ("b", "a") if i % 2 == 0 else ("a", "b")
            out = haproxy_command(work, f"set server be/{to} state ready; set server be/{off} state maint")
            if out.strip():
                raise SystemExit(f"HAProxy's runtime API answered: {out.strip()}")
            took.append(await poller.until(to.encode()))
    finally:
        poller.close()
    return quantiles(took)


class Targets:
    """The processes under test, started once and stopped at the end."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.procs: list[subprocess.Popen[Any]] = []
        self.manager: Any = None
        self.ports: dict[str, int] = {}
        self.pids: dict[str, list[int]] = {}
        self.start: dict[str, float] = {}

    async def start_all(self, a: Backend, b: Backend) -> None:
        self.procs += [a.proc, b.proc]
        self.ports["direct"], self.pids["direct"] = a.port, []
        await self._start_proxy(a)
        if os.path.exists(NGINX):
            port = free_port()
            conf = nginx_conf(self.work, port, a.port)
            self.procs.append(
                subprocess.Popen([NGINX, "-p", str(self.work), "-c", str(conf), "-g", "daemon off;"])
            )
            wait_port(port)
            self.ports["nginx"], self.pids["nginx"] = port, [self.procs[-1].pid]
        if os.path.exists(HAPROXY):
            port = free_port()
            conf = haproxy_conf(self.work, port, a.port, b.port)
            log = (self.work / "haproxy.log").open("w")  # its notices of every state change
            self.procs.append(subprocess.Popen([HAPROXY, "-db", "-f", str(conf)], stdout=log, stderr=log))
            wait_port(port)
            self.ports["haproxy"], self.pids["haproxy"] = port, [self.procs[-1].pid]

    async def _start_proxy(self, a: Backend) -> None:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
        from pyrollouts.runtimes.local.proxymanager import ProxyManager

        self.manager = ProxyManager(self.work / "state")
        t0 = time.monotonic()
        await self.manager.ensure_running()
        self.start = {"seconds": time.monotonic() - t0, "cpu_seconds": cpu_seconds([self.manager.pid])}
        http, tcp = free_port(), free_port()
        table = {
            "version": 1,
            "services": [service_table(http, a.port, "a"), service_table(tcp, a.port, "a", tcp=True)],
        }
        result = await self.manager.push(table)
        if result["failed"]:
            raise SystemExit(f"the proxy could not listen: {result['failed']}")
        for name, port in (("proxy", http), ("proxy-tcp", tcp)):
            wait_port(port)
            self.ports[name], self.pids[name] = port, [self.manager.pid]

    async def stop(self) -> None:
        if self.manager is not None:
            await self.manager.aclose()
            self.manager.stop()
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="pxb", dir="/tmp"))
    targets = Targets(work)
    report: dict[str, Any] = {"seconds": args.seconds, "connections": args.connections, "load": {}}
    try:
        a, b = Backend(work, "a"), Backend(work, "b")
        await targets.start_all(a, b)
        report["proxy_start"] = targets.start
        report["targets"] = list(targets.ports)
        for conns in args.connections:
            for name, port in targets.ports.items():
                print(f"  {conns:4d} connections -> {name} ...", flush=True)
                report["load"].setdefault(str(conns), {})[name] = await measure(
                    port, conns, args, a, targets.pids[name]
                )
        # The switch: one service, moved between the two backends.
        switch_port = free_port()
        await targets.manager.push({"version": 99, "services": [service_table(switch_port, a.port, "a")]})
        wait_port(switch_port)
        print(f"  {args.switches} switches ...", flush=True)
        report["switch"] = {"proxy": await switch_proxy(targets.manager, switch_port, a, b, args.switches)}
        if "haproxy" in targets.ports:
            report["switch"]["haproxy"] = await switch_haproxy(work, targets.ports["haproxy"], args.switches)
    finally:
        await targets.stop()
        shutil.rmtree(work, ignore_errors=True)
    return report


def ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1000:.2f} ms"


def tables(report: dict[str, Any]) -> str:
    """The report as Markdown tables."""
    lines = [
        f"{report['seconds']:g} s per target and connection count, 127.0.0.1; "
        f"proxy start: control socket answering after {report['proxy_start']['seconds'] * 1000:.0f} ms, "
        f"{report['proxy_start']['cpu_seconds'] * 1000:.0f} ms CPU.",
        "",
        "| connections | target | req/s | p50 | p99 | CPU/request | vs nginx CPU "
        "| backend connections opened |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for conns, by_target in report["load"].items():
        nginx_cpu = (by_target.get("nginx") or {}).get("cpu_us_per_request")
        for name, r in by_target.items():
            cpu = r.get("cpu_us_per_request")
            ratio = f"{cpu / nginx_cpu:.2f}x" if cpu and nginx_cpu else "-"
            lines.append(
                f"| {conns} | {name} | {r['rps']:.0f} | {ms(r['p50'])} | {ms(r['p99'])} | "
                f"{f'{cpu:.1f} µs' if cpu else '-'} | {ratio} | {r['backend_connections']} |"
            )
    one = report["load"].get("1", {})
    if "direct" in one and "proxy" in one:
        lines += ["", f"Added p50 latency over direct at one connection: proxy "
                  f"{ms(one['proxy']['p50'] - one['direct']['p50'])}"
                  + "".join(f", {n} {ms(one[n]['p50'] - one['direct']['p50'])}"
                            for n in ("proxy-tcp", "nginx", "haproxy") if n in one) + "."]  # fmt: skip
    lines += ["", "| switch (call returns -> first response from the new backend) | p50 | p99 | max | n |",
              "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, q in report["switch"].items():
        how = (
            "pyrollouts proxy (table push on its control socket)"
            if name == "proxy"
            else "HAProxy runtime API"
        )
        lines.append(f"| {how} | {ms(q['p50'])} | {ms(q['p99'])} | {ms(q['max'])} | {q['n']} |")
    return "\n".join(lines)


def plots(report: dict[str, Any], img: Path) -> list[Path]:
    """PNG plots: CPU per request and p99 per target against the connection count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    conns = list(report["load"])
    for key, label, scale, fname in (
        ("cpu_us_per_request", "CPU per request (µs)", 1.0, "bench-cpu.png"),
        ("p99", "p99 latency (ms)", 1000.0, "bench-p99.png"),
    ):
        fig, ax = plt.subplots(figsize=(7, 3.5))
        names = [n for n in report["targets"] if key != "cpu_us_per_request" or n != "direct"]
        width = 0.8 / max(1, len(names))
        for i, name in enumerate(names):
            values = [(report["load"][c].get(name, {}).get(key) or 0) * scale for c in conns]
            ax.bar([j + i * width for j in range(len(conns))], values, width, label=name)
        ax.set_xticks(
            [j + width * (len(names) - 1) / 2 for j in range(len(conns))], [f"{c} conns" for c in conns]
        )
        ax.set_ylabel(label)
        ax.legend(fontsize="small")
        fig.tight_layout()
        path = img / fname
        fig.savefig(path, dpi=80)
        plt.close(fig)
        out.append(path)
    return out


def check_out(out: Path) -> None:
    """Refuse, before running, a benchmarks.md without the markers of the generated section."""
    md = out / "benchmarks.md"
    if md.exists() and not (MARK_BEGIN in (text := md.read_text()) and MARK_END in text):
        raise SystemExit(f"{md}: the markers {MARK_BEGIN} and {MARK_END} are missing; add them where the "
                         "generated section goes (nothing was run or written)")  # fmt: skip


def write_out(report: dict[str, Any], out: Path) -> None:
    """The raw JSON, the plots, and the generated section of benchmarks.md."""
    (out / "bench").mkdir(parents=True, exist_ok=True)
    (out / "img").mkdir(parents=True, exist_ok=True)
    (out / "bench" / "latest.json").write_text(json.dumps(report, indent=1) + "\n")
    pngs = plots(report, out / "img")
    md = out / "benchmarks.md"
    text = md.read_text() if md.exists() else f"# Benchmarks\n\n{MARK_BEGIN}\n{MARK_END}\n"
    section = "\n".join(
        [MARK_BEGIN, f"_Written by `make bench` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
         "raw figures in [bench/latest.json](bench/latest.json)._", "", tables(report), "",
         *(f"![{p.stem}](img/{p.name})" for p in pngs), MARK_END]
    )  # fmt: skip
    head, rest = text.split(MARK_BEGIN, 1)
    md.write_text(head + section + rest.split(MARK_END, 1)[1])


def main() -> int:
    """Run the benchmark, print the tables, write the report if asked."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--connections", default="1,32,256", help="comma-separated connection counts")
    ap.add_argument("--switches", type=int, default=100)
    ap.add_argument("--max-requests", type=int, default=2_000_000)
    ap.add_argument(
        "--out", type=Path, help="write DIR/bench/latest.json, DIR/img/bench-*.png, DIR/benchmarks.md"
    )
    ap.add_argument(
        "--smoke", action="store_true", help="seconds in all: 0.3 s per target, 1 and 8 connections"
    )
    args = ap.parse_args()
    if args.smoke:
        args.seconds, args.connections, args.switches, args.max_requests = 0.3, "1,8", 4, 3000
    try:
        args.connections = [int(c) for c in str(args.connections).split(",")]
    except ValueError:
        ap.error(f"--connections {args.connections!r}: expected numbers separated by commas, e.g. 1,32,256")
    if args.out:
        check_out(args.out)
    for tool in (NGINX, HAPROXY):
        if not os.path.exists(tool):
            print(f"({tool} not found: no baseline from it; `make bench` installs nginx-light and haproxy)")
    report = asyncio.run(run(args))
    print("\n" + tables(report))
    if args.out:
        write_out(report, args.out)
        print(
            f"\nwrote {args.out}/bench/latest.json, {args.out}/img/bench-*.png and {args.out}/benchmarks.md"
        )
    return 0 if all(r["errors"] == 0 for by in report["load"].values() for r in by.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
