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


create_app = typer.Typer(
    help="Create every object of a manifest (-f), or an AnalysisRun from a template (create analysisrun)."
)


@create_app.callback(invoke_without_command=True)
def create(
    ctx: typer.Context,
    filename: Annotated[
        list[str] | None, typer.Option("--filename", "-f", help="Manifest file(s); '-' for stdin.")
    ] = None,
    namespace: Namespace = "default",
) -> None:
    """Create every object of a manifest; refuse if any already exists."""
    if ctx.invoked_subcommand is not None:
        return
    if not filename:
        raise typer.BadParameter("give a manifest with -f FILE, or use: create analysisrun --from TEMPLATE")
    _apply(ctx, filename, namespace, create_only=True)


@create_app.command("analysisrun")
def create_analysis_run(
    ctx: typer.Context,
    from_template: Annotated[
        str | None,
        typer.Option("--from", help="The AnalysisTemplate (ClusterAnalysisTemplate with --global) to run."),
    ] = None,
    from_file: Annotated[
        str | None, typer.Option("--from-file", help="Run the template in this file instead.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Name of the run.")] = None,
    generate_name: Annotated[
        str | None, typer.Option("--generate-name", help="Prefix of a generated name (default: TEMPLATE-).")
    ] = None,
    argument: Annotated[
        list[str] | None, typer.Option("--argument", "-a", help="An arg of the template: NAME=VALUE.")
    ] = None,
    global_: Annotated[
        bool, typer.Option("--global", help="--from names a ClusterAnalysisTemplate.")
    ] = False,
    instance_id: Annotated[
        str | None, typer.Option("--instance-id", help="Controller instance id label for the run.")
    ] = None,
    namespace: Namespace = "default",
) -> None:
    """Create an AnalysisRun from an AnalysisTemplate or ClusterAnalysisTemplate (Argo's plugin's
    `create analysisrun`): the template's metrics and args, with -a values."""
    from ..service.analysisruns import parse_arg_flags, run_from_template
    from ..service.verbs import VerbError

    if (from_template is None) == (from_file is None):
        raise typer.BadParameter("give one of --from TEMPLATE or --from-file FILE")
    if name and generate_name:
        raise typer.BadParameter("give --name or --generate-name, not both")
    backend = state(ctx).backend()
    try:
        args = parse_arg_flags(argument or [])
        template = _template(ctx, from_template, from_file, global_, namespace)
        run = run_from_template(
            template,
            args,
            namespace=namespace,
            name=name,
            generate_name=generate_name,
            instance_id=instance_id,
        )
    except VerbError as exc:
        raise CliError(exc.message) from None
    try:
        created = backend.create("AnalysisRun", namespace, run)
    except ApiError as exc:
        if exc.status == 409:
            taken = name or generate_name
            raise CliError(f"analysisrun '{taken}' already exists in namespace '{namespace}'") from None
        raise
    echo(f"{kind_display('AnalysisRun')}/{created['metadata']['name']} created")


def _template(
    ctx: typer.Context, name: str | None, path: str | None, cluster_scope: bool, namespace: str
) -> dict[str, object]:
    """The template to run: from the cluster (--from) or from a file (--from-file, linted)."""
    kind = "ClusterAnalysisTemplate" if cluster_scope else "AnalysisTemplate"
    if name is not None:
        try:
            return state(ctx).backend().get(kind, namespace, name)
        except ApiError as exc:
            if exc.status == 404:
                where = "" if cluster_scope else f" in namespace '{namespace}'"
                hint = "" if cluster_scope else " (a ClusterAnalysisTemplate needs --global)"
                raise CliError(f"{kind.lower()} '{name}' not found{where}{hint}") from None
            raise
    from ..model.lint import check_manifests

    text, source = _read(str(path))
    parsed, findings = check_manifests(text, source, default_namespace=namespace)
    errors = [str(f) for f in findings if f.severity == "error"]
    if errors:
        raise CliError(f"{source}: the template has errors; nothing was created", errors)
    templates = [p.obj for p in parsed if p.kind in ("AnalysisTemplate", "ClusterAnalysisTemplate")]
    if len(templates) != 1:
        raise CliError(
            f"{source}: expected one AnalysisTemplate or ClusterAnalysisTemplate, found {len(templates)}"
        )
    return dict(templates[0])


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
    kind: Annotated[
        str, typer.Argument(help="rollout, service, pod, replicaset, analysisrun or analysistemplate")
    ],
    name: Annotated[str, typer.Argument(help="Name of the object.")],
    namespace: Namespace = "default",
) -> None:
    """Delete an object; deleting a rollout also stops its ReplicaSets and Pods."""
    found = kinds.client_kind(kind)
    if found is None or found.name in ("Event", "Namespace"):
        raise typer.BadParameter(
            f"unknown kind '{kind}' (rollout, service, pod, replicaset, analysisrun or analysistemplate)"
        )
    backend = state(ctx).backend()
    k = found.name
    try:
        backend.delete(kind, namespace, name)
    except ApiError as exc:
        if exc.status == 404:
            raise CliError(f"{k.lower()} '{name}' not found in namespace '{namespace}'") from None
        raise
    echo(f'{kind_display(k)} "{name}" deleted')
