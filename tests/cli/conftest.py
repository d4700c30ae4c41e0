"""A real `rollouts server` for the CLI tests: its own state dir, a free port, the test clock.

The server runs as a subprocess exactly as a user starts it; teardown asks it to stop with its pods
and proxy (POST /api/shutdown {"all": true}), then makes sure no process it started is left."""

from __future__ import annotations

import contextlib
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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pyrollouts.cli.main import run_captured

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "super-hello.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Result:
    code: int
    out: str
    err: str


def _pids_using(marker: str) -> list[int]:
    """Processes whose command line or environment mentions ``marker`` (our state dir)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            cmd = (d / "cmdline").read_bytes()
            env = b""
            with contextlib.suppress(OSError):
                env = (d / "environ").read_bytes()
            if marker.encode() in cmd or marker.encode() in env:
                pids.append(int(d.name))
    return pids


def _describe(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        cmd = "?"
    return f"{pid}: {cmd.strip()}"


class Server:
    """One running `rollouts server` subprocess."""

    def __init__(self, state_dir: Path, *, token_file: Path | None = None) -> None:
        self.state_dir = state_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = token_file.read_text().strip() if token_file else None
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
        if token_file:
            args += ["--token-file", str(token_file)]
        self.log = (state_dir.parent / f"server-{self.port}.log").open("wb")
        self.proc = subprocess.Popen(
            args, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.http("GET", "/api/version")
                break
            except urllib.error.HTTPError:
                break  # it answers (401 without a token)
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {self.log_text()[-3000:]}") from None
                time.sleep(0.1)

    def log_text(self) -> str:
        return (self.state_dir.parent / f"server-{self.port}.log").read_text(errors="replace")

    def http(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        timeout: float = 10,
    ) -> Any:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        h = {"Content-Type": "application/json", **(headers or {})}
        if self.token and "Authorization" not in h:
            h["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=h)
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            text = resp.read()
            return json.loads(text) if text else None

    def cli(self, *args: str) -> Result:
        """Run `rollouts --server URL ARGS...` in this process and capture what it prints."""
        return Result(*run_captured(["--server", self.url, *args]))

    def cli_process(self, *args: str, **kw: Any) -> subprocess.Popen[str]:
        """The CLI as its own process (for -w, -f and signals)."""
        env = dict(os.environ, ROLLOUTS_SERVER=self.url)
        return subprocess.Popen(
            [sys.executable, "-m", "pyrollouts.cli.main", *args],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            **kw,
        )

    def info(self, ns: str, name: str) -> dict[str, Any]:
        return dict(self.http("GET", f"/api/rollouts/{ns}/{name}/info"))

    def wait_for(self, what: str, pred: Any, timeout: float = 60) -> Any:
        """Poll ``pred()`` until truthy (bounded)."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            with contextlib.suppress(urllib.error.HTTPError):
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
        # Anything still running from this state dir (the proxy, an app process) is a leak: end it,
        # then fail the test run so the leak is seen.
        leftovers = _pids_using(str(self.state_dir))
        described = [_describe(pid) for pid in leftovers]
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.log.close()
        assert not leftovers, f"processes left behind by the server: {described}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real local server shared by the tests of one module (each test uses its own namespace)."""
    s = Server(tmp_path_factory.mktemp("cli") / "state")
    try:
        yield s
    finally:
        s.stop()


def seed_manifest(
    namespace: str,
    *,
    prod: int | None = None,
    preview: int | None = None,
    replicas: int | None = None,
    extra_env: dict[str, str] | None = None,
) -> tuple[str, int, int]:
    """The seed's manifest in another namespace on free Service ports: (text, prod, preview)."""
    text = EXAMPLE.read_text(encoding="utf-8")
    prod = prod or free_port()
    preview = preview or free_port()
    text = text.replace("my-app", namespace)
    text = re.sub(r"(\bport:\s*)8088\b", rf"\g<1>{prod}", text)
    text = re.sub(r"(\bport:\s*)8089\b", rf"\g<1>{preview}", text)
    if replicas is not None:
        text = text.replace("replicas: 3", f"replicas: {replicas}")
    for k, v in (extra_env or {}).items():
        text = text.replace(
            '              value: "VERSION V2"\n',
            f'              value: "VERSION V2"\n            - name: {k}\n              value: "{v}"\n',
        )
    return text, prod, preview


def http_body(port: int) -> str:
    """GET / on a Service port of 127.0.0.1: the body, or an error text."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3) as resp:
            return resp.read().decode().strip()
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except OSError as exc:
        return f"error {exc}"
