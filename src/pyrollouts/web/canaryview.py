"""HTML of a canary Rollout's panel: its steps with the current one highlighted, and its traffic
split per revision.

From the info view's canary block (``service.canaryinfo``, carried in RolloutInfo as ``canary``):
the step, the set and actual weights, each step's text and state. The split is the one the proxy
measured on the local runtime (``web.traffic.TrafficSampler.shares``: each revision's share of
the requests through the stable Service over the last seconds), shown beside the split the status
gives (``status.canary.weights`` with trafficRouting, the ReplicaSets' shares of the available pods
without), which is all there is on Kubernetes. Every value is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .escape import e

STEP_MARK = {"done": "✔", "current": "▶", "pending": "○"}


def _steps(steps: Sequence[Mapping[str, Any]]) -> str:
    if not steps:
        return '<p class="none">No steps: the new revision takes all traffic once it is available.</p>'
    items = []
    for step in steps:
        state = str(step.get("state") or "pending")
        current = ' aria-current="step"' if state == "current" else ""
        items.append(
            f'<li class="step step-{e(state)}" data-step="{int(step.get("index") or 0)}" '
            f'data-state="{e(state)}"{current}><span class="step-mark">{STEP_MARK.get(state, "")}</span>'
            f'<span class="step-text">{e(step.get("text"))}</span></li>'
        )
    return f'<ol class="steps">{"".join(items)}</ol>'


def _role_of(roles: Sequence[str]) -> str:
    return "canary" if "canary" in roles else ("stable" if "stable" in roles else "")


def _bar(rows: Sequence[Mapping[str, Any]], kind: str) -> str:
    """One stacked bar, a segment per revision; ``rows``: revision, role and percent."""
    segments, legend = [], []
    for row in rows:
        pct = float(row["percent"])
        role = str(row.get("role") or "")
        label = f"rev {int(row['revision'])}" + (f" ({role})" if role else "")
        text = f"{pct:.1f}%" if kind == "measured" else f"{pct:g}%"
        segments.append(
            f'<span class="seg seg-{e(role or "other")}" style="width:{max(0.0, min(pct, 100.0)):.1f}%" '
            f'title="{e(label)}: {e(text)}"></span>'
        )
        legend.append(
            f'<span class="split-rev seg-text-{e(role or "other")}" data-revision="{int(row["revision"])}" '
            f'data-role="{e(role)}" data-percent="{pct:.1f}">{e(label)}: <b>{e(text)}</b></span>'
        )
    bar = f'<div class="split-bar">{"".join(segments)}</div>'
    return f'{bar}<div class="split-legend">{"".join(legend)}</div>'


def _measured(split: Mapping[str, Any], role_of: Mapping[int, str]) -> str:
    window = float(split.get("window") or 0)
    total = int(split.get("requests") or 0)
    if not total:
        return (
            '<div class="split" data-source="proxy" data-requests="0">'
            f'<p class="split-caption">Measured by the proxy: no requests in the last {window:g} s.</p></div>'
        )
    rows = [
        {"revision": rev, "role": role_of.get(rev, ""), "percent": 100.0 * r["share"]}
        for r in split.get("revisions") or []
        for rev in [int(r["revision"])]
    ]
    return (
        f'<div class="split" data-source="proxy" data-requests="{total}">'
        f'<p class="split-caption">Measured by the proxy: {total} requests through the stable Service '
        f"in the last {window:g} s</p>{_bar(rows, 'measured')}</div>"
    )


def _from_status(canary: Mapping[str, Any]) -> str:
    rows = [
        {"revision": r["revision"], "role": _role_of(r.get("roles") or []), "percent": r["weight"]}
        for r in canary.get("statusSplit") or []
    ]
    source = "status.canary.weights" if canary.get("trafficRouting") else "available pods per ReplicaSet"
    if not rows:
        return (
            '<div class="split" data-source="status">'
            f'<p class="split-caption">Weights ({e(source)}): none yet.</p></div>'
        )
    return (
        f'<div class="split" data-source="status"><p class="split-caption">Weights ({e(source)})</p>'
        f"{_bar(rows, 'status')}</div>"
    )


def canary_panel(info: Mapping[str, Any], measured: Mapping[str, Any] | None) -> str:
    """Step, set and actual weight, the steps, and the split (measured first when there is one)."""
    canary: Mapping[str, Any] = info.get("canary") or {}
    role_of = {
        int(rs["revision"]): ("canary" if rs.get("canary") else "stable" if rs.get("stable") else "")
        for rs in info.get("replicaSets") or []
    }
    head = (
        '<div class="canary-head">'
        f'<span>Step <b id="canary-step">{e(canary.get("step") or "-")}</b></span>'
        f'<span>Set weight <b id="set-weight">{e(canary.get("setWeight", 0))}</b></span>'
        f'<span>Actual weight <b id="actual-weight">{e(canary.get("actualWeight", 0))}</b></span></div>'
    )
    split = (_measured(measured, role_of) if measured is not None else "") + _from_status(canary)
    return (
        f'<h2>Canary</h2>{head}<div class="canary-body">'
        f"<div><h3>Steps</h3>{_steps(canary.get('steps') or [])}</div>"
        f'<div class="canary-split"><h3>Traffic split</h3>{split}</div></div>'
    )
