"""Fault injection for tests: exit the process at a named point of a reconcile.

``PYROLLOUTS_KILL_AT=<point>[:<n>]`` makes the process exit (``os._exit``, no cleanup, as a kill -9
would leave things) the n-th time (default 1st) it passes that point. Points: after-rs-create,
after-scale, after-selector-switch, after-status-write, after-deadline-set. Both runtimes run the
same controller, so both honour it.
"""

from __future__ import annotations

import os
import sys

POINTS = (
    "after-rs-create",
    "after-scale",
    "after-selector-switch",
    "after-status-write",
    "after-deadline-set",
)
ENV = "PYROLLOUTS_KILL_AT"
EXIT_CODE = 137

_counts: dict[str, int] = {}


def _target() -> tuple[str, int] | None:
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return None
    point, _, n = raw.partition(":")
    if point not in POINTS:
        raise SystemExit(f"{ENV}={raw}: unknown kill point {point!r}; use one of {', '.join(POINTS)}")
    return point, int(n or "1")


def kill_point(point: str) -> None:
    """Exit right here if the environment names this point (and this is its n-th pass)."""
    target = _target()
    if target is None or target[0] != point:
        return
    _counts[point] = _counts.get(point, 0) + 1
    if _counts[point] >= target[1]:
        sys.stderr.write(f"pyrollouts: fault injection: exiting at {point}\n")
        sys.stderr.flush()
        os._exit(EXIT_CODE)
