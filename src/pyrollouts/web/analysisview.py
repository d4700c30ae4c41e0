"""HTML of AnalysisRuns: their line under a revision of the rollout page, and the page of one run.

Rendered on the server like the rest of the dashboard (``render.py``), every value escaped. Under
a revision, as Argo's dashboard shows them: each run with its phase's icon and colour, its short
name (Argo's ``Analysis 2-pre``: the last two parts of the run's name) and its counts
(``✔ 2,✖ 1``), linking to the run's page. The run's page: the phase, message, revision, type,
start and end, the args, and each metric with its conditions, counts, a chart of its measured
values (``metricchart.py``) and the table of its measurements (phase, value, start, end, message).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from ..service.analysisinfo import COUNT_ICONS, analysis_icon, counts_text, run_detail
from .escape import e, newest_first_table
from .metricchart import metric_chart

#: A run's (or metric's, or measurement's) phase -> its CSS class (as Argo's status colours:
#: an Error is shown as a failure, an Inconclusive as a warning).
RUN_CLASS = {
    "Successful": "ok",
    "Failed": "bad",
    "Error": "bad",
    "Inconclusive": "warn",
    "Running": "run",
    "Pending": "off",
}


def short_name(name: str) -> str:
    """Argo's label of a run under its revision: ``Analysis`` and the last two parts of its name
    (``super-hello-6d9f-2-pre`` -> ``Analysis 2-pre``); ``Analysis`` for a name with fewer."""
    parts = name.split("-")
    return "Analysis" if len(parts) < 2 else f"Analysis {parts[-2]}-{parts[-1]}"


def run_url(ns: str, rollout: str, run: str) -> str:
    """The page of one run of a rollout."""
    return f"/rollouts/{quote(ns)}/{quote(rollout)}/analysisruns/{quote(run)}"


def phase_badge(phase: str, *, element_id: str = "") -> str:
    """The phase with its icon, coloured by state ("Pending" for a run not measured yet)."""
    shown = phase or "Pending"
    attr = f' id="{e(element_id)}"' if element_id else ""
    return (
        f'<span{attr} class="ar-phase ar-{RUN_CLASS.get(shown, "off")}" data-phase="{e(shown)}">'
        f"{e(analysis_icon(shown))} {e(shown)}</span>"
    )


def revision_runs(ns: str, rollout: str, runs: Sequence[Mapping[str, Any]]) -> str:
    """The runs of one revision (Argo's AnalysisRunInfo), each a link to its page."""
    if not runs:
        return ""
    items = []
    for run in runs:
        meta = run.get("objectMeta") or {}
        name = str(meta.get("name") or "")
        phase = str(run.get("status") or "") or "Pending"
        counts = counts_text(run)
        tip = f"{name}: {phase}, created {meta.get('creationTimestamp') or ''}"
        items.append(
            f'<a class="ar ar-{RUN_CLASS.get(phase, "off")}" data-run="{e(name)}" data-phase="{e(phase)}" '
            f'href="{e(run_url(ns, rollout, name))}" title="{e(tip)}">'
            f'<span class="ar-icon">{e(analysis_icon(phase))}</span>'
            f'<span class="ar-name">{e(short_name(name))}</span>'
            f'<span class="ar-counts">{e(counts)}</span></a>'
        )
    return f'<div class="analysis"><span class="analysis-head">Analysis runs</span>{"".join(items)}</div>'


# ---------------------------------------------------------------------------------------------
# the page of one run


def _arg_value(arg: Mapping[str, Any]) -> str:
    if arg.get("value") is not None:
        return str(arg["value"])
    if arg.get("valueFrom") is not None:
        return "valueFrom " + json.dumps(arg["valueFrom"], sort_keys=True)
    return ""


def _counts(item: Mapping[str, Any]) -> str:
    return "".join(
        f'<span class="ar-count" data-count="{key}">{icon} {int(item.get(key) or 0)}</span>'
        for key, icon in COUNT_ICONS
    )


def run_summary(detail: Mapping[str, Any]) -> str:
    """The run's phase, message, counts, revision, type, times and args (``run_detail``)."""
    rows = [
        ("Revision", detail.get("revision") or ""),
        ("Type", detail.get("rolloutType") or ""),
        ("Started", detail.get("startedAt") or ""),
        ("Completed", detail.get("completedAt") or ""),
    ]
    if detail.get("terminate"):
        rows.append(("Terminate", "requested"))
    info = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in rows)
    args = "".join(
        f'<tr data-arg="{e(a.get("name"))}"><td>{e(a.get("name"))}</td><td>{e(_arg_value(a))}</td></tr>'
        for a in detail.get("args") or []
    )
    args_table = (
        f'<table class="args"><thead><tr><th>Arg</th><th>Value</th></tr></thead><tbody>{args}</tbody></table>'
        if args
        else '<p class="none">No args.</p>'
    )
    return (
        '<div class="summary-head">'
        f"{phase_badge(str(detail.get('status') or ''), element_id='run-phase')}"
        f'<span id="run-message" class="msg">{e(detail.get("message"))}</span>'
        f'<span class="ar-counts" id="run-counts">{_counts(detail)}</span></div>'
        f"<dl>{info}</dl>{args_table}"
    )


def _measurements_table(measurements: Sequence[Mapping[str, Any]]) -> str:
    # Newest first, as a log reads; the chart runs oldest to newest.
    columns = ("Phase", "Value", "Started", "Finished", "Message")
    return newest_first_table(measurements, "measurements", columns, _measurement_row, "No measurements yet.")


def _measurement_row(m: Mapping[str, Any]) -> str:
    return (
        f'<tr class="measurement" data-phase="{e(m.get("phase"))}">'
        f"<td>{phase_badge(str(m.get('phase') or ''))}</td>"
        f'<td class="value">{e(_measurement_value(m))}</td><td>{e(m.get("startedAt"))}</td>'
        f'<td>{e(m.get("finishedAt"))}</td><td class="msg">{e(m.get("message"))}</td></tr>'
    )


def provider_text(provider: Mapping[str, Any]) -> str:
    """What a metric measures, as its spec writes it (``{{args.x}}`` left as is, so a secret's
    value is never shown; headers and bodies left out): the Prometheus query, the web request,
    the Job's images."""
    if not isinstance(provider, Mapping) or not provider:
        return ""
    kind = next(iter(provider))
    spec = provider.get(kind)
    if not isinstance(spec, Mapping):
        return str(kind)
    if kind == "prometheus":
        return f"prometheus {spec.get('address') or ''}: {spec.get('query') or ''}"
    if kind == "web":
        path = f" {spec['jsonPath']}" if spec.get("jsonPath") else ""
        return f"web {str(spec.get('method') or 'GET').upper()} {spec.get('url') or ''}{path}"
    if kind == "job":
        pod = ((spec.get("spec") or {}).get("template") or {}).get("spec") or {}
        images = ", ".join(str(c.get("image") or "") for c in pod.get("containers") or [])
        return f"job ({images})" if images else "job"
    return str(kind)


def _measurement_value(m: Mapping[str, Any]) -> str:
    if m.get("value") is not None:
        return str(m["value"])
    job = (m.get("metadata") or {}).get("job-name")
    return f"job {job}" if job else ""


def run_metrics(detail: Mapping[str, Any], providers: Mapping[str, Any] | None = None) -> str:
    """Each metric of the run: phase, counts, what it measures (``providers``: metric name ->
    its spec's provider), conditions, chart and measurements."""
    out = []
    args = detail.get("args") or []
    for metric in detail.get("metrics") or []:
        name = str(metric.get("name") or "")
        measures = provider_text((providers or {}).get(name) or {})
        conditions = (
            f'<dt>Measures</dt><dd><code class="provider">{e(measures)}</code></dd>' if measures else ""
        ) + "".join(
            f'<dt>{label}</dt><dd><code class="{cls}">{e(metric.get(key))}</code></dd>'
            for key, label, cls in (
                ("successCondition", "Success when", "cond-success"),
                ("failureCondition", "Failure when", "cond-failure"),
            )
            if metric.get(key)
        )
        dry = '<span class="role">dry run</span>' if metric.get("dryRun") else ""
        message = f'<p class="msg">{e(metric.get("message"))}</p>' if metric.get("message") else ""
        chart = metric_chart(
            name,
            metric.get("measurements") or [],
            success_condition=metric.get("successCondition"),
            failure_condition=metric.get("failureCondition"),
            args=args,
        )
        out.append(
            f'<section class="metric" data-metric="{e(name)}">'
            f"<h3>{phase_badge(str(metric.get('status') or ''))} {e(name)} {dry}"
            f'<span class="ar-counts">{_counts(metric)}</span></h3>{message}'
            f"<dl>{conditions}</dl>{chart}{_measurements_table(metric.get('measurements') or [])}</section>"
        )
    return "".join(out) or '<p class="none">This run has no metrics.</p>'


def run_fragments(run: Mapping[str, Any]) -> dict[str, str]:
    """Element id -> inner HTML of the page of ``run`` (as stored), for the page and each update."""
    detail = run_detail(run)
    providers = {
        str(m.get("name")): m.get("provider") or {} for m in (run.get("spec") or {}).get("metrics") or []
    }
    return {"run-summary": run_summary(detail), "run-metrics": run_metrics(detail, providers)}


def run_page_body(ns: str, rollout: str, run: Mapping[str, Any]) -> str:
    """The body of the page of ``run``, a run of ``rollout`` (``render.page`` wraps it)."""
    name = str((run.get("metadata") or {}).get("name") or "")
    parts = run_fragments(run)
    return (
        f'<nav class="crumbs"><a href="/rollouts/{quote(ns)}">{e(ns)}</a> / '
        f'<a href="/rollouts/{quote(ns)}/{quote(rollout)}">{e(rollout)}</a> / <span>{e(name)}</span></nav>'
        f"<h1>{e(name)}</h1>"
        '<p id="notice" class="notice" role="status"></p>'
        f'<section class="panel" id="run-summary">{parts["run-summary"]}</section>'
        f'<section class="panel"><h2>Metrics</h2><div id="run-metrics">{parts["run-metrics"]}</div></section>'
    )
