"""`rollouts get rollout`: the header and the revision tree, in the shape of Argo's plugin.

Pure functions from the info view (``service.info.rollout_info``, as the API returns it) and a time
to text, so golden tests need no server and no clock. ``render_rich`` adds colour for terminals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.text import Text

from ..model.timefmt import parse_time
from ..service.analysisinfo import analysis_icon, counts_text

ICON_ROLLOUT = "⟳"
ICON_REVISION = "#"
ICON_REPLICASET = "⧉"
ICON_POD = "□"
ICON_ANALYSIS_RUN = "\u03b1"  # Greek alpha, as Argo's plugin

STATUS_ICONS = {
    "Healthy": "✔",
    "Running": "✔",
    "Succeeded": "✔",
    "Completed": "✔",
    "Progressing": "◌",
    "Pending": "◌",
    "ContainerCreating": "◌",
    "Terminating": "◌",
    "Paused": "॥",
    "Degraded": "✖",
    "Failed": "✖",
    "Error": "✖",
    "CrashLoopBackOff": "✖",
    "ScaledDown": "•",
}

STATUS_STYLES = {
    "✔": "green",
    "◌": "yellow",
    "◷": "yellow",
    "॥": "grey62",
    "✖": "red",
    "⚠": "red",
    r"\?": "yellow",
    "•": "grey50",
}

HEADER_WIDTH = 17


def human_duration(seconds: float) -> str:
    """An age as kubectl prints it: 5s, 2m10s, 15m, 3h20m, 11h, 3d4h, 20d, 2y."""
    s = int(seconds)
    if s < 0:
        s = 0
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = s // 3600
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if h < 24 * 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    return f"{d // 365}y"


def go_duration(seconds: float) -> str:
    """A duration as Go prints one rounded to seconds (Argo's delay:1m20s): 45s, 1m20s, 1h0m5s."""
    s = max(0, round(seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    if h:
        return f"{h}h{m}m{sec}s"
    if m:
        return f"{m}m{sec}s"
    return f"{sec}s"


def age(ts: str | None, now: datetime) -> str:
    """The AGE column for a creationTimestamp ("" when unknown)."""
    t = parse_time(ts)
    return human_duration((now - t).total_seconds()) if t else ""


def status_cell(status: str) -> str:
    """``✔ Healthy`` and friends."""
    icon = STATUS_ICONS.get(status, "◌")
    return f"{icon} {status}" if status else ""


def header_lines(info: Mapping[str, Any]) -> list[str]:
    """The header block: Name, Namespace, Status, Message, Strategy (for a canary its Step,
    SetWeight and ActualWeight), Images, Replicas."""

    def row(key: str, value: Any) -> str:
        return f"{key:<{HEADER_WIDTH}}{value}".rstrip()

    lines = [
        row("Name:", info.get("name", "")),
        row("Namespace:", info.get("namespace", "")),
        row("Status:", status_cell(str(info.get("status") or ""))),
    ]
    if info.get("message"):
        lines.append(row("Message:", info["message"]))
    lines.append(row("Strategy:", info.get("strategy", "")))
    canary = info.get("canary")
    if info.get("strategy") == "Canary" and canary:
        # as Argo's plugin: Step only once the status has an index, the two weights always
        lines.append(row("  Step:", canary.get("step", "")))
        lines.append(row("  SetWeight:", canary.get("setWeight", 0)))
        lines.append(row("  ActualWeight:", canary.get("actualWeight", 0)))
    images = info.get("images") or []
    for i, img in enumerate(images):
        roles = img.get("roles") or []
        text = img.get("image", "") + (f" ({', '.join(roles)})" if roles else "")
        lines.append(row("Images:" if i == 0 else "", text))
    if not images:
        lines.append(row("Images:", ""))
    reps = info.get("replicas") or {}
    lines.append("Replicas:")
    for key in ("desired", "current", "updated", "ready", "available"):
        lines.append(row(f"  {key.capitalize()}:", reps.get(key, 0)))
    return lines


def _rs_info(rs: Mapping[str, Any], now: datetime) -> str:
    parts = list(rs.get("roles") or [])
    deadline = parse_time(rs.get("scaleDownDeadline"))
    if deadline is not None:
        left = (deadline - now).total_seconds()
        parts.append(f"delay:{go_duration(left)}" if left > 0 else "delay:passed")
    return ",".join(parts)


def _pod_info(pod: Mapping[str, Any]) -> str:
    parts = [f"ready:{pod.get('ready', '0/0')}"]
    if pod.get("restarts"):
        parts.append(f"restarts:{pod['restarts']}")
    if pod.get("hostPort"):
        parts.append(f"port:{pod['hostPort']}")
    return ",".join(parts)


Row = tuple[str, str, str, str, str]


def _row(name: str, kind: str, obj: Mapping[str, Any], now: datetime, info: str) -> Row:
    """The line of ``obj`` (Rollout, ReplicaSet or Pod): NAME with its prefix, KIND, STATUS, AGE, INFO."""
    return (
        name,
        kind,
        status_cell(str(obj.get("status") or "")),
        age(obj.get("creationTimestamp"), now),
        info,
    )


def _branch(last: bool) -> str:
    return "└──" if last else "├──"


def _run_row(label: str, run: Mapping[str, Any], now: datetime) -> Row:
    """An AnalysisRun's line: its own icon per phase (Error is ⚠ here, not a pod's ✖) and the
    measurement counts (``✔ 3,✖ 1``) as INFO, as Argo's plugin prints it."""
    status = str(run.get("status") or "")
    cell = f"{run.get('icon') or analysis_icon(status)} {status}" if status else ""
    return (label, "AnalysisRun", cell, age(run.get("creationTimestamp"), now), counts_text(run))


def _revision_rows(
    rev: Mapping[str, Any], runs: Sequence[Mapping[str, Any]], pad: str, now: datetime
) -> list[Row]:
    """The children of one revision: its ReplicaSets (each with its Pods), then its AnalysisRuns."""
    rows: list[Row] = []
    rss: Sequence[Mapping[str, Any]] = rev.get("replicaSets") or []
    total = len(rss) + len(runs)
    for si, rs in enumerate(rss):
        last_rs = si == total - 1
        label = pad + _branch(last_rs) + f"{ICON_REPLICASET} {rs.get('name', '')}"
        rows.append(_row(label, "ReplicaSet", rs, now, _rs_info(rs, now)))
        rs_pad = pad + ("   " if last_rs else "│  ")
        pods: Sequence[Mapping[str, Any]] = rs.get("pods") or []
        for pi, pod in enumerate(pods):
            label = rs_pad + _branch(pi == len(pods) - 1) + f"{ICON_POD} {pod.get('name', '')}"
            rows.append(_row(label, "Pod", pod, now, _pod_info(pod)))
    for ai, run in enumerate(runs):
        label = pad + _branch(len(rss) + ai == total - 1) + f"{ICON_ANALYSIS_RUN} {run.get('name', '')}"
        rows.append(_run_row(label, run, now))
    return rows


def tree_rows(info: Mapping[str, Any], now: datetime) -> list[Row]:
    """The tree as rows of (NAME with its tree prefix, KIND, STATUS, AGE, INFO)."""
    rows: list[Row] = [_row(f"{ICON_ROLLOUT} {info.get('name', '')}", "Rollout", info, now, "")]
    revisions: Sequence[Mapping[str, Any]] = info.get("revisions") or []
    all_runs: Sequence[Mapping[str, Any]] = info.get("analysisRuns") or []
    for ri, rev in enumerate(revisions):
        last_rev = ri == len(revisions) - 1
        rows.append((_branch(last_rev) + f"{ICON_REVISION} revision:{rev.get('revision')}", "", "", "", ""))
        runs = [r for r in all_runs if r.get("revision") == rev.get("revision")]
        rows.extend(_revision_rows(rev, runs, "   " if last_rev else "│  ", now))
    return rows


def table_lines(rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> list[str]:
    """Rows in columns two spaces apart (like Go's tabwriter), trailing blanks trimmed."""
    all_rows = [header, *rows]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(header))]
    out = []
    for r in all_rows:
        cells = [c.ljust(widths[i]) for i, c in enumerate(r[:-1])] + [r[-1]]
        out.append("  ".join(cells).rstrip())
    return out


def render(info: Mapping[str, Any], now: datetime) -> str:
    """The whole `get rollout` output as plain text (header, blank line, tree)."""
    lines = header_lines(info)
    lines.append("")
    lines.extend(table_lines(tree_rows(info, now), ("NAME", "KIND", "STATUS", "AGE", "INFO")))
    return "\n".join(lines) + "\n"


def render_rich(info: Mapping[str, Any], now: datetime) -> Text:
    """``render`` with the status icons coloured, for a terminal."""
    text = Text(render(info, now))
    for icon, style in STATUS_STYLES.items():
        text.highlight_regex(rf"{icon} \S+", style)
    return text


def info_now(info: Mapping[str, Any], received_monotonic: float, monotonic_now: float) -> datetime:
    """The server's time now: its ``now`` when the view was sent plus the time since, so ages and
    delays follow the server's clock (which a --test-clock server may have moved)."""
    base = parse_time(info.get("now")) or datetime.now(UTC)
    from datetime import timedelta

    return base + timedelta(seconds=max(0.0, monotonic_now - received_monotonic))
