"""`make bench`'s harness in its seconds-long smoke mode (issue 17), so that it cannot rot: every
target it finds starts and carries traffic with no failed request, the switch is measured, and the
report (JSON, plots, the generated section of benchmarks.md) is written. Nothing about speed is
asserted: speed is for `make bench`, as ratios within one run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)

BENCH = Path(__file__).resolve().parents[2] / "bench" / "proxy_bench.py"


def test_bench_smoke_writes_the_report(tmp_path: Path) -> None:
    (tmp_path / "benchmarks.md").write_text(
        "# Benchmarks\n\nbefore\n\n<!-- bench:begin -->\nold\n<!-- bench:end -->\n\nafter\n"
    )
    out = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads((tmp_path / "bench" / "latest.json").read_text())
    assert {"direct", "proxy", "proxy-tcp"} <= set(report["targets"]), report["targets"]
    for conns in ("1", "8"):
        for name in report["targets"]:
            r = report["load"][conns][name]
            assert r["requests"] > 0 and r["errors"] == 0, (conns, name, r)
    # A keep-alive L7 proxy opens its endpoint connections in the warm-up and reuses them; the byte
    # pipe opens one per client connection.
    assert report["load"]["8"]["proxy"]["backend_connections"] <= 8, report["load"]["8"]["proxy"]
    assert report["switch"]["proxy"]["n"] == 4
    for png in ("bench-cpu.png", "bench-p99.png"):
        assert (tmp_path / "img" / png).read_bytes().startswith(b"\x89PNG")
    md = (tmp_path / "benchmarks.md").read_text()
    assert "old" not in md and md.startswith("# Benchmarks\n\nbefore\n") and md.endswith("\nafter\n")
    assert "| 8 | proxy |" in md and "bench/latest.json" in md


def test_bench_refuses_a_report_without_markers(tmp_path: Path) -> None:
    (tmp_path / "benchmarks.md").write_text("# Benchmarks\n\nhand-written only\n")
    out = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert out.returncode != 0
    assert "markers" in out.stderr + out.stdout
    assert (tmp_path / "benchmarks.md").read_text() == "# Benchmarks\n\nhand-written only\n"
