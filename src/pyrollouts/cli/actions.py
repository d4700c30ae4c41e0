"""User actions: promote, abort, retry, undo, pause, resume, restart, set image, set env.

Each is one POST to the server, which computes Argo's patches (model.useractions) against the
rollout as stored and applies them; the CLI prints the server's one-line message."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .client import ApiError, CliError
from .common import Namespace, echo, state

retry_app = typer.Typer(help="Retry an aborted rollout.", no_args_is_help=True)
terminate_app = typer.Typer(help="Terminate an AnalysisRun.", no_args_is_help=True)
set_app = typer.Typer(help="Change a rollout's pod template: image or env.", no_args_is_help=True)


def run_action(
    ctx: typer.Context, namespace: str, name: str, verb: str, body: dict[str, Any] | None = None
) -> None:
    """POST the action, print its message; a missing rollout or a refused action is exit 1."""
    try:
        res = state(ctx).backend().action(namespace, name, verb, body)
    except ApiError as exc:
        if exc.status == 404 and "not found" in exc.message:
            raise CliError(f"rollout '{name}' not found in namespace '{namespace}'") from None
        raise
    echo(str(res.get("message") or f"rollout '{name}' {verb}"))


Name = Annotated[str, typer.Argument(help="Rollout name.")]


def promote(
    ctx: typer.Context,
    name: Name,
    namespace: Namespace = "default",
    full: Annotated[bool, typer.Option("--full", help="Skip every remaining pause and analysis.")] = False,
) -> None:
    """Promote a paused rollout: switch production traffic to the new revision."""
    run_action(ctx, namespace, name, "promote", {"full": full})


def abort(ctx: typer.Context, name: Name, namespace: Namespace = "default") -> None:
    """Abort an update: traffic goes back to the stable revision."""
    run_action(ctx, namespace, name, "abort")


@retry_app.command("rollout")
def retry_rollout(ctx: typer.Context, name: Name, namespace: Namespace = "default") -> None:
    """Retry an aborted rollout."""
    run_action(ctx, namespace, name, "retry")


retry_app.command("ro", hidden=True)(retry_rollout)


def undo(
    ctx: typer.Context,
    name: Name,
    namespace: Namespace = "default",
    to_revision: Annotated[
        int | None,
        typer.Option("--to-revision", min=0, help="Revision to go back to (default: the previous one)."),
    ] = None,
) -> None:
    """Roll back to an earlier revision's pod template."""
    run_action(ctx, namespace, name, "undo", {"toRevision": to_revision} if to_revision else {})


def pause(ctx: typer.Context, name: Name, namespace: Namespace = "default") -> None:
    """Pause a rollout (spec.paused)."""
    run_action(ctx, namespace, name, "pause")


def resume(ctx: typer.Context, name: Name, namespace: Namespace = "default") -> None:
    """Resume a paused rollout (clears spec.paused; promote also clears the blue-green pause)."""
    run_action(ctx, namespace, name, "resume")


def restart(ctx: typer.Context, name: Name, namespace: Namespace = "default") -> None:
    """Restart every pod of the rollout (spec.restartAt = now)."""
    run_action(ctx, namespace, name, "restart")


@set_app.command("image")
def set_image(
    ctx: typer.Context,
    name: Name,
    assignment: Annotated[str, typer.Argument(metavar="CONTAINER=IMAGE", help="'*' sets every container.")],
    namespace: Namespace = "default",
) -> None:
    """Set a container's image: a new revision."""
    container, sep, image = assignment.partition("=")
    if not sep or not container or not image:
        raise typer.BadParameter(
            f"{assignment!r}: expected CONTAINER=IMAGE, e.g. super-hello=ghcr.io/gbaeke/super:1.0.3"
        )
    run_action(ctx, namespace, name, "set-image", {"container": container, "image": image})


@set_app.command("env")
def set_env(
    ctx: typer.Context,
    name: Name,
    container: Annotated[str, typer.Argument(help="Container name ('*' for every container).")],
    assignment: Annotated[str, typer.Argument(metavar="KEY=VALUE")],
    namespace: Namespace = "default",
) -> None:
    """Set an environment variable of a container: a new revision."""
    key, sep, value = assignment.partition("=")
    if not sep or not key:
        raise typer.BadParameter(f"{assignment!r}: expected KEY=VALUE, e.g. WELCOME='VERSION V3'")
    run_action(ctx, namespace, name, "set-env", {"container": container, "name": key, "value": value})


@terminate_app.command("analysisrun")
def terminate_analysis_run(
    ctx: typer.Context,
    names: Annotated[list[str], typer.Argument(help="AnalysisRun name(s).")],
    namespace: Namespace = "default",
) -> None:
    """Terminate AnalysisRuns (spec.terminate): they take no more measurements and end."""
    backend = state(ctx).backend()
    for name in names:
        try:
            res = backend.run_action(namespace, name, "terminate")
        except ApiError as exc:
            if exc.status == 404:
                raise CliError(f"analysisrun '{name}' not found in namespace '{namespace}'") from None
            raise
        echo(str(res.get("message") or f"analysisRun '{name}' terminated"))


terminate_app.command("ar", hidden=True)(terminate_analysis_run)
terminate_app.command("analysisruns", hidden=True)(terminate_analysis_run)
