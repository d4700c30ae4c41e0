"""``python -m pyrollouts.runtimes.local.proxy --state-dir DIR [--bind 127.0.0.1]``: the proxy process.

It takes an exclusive lock on <state-dir>/proxy.lock (one proxy per state directory), serves the
persisted table at once, opens the control socket, then writes proxy.pid ({"pid", "startTime"}).
SIGTERM/SIGINT stop it (listeners close, open connections get a moment to finish).
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

from .control import serve_control
from .limits import Limits, LimitsError
from .server import LOCK_FILE, PID_FILE, SOCKET_FILE, ProxyServer, process_start_time

log = logging.getLogger("pyrollouts.proxy")

# sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH = 107


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
    await stop.wait()
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
    lock = open(state_dir / LOCK_FILE, "a+")  # noqa: SIM115 - held for the process's lifetime
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"proxy: another proxy already serves {state_dir} (it holds {lock.name})", file=sys.stderr)
        return 3
    try:
        import uvloop
    except ImportError:  # uvloop is optional off Linux/macOS; asyncio's loop also works
        return asyncio.run(_run(state_dir, args.bind, limits))
    return uvloop.run(_run(state_dir, args.bind, limits))


if __name__ == "__main__":
    sys.exit(main())
