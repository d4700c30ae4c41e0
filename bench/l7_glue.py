"""The proxy's L7 glue per request without sockets (issue 17): what docs/benchmarks.md counts in
instructions per request.

    .venv/bin/python bench/l7_glue.py [--warmup 1000] [--requests 200000]

The client protocol and the endpoint protocol of ``proxy/l7.py`` are fed, in a loop, the request
``proxy_bench`` sends (one header) and the backend's answer (two headers), with transports that
only count writes: the parsing, the head rewriting, the pool, the metrics and the Python around
them, without the event loop or system calls. Prints the best microseconds per request over
batches of 1,000. Wall time moves with the machine's load; for a figure that does not, count
instructions with valgrind, as the difference between two request counts::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python bench/l7_glue.py \\
        --warmup 500 --requests 0     # then --warmup 5500: (difference) / 5000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from pyrollouts.runtimes.local.proxy import l7
from pyrollouts.runtimes.local.proxy.state import ProxyState
from pyrollouts.runtimes.local.proxy.table import build_routing

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\na\n"


class CountingTransport:
    """Enough of a transport for the protocols: counts writes, never closes by itself."""

    def __init__(self) -> None:
        self.writes = 0
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes += 1

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 5555)

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def run(warmup: int, requests: int) -> float | None:
    state = ProxyState()
    table = {
        "version": 1,
        "services": [
            {"namespace": "bench", "name": "b", "bind": "127.0.0.1",
             "ports": [{"name": "http", "port": 9999}],
             "endpoints": [{"pod": "p", "revision": "r", "host": "127.0.0.1", "ports": {"9999": 7777},
                            "ready": True}]},
        ],
    }  # fmt: skip
    state.routing = build_routing(table, "127.0.0.1")
    state.pool.retain_only({("127.0.0.1", 7777)})
    up = l7._Upstream("127.0.0.1", 7777)
    up.connection_made(CountingTransport())  # type: ignore[arg-type]
    state.pool.release(up)
    client = l7.HttpProxyProtocol(state, ("127.0.0.1", 9999))
    client_transport = CountingTransport()
    client.connection_made(client_transport)  # type: ignore[arg-type]
    for _ in range(warmup):
        client.data_received(REQUEST)
        up.data_received(RESPONSE)
    best = None
    for _ in range(requests // 1000):
        t0 = time.perf_counter()
        for _ in range(1000):
            client.data_received(REQUEST)
            up.data_received(RESPONSE)
        took = (time.perf_counter() - t0) / 1000
        best = took if best is None else min(best, took)
    if client_transport.writes != warmup + requests // 1000 * 1000:
        raise SystemExit(f"expected one response write per request, got {client_transport.writes}")
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=200_000)
    args = ap.parse_args()
    best = uvloop.run(run(args.warmup, args.requests))  # the proxy's loop (loop.time() is in C)
    if best is not None:
        print(f"{best * 1e6:.2f} µs per request (best batch of 1,000)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
