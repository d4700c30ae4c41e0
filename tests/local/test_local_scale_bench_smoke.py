"""bench/local_scale_bench.py (the local runtime's controller at scale, issue 15) in its smoke mode,
so that it cannot rot: 2 Rollouts of one replica to Healthy and, after an update, to Paused on a
real `rollouts server`, with the old and new replica of each running as processes, and nothing of
the state dir left after the shutdown. Counts only: nothing about speed is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)

BENCH = Path(__file__).resolve().parents[2] / "bench" / "local_scale_bench.py"


def test_local_scale_bench_smoke(tmp_path: Path) -> None:
    jsonl = tmp_path / "local-scale.jsonl"
    out = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--json", str(jsonl)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (r,) = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert (r["rollouts"], r["app_processes"], r["left_after_shutdown"]) == (2, 4, 0), r
    assert r["rss_mib"] > 0 and r["cpu_paused_total_s"] >= r["cpu_healthy_s"] >= 0, r
    assert "| 2 | 4 |" in out.stdout
