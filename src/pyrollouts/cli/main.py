"""`rollouts`: the command line, in the shape of `kubectl argo rollouts` (docs/cli.md).

A thin client: every verb is one or a few calls on a ``Backend`` (the local server's HTTP API by
default). Exit codes: 0 success, 1 an error (message on stderr; for ``status`` also Degraded or
the timeout, as Argo's plugin), 2 bad usage.
"""

from __future__ import annotations

import io
import sys
from typing import Annotated

import typer
from typer.exceptions import TyperException

from . import actions, dashboard, demo, kube_commands, misc, resources, status, view
from .client import DEFAULT_SERVER, CliError
from .common import BACKENDS, State, err

app = typer.Typer(
    name="rollouts",
    help="Progressive delivery for services: Argo Rollouts-compatible blue-green, locally or on Kubernetes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def root(
    ctx: typer.Context,
    server: Annotated[
        str, typer.Option("--server", envvar="ROLLOUTS_SERVER", help="URL of the pyrollouts server.")
    ] = DEFAULT_SERVER,
    token_file: Annotated[
        str | None,
        typer.Option(
            "--token-file",
            envvar="ROLLOUTS_TOKEN_FILE",
            help="File holding the server's bearer token (or set ROLLOUTS_TOKEN).",
        ),
    ] = None,
    backend: Annotated[
        str,
        typer.Option(
            "--backend", envvar="ROLLOUTS_BACKEND", help="local (a pyrollouts server) or kubernetes."
        ),
    ] = "local",
    kubeconfig: Annotated[
        str | None,
        typer.Option("--kubeconfig", envvar="KUBECONFIG", help="Kubernetes backend: kubeconfig file."),
    ] = None,
    context: Annotated[
        str | None, typer.Option("--context", help="Kubernetes backend: kubeconfig context.")
    ] = None,
) -> None:
    """Global options come before the verb: rollouts --server URL get rollout NAME."""
    if backend not in BACKENDS:
        raise typer.BadParameter(f"--backend {backend}: use one of {', '.join(BACKENDS)}")
    ctx.obj = State(
        server=server, token_file=token_file, backend_name=backend, kubeconfig=kubeconfig, context=context
    )


app.command()(resources.apply)
app.add_typer(resources.create_app, name="create")
app.command()(resources.lint)
app.command()(resources.delete)
app.add_typer(view.get_app, name="get")
app.add_typer(view.list_app, name="list")
app.command()(actions.promote)
app.command()(actions.abort)
app.add_typer(actions.retry_app, name="retry")
app.add_typer(actions.terminate_app, name="terminate")
app.command()(actions.undo)
app.command()(actions.pause)
app.command()(actions.resume)
app.command()(actions.restart)
app.add_typer(actions.set_app, name="set")
app.command()(status.status)
app.command()(misc.logs)
app.command()(misc.version)
app.command()(misc.completion)
app.command()(misc.server)
app.command()(misc.shutdown)
app.command()(dashboard.dashboard)


app.command()(demo.demo)
app.command("controller")(kube_commands.controller)
app.command("install-crds")(kube_commands.install_crds)


def run_captured(argv: list[str]) -> tuple[int, str, str]:
    """Run the CLI in this process on ``argv``; return its exit code and what it printed on
    stdout and stderr (for embedding it, and for tests)."""
    out_b, err_b = io.BytesIO(), io.BytesIO()
    out = io.TextIOWrapper(out_b, encoding="utf-8", write_through=True)
    err_stream = io.TextIOWrapper(err_b, encoding="utf-8", write_through=True)
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err_stream
    try:
        code = run(argv)
    finally:
        sys.stdout, sys.stderr = old
        out.flush()
        err_stream.flush()
    return code, out_b.getvalue().decode(), err_b.getvalue().decode()


def run(argv: list[str] | None = None, prog_name: str = "rollouts", backend: str | None = None) -> int:
    """Run the CLI on ``argv`` and return its exit code (what ``main`` exits with)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if backend is not None:
        args = ["--backend", backend, *args]
    # Register typer's completion classes (add_completion=False skips it): `rollouts completion`
    # prints scripts that call back with _ROLLOUTS_COMPLETE, which needs them.
    from typer.completion import completion_init  # type: ignore[attr-defined]

    completion_init()
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=args, prog_name=prog_name, standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except CliError as exc:
        console = err()
        console.print(f"error: {exc.message}", markup=False)
        for d in exc.details:
            console.print(f"  {d}", markup=False)
        return exc.exit_code
    except typer.Exit as exc:
        return int(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        return 130
    except TyperException as exc:  # usage errors and bad parameters (click's, vendored by typer)
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            err().print(f"error: {exc}", markup=False)
        return int(getattr(exc, "exit_code", 2))
    except BrokenPipeError:
        return 0


def main() -> None:
    """Entry point of `rollouts` (local runtime by default)."""
    sys.exit(run())


def kubectl_main() -> None:
    """Entry point of `kubectl-rollouts` (the kubectl plugin name): the Kubernetes backend."""
    from .kube_backend import kubectl_argv

    # kubectl hands a plugin its flags wherever the user typed them: --kubeconfig/--context move
    # to the front, and the context's namespace becomes the default for -n.
    sys.exit(run(kubectl_argv(sys.argv[1:]), prog_name="kubectl rollouts", backend="kubernetes"))


if __name__ == "__main__":
    main()
