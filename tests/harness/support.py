"""What the scenario drivers and the other harness pieces share, once: a free port, a wait on a
condition, a Rollout's own ReplicaSets."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

from pyrollouts.model.owners import owned_by_uid

Obj = dict[str, Any]
T = TypeVar("T")


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now, below Linux's ephemeral range
    (32768-60999).

    Pods, the proxy's upstream connections and every client socket take their ports from the
    ephemeral range, so a port picked there can be taken between the pick and its use, and a
    Service port that equals a replica's port is refused by the local runtime. Below that range
    only a deliberate bind competes."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # the low range is full: let the kernel pick
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    """Call ``check`` until it returns a truthy value, and return that value; raise AssertionError
    naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
    return value


async def wait_until_async(
    check: Callable[[], Awaitable[T]], timeout: float, what: str, interval: float = 0.02
) -> T:
    """``wait_until`` for an async check, sleeping in the event loop between calls."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := await check()):
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)
    return value


def owned_replicasets(rollout: Obj, replicasets: Iterable[Obj]) -> list[Obj]:
    """The Rollout's own ReplicaSets among these (by ownerReferences uid), by name."""
    uid = str(rollout.get("metadata", {}).get("uid", ""))
    return sorted((rs for rs in replicasets if owned_by_uid(rs, uid)), key=lambda rs: rs["metadata"]["name"])


class MetricEndpoint:
    """A real HTTP endpoint on 127.0.0.1 for analysis tests: ``GET /<anything>`` answers
    ``{"value": <self.value>}`` (JSON) and records the path. A scenario's ``metric`` step sets the
    value; the engine's simulated driver reads ``value`` directly instead of over HTTP."""

    def __init__(self, value: Any = "pass") -> None:
        import http.server
        import json
        import threading

        self.value = value
        self.requests = 0
        self.paths: list[str] = []  # every path asked for, in order
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                outer.paths.append(self.path)
                body = json.dumps({"value": outer.value}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True, name="metric-endpoint").start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def metric_endpoint_fixture() -> Iterator[MetricEndpoint]:
    """The body of an ``endpoint`` fixture: a MetricEndpoint answering ``{"value": true}``."""
    endpoint = MetricEndpoint(True)
    yield endpoint
    endpoint.close()


def check_template(endpoint_url: str, namespace: str | None = None) -> dict[str, Any]:
    """An AnalysisTemplate ``check``: a stock ``web`` metric ``ok`` asking the endpoint twice, 1 s
    apart, with the revision's hash in the URL (arg ``hash``); it passes while the endpoint's value
    is true."""
    meta: dict[str, Any] = {"name": "check"}
    if namespace:
        meta["namespace"] = namespace
    url = f"{endpoint_url}/check?hash={{{{args.hash}}}}"
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": meta,
        "spec": {
            "args": [{"name": "hash"}],
            "metrics": [
                {
                    "name": "ok",
                    "count": 2,
                    "interval": "1s",
                    "successCondition": "result == true",
                    "provider": {"web": {"url": url, "jsonPath": "{$.value}"}},
                }
            ],
        },
    }


def hashes_asked(endpoint: MetricEndpoint) -> list[str]:
    """The hashes the measurements of ``check_template`` asked the endpoint for."""
    return [p.partition("hash=")[2] for p in endpoint.paths]
