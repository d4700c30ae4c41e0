"""Throughput and latency through the local runtime's proxy, against baselines measured in the same run.

    .venv/bin/python bench/proxy_bench.py [--seconds 5] [--connections 32] [--max-requests 2000000]

Targets, each loaded in turn by the same bounded load generator (its own process, uvloop, N
keep-alive connections each sending GET / back to back, for a fixed time and at most a fixed number
of requests), all on 127.0.0.1:

- direct: the backend itself (a minimal uvloop HTTP server answering a fixed 13-byte body);
- proxy: the pyrollouts proxy process in front of that backend;
- nginx: nginx (one worker, upstream keep-alive) in front of it, if /usr/sbin/nginx exists
  (``apt-get install nginx-light``).

Prints requests/s, p50 and p99 latency per target, the CPU time the proxy and nginx processes
spent per request (steadier than req/s when the machine is shared), and the ratios proxy/direct
and proxy/nginx; also how long the proxy process took to start (until its control socket
answered) and the CPU it used doing so. Exits 1 if any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

NGINX = "/usr/sbin/nginx"

BACKEND = r"""
import asyncio, sys, uvloop
RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nhello, world\n"
class P(asyncio.Protocol):
    def connection_made(self, t): self.t = t; self.buf = b""
    def data_received(self, d):
        self.buf += d
        n = self.buf.count(b"\r\n\r\n")  # GET requests without bodies only: enough for a benchmark
        if n:
            self.buf = self.buf[self.buf.rindex(b"\r\n\r\n") + 4:]
            self.t.write(RESP * n)
async def main():
    srv = await asyncio.get_running_loop().create_server(P, "127.0.0.1", int(sys.argv[1]), backlog=1024)
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


def wait_port(port: int, timeout: float = 10.0) -> None:
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


def load(port: int, args: argparse.Namespace, pids: list[int] | None = None) -> dict[str, Any]:
    """Warm up, then run the bounded load; with pids, also the CPU those processes used per request
    (a steadier figure than req/s on a machine shared with other work)."""
    # A short warm-up so pools and caches are filled, then the measured run.
    subprocess.run(
        [sys.executable, "-c", LOADGEN, str(port), str(args.connections), "1", "20000"],
        check=True, capture_output=True,
    )  # fmt: skip
    cpu0 = cpu_seconds(pids or [])
    out = subprocess.run(
        [sys.executable, "-c", LOADGEN, str(port), str(args.connections), str(args.seconds),
         str(args.max_requests)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout)
    result["cpu_us_per_request"] = (
        (cpu_seconds(pids) - cpu0) / result["requests"] * 1e6 if pids and result["requests"] else None
    )
    return result


async def start_proxy(state_dir: Path, port: int, backend_port: int) -> tuple[Any, tuple[float, float]]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from pyrollouts.runtimes.local.proxymanager import ProxyManager

    manager = ProxyManager(state_dir)
    t0 = time.monotonic()
    await manager.ensure_running()
    # Start-up: until the control socket answers, and the CPU the process used for it.
    start = (time.monotonic() - t0, cpu_seconds([manager.pid]) if manager.pid else 0.0)
    table = {
        "version": 1,
        "services": [
            {
                "namespace": "bench",
                "name": "backend",
                "bind": "127.0.0.1",
                "ports": [{"name": "http", "port": port, "appProtocol": None}],
                "endpoints": [
                    {
                        "pod": "backend-0",
                        "revision": "bench",
                        "host": "127.0.0.1",
                        "ports": {str(port): backend_port},
                        "ready": True,
                    }
                ],
            }
        ],
    }
    result = await manager.push(table)
    if result["failed"]:
        raise SystemExit(f"the proxy could not listen: {result['failed']}")
    await manager.aclose()
    return manager, start


def start_nginx(workdir: Path, port: int, backend_port: int) -> subprocess.Popen[bytes]:
    conf = workdir / "nginx.conf"
    conf.write_text(
        textwrap.dedent(
            f"""
            worker_processes 1;
            pid {workdir}/nginx.pid;
            error_log {workdir}/nginx-error.log warn;
            events {{ worker_connections 4096; }}
            http {{
                access_log off;
                client_body_temp_path {workdir}/body;
                proxy_temp_path {workdir}/proxy;
                fastcgi_temp_path {workdir}/fastcgi;
                uwsgi_temp_path {workdir}/uwsgi;
                scgi_temp_path {workdir}/scgi;
                # The load generator keeps its connections for the whole run.
                keepalive_requests 100000000;
                upstream backend {{
                    server 127.0.0.1:{backend_port};
                    keepalive 128;
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
    return subprocess.Popen([NGINX, "-p", str(workdir), "-c", str(conf), "-g", "daemon off;"])


def fmt(r: dict[str, Any]) -> str:
    return (
        f"{r['rps']:10.0f} req/s   p50 {r['p50'] * 1000:7.3f} ms   p99 {r['p99'] * 1000:7.3f} ms"
        + (f"   {r['cpu_us_per_request']:6.1f} us CPU/request" if r.get("cpu_us_per_request") else "")
        + f"   ({r['requests']} requests, {r['errors']} errors)"
    )


def main() -> int:
    """Run the benchmark and print the table and ratios."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--max-requests", type=int, default=2_000_000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pxb", dir="/tmp"))
    procs: list[subprocess.Popen[Any]] = []
    manager = None
    results: dict[str, dict[str, Any]] = {}
    start: tuple[float, float] | None = None
    try:
        backend_port = free_port()
        procs.append(
            subprocess.Popen([sys.executable, "-c", BACKEND, str(backend_port)], stdout=subprocess.PIPE)
        )
        wait_port(backend_port)
        results["direct"] = load(backend_port, args)

        proxy_port = free_port()
        manager, start = asyncio.run(start_proxy(work / "state", proxy_port, backend_port))
        wait_port(proxy_port)
        results["proxy"] = load(proxy_port, args, [manager.pid])
        manager.stop()
        manager = None

        if os.path.exists(NGINX):
            nginx_port = free_port()
            procs.append(start_nginx(work, nginx_port, backend_port))
            wait_port(nginx_port)
            results["nginx"] = load(nginx_port, args, [procs[-1].pid])
        else:
            print(f"({NGINX} not found: no nginx baseline; apt-get install nginx-light adds it)")
    finally:
        if manager is not None:
            manager.stop()
        for p in procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{args.connections} keep-alive connections, {args.seconds:g} s per target, 127.0.0.1\n")
    if start is not None:
        print(f"  proxy start: control socket answering after {start[0] * 1000:.0f} ms, "
              f"{start[1] * 1000:.0f} ms CPU\n")  # fmt: skip
    for name, r in results.items():
        print(f"  {name:7s} {fmt(r)}")
    d, p = results["direct"], results["proxy"]
    print(f"\n  proxy/direct: throughput {p['rps'] / d['rps']:.2f}x, p50 {p['p50'] / d['p50']:.2f}x, "
          f"p99 {p['p99'] / d['p99']:.2f}x")  # fmt: skip
    if "nginx" in results:
        n = results["nginx"]
        print(f"  proxy/nginx:  throughput {p['rps'] / n['rps']:.2f}x, p50 {p['p50'] / n['p50']:.2f}x, "
              f"p99 {p['p99'] / n['p99']:.2f}x")  # fmt: skip
        if p.get("cpu_us_per_request") and n.get("cpu_us_per_request"):
            print(f"  proxy/nginx:  CPU per request {p['cpu_us_per_request'] / n['cpu_us_per_request']:.2f}x")
    return 0 if all(r["errors"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
