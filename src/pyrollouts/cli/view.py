"""Verbs that show things: get rollout, get all, list rollouts."""

from __future__ import annotations

import json
import threading
import time
from typing import Annotated, Any

import typer
import yaml
from rich.live import Live

from .client import ApiError, CliError, Obj
from .common import Namespace, echo, kind_display, out, state
from .tree import age, info_now, parse_time, render, render_rich, table_lines

get_app = typer.Typer(
    help="Show one rollout (with its revision tree) or everything in a namespace.", no_args_is_help=True
)
list_app = typer.Typer(help="List rollouts.", no_args_is_help=True)


def fetch_info(ctx: typer.Context, namespace: str, name: str) -> Obj:
    """The info view of a rollout, with an error naming it when it does not exist."""
    try:
        return state(ctx).backend().info(namespace, name)
    except ApiError as exc:
        if exc.status == 404:
            raise CliError(f"rollout '{name}' not found in namespace '{namespace}'") from None
        raise


def watch_views(ctx: typer.Context, namespace: str, name: str, holder: dict[str, Any]) -> threading.Thread:
    """Follow the info stream in a thread: ``holder`` gets the latest view (and when it came),
    or the error that ended the stream."""

    def follow() -> None:
        try:
            for view in state(ctx).backend().watch_info(namespace, name):
                holder["view"], holder["at"] = view, time.monotonic()
                holder["changed"].set()
            holder["error"] = CliError(f"the server closed the watch of rollout '{name}'")
        except Exception as exc:
            holder["error"] = exc
        holder["changed"].set()

    t = threading.Thread(target=follow, daemon=True, name="info-watch")
    t.start()
    return t


def stop_watching(ctx: typer.Context) -> None:
    """Close the backend's open watch streams (the thread of ``watch_views`` then ends)."""
    close = getattr(state(ctx).backend(), "close", None)
    if callable(close):
        close()


def _check_output(output: str | None) -> None:
    """Refuse an ``-o`` other than json or yaml, before anything is read."""
    if output is not None and output not in ("json", "yaml"):
        raise typer.BadParameter(f"-o {output}: use json or yaml")


def _output_option(kind: str) -> Any:
    return typer.Option("--output", "-o", help=f"json or yaml: the {kind} object.")


def _printed_as_object(obj: Obj, output: str | None) -> bool:
    """With ``-o json`` or ``-o yaml``, print the object so and say True; else print nothing."""
    if output is None:
        return False
    echo(json.dumps(obj, indent=2) if output == "json" else yaml.safe_dump(obj, sort_keys=False))
    return True


@get_app.command("rollout")
def get_rollout(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Rollout name.")],
    namespace: Namespace = "default",
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Redraw on every change until Ctrl-C.")
    ] = False,
    output: Annotated[str | None, _output_option("Rollout")] = None,
) -> None:
    """The rollout's header and its tree of revisions, ReplicaSets and Pods."""
    _check_output(output)
    view = fetch_info(ctx, namespace, name)
    if _printed_as_object(view["rollout"], output):
        return
    if not watch:
        out().print(render_rich(view, info_now(view, 0.0, 0.0)), end="")
        return
    holder: dict[str, Any] = {"view": view, "at": time.monotonic(), "changed": threading.Event()}
    try:  # Ctrl-C ends a watch normally, also while it is still starting
        watch_views(ctx, namespace, name, holder)
        with Live(
            render_rich(view, info_now(view, 0, 0)), console=out(), auto_refresh=False, transient=False
        ) as live:
            while True:
                holder["changed"].wait(1.0)
                holder["changed"].clear()
                if "error" in holder:
                    raise holder["error"]
                v = holder["view"]
                live.update(render_rich(v, info_now(v, holder["at"], time.monotonic())), refresh=True)
    except KeyboardInterrupt:
        pass
    finally:
        stop_watching(ctx)


def fetch_analysis_run(ctx: typer.Context, namespace: str, name: str) -> Obj:
    """The AnalysisRun object, with an error naming it when it does not exist."""
    try:
        return state(ctx).backend().get("analysisrun", namespace, name)
    except ApiError as exc:
        if exc.status == 404:
            raise CliError(f"analysisrun '{name}' not found in namespace '{namespace}'") from None
        raise


@get_app.command("analysisrun")
def get_analysis_run(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="AnalysisRun name.")],
    namespace: Namespace = "default",
    output: Annotated[str | None, _output_option("AnalysisRun")] = None,
) -> None:
    """An AnalysisRun: its phase and message, and each metric with its measurements."""
    from datetime import UTC, datetime

    from ..service.analysisinfo import run_detail
    from .analysisview import render_run

    _check_output(output)
    run = fetch_analysis_run(ctx, namespace, name)
    if _printed_as_object(run, output):
        return
    now = parse_time(state(ctx).backend().version().get("now")) or datetime.now(UTC)
    out().print(render_run(run_detail(run), now), end="", markup=False)


def _age(obj: Obj, now: Any) -> str:
    return age(obj.get("metadata", {}).get("creationTimestamp"), now)


@get_app.command("all")
def get_all(ctx: typer.Context, namespace: Namespace = "default") -> None:
    """Rollouts, ReplicaSets, Pods and Services of a namespace (like kubectl get all)."""
    backend = state(ctx).backend()
    now_text = backend.version().get("now")
    from datetime import UTC, datetime

    now = parse_time(now_text) or datetime.now(UTC)
    sections: list[list[str]] = []
    ros = backend.list("rollout", namespace)
    if ros:
        rows = []
        for r in ros:
            st = r.get("status") or {}
            spec = r.get("spec") or {}
            rows.append(
                (
                    f"rollout.argoproj.io/{r['metadata']['name']}",
                    str(spec.get("replicas", 1)),
                    str(st.get("replicas", 0)),
                    str(st.get("updatedReplicas", 0)),
                    str(st.get("availableReplicas", 0)),
                    st.get("phase", ""),
                    _age(r, now),
                )
            )
        sections.append(
            table_lines(rows, ("NAME", "DESIRED", "CURRENT", "UP-TO-DATE", "AVAILABLE", "PHASE", "AGE"))
        )
    rss = backend.list("replicaset", namespace)
    if rss:
        rs_rows: list[tuple[str, ...]] = []
        for rs in rss:
            st = rs.get("status") or {}
            rs_rows.append(
                (
                    f"replicaset.apps/{rs['metadata']['name']}",
                    str(rs.get("spec", {}).get("replicas", 0)),
                    str(st.get("replicas", 0)),
                    str(st.get("readyReplicas", 0)),
                    _age(rs, now),
                )
            )
        sections.append(table_lines(rs_rows, ("NAME", "DESIRED", "CURRENT", "READY", "AGE")))
    pods = backend.list("pod", namespace)
    if pods:
        from ..service.info import pod_info

        pod_rows: list[tuple[str, ...]] = []
        for p in pods:
            pi = pod_info(p)
            pod_rows.append(
                (
                    f"pod/{pi['name']}",
                    pi["ready"],
                    pi["status"],
                    str(pi["restarts"]),
                    str(pi["hostPort"] or ""),
                    _age(p, now),
                )
            )
        sections.append(table_lines(pod_rows, ("NAME", "READY", "STATUS", "RESTARTS", "PORT", "AGE")))
    svcs = backend.list("service", namespace)
    if svcs:
        svc_rows: list[tuple[str, ...]] = []
        for s in svcs:
            spec = s.get("spec") or {}
            ports = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])
            sel = ",".join(f"{k}={v}" for k, v in (spec.get("selector") or {}).items())
            svc_rows.append((f"service/{s['metadata']['name']}", ports, sel, _age(s, now)))
        sections.append(table_lines(svc_rows, ("NAME", "PORT(S)", "SELECTOR", "AGE")))
    if not sections:
        echo(f"No resources found in {namespace} namespace.")
        return
    echo("\n\n".join("\n".join(s) for s in sections))


@list_app.command("rollouts")
def list_rollouts(
    ctx: typer.Context,
    namespace: Namespace = "default",
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="Every namespace.")] = False,
) -> None:
    """One line per rollout: strategy, status, replica counts."""
    items = state(ctx).backend().list("rollout", None if all_namespaces else namespace)
    if not items:
        echo("No resources found." if all_namespaces else f"No resources found in {namespace} namespace.")
        return
    rows = []
    for r in sorted(items, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])):
        st = r.get("status") or {}
        spec = r.get("spec") or {}
        strategy = "BlueGreen" if "blueGreen" in (spec.get("strategy") or {}) else "Canary"
        desired = spec.get("replicas", 1)
        row = (
            r["metadata"]["name"],
            strategy,
            st.get("phase", "") or "Progressing",
            "-",
            "-",
            f"{st.get('readyReplicas', 0)}/{desired}",
            str(desired),
            str(st.get("updatedReplicas", 0)),
            str(st.get("availableReplicas", 0)),
        )
        rows.append((r["metadata"].get("namespace", ""), *row) if all_namespaces else row)
    header = (
        "NAME",
        "STRATEGY",
        "STATUS",
        "STEP",
        "SET-WEIGHT",
        "READY",
        "DESIRED",
        "UP-TO-DATE",
        "AVAILABLE",
    )
    echo("\n".join(table_lines(rows, (("NAMESPACE", *header) if all_namespaces else header))))


# aliases Argo's plugin accepts
get_app.command("ro", hidden=True)(get_rollout)
get_app.command("rollouts", hidden=True)(get_rollout)
get_app.command("ar", hidden=True)(get_analysis_run)
get_app.command("analysisruns", hidden=True)(get_analysis_run)
list_app.command("rollout", hidden=True)(list_rollouts)
list_app.command("ro", hidden=True)(list_rollouts)

__all__ = ["get_app", "kind_display", "list_app", "render"]
