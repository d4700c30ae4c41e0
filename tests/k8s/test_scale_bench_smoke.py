"""`make bench-scale`'s harness (bench/scale_bench.py) in its seconds-long smoke mode, so that it
cannot rot: on one control plane, Argo Rollouts' own controller (built by `make tools`) and ours
each take 2 Rollouts to Healthy and, after an update, to Paused, alone in a namespace of their own;
the report (JSON lines, the table between the markers of benchmarks.md, the ratios, the plots) is
written. Counts and shapes only: nothing about speed is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(600)

BENCH = Path(__file__).resolve().parents[2] / "bench" / "scale_bench.py"


def test_scale_bench_smoke_runs_both_controllers(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nbefore\n\n<!-- scale:begin -->\nold\n<!-- scale:end -->\n\nafter\n")
    jsonl = tmp_path / "scale.jsonl"
    out = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--json", str(jsonl), "--series", "smoke",
         "--docs", str(docs), "--plots", str(tmp_path / "img")],
        capture_output=True, text=True, timeout=540,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [(r["which"], r["rollouts"], r["series"]) for r in rows] == [
        ("argo", 2, "smoke"),
        ("pyrollouts", 2, "smoke"),
    ], rows
    for r in rows:
        for key in ("healthy_s", "cpu_healthy_s", "paused_s", "cpu_paused_total_s", "idle_cpu_s"):
            assert r[key] >= 0, (key, r)
        assert r["rss_mib"] > 0, r
    assert "At 2 rollouts, pyrollouts / Argo:" in out.stdout
    md = docs.read_text()
    assert "old" not in md and md.startswith("# Benchmarks\n\nbefore\n") and md.endswith("\nafter\n")
    assert "| 2 | Argo Rollouts v" in md and "| 2 | pyrollouts |" in md
    for png in ("scale-time.png", "scale-cpu.png"):
        assert (tmp_path / "img" / png).read_bytes().startswith(b"\x89PNG")


def test_scale_bench_refuses_an_unknown_controller() -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--controllers", "flux"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0 and "--controllers: unknown ['flux']" in out.stderr
