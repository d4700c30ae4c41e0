"""`rollouts demo` end to end: the seed's story with a real server, real processes and real HTTP.

At the paused step the demo waits for a signal file; meanwhile this test queries the production
and preview ports itself and checks that what the demo printed is what HTTP answers."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

from cli_support import EXAMPLE

from harness.serverharness import http_body, pids_using
from pyrollouts.cli import demo as demo_mod


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_offset() -> int:
    """A port offset at which the demo's three ports are free."""
    for offset in range(1000 + os.getpid() % 500 * 7, 20000, 97):
        ports = (demo_mod.PROD_PORT + offset, demo_mod.PREVIEW_PORT + offset, demo_mod.SERVER_PORT + offset)
        if all(_free(p) for p in ports):
            return offset
    raise AssertionError("no free port offset")


def test_shipped_manifest_is_the_example() -> None:
    assert demo_mod.manifest_text() == EXAMPLE.read_text(encoding="utf-8")


def test_port_offset_moves_the_service_ports() -> None:
    text = demo_mod.shift_ports(demo_mod.manifest_text(), 5)
    assert "port: 8093" in text and "port: 8094" in text and "port: 8088" not in text
    assert "port: 8080" in text  # the container/probe port is not a Service port


def test_taken_port_is_named_with_the_way_out() -> None:
    offset = free_offset()
    with socket.socket() as s:
        s.bind(("127.0.0.1", demo_mod.PREVIEW_PORT + offset))
        s.listen()
        proc = subprocess.run(
            [sys.executable, "-m", "pyrollouts.cli.main", "demo", "--port-offset", str(offset)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 1
    port = demo_mod.PREVIEW_PORT + offset
    assert f"port {port} (the demo's preview Service) is already in use" in proc.stderr
    assert "--port-offset" in proc.stderr


def test_demo_tells_the_story(tmp_path: Path) -> None:
    offset = free_offset()
    prod, preview = demo_mod.PROD_PORT + offset, demo_mod.PREVIEW_PORT + offset
    go = tmp_path / "go"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pyrollouts.cli.main",
            "demo",
            "--port-offset",
            str(offset),
            "--pause-file",
            str(go),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, COLUMNS="200"),
    )
    lines: list[str] = []
    at_pause = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if "(waiting for" in line:
                at_pause.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert at_pause.wait(120), "\n".join(lines)
        # The demo is paused with V3 on preview: ask the ports ourselves.
        seen_prod, seen_preview = http_body(prod), http_body(preview)
        assert (seen_prod, seen_preview) == ("VERSION V2", "VERSION V3"), "\n".join(lines)
        printed = [ln for ln in lines if ln.startswith("GET ")]
        assert printed[-2].endswith(f"-> 200 {seen_prod}") and f":{prod}/" in printed[-2]
        assert printed[-1].endswith(f"-> 200 {seen_preview}") and f":{preview}/" in printed[-1]
        go.touch()
        assert proc.wait(timeout=150) == 0, "\n".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(10)
    out = "\n".join(lines)
    gets = [re.sub(r"\s+", " ", ln) for ln in lines if ln.startswith("GET ")]
    answers = [g.rsplit("-> ", 1)[1] for g in gets]
    assert (
        answers == ["200 VERSION V2"] * 2 + ["200 VERSION V2", "200 VERSION V3"] + ["200 VERSION V3"] * 2
    ), out
    # The commands a user would type, printed before they ran.
    for cmd in (
        "rollouts --server http://127.0.0.1:",
        " apply -f ",
        ' set env super-hello super-hello WELCOME="VERSION V3" -n my-app',
        " promote super-hello -n my-app",
        "rollout 'super-hello' promoted",
        " delete rollout super-hello -n my-app",
    ):
        assert cmd in out, cmd
    assert "॥ Paused" in out and "delay:" in out and "• ScaledDown" in out and "Demo complete." in out
    # Everything stopped and removed: the server (and with it the proxy and pods) is gone.
    m = re.search(r"server up at \S+ \(pid (\d+)\)", out)
    assert m
    assert not Path(f"/proc/{m.group(1)}").exists()
    state = re.search(r"--state-dir (\S+)", out)
    assert state and not Path(state.group(1)).exists()
    assert not pids_using(state.group(1))


def test_analysis_demo_aborts_the_bad_version_and_promotes_the_good_one() -> None:
    """`rollouts demo --analysis` (make demo-analysis): the broken V3's pre-promotion run measures
    about half of its answers as 500 and aborts it; the good V3's two runs measure 0% and it becomes
    stable; what the demo prints are the rates the runs measured."""
    offset = free_offset()
    proc = subprocess.run(
        [sys.executable, "-m", "pyrollouts.cli.main", "demo", "--analysis", "--port-offset", str(offset)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-2000:]
    broken = re.search(r"PrePromotion run super-hello-\w+-2-pre: Failed; measured error rate: ([\d.]+)%", out)
    assert broken is not None, out[-3000:]
    assert 20.0 <= float(broken.group(1)) <= 80.0, broken.group(0)  # ERROR_RATE=0.5, over a window
    assert re.search(
        r"PrePromotion run super-hello-\w+-3-pre: Successful; measured error rate: 0\.0%", out
    ), out
    assert re.search(
        r"PostPromotion run super-hello-\w+-3-post: Successful; measured error rate: 0\.0%", out
    ), out
    assert (
        "-> 200 VERSION V2" in out.split("3. A good V3")[0].split("2. A broken V3")[1]
    )  # production kept V2
    assert "Analysis demo complete" in out
    state = re.search(r"--state-dir (\S+)", out)
    assert state is not None
    assert not pids_using(state.group(1)), "the demo left a process of its state dir running"
