"""A steady HTTP client for the proxy tests, run in its own process (never retries).

    python proxy_loadclient.py URL --stop-file PATH [--max-seconds 60] [--interval 0.002]

Two threads send GET requests until the stop file appears (or max-seconds pass): one opens a new
connection per request, one keeps one connection alive across requests. Every failure (an
exception or a status other than 200) is counted. At the end one JSON object is printed:
{"total", "failed", "errors": [first few], "seen": {first word of the body: count}}.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import threading
import time
from collections import Counter
from urllib.parse import urlsplit


def main() -> None:
    """Run the load until told to stop, then print the summary."""
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--stop-file", required=True)
    ap.add_argument("--max-seconds", type=float, default=60.0)
    ap.add_argument("--interval", type=float, default=0.002)
    args = ap.parse_args()
    parts = urlsplit(args.url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
    assert host == "127.0.0.1", "tests send traffic to 127.0.0.1 only"
    deadline = time.monotonic() + args.max_seconds
    lock = threading.Lock()
    seen: Counter[str] = Counter()
    errors: list[str] = []
    totals = {"total": 0, "failed": 0}

    def record(body: str | None, error: str | None) -> None:
        with lock:
            totals["total"] += 1
            if error is not None:
                totals["failed"] += 1
                if len(errors) < 20:
                    errors.append(error)
            elif body is not None:
                seen[body.split()[0] if body.split() else "(empty)"] += 1

    def running() -> bool:
        return not os.path.exists(args.stop_file) and time.monotonic() < deadline

    def new_connections() -> None:
        while running():
            conn = http.client.HTTPConnection(host, port, timeout=10)
            try:
                conn.request("GET", path, headers={"Connection": "close"})
                resp = conn.getresponse()
                body = resp.read().decode()
                record(body, None if resp.status == 200 else f"new: status {resp.status}: {body!r}")
            except Exception as exc:
                record(None, f"new: {exc!r}")
            finally:
                conn.close()
            time.sleep(args.interval)

    def keep_alive() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        while running():
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                body = resp.read().decode()
                record(body, None if resp.status == 200 else f"keepalive: status {resp.status}: {body!r}")
                if resp.will_close:
                    record(None, "keepalive: the proxy closed a keep-alive connection")
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=10)
            except Exception as exc:
                record(None, f"keepalive: {exc!r}")
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=10)
            time.sleep(args.interval)
        conn.close()

    threads = [threading.Thread(target=new_connections), threading.Thread(target=keep_alive)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({**totals, "errors": errors, "seen": dict(seen)}))


if __name__ == "__main__":
    main()
