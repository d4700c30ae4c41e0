"""What clients show of an AnalysisRun: its line in a Rollout's tree and its full detail.

Pure functions from the run's JSON (as either runtime stores it) to plain data, shared by the info
view (``service.info``), the CLI's ``get analysisrun`` and Argo's ``/api/v1`` RolloutInfo
(``web.rolloutinfo``), so the icon, the counts and the revision of a run are decided once.

As Argo's plugin shows a run (its ``info`` package): the phase with an icon of its own (``✔``
Successful, ``✖`` Failed, ``⚠`` Error, ``?`` Inconclusive, ``◌`` Running, ``◷`` Pending, a blank
before the controller wrote a phase), the measurement counts summed over ``status.metricResults``
(successful, failed, inconclusive, error), and the revision the run belongs to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..model import names, owners

Obj = dict[str, Any]

#: A run's (and a measurement's) phase -> the icon Argo's plugin shows for it.
ANALYSIS_ICONS = {
    "Successful": "✔",
    "Failed": "✖",
    "Error": "⚠",
    "Inconclusive": "?",
    "Running": "◌",
    "Pending": "◷",
}

#: The counts column of a run, in Argo's order: (key, icon).
COUNT_ICONS = (("successful", "✔"), ("failed", "✖"), ("inconclusive", "?"), ("error", "⚠"))


def analysis_icon(phase: str | None) -> str:
    """The icon of an analysis phase; a blank for none or an unknown one (as Argo's plugin)."""
    return ANALYSIS_ICONS.get(phase or "", " ")


def counts_text(counts: Mapping[str, Any]) -> str:
    """``✔ 3,✖ 1``: each non-zero count with its icon, in Argo's order (successful, failed,
    inconclusive, error), comma-separated; "" when every count is zero."""
    return ",".join(f"{icon} {int(counts.get(key) or 0)}" for key, icon in COUNT_ICONS if counts.get(key))


def _revision_of_run(run: Mapping[str, Any], rs_revisions: Mapping[str, int]) -> int:
    """The revision a run belongs to: its ``rollout.argoproj.io/revision`` annotation (Argo's
    controller writes it, and Argo's plugin groups by it), else the revision of the ReplicaSet
    whose pod-template hash the run's ``rollouts-pod-template-hash`` label names, else 0."""
    rev = owners.revision_of(run)
    if rev is not None:
        return rev
    h = ((run.get("metadata") or {}).get("labels") or {}).get(names.POD_TEMPLATE_HASH_LABEL, "")
    return rs_revisions.get(h, 0)


def run_summary(run: Mapping[str, Any], rs_revisions: Mapping[str, int]) -> Obj:
    """A run's line in the tree. ``rs_revisions``: pod-template hash -> revision of the Rollout's
    ReplicaSets (for a run that carries only the hash label)."""
    meta = run.get("metadata") or {}
    labels = meta.get("labels") or {}
    status = run.get("status") or {}
    counts = {key: 0 for key, _ in COUNT_ICONS}
    for mr in status.get("metricResults") or []:
        for key in counts:
            counts[key] += int(mr.get(key) or 0)
    phase = str(status.get("phase") or "")
    return {
        "name": meta.get("name", ""),
        "namespace": meta.get("namespace", ""),
        "uid": meta.get("uid", ""),
        "creationTimestamp": meta.get("creationTimestamp"),
        "status": phase,
        "icon": analysis_icon(phase),
        "message": status.get("message") or "",
        "revision": _revision_of_run(run, rs_revisions),
        "podTemplateHash": labels.get(names.POD_TEMPLATE_HASH_LABEL, ""),
        "rolloutType": labels.get(names.ROLLOUT_TYPE_LABEL, ""),
        **counts,
        # The run as stored, for clients that show more (Argo's RolloutInfo carries it whole).
        "specAndStatus": {"spec": dict(run.get("spec") or {}), "status": dict(status)},
    }


def rollout_runs(
    rollout: Mapping[str, Any], runs: Sequence[Mapping[str, Any]], rs_revisions: Mapping[str, int]
) -> list[Obj]:
    """The summaries of the runs ``rollout`` owns (others in ``runs`` are left out), in Argo's
    order: newest revision first, then oldest first, then by name (descending) for a tie."""
    mine = [run_summary(r, rs_revisions) for r in owners.owned(runs, {"kind": "Rollout", **rollout})]
    mine.sort(key=lambda s: s["name"], reverse=True)
    mine.sort(key=lambda s: str(s["creationTimestamp"] or ""))
    mine.sort(key=lambda s: -int(s["revision"]))
    return mine


def _measurement(m: Mapping[str, Any]) -> Obj:
    phase = str(m.get("phase") or "")
    return {
        "phase": phase,
        "icon": analysis_icon(phase),
        "value": m.get("value"),
        "message": m.get("message") or "",
        "startedAt": m.get("startedAt"),
        "finishedAt": m.get("finishedAt"),
        "metadata": dict(m.get("metadata") or {}),
    }


def run_detail(run: Mapping[str, Any]) -> Obj:
    """Everything ``get analysisrun`` shows: the summary, the args, and each metric of the spec
    with its result (phase, message, counts, measurements oldest first)."""
    spec = run.get("spec") or {}
    status = run.get("status") or {}
    results = {str(mr.get("name")): mr for mr in status.get("metricResults") or []}
    metrics: list[Obj] = []
    for metric in spec.get("metrics") or []:
        name = str(metric.get("name") or "")
        mr = results.get(name) or {}
        phase = str(mr.get("phase") or "")
        metrics.append(
            {
                "name": name,
                "status": phase,
                "icon": analysis_icon(phase),
                "message": mr.get("message") or "",
                "dryRun": bool(mr.get("dryRun")),
                "successCondition": metric.get("successCondition") or "",
                "failureCondition": metric.get("failureCondition") or "",
                **{key: int(mr.get(key) or 0) for key, _ in COUNT_ICONS},
                "measurements": [_measurement(m) for m in mr.get("measurements") or []],
            }
        )
    refs: list[Obj] = (run.get("metadata") or {}).get("ownerReferences") or []
    owner: Obj = refs[0] if refs else {}
    return {
        **run_summary(run, {}),
        "terminate": bool(spec.get("terminate")),
        "startedAt": status.get("startedAt"),
        "completedAt": status.get("completedAt"),
        "owner": f"{owner.get('kind')}/{owner.get('name')}" if owner else "",
        "args": [
            {"name": a.get("name", ""), "value": a.get("value"), "valueFrom": a.get("valueFrom")}
            for a in spec.get("args") or []
        ],
        "metrics": metrics,
    }
