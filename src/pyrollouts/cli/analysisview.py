"""`rollouts get analysisrun`: one run's header and its metrics with their measurements.

Pure functions from the run's detail (``service.analysisinfo.run_detail``) and a time to text, as
``tree.py`` is for a Rollout, so tests need no server and no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..service.analysisinfo import counts_text
from .tree import HEADER_WIDTH, age, table_lines


def _status(icon: str, status: str) -> str:
    return f"{icon} {status}" if status else ""


def header_lines(run: Mapping[str, Any], now: datetime) -> list[str]:
    """Name, Namespace, Status, Message, the Rollout and revision it belongs to, Args, times."""

    def row(key: str, value: Any) -> str:
        return f"{key:<{HEADER_WIDTH}}{value}".rstrip()

    lines = [
        row("Name:", run.get("name", "")),
        row("Namespace:", run.get("namespace", "")),
        row("Status:", _status(str(run.get("icon") or ""), str(run.get("status") or "")) or "(not started)"),
    ]
    if run.get("message"):
        lines.append(row("Message:", run["message"]))
    if run.get("terminate") and run.get("status") in ("", "Pending", "Running"):
        lines.append(row("Terminating:", "spec.terminate is set; the run ends at its next reconcile"))
    if run.get("owner"):
        lines.append(row("Owner:", run["owner"]))
    if run.get("revision"):
        lines.append(row("Revision:", run["revision"]))
    if run.get("podTemplateHash"):
        lines.append(row("Pod hash:", run["podTemplateHash"]))
    if run.get("rolloutType"):
        lines.append(row("Type:", run["rolloutType"]))
    for i, arg in enumerate(run.get("args") or []):
        value = arg.get("value")
        shown = value if value is not None else ("(valueFrom)" if arg.get("valueFrom") else "")
        lines.append(row("Args:" if i == 0 else "", f"{arg.get('name')}={shown}"))
    lines.append(row("Age:", age(run.get("creationTimestamp"), now)))
    if run.get("startedAt"):
        lines.append(row("Started:", run["startedAt"]))
    if run.get("completedAt"):
        lines.append(row("Completed:", run["completedAt"]))
    counts = counts_text(run)
    if counts:
        lines.append(row("Measurements:", counts))
    return lines


def metric_rows(run: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """One row per metric (its phase, counts and message), then one per measurement kept, oldest
    first: phase, value, when it finished (or started), and its message."""
    rows: list[tuple[str, ...]] = []
    for metric in run.get("metrics") or []:
        info = counts_text(metric)
        extra = [info] if info else []
        if metric.get("dryRun"):
            extra.append("dryRun")
        if metric.get("message"):
            extra.append(str(metric["message"]))
        rows.append(
            (
                str(metric.get("name", "")),
                _status(metric.get("icon", ""), metric.get("status", "")),
                "",
                "",
                "; ".join(extra),
            )
        )
        ms = metric.get("measurements") or []
        for i, m in enumerate(ms):
            branch = "└──" if i == len(ms) - 1 else "├──"
            value = m.get("value")
            rows.append(
                (
                    f"{branch}#{i + 1}",
                    _status(m.get("icon", ""), m.get("phase", "")),
                    "" if value is None else str(value),
                    str(m.get("finishedAt") or m.get("startedAt") or ""),
                    str(m.get("message") or ""),
                )
            )
    return rows


def render_run(run: Mapping[str, Any], now: datetime) -> str:
    """The whole `get analysisrun` output as plain text (header, blank line, metrics table)."""
    lines = header_lines(run, now)
    rows = metric_rows(run)
    if rows:
        lines.append("")
        lines.extend(table_lines(rows, ("METRIC", "STATUS", "VALUE", "TIME", "INFO")))
    return "\n".join(lines) + "\n"
