"""``python -m pyrollouts.runtimes.local.proxy --state-dir DIR [--bind 127.0.0.1] [--standby]``: the
proxy process.

It takes an exclusive lock on <state-dir>/proxy.lock (one proxy per state directory), serves the
persisted table at once, opens the control socket, then writes proxy.pid ({"pid", "startTime"}).
SIGTERM/SIGINT stop it (listeners close, open connections get a moment to finish).

With ``--standby`` it is a warm spare: it loads everything, records itself in proxy-standby.pid
(at most one standby per state directory: it holds proxy-standby.lock), then waits for
proxy.lock. The kernel releases that lock the moment the serving proxy exits, however it exits
(``kill -9`` included), and the standby goes on as the serving proxy at once, with the persisted
table: no supervisor has to notice the death or start an interpreter first. A standby ends with
the process that started it (PR_SET_PDEATHSIG), so a supervisor that dies leaves none behind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from .control import serve_control
from .limits import Limits, LimitsError
from .server import (
    LOCK_FILE,
    PID_FILE,
    SOCKET_FILE,
    STANDBY_LOCK_FILE,
    STANDBY_PID_FILE,
    ProxyServer,
    process_start_time,
)

log = logging.getLogger("pyrollouts.proxy")

# sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH = 107
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
#: The process name (/proc/<pid>/comm) of a standby while it waits; a proxy that serves is
#: "rollouts-proxy", whether it started as a standby or not (its command line cannot change).
STANDBY_NAME = b"proxy-standby"
SERVING_NAME = b"rollouts-proxy"


def _prctl(option: int, arg: int | bytes) -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(option, arg, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: no death signal (a standby then outlives
        pass  # its supervisor), no process name


def _die_with_parent(sig: int) -> None:
    """Linux: have the kernel send ``sig`` to this process when its parent exits (0: never)."""
    _prctl(PR_SET_PDEATHSIG, sig)


def _wait_as_standby(state_dir: Path, lock: Any) -> int | None:
    """Wait, as the standby, until the serving proxy exits and its lock is ours; None then, or the
    exit status (3: another standby already waits)."""
    standby_lock = open(state_dir / STANDBY_LOCK_FILE, "a+")  # noqa: SIM115 - closed on takeover
    try:
        fcntl.flock(standby_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"proxy: a standby already waits for {state_dir}", file=sys.stderr)
        return 3
    parent = os.getppid()
    _prctl(PR_SET_NAME, STANDBY_NAME)
    _die_with_parent(signal.SIGTERM)
    if os.getppid() != parent:
        return 0  # the parent died before the death signal was set: nothing to stand by for
    pid_path = state_dir / STANDBY_PID_FILE
    tmp = pid_path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "startTime": process_start_time(os.getpid())}))
    os.replace(tmp, pid_path)
    fcntl.flock(lock, fcntl.LOCK_EX)  # blocks until the serving proxy is gone
    # Serving now: outlive the supervisor like any proxy, and let the next standby in.
    _die_with_parent(0)
    with contextlib.suppress(FileNotFoundError):
        pid_path.unlink()
    standby_lock.close()
    log.info("standby %s taking over %s", os.getpid(), state_dir)
    return None


#: How often a proxy checks that its state directory still exists.
STATE_DIR_CHECK_SECONDS = 5.0


async def _stop_when_state_dir_is_gone(state_dir: Path, stop: asyncio.Event) -> None:
    """A proxy outlives its server on purpose, but not its state directory: once that is removed
    (a temporary directory cleaned up, a state dir deleted by hand) no server can ever adopt this
    proxy again, so it stops instead of holding its ports for good."""
    while not stop.is_set():
        await asyncio.sleep(STATE_DIR_CHECK_SECONDS)
        if not state_dir.exists():
            log.warning("proxy %s: state directory %s is gone; stopping", os.getpid(), state_dir)
            stop.set()


async def _run(state_dir: Path, bind: str, limits: Limits) -> int:
    sock_path = state_dir / SOCKET_FILE
    proxy = ProxyServer(state_dir, bind, limits)
    await proxy.start()
    with contextlib.suppress(FileNotFoundError):
        sock_path.unlink()  # left by a proxy that died; we hold the lock, so it is not live
    control = await serve_control(proxy, str(sock_path))
    pid_path = state_dir / PID_FILE
    tmp = pid_path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "startTime": process_start_time(os.getpid())}))
    os.replace(tmp, pid_path)
    log.info("proxy %s serving, control socket %s", os.getpid(), sock_path)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    orphan_check = asyncio.create_task(_stop_when_state_dir_is_gone(state_dir, stop))
    await stop.wait()
    orphan_check.cancel()
    log.info("proxy %s stopping", os.getpid())
    control.close()
    await proxy.close()
    with contextlib.suppress(FileNotFoundError):
        pid_path.unlink()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m pyrollouts.runtimes.local.proxy")
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--bind", default="127.0.0.1", help="address for services without their own")
    parser.add_argument(
        "--standby", action="store_true", help="wait to take over when the serving proxy exits"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s proxy %(levelname)s %(message)s")
    try:
        limits = Limits.from_env(os.environ)
    except LimitsError as exc:
        print(f"proxy: {exc}", file=sys.stderr)
        return 2
    state_dir: Path = args.state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    sock_path = state_dir / SOCKET_FILE
    if len(os.fsencode(sock_path)) > MAX_SOCKET_PATH:
        print(
            f"proxy: the control socket path {sock_path} is longer than {MAX_SOCKET_PATH} bytes, "
            "the limit for unix sockets; use a shorter --state-dir",
            file=sys.stderr,
        )
        return 2
    try:
        import uvloop  # before waiting as a standby: a takeover starts with everything loaded
    except ImportError:  # uvloop is optional off Linux/macOS; asyncio's loop also works
        uvloop = None  # type: ignore[assignment]
    lock = open(state_dir / LOCK_FILE, "a+")  # noqa: SIM115 - held for the process's lifetime
    if args.standby:
        code = _wait_as_standby(state_dir, lock)
        if code is not None:
            return code
    else:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"proxy: another proxy already serves {state_dir} (it holds {lock.name})", file=sys.stderr)
            return 3
    _prctl(PR_SET_NAME, SERVING_NAME)
    if uvloop is None:
        return asyncio.run(_run(state_dir, args.bind, limits))
    return uvloop.run(_run(state_dir, args.bind, limits))


if __name__ == "__main__":
    sys.exit(main())
