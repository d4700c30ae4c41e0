"""Logs and files of the local runtime, with a real `rollouts server` and real app processes:

- ``--tail`` of a big log reads only its end, and a whole log is streamed in chunks: the server's
  memory (VmHWM from /proc) does not grow with the file;
- logs rotate by size while the app keeps writing to the same open file (copy-truncate: the app's
  fd is O_APPEND), keeping a bounded number of files; ``--previous`` still shows the last run;
- the logs of deleted pods go with them (scale-down, delete, and pods gone while the server was
  down);
- the state dir is 0700 and everything the server creates in it is private (0600 / 0700).
"""

from __future__ import annotations

import os
import signal
import stat
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import E2EServer, container_doc, finish, new_state_dir, rollout_doc, seed_docs, stored

from harness.serverharness import free_port

MB = 1024 * 1024


@pytest.fixture
def state_dir() -> Iterator[Path]:
    d = new_state_dir()
    yield d
    # finish() is called by each test with its server; this only cleans up after a failure.
    finish(d, None)


def vm_hwm(pid: int) -> int:
    """The process's peak resident memory so far, in bytes (/proc/<pid>/status VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


def pods_of(state_dir: Path, ns: str) -> list[dict[str, Any]]:
    return [p for p in stored(state_dir, "Pod", ns) if not p["metadata"].get("deletionTimestamp")]


def running_pod(server: E2EServer, state_dir: Path, ns: str) -> dict[str, Any]:
    def one() -> Any:
        for p in pods_of(state_dir, ns):
            sts = (p.get("status") or {}).get("containerStatuses") or []
            if sts and "running" in sts[0].get("state", {}):
                return p
        return None

    return dict(server.wait_for(f"a running pod in {ns}", one, timeout=60))


def get_bytes(server: E2EServer, path: str, timeout: float = 60) -> bytes:
    req = urllib.request.Request(server.url + path)
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return bytes(resp.read())


def writer_docs(ns: str, script: str) -> list[dict[str, Any]]:
    """The example Rollout (1 replica) whose container runs ``script`` with this Python instead of
    the demo app (no readiness probe: ready when it runs)."""
    docs = seed_docs(ns, free_port(), free_port(), replicas=1)
    c = rollout_doc(docs)["spec"]["template"]["spec"]["containers"][0]
    c.pop("readinessProbe", None)
    c["command"] = [sys.executable, "-u", "-c", textwrap.dedent(script)]
    assert container_doc(docs)["command"][0] == sys.executable
    return docs


def test_tail_of_a_big_log_reads_only_its_end(state_dir: Path, tmp_path: Path) -> None:
    # Rotation must not touch the big file while the test reads it.
    server = E2EServer(state_dir, env={"PYROLLOUTS_LOG_MAX_SIZE": "4G"})
    try:
        ns = "logtail"
        r = server.apply(seed_docs(ns, free_port(), free_port(), replicas=1), tmp_path / "m.yaml")
        assert r.code == 0, r
        pod = running_pod(server, state_dir, ns)["metadata"]["name"]
        log = state_dir / "logs" / ns / pod / "super-hello.log"
        server.wait_for("the app's log", log.exists)
        # A 100 MB log: a sparse hole (no disk) then 20,000 real lines; put in place by rename
        # (the app keeps its own file open and writes there).
        big = log.with_name("big.tmp")
        with big.open("wb") as f:
            f.truncate(100 * MB)
            f.seek(0, os.SEEK_END)
            f.write(b"".join(b"line %06d of the big log\n" % i for i in range(20000)))
        size = big.stat().st_size
        big.replace(log)

        pid = server.proc.pid
        before = vm_hwm(pid)
        t0 = time.monotonic()
        body = get_bytes(server, f"/api/pods/{ns}/{pod}/logs?tail=5")
        took = time.monotonic() - t0
        grew = vm_hwm(pid) - before
        print(f"tail=5 of a {size / MB:.0f} MB log: {took:.2f} s, server VmHWM +{grew / MB:.1f} MB")
        assert body == b"".join(b"line %06d of the big log\n" % i for i in range(19995, 20000))
        assert grew < 50 * MB, f"tail=5 of a {size // MB} MB log grew the server by {grew // MB} MB"

        # The whole log: streamed in chunks, never held whole.
        before = vm_hwm(pid)
        got = 0
        with urllib.request.urlopen(server.url + f"/api/pods/{ns}/{pod}/logs", timeout=120) as resp:
            while chunk := resp.read(1 << 20):
                got += len(chunk)
        grew = vm_hwm(pid) - before
        print(f"the whole {size / MB:.0f} MB log: server VmHWM +{grew / MB:.1f} MB")
        assert got == size
        assert grew < 50 * MB, f"reading a {size // MB} MB log grew the server by {grew // MB} MB"

        # tail + follow: the end first, then what the app writes; still bounded.
        before = vm_hwm(pid)
        with urllib.request.urlopen(
            server.url + f"/api/pods/{ns}/{pod}/logs?tail=2&follow=1", timeout=60
        ) as resp:
            first = resp.read1(65536)
        grew = vm_hwm(pid) - before
        assert first == b"line 019998 of the big log\nline 019999 of the big log\n"
        assert grew < 50 * MB, f"follow with tail=2 grew the server by {grew // MB} MB"
    finally:
        finish(state_dir, server)


WRITER = """
    import sys, time
    n = 0
    for burst in range(80):  # 80 x 100 KB = 8 MB, about 2 MB/s
        sys.stdout.write("".join("%08d %s\\n" % (n + i, "x" * 90) for i in range(1000)))
        sys.stdout.flush()
        n += 1000
        time.sleep(0.05)
    print("done", flush=True)
    time.sleep(3600)
"""


def line_numbers(data: bytes) -> list[int]:
    """The numbers of the writer's whole lines (a line cut by a rotation's instant is skipped)."""
    return [int(line[:8]) for line in data.splitlines() if len(line) == 99 and line[:8].isdigit()]


def test_logs_rotate_by_size_while_the_app_keeps_writing(state_dir: Path, tmp_path: Path) -> None:
    max_size = 256 * 1024
    server = E2EServer(state_dir, env={"PYROLLOUTS_LOG_MAX_SIZE": "256K", "PYROLLOUTS_LOG_MAX_FILES": "3"})
    try:
        ns = "logrotate"
        assert server.apply(writer_docs(ns, WRITER), tmp_path / "m.yaml").code == 0
        pod = running_pod(server, state_dir, ns)
        name = pod["metadata"]["name"]
        d = state_dir / "logs" / ns / name
        log = d / "super-hello.log"

        def tail_of(path: Path) -> bytes:
            with path.open("rb") as f:
                f.seek(max(0, path.stat().st_size - 4096))
                return f.read()

        log1 = d / "super-hello.log.1"
        server.wait_for(
            "the writer's last line",
            lambda: any(p.exists() and tail_of(p).endswith(b"done\n") for p in (log, log1)),
            90,
        )
        # The next check rotates what the last burst left over the size.
        server.wait_for(
            f"{log.name} back under {max_size} bytes (files: {sorted(os.listdir(d))})",
            lambda: log.stat().st_size <= max_size,
            timeout=30,
        )
        files = sorted(os.listdir(d))
        assert files == ["super-hello.log", "super-hello.log.1", "super-hello.log.2"], files
        slack = 128 * 1024  # what the app wrote while a rotation was copying
        for f in files:
            assert (d / f).stat().st_size <= max_size + slack, (f, (d / f).stat().st_size)
        # Oldest to newest, the numbers only go up, and within a file they run without a gap
        # (a rotation keeps the end of the file whole). The app's writes after each truncate
        # landed at the new start (O_APPEND), never after a hole of zeros.
        datas = [(d / f).read_bytes() for f in reversed(files)]
        assert not any(b"\0" in x for x in datas), "a hole of zeros: the app wrote past a truncate"
        seqs = [line_numbers(x) for x in datas]
        flat = [n for s in seqs for n in s]
        assert flat == sorted(flat) and len(set(flat)) == len(flat) and flat[-1] == 79999
        for s in seqs:
            assert not s or s == list(range(s[0], s[0] + len(s))), "a file lost lines inside"
        whole = b"".join(datas)
        assert whole.endswith(b"%08d %s\ndone\n" % (79999, b"x" * 90))
        # The app kept running: same process, no restart.
        now = stored(state_dir, "Pod", ns)[0]
        assert now["metadata"]["name"] == name
        st = now["status"]["containerStatuses"][0]
        assert st["restartCount"] == 0
        assert st["containerID"] == pod["status"]["containerStatuses"][0]["containerID"]
        # The API's tail reads across the files (the live one may hold less than asked).
        want = b"".join(whole.splitlines(keepends=True)[-3:])
        assert get_bytes(server, f"/api/pods/{ns}/{name}/logs?tail=3") == want
        total = sum(len(x) for x in datas)
        assert get_bytes(server, f"/api/pods/{ns}/{name}/logs") == whole, total

        # --previous: kill the app; its output stays readable as the previous run's, and the new
        # run starts a new file (rotated files of the last run go with it, not into the new one).
        pid = int(st["containerID"].rpartition("/")[2])
        os.kill(pid, signal.SIGKILL)
        server.wait_for(
            "the restart",
            lambda: (
                stored(state_dir, "Pod", ns)[0]["status"]["containerStatuses"][0]["restartCount"] == 1
                and (d / "super-hello.previous.log").exists()
            ),
            timeout=60,
        )
        prev = get_bytes(server, f"/api/pods/{ns}/{name}/logs?previous=1&tail=2")
        assert prev == b"".join(whole.splitlines(keepends=True)[-2:])
        r = server.cli("logs", name, "-n", ns, "--previous", "--tail", "1")
        assert r.code == 0 and r.out == "done\n", r
        assert (d / "super-hello.previous.log.1").exists()
    finally:
        finish(state_dir, server)


SLOW_WRITER = """
    import sys, time
    for n in range(3000):  # 3,000 x 100 bytes over about 3 s: about 100 KB/s
        sys.stdout.write("%08d %s\\n" % (n, "x" * 90))
        if n % 100 == 99:
            sys.stdout.flush()
            time.sleep(0.1)
    print("done", flush=True)
    time.sleep(3600)
"""


def test_follow_goes_on_through_rotations(state_dir: Path, tmp_path: Path) -> None:
    # Rotated every second or so; a follower that keeps up loses nothing and repeats nothing.
    server = E2EServer(state_dir, env={"PYROLLOUTS_LOG_MAX_SIZE": "64K", "PYROLLOUTS_LOG_MAX_FILES": "2"})
    try:
        ns = "logfollow"
        assert server.apply(writer_docs(ns, SLOW_WRITER), tmp_path / "m.yaml").code == 0
        name = running_pod(server, state_dir, ns)["metadata"]["name"]
        got = b""
        t0 = time.monotonic()
        with urllib.request.urlopen(server.url + f"/api/pods/{ns}/{name}/logs?follow=1", timeout=60) as resp:
            while not got.endswith(b"done\n") and time.monotonic() - t0 < 60:
                chunk = resp.read1(65536)
                if not chunk:
                    break
                got += chunk
        assert got.endswith(b"done\n"), got[-300:]
        nums = line_numbers(got)
        assert nums == list(range(nums[0], 3000)), "the follower lost or repeated lines at a rotation"
        assert nums[0] < 2500
        d = state_dir / "logs" / ns / name
        assert (d / "super-hello.log.1").exists(), sorted(os.listdir(d))  # it did rotate
    finally:
        finish(state_dir, server)


def test_logs_of_deleted_pods_are_removed(state_dir: Path, tmp_path: Path) -> None:
    # Left by pods deleted while no server ran: removed when the server starts.
    ghost = state_dir / "logs" / "gone-ns" / "ghost-7f9c" / "app.log"
    ghost.parent.mkdir(parents=True)
    ghost.write_text("old output\n")
    server = E2EServer(state_dir)
    try:
        ns = "logdel"
        docs = seed_docs(ns, free_port(), free_port(), replicas=2)
        assert server.apply(docs, tmp_path / "m.yaml").code == 0
        root = state_dir / "logs" / ns

        def two_logs() -> Any:
            names = [p["metadata"]["name"] for p in pods_of(state_dir, ns)]
            return len(names) == 2 and all((root / n / "super-hello.log").exists() for n in names) and names

        names = server.wait_for("two pods with logs", two_logs)
        rollout_doc(docs)["spec"]["replicas"] = 1
        assert server.apply(docs, tmp_path / "m.yaml").code == 0
        server.wait_for("one pod left", lambda: len(stored(state_dir, "Pod", ns)) == 1, timeout=90)
        kept = stored(state_dir, "Pod", ns)[0]["metadata"]["name"]
        gone = next(n for n in names if n != kept)
        server.wait_for(f"the log dir of {gone} removed", lambda: not (root / gone).exists(), timeout=30)
        assert (root / kept / "super-hello.log").exists()

        server.ok("DELETE", f"/api/rollouts/{ns}/super-hello")
        server.wait_for("no pods", lambda: not stored(state_dir, "Pod", ns), timeout=90)
        server.wait_for(
            "every log dir of the namespace removed",
            lambda: not root.exists() or not any(root.iterdir()),
            timeout=30,
        )
        assert not ghost.parent.exists(), "the log dir of a pod deleted while no server ran was kept"
    finally:
        finish(state_dir, server)


def test_state_dir_and_files_are_private(state_dir: Path, tmp_path: Path) -> None:
    # A state dir made by someone else's umask, with a readable file in it already.
    state_dir.mkdir(parents=True, exist_ok=True)
    state_dir.chmod(0o755)
    old = state_dir / "images.yaml"
    old.write_text("images: {}\n")
    old.chmod(0o644)
    server = E2EServer(state_dir)
    try:
        ns = "modes"
        assert (
            server.apply(seed_docs(ns, free_port(), free_port(), replicas=1), tmp_path / "m.yaml").code == 0
        )
        running_pod(server, state_dir, ns)
        server.wait_for("the pod's log", lambda: list((state_dir / "logs" / ns).glob("*/*.log")))
        loose: list[str] = []
        seen = 0
        for root, dirs, files in os.walk(state_dir):
            for n in [*dirs, *files]:
                p = Path(root) / n
                mode = p.lstat().st_mode
                seen += 1
                if stat.S_ISLNK(mode):
                    continue
                if stat.S_IMODE(mode) & 0o077:
                    loose.append(f"{p.relative_to(state_dir)} {stat.filemode(mode)}")
        top = stat.S_IMODE(state_dir.stat().st_mode)
        assert top == 0o700, oct(top)
        assert not loose, f"readable by others: {loose}"
        names = {p.name for p in state_dir.iterdir()}
        assert {"state.db", "server.log", "logs"} <= names, names
        assert seen >= 8
        assert "tightened" in server.log_text(), server.log_tail()
    finally:
        finish(state_dir, server)
