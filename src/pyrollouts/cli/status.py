"""`rollouts status`: wait for a rollout to become Healthy (or Paused), like Argo's status verb."""

from __future__ import annotations

import sys
import threading
import time
from enum import StrEnum
from typing import Annotated, Any

import typer

from .client import CliError
from .common import Namespace, echo, parse_duration
from .view import fetch_info, stop_watching, watch_views

EXIT_REACHED = 0
EXIT_DEGRADED = 1
EXIT_TIMEOUT = 1  # as Argo's plugin: every failure of `status` is exit 1

#: Argo's wording (its plugin prints them as "Error: ..." on stderr).
TIMEOUT_MESSAGE = "Rollout status watch exceeded timeout"
DEGRADED_MESSAGE = "The rollout is in a degraded state with message: {message}"


class Until(StrEnum):
    healthy = "healthy"
    paused = "paused"


def _line(view: dict[str, Any]) -> str:
    status, message = view.get("status") or "", view.get("message") or ""
    return f"{status} - {message}" if message else status


def _error(text: str) -> None:
    sys.stderr.write(f"Error: {text}\n")
    sys.stderr.flush()


def _verdict(view: dict[str, Any], until: Until) -> int | None:
    status = view.get("status")
    if status == "Healthy" and until is Until.healthy:
        return EXIT_REACHED
    if status == "Paused" and until is Until.paused:
        return EXIT_REACHED
    if status == "Degraded":
        return EXIT_DEGRADED
    return None


def status(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Rollout name.")],
    namespace: Namespace = "default",
    watch: Annotated[
        bool,
        typer.Option(
            "--watch/--no-watch", "-w", help="Wait until the rollout is done (default) or print once."
        ),
    ] = True,
    timeout: Annotated[
        str, typer.Option("--timeout", "-t", help="Give up after this long (30s, 5m; 0 = never).")
    ] = "0",
    until: Annotated[Until, typer.Option("--until", help="The state that counts as done.")] = Until.healthy,
) -> None:
    """Print the rollout's status. Exit 0 when it reaches Healthy (or Paused with --until paused),
    1 when Degraded or when the timeout passes, as Argo's plugin; with --no-watch, print once and
    exit 0 unless Degraded."""
    limit = parse_duration(timeout)
    view = fetch_info(ctx, namespace, name)
    echo(_line(view))
    verdict = _verdict(view, until)
    if verdict is not None:
        _finish(view, verdict)
    if not watch:
        raise typer.Exit(EXIT_REACHED)
    holder: dict[str, Any] = {"view": view, "at": time.monotonic(), "changed": threading.Event()}
    watch_views(ctx, namespace, name, holder)
    try:
        _follow(holder, until, limit)
    finally:
        stop_watching(ctx)


def _follow(holder: dict[str, Any], until: Until, limit: float) -> None:
    last = _line(holder["view"])
    deadline = time.monotonic() + limit if limit > 0 else None
    while True:
        wait = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
        holder["changed"].wait(wait)
        holder["changed"].clear()
        if "error" in holder:
            err = holder["error"]
            raise err if isinstance(err, CliError) else CliError(str(err))
        view = holder["view"]
        line = _line(view)
        if line != last:
            echo(line)
            last = line
        verdict = _verdict(view, until)
        if verdict is not None:
            _finish(view, verdict)
        if deadline is not None and time.monotonic() >= deadline:
            _error(TIMEOUT_MESSAGE)
            raise typer.Exit(EXIT_TIMEOUT)


def _finish(view: dict[str, Any], verdict: int) -> None:
    if view.get("status") == "Degraded":
        _error(DEGRADED_MESSAGE.format(message=view.get("message") or ""))
    raise typer.Exit(verdict)
