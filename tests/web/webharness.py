"""Helpers of the web tests: a real `rollouts server` (which serves the dashboard), the seed's rollout.

The server runs as a subprocess exactly as a user starts it, on a free port with its own state dir;
each test deploys the seed's manifest (examples/super-hello.yaml) in a namespace of its own on free
Service ports, so tests do not collide. Teardown stops the server with its pods and proxy and fails
if any process it started is left behind.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "super-hello.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pids_using(marker: str) -> list[int]:
    """Processes whose command line or environment mentions ``marker`` (a state dir)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            blob = (d / "cmdline").read_bytes()
            with contextlib.suppress(OSError):
                blob += (d / "environ").read_bytes()
            if marker.encode() in blob:
                pids.append(int(d.name))
    return pids


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


class Server:
    """One running `rollouts server` subprocess."""

    def __init__(self, state_dir: Path, *, token: str | None = None) -> None:
        self.state_dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = token
        args = [
            sys.executable,
            "-m",
            "pyrollouts.cli.main",
            "server",
            "--state-dir",
            str(state_dir),
            "--listen",
            f"127.0.0.1:{self.port}",
            "--test-clock",
        ]
        if token:
            token_file = state_dir.parent / "token"
            token_file.write_text(token + "\n")
            args += ["--token-file", str(token_file)]
        self.log_path = state_dir.parent / f"server-{self.port}.log"
        self.log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            args, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {self.log_text()[-3000:]}")
            time.sleep(0.1)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def http(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        auth: bool = True,
        timeout: float = 10,
    ) -> Reply:
        """One request; never raises on an HTTP error status."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        h = {"Content-Type": "application/json", **(headers or {})}
        if auth and self.token and "Authorization" not in h:
            h["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                text = resp.read()
                status, hdrs = resp.status, dict(resp.headers)
        except urllib.error.HTTPError as exc:
            text, status, hdrs = exc.read(), exc.code, dict(exc.headers)
        try:
            parsed: Any = json.loads(text) if text else None
        except ValueError:
            parsed = text.decode(errors="replace")
        return Reply(status, parsed, hdrs)

    def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        """A request that must succeed; its JSON body."""
        r = self.http(method, path, body, **kw)
        assert r.status < 300, f"{method} {path}: {r.status} {r.body}"
        return r.body

    def action(self, path: str, body: Any = None) -> Reply:
        """A dashboard action as the page sends it (PUT with our Origin)."""
        return self.http("PUT", path, body if body is not None else {}, headers={"Origin": self.url})

    def wait_for(self, what: str, pred: Callable[[], Any], timeout: float = 60) -> Any:
        """Poll ``pred()`` until truthy (bounded)."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = pred()
            if last:
                return last
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what} (last: {last!r})\n{self.log_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.http("POST", "/api/shutdown", {"all": True})
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        leftovers = _pids_using(str(self.state_dir))
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.log.close()
        assert not leftovers, f"processes left behind by the server: {leftovers}"


@dataclass
class Deployed:
    """The seed's rollout in a namespace of its own, on its own Service ports."""

    server: Server
    ns: str
    prod: int
    preview: int
    name: str = "super-hello"

    @property
    def api(self) -> str:
        return f"/api/v1/rollouts/{self.ns}/{self.name}"

    @property
    def page(self) -> str:
        return f"{self.server.url}/rollouts/{self.ns}/{self.name}"

    def info(self) -> dict[str, Any]:
        return dict(self.server.ok("GET", self.api + "/info"))

    def revision_roles(self) -> dict[int, set[str]]:
        out: dict[int, set[str]] = {}
        for rs in self.info()["replicaSets"]:
            roles = {r for r in ("stable", "active", "preview") if rs[r]}
            out.setdefault(rs["revision"], set()).update(roles)
        return out

    def wait_phase(self, phase: str, timeout: float = 60) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            info = self.info()
            return info if info["status"] == phase else None

        return dict(self.server.wait_for(f"{self.ns}/{self.name} {phase}", check, timeout))

    def set_welcome(self, value: str) -> None:
        """A new revision: WELCOME=value (through the server's generic API, as the CLI does)."""
        self.server.ok(
            "POST",
            f"/api/rollouts/{self.ns}/{self.name}/set-env",
            {"container": "super-hello", "name": "WELCOME", "value": value},
        )

    def wait_paused_with_preview(self, revision: int) -> dict[str, Any]:
        """Wait for the blue-green pause with ``revision`` as preview (its pods ready)."""

        def check() -> dict[str, Any] | None:
            info = self.info()
            roles = {rs["revision"]: rs for rs in info["replicaSets"]}
            rs = roles.get(revision)
            if info["status"] == "Paused" and rs and rs["preview"] and rs["available"] == rs["replicas"]:
                return info
            return None

        return dict(self.server.wait_for(f"revision {revision} as preview", check))

    def prod_says(self) -> str:
        return get_text(self.prod)


def get_text(port: int) -> str:
    """GET / on a proxy port."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
        return resp.read().decode().strip()


def deploy(server: Server, ns: str, *, replicas: int = 2) -> Deployed:
    """Apply the seed's manifest in ``ns`` on free ports and wait until it is Healthy."""
    prod, preview = free_port(), free_port()
    text = EXAMPLE.read_text(encoding="utf-8").replace("my-app", ns)
    text = re.sub(r"(\bport:\s*)8088\b", rf"\g<1>{prod}", text)
    text = re.sub(r"(\bport:\s*)8089\b", rf"\g<1>{preview}", text)
    text = text.replace("replicas: 3", f"replicas: {replicas}")
    server.ok("POST", "/api/apply", {"text": text, "source": f"super-hello-{ns}.yaml"})
    dep = Deployed(server, ns, prod, preview)
    dep.wait_phase("Healthy")
    server.wait_for("prod answers V2", lambda: _try_text(prod) == "VERSION V2")
    return dep


def _try_text(port: int) -> str | None:
    try:
        return get_text(port)
    except OSError:
        return None


def sse_messages(
    url: str, headers: dict[str, str] | None = None, timeout: float = 30
) -> Iterator[tuple[str, Any]]:
    """(event name, parsed data) of each message of an SSE stream, until ``timeout`` passes."""
    from urllib.parse import urlsplit

    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    conn.request("GET", u.path, headers=headers or {})
    resp = conn.getresponse()
    assert resp.status == 200, (resp.status, resp.read())
    assert resp.getheader("Content-Type", "").startswith("text/event-stream")
    deadline = time.monotonic() + timeout
    event, data = "message", ""
    try:
        while time.monotonic() < deadline:
            line = resp.readline().decode()
            if not line:
                return
            line = line.rstrip("\n")
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif line == "":
                if data:
                    yield event, json.loads(data)
                event, data = "message", ""
    finally:
        conn.close()
