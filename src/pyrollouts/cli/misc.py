"""Small verbs: version, completion, logs, server."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from .. import __version__
from .client import ApiError, CliError, LogRequest, ServerUnreachable
from .common import Namespace, echo, state


def version(ctx: typer.Context) -> None:
    """The CLI's version and, when one answers, the server's."""
    echo(f"rollouts: v{__version__}")
    st = state(ctx)
    if st.backend_name != "local":
        return
    try:
        v = st.backend().version()
        echo(f"server: v{v.get('version')} ({v.get('runtime')} runtime) at {st.server}")
    except ServerUnreachable:
        echo(f"server: none answering at {st.server}")
    except ApiError as exc:
        echo(f"server: {exc.message}")


class Shell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def completion(ctx: typer.Context, shell: Annotated[Shell, typer.Argument(help="bash, zsh or fish")]) -> None:
    """Print a shell completion script, e.g. `source <(rollouts completion bash)`."""
    from typer.completion import get_completion_script  # type: ignore[attr-defined]

    prog = ctx.find_root().info_name or "rollouts"
    var = "_{}_COMPLETE".format(prog.replace("-", "_").replace(" ", "_").upper())
    echo(get_completion_script(prog_name=prog, complete_var=var, shell=shell.value))


def logs(
    ctx: typer.Context,
    pod: Annotated[str, typer.Argument(help="Pod name (see `rollouts get rollout NAME`).")],
    namespace: Namespace = "default",
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new output.")] = False,
    container: Annotated[str | None, typer.Option("--container", "-c")] = None,
    tail: Annotated[int | None, typer.Option("--tail", min=0, help="Only the last N lines.")] = None,
    previous: Annotated[
        bool, typer.Option("--previous", "-p", help="The output of the run before the last restart.")
    ] = False,
) -> None:
    """A replica's output (stdout and stderr of its process)."""
    try:
        chunks = (
            state(ctx)
            .backend()
            .logs(
                namespace, pod, LogRequest(container=container, follow=follow, tail=tail, previous=previous)
            )
        )
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
    except KeyboardInterrupt:
        pass


def server(
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", help="Where the store, logs and pids live.")
    ] = None,
    listen: Annotated[str, typer.Option("--listen", help="HOST:PORT of the API.")] = "127.0.0.1:7390",
    token_file: Annotated[
        Path | None, typer.Option("--token-file", help="Require this bearer token (needed beyond loopback).")
    ] = None,
    image_map: Annotated[
        Path | None, typer.Option("--image-map", help="YAML mapping images to commands.")
    ] = None,
    test_clock: Annotated[bool, typer.Option("--test-clock", help="Allow POST /api/debug/clock.")] = False,
    proxy_bind: Annotated[
        str, typer.Option("--proxy-bind", help="Address the Service ports listen on.")
    ] = "127.0.0.1",
    log_max_size: Annotated[
        str,
        typer.Option(
            "--log-max-size",
            envvar="PYROLLOUTS_LOG_MAX_SIZE",
            help="Rotate a container's log file when it is over this size (e.g. 10M, 256K, 1G).",
        ),
    ] = "10M",
    log_max_files: Annotated[
        int,
        typer.Option(
            "--log-max-files",
            envvar="PYROLLOUTS_LOG_MAX_FILES",
            min=1,
            help="Log files kept per container run, the live one included.",
        ),
    ] = 5,
    max_replicas: Annotated[
        int,
        typer.Option(
            "--max-replicas",
            min=1,
            envvar="PYROLLOUTS_MAX_REPLICAS",
            help="The most replicas (processes) one Rollout count may ask for; more is refused at apply.",
        ),
    ] = 100,
) -> None:
    """Run the local runtime: store, controller, pods as processes, the proxy and the API."""
    from ..daemons.local_server import LocalServer, ServerError, serve
    from ..runtimes.local.logfiles import LogPolicy, parse_size

    try:
        log_policy = LogPolicy(max_size=parse_size(log_max_size, "--log-max-size"), max_files=log_max_files)
    except ValueError as exc:
        raise CliError(str(exc)) from None

    def build(state: Path) -> LocalServer:
        return LocalServer(
            state,
            listen,
            token_file=token_file,
            image_map=image_map,
            test_clock=test_clock,
            proxy_bind=proxy_bind,
            log_policy=log_policy,
            runtime_options={"max_replicas": max_replicas},
        )

    try:
        serve(state_dir, build)
    except ServerError as exc:
        raise CliError(str(exc)) from None


def shutdown(
    ctx: typer.Context,
    everything: Annotated[bool, typer.Option("--all", help="Also stop the pods and the proxy.")] = False,
) -> None:
    """Stop the local server (its pods and proxy keep serving unless --all)."""
    backend = state(ctx).backend()
    shut = getattr(backend, "shutdown", None)
    if shut is None:
        raise CliError("this backend has no server to stop")
    shut(everything)
    echo("server stopping" + (", with its pods and proxy" if everything else "; pods and proxy keep running"))
