"""The chart of one analysis metric: its measured values over time, as a server-rendered SVG.

Pure: a metric's spec and its measurements in, SVG text out (no script, no library, nothing
fetched). What is charted, as Argo's dashboard charts a metric:

- a measurement's ``value`` (the text the provider stored) as a number: a JSON number, the first
  item of a JSON list (a Prometheus vector, ``[0.01]``), a boolean as 1 or 0 (a ``web`` metric's
  ``{$.ok}``); anything else (an error, a map) is drawn as a dot on the axis, without a value;
- each dot coloured by the measurement's phase, with a tooltip (time, phase, value);
- the numeric thresholds of the success and failure conditions (``result[0] <= 0.05``, also with
  ``{{args.x}}`` resolved from the run's args) as dashed lines, green and red;
- the y range from 0 (or the lowest value) to 120% of the highest value or threshold, or to 1
  when every value is below 1 and there is no threshold.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any

#: A measurement's phase -> its colour (dots and legend).
PHASE_COLOURS = {
    "Successful": "#16a34a",
    "Failed": "#dc2626",
    "Error": "#ea580c",
    "Inconclusive": "#ca8a04",
    "Running": "#2563eb",
    "Pending": "#9ca3af",
}
SUCCESS_COLOUR = "#16a34a"
FAILURE_COLOUR = "#dc2626"

WIDTH, HEIGHT = 560, 170
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 10, 22

_ARG = re.compile(r"\{\{\s*args\.([A-Za-z0-9_.-]+)\s*\}\}")
# ``result``, ``result[0]``, optionally inside default(..., x), asFloat(...) or asInt(...), compared
# with a number: the forms a threshold line can be drawn for (others are left out of the chart).
_R = r"result(?:\[0\])?"
_RESULT = rf"(?:{_R}|default\(\s*{_R}\s*,[^()]*\)|as(?:Float|Int)\(\s*{_R}\s*\))"
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_LEFT_CMP = re.compile(rf"^\(?\s*{_RESULT}\s*(<=|>=|<|>)\s*({_NUMBER})\s*\)?$")
_RIGHT_CMP = re.compile(rf"^\(?\s*({_NUMBER})\s*(<=|>=|<|>)\s*{_RESULT}\s*\)?$")


def chart_value(value: Any) -> float | None:
    """The number a measurement's value charts as, or None (see the module docstring)."""
    if value is None:
        return None
    parsed: Any = value
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            parsed = json.loads(text)
        except ValueError:
            try:
                parsed = float(text)
            except ValueError:
                return None
    if isinstance(parsed, list):
        parsed = parsed[0] if parsed else None
    if isinstance(parsed, bool):
        return 1.0 if parsed else 0.0
    if isinstance(parsed, int | float):
        number = float(parsed)
        return number if math.isfinite(number) else None
    if isinstance(parsed, str):
        return chart_value(parsed) if parsed != value else None
    return None


def resolve_args(text: str, args: Sequence[Mapping[str, Any]]) -> str:
    """``text`` with each ``{{args.x}}`` replaced by the arg's value (left as is when it has none)."""
    values = {str(a.get("name")): a.get("value") for a in args if a.get("value") is not None}
    return _ARG.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), text)


def thresholds(condition: str | None, args: Sequence[Mapping[str, Any]] = ()) -> list[float]:
    """The numbers a condition compares ``result`` with, for the simple comparisons joined by
    ``&&`` or ``||`` that a line can show; [] for anything else."""
    if not condition:
        return []
    out: list[float] = []
    for part in re.split(r"&&|\|\|", resolve_args(condition, args)):
        text = part.strip()
        match = _LEFT_CMP.match(text)
        number = match.group(2) if match else None
        if number is None:
            right = _RIGHT_CMP.match(text)
            number = right.group(1) if right else None
        if number is not None:
            value = float(number)
            if math.isfinite(value) and value not in out:
                out.append(value)
    return out


def _time(value: Any) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _fmt(value: float) -> str:
    """A value for a label: up to four significant digits, no exponent for everyday sizes."""
    if value == 0:
        return "0"
    if 1e-3 <= abs(value) < 1e6:
        return f"{value:.4g}"
    return f"{value:.3g}"


def _clock(value: Any) -> str:
    text = str(value or "")
    return text[11:19] if len(text) >= 19 else text


def y_range(values: Sequence[float], lines: Sequence[float]) -> tuple[float, float]:
    """The chart's y range: from min(0, lowest) to 120% of the highest value or threshold
    (1 when every value is below 1 and there is no threshold)."""
    lo = min([0.0, *values, *lines])
    top = max([*values, *lines], default=0.0)
    if not lines and top < 1:
        return lo, 1.0
    hi = top * 1.2 if top > 0 else top + 1
    if hi <= lo:
        hi = lo + 1
    return lo, hi


def metric_chart(
    name: str,
    measurements: Sequence[Mapping[str, Any]],
    *,
    success_condition: str | None = None,
    failure_condition: str | None = None,
    args: Sequence[Mapping[str, Any]] = (),
) -> str:
    """A ``<figure>`` holding the SVG chart of one metric (``measurements``: oldest first, each with
    ``phase``, ``value``, ``startedAt``); a short note when there is nothing to chart yet."""
    if not measurements:
        return f'<figure class="metric-chart empty" data-metric="{escape(name)}">no measurements yet</figure>'
    points = []
    for i, m in enumerate(measurements):
        t = _time(m.get("startedAt"))
        points.append((float(i) if t is None else t, chart_value(m.get("value")), m))
    good = thresholds(success_condition, args)
    bad = thresholds(failure_condition, args)
    lo, hi = y_range([v for _, v, _ in points if v is not None], [*good, *bad])
    t0 = min(t for t, _, _ in points)
    t1 = max(t for t, _, _ in points)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + (plot_w / 2 if t1 == t0 else (t - t0) / (t1 - t0) * plot_w)

    def y(v: float) -> float:
        return TOP + plot_h - (v - lo) / (hi - lo) * plot_h

    parts = [
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" class="chart-bg"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end" class="axis">{escape(_fmt(hi))}</text>',
        f'<text x="{LEFT - 4}" y="{TOP + plot_h}" text-anchor="end" class="axis">{escape(_fmt(lo))}</text>',
        f'<text x="{LEFT}" y="{HEIGHT - 6}" class="axis">'
        f"{escape(_clock(measurements[0].get('startedAt')))}</text>",
    ]
    if len(points) > 1:
        parts.append(
            f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 6}" text-anchor="end" class="axis">'
            f"{escape(_clock(measurements[-1].get('startedAt')))}</text>"
        )
    for kind, colour, values in (("success", SUCCESS_COLOUR, good), ("failure", FAILURE_COLOUR, bad)):
        for v in values:
            parts.append(
                f'<line class="threshold threshold-{kind}" data-threshold="{v:g}" x1="{LEFT}" '
                f'x2="{WIDTH - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="{colour}" '
                f'stroke-dasharray="5 4" stroke-width="1.5"><title>{kind} threshold {escape(_fmt(v))}'
                "</title></line>"
            )
    line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v, _ in points if v is not None)
    if line:
        parts.append(f'<polyline fill="none" stroke="#475569" stroke-width="1.5" points="{line}"/>')
    for t, v, m in points:
        phase = str(m.get("phase") or "")
        colour = PHASE_COLOURS.get(phase, "#9ca3af")
        shown = escape(str(m.get("value"))) if m.get("value") is not None else "no value"
        tip = f"{escape(str(m.get('startedAt') or ''))} · {escape(phase or 'Pending')} · {shown}"
        cy = y(v) if v is not None else TOP + plot_h
        parts.append(
            f'<circle class="m" data-phase="{escape(phase)}" data-value="{"" if v is None else f"{v:g}"}" '
            f'cx="{x(t):.1f}" cy="{cy:.1f}" r="4" fill="{colour}"><title>{tip}</title></circle>'
        )
    return (
        f'<figure class="metric-chart" data-metric="{escape(name)}" data-points="{len(points)}">'
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-label="{escape(name)}: measured values over time">{"".join(parts)}</svg></figure>'
    )
