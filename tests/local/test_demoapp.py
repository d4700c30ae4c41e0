"""The demo app: answers, health toggles, failure modes, and a clean SIGTERM that finishes requests
in flight."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from harness.support import free_port


def get(port: int, path: str = "/", method: str = "GET") -> tuple[int, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_listening(port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise AssertionError(f"demo app not listening on {port} within {timeout}s")


@pytest.fixture
def start() -> Iterator[Any]:
    procs: list[subprocess.Popen[bytes]] = []

    def run(**env: str) -> tuple[subprocess.Popen[bytes], int]:
        port = free_port()
        full = {**os.environ, "PORT": str(port), **env}
        p = subprocess.Popen(
            [sys.executable, "-m", "pyrollouts.runtimes.local.demoapp"],
            env=full,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(p)
        return p, port

    yield run
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(5)


def test_welcome_health_and_toggles(start: Any, tmp_path: Any) -> None:
    flag = tmp_path / "unready"
    _p, port = start(WELCOME="VERSION V3", DEMO_UNREADY_FILE=str(flag), HOSTNAME="web-abcde")
    wait_listening(port)
    assert get(port) == (200, "VERSION V3")
    assert get(port, "/healthz")[0] == 200
    flag.touch()
    assert get(port, "/healthz")[0] == 503
    flag.unlink()
    assert get(port, "/admin/unready", "POST")[0] == 200
    assert get(port, "/healthz")[0] == 503
    assert get(port, "/admin/ready", "POST")[0] == 200
    assert get(port, "/healthz")[0] == 200
    assert get(port, "/nope")[0] == 404


def test_sigterm_finishes_requests_in_flight(start: Any) -> None:
    p, port = start()
    wait_listening(port)
    result: list[tuple[int, str]] = []
    t = threading.Thread(target=lambda: result.append(get(port, "/sleep?s=0.8")))
    t.start()
    time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    t.join(5)
    assert result == [(200, "slept 0.8\n")]
    assert p.wait(5) == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()


def test_failure_modes(start: Any) -> None:
    crash, _ = start(DEMO_FAIL="crash")
    assert crash.wait(5) == 1
    _never, port = start(DEMO_FAIL="never-ready")
    wait_listening(port)
    assert get(port, "/healthz")[0] == 503 and get(port)[0] == 200
    _slow, port = start(DEMO_FAIL="slow-start:1")
    t0 = time.monotonic()
    wait_listening(port)
    assert time.monotonic() - t0 >= 0.9
    _busy, port = start()
    wait_listening(port)
    clash, _ = start(PORT=str(port))
    assert clash.wait(5) == 1  # port in use: a clear exit, not a hang


def test_error_rate_answers_500s_exactly_and_stays_healthy(start: Any) -> None:
    _quarter, port = start(ERROR_RATE="0.25", WELCOME="VERSION V3")
    wait_listening(port)
    answers = [get(port) for _ in range(8)]
    assert [status for status, _ in answers] == [200, 200, 200, 500, 200, 200, 200, 500]
    assert answers[0] == (200, "VERSION V3")
    assert answers[3] == (500, "error (ERROR_RATE=0.25)\n")
    assert get(port, "/healthz")[0] == 200  # ready, so a broken version still takes traffic
    _all, port = start(ERROR_RATE="1.0")
    wait_listening(port)
    assert [get(port)[0] for _ in range(3)] == [500, 500, 500]
    assert get(port, "/healthz")[0] == 200
    _none, port = start(ERROR_RATE="0")
    wait_listening(port)
    assert [get(port)[0] for _ in range(3)] == [200, 200, 200]


@pytest.mark.parametrize("bad", ["abc", "1.5", "-0.1", "nan"])
def test_a_bad_error_rate_exits_at_start_naming_it(bad: str) -> None:
    env = {**os.environ, "PORT": str(free_port()), "ERROR_RATE": bad}
    done = subprocess.run(
        [sys.executable, "-m", "pyrollouts.runtimes.local.demoapp"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert f"ERROR_RATE={bad!r}: expected a number from 0 to 1" in done.stdout
