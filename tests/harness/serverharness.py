"""A real `rollouts server` for tests: a subprocess with its own state dir and port, torn down
with nothing left behind.

The server runs exactly as a user starts it (``python -m pyrollouts.cli.main server --state-dir
DIR --listen 127.0.0.1:PORT --test-clock``); tests look at it only from outside: the HTTP API,
the CLI (run in the test's own process, which is quicker than a process per command), the state
dir's files and /proc. Its output goes to ``server-PORT.log`` beside the state dir, so a failure
can show what the server said.

- :func:`free_port`, :func:`http_body`: ports of 127.0.0.1.
- :func:`pids_using`, :func:`state_dir_processes`, :func:`app_processes`, :func:`describe`,
  :func:`kill_state_dir_processes`: the processes of a state dir, found through /proc (the server
  and proxy name the state dir on their command line, app processes in their environment).
- :class:`ServerProcess`: one server; ``http``/``request`` for the API, ``cli`` for the CLI,
  ``wait_for`` to poll, ``stop`` to shut it down with its pods and proxy and check that no
  process of the state dir is left.
- :func:`teardown_on_sigterm`: lets fixture teardowns run when the test run gets SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.support import free_port
from pyrollouts.cli.main import run_captured
from pyrollouts.controller.faults import ENV as KILL_ENV
from pyrollouts.runtimes.local.supervisor import ENV_CONTAINER, ENV_POD_UID, ENV_STATE_DIR

#: How long a server may take to answer its API after it was started.
START_TIMEOUT = 120.0  # a generous limit: a loaded 2-core machine once took over 30 s
#: How long `stop` waits for the server to exit after POST /api/shutdown before it kills it.
STOP_TIMEOUT = 60.0  # generous: a loaded machine stops pods and proxy slowly
#: How much of the server's output a failure message shows (the end of it).
LOG_TAIL = 3000


def http_body(port: int, timeout: float = 3) -> str:
    """GET / on a port of 127.0.0.1 (a Service's): the body, or ``HTTP <code>`` / ``error ...``;
    never raises, so it can be compared in a poll or an assertion."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=timeout) as resp:
            return str(resp.read().decode().strip())
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except OSError as exc:
        return f"error {exc}"


# ---- processes, through /proc -----------------------------------------------------------------


def _read(path: str) -> bytes:
    # A process may end between listing /proc and reading it, and another user's environ is not
    # readable: both read as empty.
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _environ(pid: int) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in _read(f"/proc/{pid}/environ").split(b"\0"):
        k, sep, v = item.partition(b"=")
        if sep:
            out[k.decode(errors="replace")] = v.decode(errors="replace")
    return out


def _stat_fields(pid: int) -> list[str]:
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return _read(f"/proc/{pid}/stat").decode(errors="replace").rpartition(")")[2].split()


def _ppid(pid: int) -> int | None:
    rest = _stat_fields(pid)
    return int(rest[1]) if len(rest) > 1 else None


def _is_zombie(pid: int) -> bool:
    rest = _stat_fields(pid)
    return bool(rest) and rest[0] in ("Z", "X")


def _all_pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def describe(pid: int) -> str:
    """``pid: command line`` of a process, for messages (``?`` when it is gone)."""
    cmd = _read(f"/proc/{pid}/cmdline").replace(b"\0", b" ").decode(errors="replace").strip()
    return f"{pid}: {cmd or '?'}"


def pids_using(*markers: str) -> list[int]:
    """Live processes (not this one, not zombies) whose command line or environment contains any
    of ``markers`` (a state dir path, say)."""
    wanted = [m.encode() for m in markers if m]
    me = os.getpid()
    pids = []
    for pid in _all_pids():
        if pid == me or _is_zombie(pid):
            continue
        blob = _read(f"/proc/{pid}/cmdline") + b"\0" + _read(f"/proc/{pid}/environ")
        if any(m in blob for m in wanted):
            pids.append(pid)
    return pids


def state_dir_processes(state_dir: Path) -> list[int]:
    """Every live process of this state dir: the server and the proxy (their command line names
    it) and the app processes (their environment names it)."""
    # The path as given and as resolved: the server's command line holds the first, the pods'
    # environment the second; they differ when the path goes through a symlink.
    return pids_using(str(state_dir), str(state_dir.resolve()))


def app_processes(state_dir: Path) -> dict[tuple[str, str], list[int]]:
    """Live app processes of this state dir, as {(pod uid, container): [pids]}. Only the top of
    each process tree counts (a child of an app process inherits its environment, it is not a
    second replica)."""
    want = str(state_dir.resolve())
    mine = {}
    for pid in _all_pids():
        if _is_zombie(pid):
            continue
        env = _environ(pid)
        if env.get(ENV_STATE_DIR) == want:
            mine[pid] = (env.get(ENV_POD_UID, ""), env.get(ENV_CONTAINER, ""))
    out: dict[tuple[str, str], list[int]] = {}
    for pid, key in mine.items():
        if _ppid(pid) not in mine:
            out.setdefault(key, []).append(pid)
    return out


def kill_state_dir_processes(state_dir: Path, wait: float = 10) -> list[str]:
    """SIGKILL every process of the state dir and wait (up to ``wait`` seconds) until they are
    gone; returns their descriptions (empty when there were none)."""
    pids = state_dir_processes(state_dir)
    described = [describe(p) for p in pids]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + wait
    while pids and state_dir_processes(state_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    return described


@contextlib.contextmanager
def teardown_on_sigterm() -> Iterator[None]:
    """While inside, SIGTERM (a runner's `timeout`, a CI cancel) interrupts pytest like Ctrl-C
    (KeyboardInterrupt in the main thread) instead of ending it at once, so the session stops but
    fixture teardowns still stop the servers, pods and proxies they started. The previous handler
    comes back on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---- the server -------------------------------------------------------------------------------


@dataclass
class CliResult:
    """What one CLI run returned and printed."""

    code: int
    out: str
    err: str


@dataclass
class Reply:
    """One API answer: status, body (parsed JSON, else text) and headers."""

    status: int
    body: Any
    headers: dict[str, str]


class ServerStartError(RuntimeError):
    """The server exited, or did not answer its API in time; the message ends with its output."""


class ServerProcess:
    """One `rollouts server` subprocess on ``state_dir`` (created if missing) and a free port.

    ``token`` / ``token_file``: the API requires this bearer token (``--token-file``; a ``token``
    is written to ``token`` beside the state dir); ``http``/``request`` send it. ``env``: extra
    environment of the server (on top of this process's, without ``PYROLLOUTS_KILL_AT``, so a
    kill point reaches only the server it is meant for). ``test_clock``: ``--test-clock`` (the
    clock moves by POST /api/debug/clock). ``wait``: return once the API answers
    (:meth:`wait_up`). ``retry_on``: exceptions of a ``wait_for`` predicate that mean "not yet".
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        token: str | None = None,
        token_file: Path | None = None,
        env: Mapping[str, str] | None = None,
        test_clock: bool = True,
        wait: bool = True,
        retry_on: tuple[type[Exception], ...] = (urllib.error.HTTPError,),
    ) -> None:
        self.state_dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = state_dir.parent / f"server-{self.port}.log"
        self.retry_on = retry_on
        args = [
            sys.executable,
            "-m",
            "pyrollouts.cli.main",
            "server",
            "--state-dir",
            str(state_dir),
            "--listen",
            f"127.0.0.1:{self.port}",
        ]
        if test_clock:
            args.append("--test-clock")
        if token_file is None and token is not None:
            token_file = state_dir.parent / "token"
            token_file.write_text(token + "\n")
        self.token = token_file.read_text().strip() if token_file is not None else None
        if token_file is not None:
            args += ["--token-file", str(token_file)]
        penv = {k: v for k, v in os.environ.items() if k != KILL_ENV}
        penv.update(env or {})
        # Its own session: a signal to the test's process group (Ctrl-C) must not reach it, the
        # teardown stops it.
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=penv,
                start_new_session=True,
            )
        if wait:
            try:
                self.wait_up()
            except BaseException:
                # No fixture gets this object to stop: whatever the server started (its proxy,
                # pods) would outlive the test. Stop it all here, then report the start failure.
                with contextlib.suppress(Exception):
                    self.stop(check=False, timeout=5)
                raise

    # -- life cycle --

    def wait_up(self, timeout: float = START_TIMEOUT) -> None:
        """Return once the API answers (any HTTP status counts: 401 without the token is an
        answer); raise :class:`ServerStartError` with the server's output if it exits first or
        ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.http("GET", "/api/version", timeout=2)
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                code = self.proc.poll()
                if code is not None:
                    why = f"exited with code {code}"
                elif time.monotonic() > deadline:
                    why = f"did not answer on {self.url} within {timeout:g} s"
                else:
                    time.sleep(0.1)
                    continue
                raise ServerStartError(
                    f"`rollouts server --state-dir {self.state_dir}` {why}; its output ends with:\n"
                    f"{self.log_tail()}"
                ) from None

    def alive(self) -> bool:
        """Whether the server process still runs."""
        return self.proc.poll() is None

    def log_text(self) -> str:
        """Everything the server printed so far (stdout and stderr)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, chars: int = LOG_TAIL) -> str:
        """The end of the server's output, for failure messages."""
        return self.log_text()[-chars:]

    def wait_exit(self, timeout: float = 60) -> int:
        """The server's exit code once it exited (fails when it still runs after ``timeout``)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the server did not exit:\n{self.log_tail()}") from None

    def kill9(self) -> None:
        """SIGKILL the server process (nothing else: its pods and proxy live on) and reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def shutdown(self, everything: bool) -> None:
        """`rollouts shutdown [--all]` through the CLI, then wait for the server to exit with 0."""
        r = self.cli("shutdown", *(["--all"] if everything else []))
        assert r.code == 0, r
        code = self.wait_exit(30)
        assert code == 0, f"the server exited with {code}:\n{self.log_tail()}"

    def stop(self, *, check: bool = True, linger: float = 0, timeout: float = STOP_TIMEOUT) -> list[str]:
        """Stop the server with its pods and proxy (POST /api/shutdown {"all": true}; killed if it
        has not exited after ``timeout``), give its processes ``linger`` seconds to end, then kill
        whatever of the state dir still runs. Returns what had to be killed; with ``check``, any
        such leftover is a leak and fails (AssertionError naming the processes)."""
        if self.alive():
            with contextlib.suppress(OSError):
                self.http("POST", "/api/shutdown", {"all": True})
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        deadline = time.monotonic() + linger
        while time.monotonic() < deadline and state_dir_processes(self.state_dir):
            time.sleep(0.1)
        leftovers = kill_state_dir_processes(self.state_dir)
        assert not (check and leftovers), f"processes left behind by the server: {leftovers}"
        return leftovers

    # -- the API --

    def _request(
        self,
        method: str,
        path: str,
        body: Any,
        headers: Mapping[str, str] | None,
        raw: bytes | None,
        auth: bool,
    ) -> urllib.request.Request:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        h = {"Content-Type": "application/json", **(headers or {})}
        if auth and self.token and "Authorization" not in h:
            h["Authorization"] = f"Bearer {self.token}"
        return urllib.request.Request(self.url + path, data=data, method=method, headers=h)

    def http(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        raw: bytes | None = None,
        timeout: float = 10,
        *,
        auth: bool = True,
    ) -> Any:
        """One API call (``body`` as JSON, or ``raw`` bytes); the decoded JSON answer (None when
        empty). An error status raises ``urllib.error.HTTPError``."""
        req = self._request(method, path, body, headers, raw, auth)
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            text = resp.read()
            return json.loads(text) if text else None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        raw: bytes | None = None,
        auth: bool = True,
        timeout: float = 10,
    ) -> Reply:
        """One API call that never raises on an HTTP error status: its :class:`Reply` (the body
        parsed as JSON when it is JSON, else text)."""
        req = self._request(method, path, body, headers, raw, auth)
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
        """A :meth:`request` that must succeed (status below 300); its body."""
        r = self.request(method, path, body, **kw)
        assert r.status < 300, f"{method} {path}: {r.status} {r.body}"
        return r.body

    def action(self, path: str, body: Any = None) -> Reply:
        """A dashboard action as its page sends it: PUT with the server's own Origin."""
        return self.request("PUT", path, body if body is not None else {}, headers={"Origin": self.url})

    def info(self, ns: str, name: str = "super-hello") -> dict[str, Any]:
        """What `rollouts get rollout` shows, as JSON (GET /api/rollouts/NS/NAME/info)."""
        return dict(self.http("GET", f"/api/rollouts/{ns}/{name}/info"))

    def advance(self, seconds: float) -> None:
        """Move the server's test clock forward."""
        self.http("POST", "/api/debug/clock", {"advance": seconds})

    # -- the CLI --

    def cli(self, *args: str) -> CliResult:
        """`rollouts --server URL ARGS...`, run in this process; its exit code and output."""
        return CliResult(*run_captured(["--server", self.url, *args]))

    def cli_process(self, *args: str, **kw: Any) -> subprocess.Popen[str]:
        """`rollouts ARGS...` as its own process talking to this server (for -w, -f and signals);
        stdout and stderr are pipes of text. ``kw`` goes to ``subprocess.Popen``."""
        env = dict(os.environ, ROLLOUTS_SERVER=self.url)
        return subprocess.Popen(
            [sys.executable, "-m", "pyrollouts.cli.main", *args],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            **kw,
        )

    # -- polling --

    def wait_for(self, what: str, pred: Callable[[], Any], timeout: float = 60) -> Any:
        """Poll ``pred()`` every 0.2 s until it is truthy and return that value; an exception of
        ``retry_on`` counts as not yet. After ``timeout`` seconds fail with ``what``, the last
        value and the end of the server's output."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = pred()
            except self.retry_on as exc:
                last = exc
            else:
                if last:
                    return last
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what} (last: {last!r})\n{self.log_tail()}")
