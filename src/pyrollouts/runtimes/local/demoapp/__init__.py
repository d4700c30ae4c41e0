"""The seed's demo app ("super"), small enough to start in a blink: plain asyncio, no framework.

- ``GET /`` returns ``$WELCOME`` as plain text; ``GET /healthz`` returns 200 (503 while unready).
- ``ERROR_RATE`` (a number from 0 to 1, 0 by default): the share of ``GET /`` answered ``500``
  instead, spread evenly and exactly (0.25: every fourth request, counted per process; 1: all of
  them). Health stays 200, so a broken version still becomes ready and takes traffic: what
  analysis of its error rate must catch (docs/analysis.md). Anything else exits 1 at start.
- Listens on ``127.0.0.1:$PORT`` (``$BIND`` overrides the address); HTTP/1.1 with keep-alive.
- SIGTERM: stop accepting, finish the requests in flight, close idle connections, exit 0.

Test hooks (so tests and the scenario driver can make replicas misbehave):

- ``POST /admin/unready`` / ``POST /admin/ready`` toggle /healthz between 503 and 200.
- ``DEMO_UNREADY_FILE``: /healthz answers 503 while that file exists.
- ``DEMO_CRASH_FILE``: the app exits 1 at start, or within 0.2 s, while that file exists.
- ``GET /sleep?s=0.5`` answers after that many seconds (at most 30): an in-flight request to drain.
- ``DEMO_FAIL``, comma separated: ``crash`` (exit 1 at start: a crash loop), ``never-ready``
  (/healthz always 503), ``slow-start:N`` (wait N seconds before listening), ``exit-after:N``
  (exit 1 after N seconds), ``ignore-term`` (ignore SIGTERM, so only SIGKILL stops it).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from urllib.parse import parse_qs, urlsplit

_REASONS = {
    200: "OK",
    404: "Not Found",
    500: "Internal Server Error",
    405: "Method Not Allowed",
    400: "Bad Request",
    503: "Service Unavailable",
    411: "Length Required",
}


class DemoApp:
    """The app's state: readiness, connections, and whether it is stopping."""

    def __init__(self) -> None:
        self.welcome = os.environ.get("WELCOME", "Hello from super")
        self.modes = self._modes(os.environ.get("DEMO_FAIL", ""))
        self.unready_file = os.environ.get("DEMO_UNREADY_FILE") or None
        self.crash_file = os.environ.get("DEMO_CRASH_FILE") or None
        self.pod = os.environ.get("HOSTNAME", "")
        self.error_rate, self.config_error = self._error_rate(os.environ.get("ERROR_RATE", ""))
        #: ``GET /`` requests answered so far, and how many of them were 500s.
        self.served = 0
        self.failed = 0
        self.ready = "never-ready" not in self.modes
        self.stopping = asyncio.Event()
        self.idle: set[asyncio.StreamWriter] = set()
        self.conns: set[asyncio.Task[None]] = set()

    @staticmethod
    def _modes(raw: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for part in raw.split(","):
            part = part.strip()
            if part:
                key, _, value = part.partition(":")
                out[key] = value
        return out

    @staticmethod
    def _error_rate(raw: str) -> tuple[float, str | None]:
        if not raw.strip():
            return 0.0, None
        try:
            rate = float(raw)
        except ValueError:
            rate = -1.0
        if not 0.0 <= rate <= 1.0:  # also NaN
            return 0.0, (
                f"ERROR_RATE={raw!r}: expected a number from 0 to 1 (the share of GET / answered "
                "500; 0.25 is every fourth request)"
            )
        return rate, None

    def welcome_or_error(self) -> tuple[int, str]:
        """The answer to ``GET /``: a 500 whenever the errors so far fall behind ERROR_RATE."""
        self.served += 1
        if self.failed + 1 <= self.served * self.error_rate + 1e-9:
            self.failed += 1
            return 500, f"error (ERROR_RATE={self.error_rate:g})\n"
        return 200, self.welcome

    def healthy(self) -> bool:
        if not self.ready:
            return False
        return not (self.unready_file and os.path.exists(self.unready_file))

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.conns.add(task)
        try:
            while not self.stopping.is_set():
                self.idle.add(writer)
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                finally:
                    self.idle.discard(writer)
                keep = await self.respond(head, reader, writer)
                if not keep:
                    return
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.conns.discard(task)
            writer.close()

    async def respond(self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            await self.send(writer, 400, "bad request line\n", close=True)
            return False
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            await self.send(writer, 411, "chunked bodies are not supported\n", close=True)
            return False
        length = int(headers.get("content-length", "0") or 0)
        if length:
            await reader.readexactly(length)
        conn = headers.get("connection", "").lower()
        keep = (version == "HTTP/1.1" and conn != "close") or (version == "HTTP/1.0" and conn == "keep-alive")
        url = urlsplit(target)
        path = url.path
        status, body = 404, "not found\n"
        if path == "/" and method in ("GET", "HEAD"):
            status, body = self.welcome_or_error()
        elif path == "/healthz" and method in ("GET", "HEAD"):
            status, body = (200, "ok\n") if self.healthy() else (503, "unready\n")
        elif path in ("/admin/ready", "/admin/unready"):
            if method != "POST":
                status, body = 405, "use POST\n"
            else:
                self.ready = path == "/admin/ready"
                status, body = 200, ("ready\n" if self.ready else "unready\n")
        elif path == "/sleep" and method == "GET":
            try:
                seconds = min(30.0, float(parse_qs(url.query).get("s", ["0"])[0]))
            except ValueError:
                seconds = 0.0
            await asyncio.sleep(max(0.0, seconds))
            status, body = 200, f"slept {seconds}\n"
        # A request that arrived while stopping is answered, and the connection closed after it.
        close = not keep or self.stopping.is_set()
        await self.send(writer, status, body, close=close, head_only=method == "HEAD")
        return not close

    async def send(
        self, writer: asyncio.StreamWriter, status: int, body: str, *, close: bool, head_only: bool = False
    ) -> None:
        data = body.encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(data)}\r\n"
            f"X-Pod-Name: {self.pod}\r\n" + ("Connection: close\r\n" if close else "") + "\r\n"
        )
        writer.write(head.encode("latin-1") + (b"" if head_only else data))
        await writer.drain()

    async def watch_crash_file(self) -> None:
        while self.crash_file:
            if os.path.exists(self.crash_file):
                print(f"demoapp: {self.crash_file} exists: crashing", flush=True)
                os._exit(1)
            await asyncio.sleep(0.2)

    async def run(self) -> int:
        if self.config_error:
            print(f"demoapp: {self.config_error}", flush=True)
            return 1
        if "crash" in self.modes or (self.crash_file and os.path.exists(self.crash_file)):
            print("demoapp: crashing at start (DEMO_FAIL=crash or DEMO_CRASH_FILE)", flush=True)
            return 1
        loop = asyncio.get_running_loop()
        if "ignore-term" in self.modes:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        else:
            loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        loop.add_signal_handler(signal.SIGINT, self.stopping.set)
        if "slow-start" in self.modes:
            await asyncio.sleep(float(self.modes["slow-start"] or 5))
        host = os.environ.get("BIND", "127.0.0.1")
        port = int(os.environ.get("PORT", "8080"))
        try:
            server = await asyncio.start_server(self.handle, host, port, reuse_address=True)
        except OSError as e:
            print(f"demoapp: cannot listen on {host}:{port}: {e}", flush=True)
            return 1
        print(f"demoapp: listening on {host}:{port} ({self.pod or 'no pod name'})", flush=True)
        watchers = [asyncio.create_task(self.watch_crash_file())]
        if "exit-after" in self.modes:

            async def exit_later() -> None:
                await asyncio.sleep(float(self.modes["exit-after"] or 1))
                print("demoapp: exiting (DEMO_FAIL=exit-after)", flush=True)
                os._exit(1)

            watchers.append(asyncio.create_task(exit_later()))
        await self.stopping.wait()
        print("demoapp: stopping: finishing requests in flight", flush=True)
        server.close()
        for w in list(self.idle):
            w.close()  # idle keep-alive connections: nothing in flight, close them now
        deadline = loop.time() + 25
        while self.conns and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for t in watchers:
            t.cancel()
        print("demoapp: stopped", flush=True)
        return 0


def main() -> None:
    """Run the demo app until SIGTERM; exit code 1 when it cannot listen or is told to crash."""
    sys.exit(asyncio.run(DemoApp().run()))
