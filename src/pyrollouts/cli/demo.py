"""`rollouts demo`: the seed's blue-green story, told by the tool itself on the local runtime.

It starts a real server (``rollouts server``) in a temporary state directory and, at each step,
prints the command a user would type, runs exactly that command (a ``rollouts`` subprocess), shows
the tree, and shows what real HTTP GETs on the production (8088) and preview (8089) ports answer:
V2/V2 after the first apply, V2/V3 while paused after WELCOME=V3, V3/V3 after promote, then the old
revision scaled down after the default 30 s delay.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from .client import DEFAULT_SERVER, CliError, HttpBackend, ServerUnreachable
from .tree import parse_time

NAMESPACE = "my-app"
ROLLOUT = "super-hello"
PROD_PORT, PREVIEW_PORT, SERVER_PORT = 8088, 8089, 7390
STEP_TIMEOUT = "90s"


def manifest_text() -> str:
    """The seed's corrected manifest: the repository's examples/super-hello.yaml when run from a
    checkout, else the copy shipped in the package (identical; a test keeps them so)."""
    return (Path(__file__).with_name("super-hello.yaml")).read_text(encoding="utf-8")


def repo_example() -> Path | None:
    """examples/super-hello.yaml of the checkout this package runs from, if any."""
    p = Path(__file__).resolve().parents[3] / "examples" / "super-hello.yaml"
    return p if p.is_file() else None


def shift_ports(text: str, offset: int) -> str:
    """The manifest with its two Service ports moved by ``offset``."""
    if not offset:
        return text
    for port in (PROD_PORT, PREVIEW_PORT):
        text = re.sub(rf"(\bport:\s*){port}\b", rf"\g<1>{port + offset}", text)
    return text


def port_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port and we may bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def display(args: list[str]) -> str:
    """A command line as a user would type it (KEY="VALUE WITH SPACES" kept readable)."""
    parts = []
    for a in args:
        key, sep, value = a.partition("=")
        if sep and " " in value and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) and '"' not in value:
            parts.append(f'{key}="{value}"')
        else:
            parts.append(shlex.quote(a))
    return " ".join(parts)


def http_get(port: int, timeout: float = 3.0) -> str:
    """GET http://127.0.0.1:port/ -> 'STATUS BODY' (or the error)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=timeout) as resp:
            return f"{resp.status} {resp.read(200).decode(errors='replace').strip()}"
    except urllib.error.HTTPError as exc:
        return f"{exc.code} {exc.read(200).decode(errors='replace').strip()}"
    except OSError as exc:
        return f"failed: {getattr(exc, 'reason', exc)}"


class Demo:
    """One run of the story."""

    def __init__(self, port_offset: int, keep: bool, pause_file: Path | None) -> None:
        self.offset = port_offset
        self.keep = keep
        self.pause_file = pause_file
        self.prod = PROD_PORT + port_offset
        self.preview = PREVIEW_PORT + port_offset
        self.server_port = SERVER_PORT + port_offset
        self.url = f"http://127.0.0.1:{self.server_port}"
        self.console = Console(highlight=False, soft_wrap=True)
        self.workdir = Path(tempfile.mkdtemp(prefix="pyrollouts-demo-"))
        self.state_dir = self.workdir / "state"
        self.server: subprocess.Popen[bytes] | None = None
        self.backend = HttpBackend(self.url)

    # -- pieces ----------------------------------------------------------------------------
    def check_ports(self) -> None:
        for port, what in (
            (self.prod, "production Service"),
            (self.preview, "preview Service"),
            (self.server_port, "demo server"),
        ):
            if not port_free(port):
                raise CliError(
                    f"port {port} (the demo's {what}) is already in use on 127.0.0.1",
                    [f"free it, or shift the demo's ports: rollouts demo --port-offset {self.offset + 10}"],
                )

    def start_server(self) -> None:
        args = ["server", "--state-dir", str(self.state_dir), "--listen", f"127.0.0.1:{self.server_port}"]
        self.say("Start a local server (store, controller, proxy) in a temporary state directory:")
        self.show_command(args)
        log = (self.workdir / "server.log").open("wb")
        self.server = subprocess.Popen(
            [sys.executable, "-m", "pyrollouts.cli.main", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Its own session: with --keep it outlives the demo, and Ctrl-C here does not reach it.
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.backend.version()
                break
            except ServerUnreachable:
                if self.server.poll() is not None or time.monotonic() > deadline:
                    tail = (self.workdir / "server.log").read_text(errors="replace")[-2000:]
                    raise CliError("the demo server did not start", tail.splitlines()[-15:]) from None
                time.sleep(0.2)
        self.console.print(f"  server up at {self.url} (pid {self.server.pid})\n")

    def say(self, text: str) -> None:
        self.console.print(f"[bold]{text}[/bold]")

    def show_command(self, args: list[str]) -> None:
        shown = args if self.url == DEFAULT_SERVER or args[0] == "server" else ["--server", self.url, *args]
        self.console.print(f"[cyan]$ rollouts {display(shown)}[/cyan]", markup=True, highlight=False)

    def rollouts(self, *args: str, check: bool = True) -> int:
        """Print the command, run it as a user would, return its exit code."""
        argv = list(args)
        self.show_command(argv)
        sys.stdout.flush()
        env = dict(os.environ, ROLLOUTS_SERVER=self.url)
        env.pop("ROLLOUTS_TOKEN", None)
        env.pop("ROLLOUTS_TOKEN_FILE", None)
        rc = subprocess.call([sys.executable, "-m", "pyrollouts.cli.main", *argv], env=env)
        if check and rc != 0:
            raise CliError(f"`rollouts {display(argv)}` exited with {rc}")
        print()
        return rc

    def gets(self, expect_prod: str, expect_preview: str) -> None:
        """GET both Services until they answer what the story expects (bounded), then print."""
        deadline = time.monotonic() + 15
        while True:
            prod, preview = http_get(self.prod), http_get(self.preview)
            ok = prod.endswith(expect_prod) and preview.endswith(expect_preview)
            if ok or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.console.print(f"GET http://127.0.0.1:{self.prod}/  (production, super-hello-prod)  -> {prod}")
        self.console.print(
            f"GET http://127.0.0.1:{self.preview}/  (preview, super-hello-preview)  -> {preview}"
        )
        print()
        if not ok:
            raise CliError(f"expected production={expect_prod!r} and preview={expect_preview!r}")

    def wait_at_pause(self) -> None:
        if self.pause_file is None:
            return
        self.console.print(f"(waiting for {self.pause_file} to exist before promoting)")
        sys.stdout.flush()
        deadline = time.monotonic() + 120
        while not self.pause_file.exists():
            if time.monotonic() > deadline:
                raise CliError(f"{self.pause_file} did not appear within 120 s")
            time.sleep(0.1)

    def wait_scale_down(self) -> None:
        """A progress bar over the old revision's scale-down delay, until it is ScaledDown."""
        info = self.backend.info(NAMESPACE, ROLLOUT)
        old = [rs for rev in info["revisions"][1:] for rs in rev["replicaSets"]]
        deadlines = [parse_time(rs.get("scaleDownDeadline")) for rs in old if rs.get("scaleDownDeadline")]
        now = parse_time(info.get("now")) or datetime.now().astimezone()
        left = max(((d - now).total_seconds() for d in deadlines if d), default=0.0)
        total = max(left, 1.0)
        self.say(
            f"The old revision keeps running for the scale-down delay ({round(left)}s left), "
            "so a rollback would be instant:"
        )
        start = time.monotonic()
        limit = start + left + 60
        with Progress(
            TextColumn("  scale-down delay"),
            BarColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        ) as progress:
            task = progress.add_task("delay", total=total)
            while True:
                progress.update(task, completed=min(total, time.monotonic() - start))
                info = self.backend.info(NAMESPACE, ROLLOUT)
                olds = [rs for rev in info["revisions"][1:] for rs in rev["replicaSets"]]
                if olds and all(rs["status"] == "ScaledDown" for rs in olds):
                    progress.update(task, completed=total)
                    break
                if time.monotonic() > limit:
                    raise CliError("the old revision was not scaled down in time")
                time.sleep(0.5)
        print()

    def keep_hint(self) -> list[str]:
        """What to type to look at a demo left running (--keep)."""
        return [
            f"  rollouts --server {self.url} get rollout {ROLLOUT} -n {NAMESPACE} -w",
            f"  curl http://127.0.0.1:{self.prod}/   curl http://127.0.0.1:{self.preview}/",
        ]

    def cleanup(self) -> None:
        if self.keep:
            hint = "\n".join(self.keep_hint())
            self.console.print(
                f"\nThe demo keeps running (state in {self.state_dir}).\n{hint}\n"
                f"Stop it, with its pods and proxy:\n"
                f"  rollouts --server {self.url} shutdown --all && rm -rf {self.workdir}"
            )
            return
        if self.server is not None and self.server.poll() is None:
            with contextlib.suppress(CliError):
                self.backend.shutdown(True)
            try:
                self.server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.server.terminate()
                try:
                    self.server.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.server.kill()
                    self.server.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- the story -------------------------------------------------------------------------
    def run(self) -> None:
        self.check_ports()
        text = shift_ports(manifest_text(), self.offset)
        example = repo_example()
        if self.offset == 0 and example is not None and example.read_text(encoding="utf-8") == text:
            manifest = (
                str(example.relative_to(Path.cwd())) if example.is_relative_to(Path.cwd()) else str(example)
            )
        else:
            path = self.workdir / "super-hello.yaml"
            path.write_text(text, encoding="utf-8")
            manifest = str(path)
        self.start_server()
        ns = ["-n", NAMESPACE]

        self.say(
            "1. Apply the seed's manifest: a Rollout (3 replicas, WELCOME=VERSION V2) and its two Services."
        )
        self.rollouts("apply", "-f", manifest)
        self.rollouts("status", ROLLOUT, *ns, "--timeout", STEP_TIMEOUT)
        self.rollouts("get", "rollout", ROLLOUT, *ns)
        self.gets("VERSION V2", "VERSION V2")

        self.say("2. A new version: WELCOME=VERSION V3. It starts beside V2 and pauses before the switch.")
        self.rollouts("set", "env", ROLLOUT, ROLLOUT, "WELCOME=VERSION V3", *ns)
        self.rollouts("status", ROLLOUT, *ns, "--until", "paused", "--timeout", STEP_TIMEOUT)
        self.rollouts("get", "rollout", ROLLOUT, *ns)
        self.gets("VERSION V2", "VERSION V3")
        self.wait_at_pause()

        self.say("3. Promote: production switches to V3 at once.")
        self.rollouts("promote", ROLLOUT, *ns)
        self.rollouts("status", ROLLOUT, *ns, "--timeout", STEP_TIMEOUT)
        self.rollouts("get", "rollout", ROLLOUT, *ns)
        self.gets("VERSION V3", "VERSION V3")

        self.say("4. The old revision is scaled down after the scale-down delay (30 s by default).")
        self.wait_scale_down()
        self.rollouts("get", "rollout", ROLLOUT, *ns)

        if not self.keep:
            self.say("Clean up.")
            self.rollouts("delete", "rollout", ROLLOUT, *ns)
        self.console.print("[green]Demo complete.[/green]")
        self.console.print("Next: the same story with automated analysis: make demo-analysis")
        self.console.print("      the canary strategy, step by step: make demo DEMO=canary")


def demo(
    keep: Annotated[bool, typer.Option("--keep", help="Leave the server, pods and proxy running.")] = False,
    port_offset: Annotated[
        int, typer.Option("--port-offset", min=0, max=20000, help="Shift the ports 8088, 8089 and 7390 by N.")
    ] = 0,
    pause_file: Annotated[
        Path | None, typer.Option("--pause-file", hidden=True, help="Wait for this file before promoting.")
    ] = None,
    analysis: Annotated[
        bool,
        typer.Option(
            "--analysis",
            help="The story with automated analysis: a bad version aborted and a good one promoted by "
            "their measured error rate (make demo-analysis).",
        ),
    ] = False,
    canary: Annotated[
        bool,
        typer.Option(
            "--canary",
            help="The canary story: a version promoted step by step with the measured share of traffic "
            "at each step, and a bad one aborted by analysis (make demo DEMO=canary).",
        ),
    ] = False,
) -> None:
    """Tell the seed's blue-green story with a real local server (about a minute)."""
    if analysis and canary:
        raise typer.BadParameter("--analysis and --canary are two stories: give one")
    if canary:
        from .demo_canary import run_canary_demo

        run_canary_demo(port_offset, keep)
        return
    if analysis:
        from .demo_analysis import run_analysis_demo

        run_analysis_demo(port_offset, keep)
        return
    d = Demo(port_offset, keep, pause_file)
    try:
        d.run()
    except BaseException:
        d.keep = False  # a failed demo leaves nothing behind
        d.cleanup()
        raise
    d.cleanup()
