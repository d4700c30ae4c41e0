"""HTML of the dashboard: whole pages and the fragments the live stream replaces.

Rendered here, on the server, from RolloutInfo; the page's script only swaps fragments in and ticks
the scale-down countdowns. Every value is escaped; nothing from a manifest reaches the page raw.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from .analysisview import revision_runs
from .escape import e, newest_first_table

PHASE_CLASS = {"Healthy": "ok", "Progressing": "wait", "Paused": "paused", "Degraded": "bad"}
RS_CLASS = {"Healthy": "ok", "Progressing": "wait", "ScaledDown": "off"}
BAD_POD = {"CrashLoopBackOff", "Error", "Failed", "ImagePullBackOff", "ErrImagePull", "OOMKilled"}
CHART_COLOURS = ("#2563eb", "#16a34a", "#db2777", "#ea580c", "#7c3aed", "#0891b2")

BUTTONS = (
    ("promote", "Promote", "Promote: switch production to the preview revision?"),
    ("promoteFull", "Promote full", "Promote full: skip every remaining pause and go to the new revision?"),
    ("abort", "Abort", "Abort: send production back to the stable revision?"),
    ("retry", "Retry", "Retry the aborted update?"),
    ("restart", "Restart", "Restart every pod of this rollout, one at a time?"),
)


def pod_class(pod: Mapping[str, Any]) -> str:
    """The colour of a pod tile: ok (running and ready), bad, term (terminating) or wait."""
    status = str(pod.get("status", ""))
    if status == "Terminating":
        return "term"
    if status in BAD_POD:
        return "bad"
    if status in ("Running", "Succeeded") and pod.get("allReady"):
        return "ok"
    return "wait"


def _roles(rs: Mapping[str, Any]) -> list[str]:
    return [r for r in ("stable", "active", "preview") if rs.get(r)]


def _role_badges(roles: Iterable[str]) -> str:
    return "".join(f'<span class="role role-{e(r)}">{e(r)}</span>' for r in roles)


def page(title: str, body: str, *, data: Mapping[str, str], head: str = "") -> str:
    """A whole page: the shared head, the body, the script; ``data`` becomes body data-* attributes."""
    attrs = " ".join(f'data-{e(k)}="{e(v)}"' for k, v in data.items())
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(title)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="stylesheet" href="/ui/static/dashboard.css"><link rel="icon" href="data:,">'
        f"{head}</head><body {attrs}>"
        '<header class="top"><a href="/" class="brand">pyrollouts</a>'
        '<span id="live" class="live" title="live updates">&#9679; live</span></header>'
        f"<main>{body}</main>"
        '<dialog id="confirm"><form method="dialog"><p id="confirm-text"></p>'
        '<menu><button id="confirm-cancel" value="cancel">Cancel</button>'
        '<button id="confirm-ok" value="ok" class="primary">Confirm</button></menu></form></dialog>'
        '<script src="/ui/static/dashboard.js"></script></body></html>'
    )


# ---------------------------------------------------------------------------------------------
# the list


def list_rows(infos: Sequence[Mapping[str, Any]]) -> str:
    """The rows of the rollout list (the part the stream replaces)."""
    if not infos:
        return '<tr class="empty"><td colspan="6">No rollouts in this namespace.</td></tr>'
    rows = []
    for i in infos:
        name = i["objectMeta"]["name"]
        ns = i["objectMeta"]["namespace"]
        phase = i.get("status", "")
        images = "".join(
            f'<div class="image">{e(img["image"])} {_role_badges(img.get("roles") or [])}</div>'
            for img in i.get("images") or []
        ) or "".join(f'<div class="image">{e(c["image"])}</div>' for c in i.get("containers") or [])
        rows.append(
            f'<tr class="rollout-row" data-name="{e(name)}" data-phase="{e(phase)}">'
            f'<td><a href="/rollouts/{quote(ns)}/{quote(name)}">{e(name)}</a></td>'
            f'<td><span class="phase {PHASE_CLASS.get(phase, "wait")}">{e(phase)}</span></td>'
            f"<td>{e(i.get('strategy', ''))}</td><td>{images}</td>"
            f'<td class="num" title="desired / current / updated / ready / available">'
            f"{i['desired']} / {i['current']} / {i['updated']} / {i['ready']} / {i['available']}</td>"
            f'<td class="msg">{e(i.get("message", ""))}</td></tr>'
        )
    return "".join(rows)


def list_page(
    ns: str, namespaces: Sequence[str], infos: Sequence[Mapping[str, Any]], token: str | None
) -> str:
    """The rollout list of a namespace, with filters and the namespace switcher."""
    ns_options = "".join(
        f'<option value="{e(n)}"{" selected" if n == ns else ""}>{e(n)}</option>' for n in namespaces
    )
    phases = "".join(
        f'<option value="{p}">{p}</option>' for p in ("Healthy", "Progressing", "Paused", "Degraded")
    )
    body = (
        f"<h1>Rollouts</h1>"
        '<div class="filters">'
        f'<label>Namespace <select id="ns-switch">{ns_options}</select></label>'
        '<label>Name <input id="filter-name" type="search" placeholder="filter by name"></label>'
        f'<label>Phase <select id="filter-phase"><option value="">all</option>{phases}</select></label>'
        "</div>"
        '<table class="rollouts"><thead><tr><th>Name</th><th>Phase</th><th>Strategy</th><th>Images</th>'
        '<th title="desired / current / updated / ready / available">Replicas</th>'
        "<th>Message</th></tr></thead>"
        f'<tbody id="rows">{list_rows(infos)}</tbody></table>'
    )
    data = {"stream": f"/ui/rollouts/{quote(ns)}/stream", "page": "list"}
    if token:
        data["token"] = token
    return page(f"Rollouts in {ns}", body, data=data)


# ---------------------------------------------------------------------------------------------
# one rollout


def summary(info: Mapping[str, Any]) -> str:
    """Name, phase, message, strategy, images with roles, replica counts."""
    phase = info.get("status", "")
    images = "".join(
        f"<li>{e(img['image'])} {_role_badges(img.get('roles') or [])}</li>"
        for img in info.get("images") or []
    )
    counts = "".join(
        f'<div class="count"><b id="count-{k}">{info.get(k, 0)}</b><span>{k.capitalize()}</span></div>'
        for k in ("desired", "current", "updated", "ready", "available")
    )
    return (
        '<div class="summary-head">'
        f'<span id="phase" class="phase {PHASE_CLASS.get(phase, "wait")}">{e(phase)}</span>'
        f'<span id="message" class="msg">{e(info.get("message", ""))}</span></div>'
        f'<dl><dt>Strategy</dt><dd id="strategy">{e(info.get("strategy", ""))}</dd>'
        f'<dt>Images</dt><dd><ul class="images">{images}</ul></dd></dl>'
        f'<div class="counts">{counts}</div>'
    )


def actions(info: Mapping[str, Any]) -> str:
    """The action buttons, enabled only when the action applies."""
    ns, name = info["objectMeta"]["namespace"], info["objectMeta"]["name"]
    base = f"/api/v1/rollouts/{quote(ns)}/{quote(name)}"
    allowed = info.get("actions") or {}
    out = []
    for key, label, question in BUTTONS:
        url = f"{base}/promote" if key.startswith("promote") else f"{base}/{key}"
        body = json.dumps({"full": key == "promoteFull"}) if key.startswith("promote") else "{}"
        disabled = "" if allowed.get(key) else " disabled"
        out.append(
            f'<button id="btn-{e(key)}" data-action="{e(key)}" data-url="{e(url)}" data-body="{e(body)}" '
            f'data-confirm="{e(question)}"{disabled}>{e(label)}</button>'
        )
    return "".join(out)


def revisions(info: Mapping[str, Any]) -> str:
    """Revisions newest first, each with its ReplicaSets and their pods as coloured tiles."""
    ns, name = info["objectMeta"]["namespace"], info["objectMeta"]["name"]
    by_rev: dict[int, list[Mapping[str, Any]]] = {}
    for rs in info.get("replicaSets") or []:
        by_rev.setdefault(int(rs["revision"]), []).append(rs)
    runs_of: dict[int, list[Mapping[str, Any]]] = {}
    for run in info.get("analysisRuns") or []:
        runs_of.setdefault(int(run.get("revision") or 0), []).append(run)
    newest = max(by_rev, default=0)
    out = []
    # A revision whose ReplicaSet is gone may still have runs (history limits differ): as Argo's.
    for rev in sorted(set(by_rev) | set(runs_of), reverse=True):
        rss = by_rev.get(rev, [])
        roles = [r for rs in rss for r in _roles(rs)]
        rollback = ""
        if rev != newest and rss:
            url = f"/api/v1/rollouts/{quote(ns)}/{quote(name)}/undo/{rev}"
            rollback = (
                f'<button class="rollback" id="btn-rollback-{rev}" data-action="rollback" '
                f'data-url="{e(url)}" '
                f'data-body="{{}}" data-confirm="Roll back to revision {rev}?">Rollback</button>'
            )
        tiles = []
        for rs in rss:
            pods = "".join(
                f'<div class="pod {pod_class(p)}" data-pod="{e(p["objectMeta"]["name"])}" '
                f'title="{e(p["objectMeta"]["name"])}: {e(p["status"])}, ready {e(p["ready"])}, '
                f'restarts {p["restarts"]}"><span class="pod-name">{e(p["objectMeta"]["name"])}</span>'
                f'<span class="pod-state">{e(p["status"])} {e(p["ready"])}'
                f"{' ↻' + str(p['restarts']) if p['restarts'] else ''}</span></div>"
                for p in rs.get("pods") or []
            )
            deadline = rs.get("scaleDownDeadline") or ""
            countdown = (
                f'<span class="countdown" data-deadline="{e(deadline)}">scale-down at {e(deadline)}</span>'
                if deadline
                else ""
            )
            tiles.append(
                f'<div class="rs {RS_CLASS.get(rs["status"], "wait")}" '
                f'data-rs="{e(rs["objectMeta"]["name"])}">'
                f'<div class="rs-head"><span class="rs-name">{e(rs["objectMeta"]["name"])}</span>'
                f'<span class="rs-status">{e(rs["status"])}</span>{_role_badges(_roles(rs))}{countdown}</div>'
                f'<div class="rs-meta">{rs["available"]}/{rs["replicas"]} available · '
                f"{e(', '.join(rs.get('images') or []))}</div>"
                f'<div class="pods">{pods or "<span class=none>no pods</span>"}</div></div>'
            )
        out.append(
            f'<section class="revision" data-revision="{rev}" data-roles="{e(" ".join(roles))}">'
            f"<h3>Revision {rev} {_role_badges(roles)} {rollback}</h3>{''.join(tiles)}"
            f"{revision_runs(ns, name, runs_of.get(rev, []))}</section>"
        )
    return "".join(out) or '<p class="none">No revisions yet.</p>'


def events(items: Sequence[Mapping[str, Any]]) -> str:
    """The event log, newest first."""
    columns = ("Time", "Type", "Reason", "Message")
    return newest_first_table(items, "events", columns, _event_row, "No events yet.")


def _event_row(ev: Mapping[str, Any]) -> str:
    return (
        f'<tr class="ev-{e(str(ev.get("type", "")).lower())}">'
        f"<td>{e(ev.get('time'))}</td><td>{e(ev.get('type'))}</td>"
        f'<td class="reason">{e(ev.get("reason"))}</td><td>{e(ev.get("message"))}</td></tr>'
    )


def _chart(series: Sequence[Mapping[str, Any]], key: str, label: str, fmt: str) -> str:
    width, height, pad = 300, 70, 4
    points = [p for s in series for p in s["points"]]
    if not points:
        return f'<figure class="chart"><figcaption>{e(label)}: no traffic yet</figcaption></figure>'
    t1 = max(p["t"] for p in points)
    # The last minute at most; a shorter history fills the width (at least ten seconds of it).
    span = min(60.0, max(10.0, t1 - min(p["t"] for p in points)))
    t0 = t1 - span
    top = max([p[key] for p in points] + [1e-9])
    if key == "errorRate":
        top = max(top, 0.05)
    lines, legend = [], []
    for i, s in enumerate(series):
        colour = CHART_COLOURS[i % len(CHART_COLOURS)]
        xy = " ".join(
            f"{pad + (p['t'] - t0) / span * (width - 2 * pad):.1f},"
            f"{height - pad - p[key] / top * (height - 2 * pad):.1f}"
            for p in s["points"]
            if p["t"] >= t0
        )
        last = s["points"][-1][key] if s["points"] else 0
        lines.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{xy}"/>')
        legend.append(
            f'<span class="legend" data-revision="{s["revision"]}" style="color:{colour}">'
            f"rev {s['revision']}: {fmt.format(last)}</span>"
        )
    return (
        f'<figure class="chart" data-metric="{key}">'
        f"<figcaption>{e(label)} (max {fmt.format(top)}) {''.join(legend)}"
        f'</figcaption><svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{e(label)}"><rect x="0" y="0" width="{width}" height="{height}" class="chart-bg"/>'
        f"{''.join(lines)}</svg></figure>"
    )


def traffic(series: Sequence[Mapping[str, Any]]) -> str:
    """Two small charts: requests per second and error rate, one line per revision, last minute."""
    return _chart(series, "rps", "Requests per second", "{:.1f}") + _chart(
        series, "errorRate", "Error rate", "{:.1%}"
    )


def rollout_fragments(
    info: Mapping[str, Any], items: Sequence[Mapping[str, Any]], series: Sequence[Mapping[str, Any]] | None
) -> dict[str, str]:
    """Element id -> inner HTML, for the page and for each stream update."""
    parts = {
        "summary": summary(info),
        "actions": actions(info),
        "revisions": revisions(info),
        "events": events(items),
    }
    if series is not None:
        parts["traffic"] = traffic(series)
    return parts


def rollout_page(
    info: Mapping[str, Any],
    items: Sequence[Mapping[str, Any]],
    series: Sequence[Mapping[str, Any]] | None,
    token: str | None,
) -> str:
    """One rollout: summary, actions, revisions, traffic (local runtime), event log."""
    ns, name = info["objectMeta"]["namespace"], info["objectMeta"]["name"]
    parts = rollout_fragments(info, items, series)
    traffic_section = (
        f'<section class="panel"><h2>Traffic</h2><div id="traffic">{parts["traffic"]}</div></section>'
        if "traffic" in parts
        else ""
    )
    body = (
        f'<nav class="crumbs"><a href="/rollouts/{quote(ns)}">{e(ns)}</a> / <span>{e(name)}</span></nav>'
        f"<h1>{e(name)}</h1>"
        f'<section class="panel" id="summary">{parts["summary"]}</section>'
        f'<div id="actions" class="actions">{parts["actions"]}</div>'
        '<p id="notice" class="notice" role="status"></p>'
        f'<section class="panel"><h2>Revisions</h2><div id="revisions">{parts["revisions"]}</div></section>'
        f"{traffic_section}"
        f'<section class="panel"><h2>Events</h2><div id="events">{parts["events"]}</div></section>'
    )
    data = {
        "stream": f"/ui/rollouts/{quote(ns)}/{quote(name)}/stream",
        "page": "rollout",
        "phase": str(info.get("status", "")),
        "now": str(info.get("now", "")),
    }
    if token:
        data["token"] = token
    return page(f"{name} · {ns}", body, data=data)
