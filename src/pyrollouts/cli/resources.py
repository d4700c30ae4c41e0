"""Verbs over manifests and objects: apply, create, lint, delete."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ..model import kinds
from ..model.findings import ManifestError, sort_findings
from ..model.yamlsafe import MAX_BYTES
from .client import ApiError, CliError
from .common import Namespace, echo, err, kind_display, state


def _read(path: str) -> tuple[str, str]:
    """(text, source name) of -f PATH ('-' reads stdin)."""
    if path == "-":
        return sys.stdin.read(), "<stdin>"
    p = Path(path).expanduser()
    if p.is_dir():
        raise CliError(f"-f {path}: is a directory; give a manifest file")
    try:
        size = p.stat().st_size
    except OSError:
        size = 0
    if size > MAX_BYTES:
        # Not read whole: the same limit as lint's, before a large file fills memory.
        raise CliError(
            f"-f {path}: the manifest is {size} bytes, over the limit of {MAX_BYTES} bytes; "
            "split it into smaller files"
        )
    try:
        return p.read_text(encoding="utf-8"), path
    except FileNotFoundError:
        raise CliError(f"-f {path}: no such file") from None
    except UnicodeDecodeError:
        raise CliError(f"-f {path}: not UTF-8 text; save the manifest as UTF-8") from None
    except OSError as exc:
        raise CliError(f"-f {path}: cannot read it ({exc.strerror})") from None


def _apply(ctx: typer.Context, files: list[str], namespace: str, create_only: bool) -> None:
    backend = state(ctx).backend()
    for f in files:
        text, source = _read(f)
        try:
            res = backend.apply(text, source, namespace, create_only=create_only)
        except ApiError as exc:
            if exc.status == 422 and exc.details:
                raise CliError(f"{source}: {exc.message}", exc.details) from None
            if exc.status == 413:
                raise CliError(
                    f"{source}: the server refused the manifest as too large ({len(text.encode())} bytes); "
                    "nothing was applied",
                    ["split it into smaller files (one object per file)"],
                ) from None
            raise
        for w in res.get("warnings") or []:
            err().print(f"warning: {w.get('text') or w}", markup=False)
        for r in res.get("results") or []:
            echo(f"{kind_display(r['kind'])}/{r['name']} {r['result']}")


#: The manifests ``apply`` and ``create`` read.
Filenames = Annotated[list[str], typer.Option("--filename", "-f", help="Manifest file(s); '-' for stdin.")]


def apply(ctx: typer.Context, filename: Filenames, namespace: Namespace = "default") -> None:
    """Create or update every object of a manifest (all or nothing)."""
    _apply(ctx, filename, namespace, create_only=False)


def create(ctx: typer.Context, filename: Filenames, namespace: Namespace = "default") -> None:
    """Create every object of a manifest; refuse if any already exists."""
    _apply(ctx, filename, namespace, create_only=True)


def lint(
    filename: Annotated[str, typer.Option("--filename", "-f", help="Manifest file to check.")],
) -> None:
    """Check a manifest without a server: exit 1 when it has errors."""
    from ..model.lint import lint_file, lint_text

    try:
        if filename == "-":
            findings = lint_text(sys.stdin.read(), "<stdin>")
        else:
            if not Path(filename).exists():
                raise CliError(f"-f {filename}: no such file")
            findings = lint_file(filename)
    except ManifestError as exc:
        findings = list(exc.findings)
    findings = sort_findings(findings)
    for f in findings:
        echo(f"{f.severity}: {f}")
    n_err = sum(1 for f in findings if f.severity == "error")
    n_warn = len(findings) - n_err
    if n_err:
        err().print(f"{filename}: {n_err} error(s), {n_warn} warning(s)", markup=False)
        raise typer.Exit(1)
    echo(f"{filename}: no errors" + (f", {n_warn} warning(s)" if n_warn else ""))


def delete(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="rollout, service, pod or replicaset")],
    name: Annotated[str, typer.Argument(help="Name of the object.")],
    namespace: Namespace = "default",
) -> None:
    """Delete an object; deleting a rollout also stops its ReplicaSets and Pods."""
    found = kinds.client_kind(kind)
    if found is None or found.name in ("Event", "Namespace"):
        raise typer.BadParameter(f"unknown kind '{kind}' (rollout, service, pod or replicaset)")
    backend = state(ctx).backend()
    k = found.name
    try:
        backend.delete(kind, namespace, name)
    except ApiError as exc:
        if exc.status == 404:
            raise CliError(f"{k.lower()} '{name}' not found in namespace '{namespace}'") from None
        raise
    echo(f'{kind_display(k)} "{name}" deleted')
