"""`rollouts demo --canary` (make demo DEMO=canary) end to end, with a real server, real processes
and real HTTP through the proxy: the shares of V1/V2/V3 answers the demo prints at each step fall
within bounds of the step's weight, the bad version is aborted and traffic returns to stable."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

from harness.serverharness import pids_using
from pyrollouts.cli import demo_canary

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "canary" / "canary-hello.yaml"


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_offset() -> int:
    """A port offset at which the canary demo's three ports are free."""
    for offset in range(1100 + os.getpid() % 500 * 7, 20000, 89):
        ports = (demo_canary.STABLE_PORT, demo_canary.CANARY_PORT, demo_canary.SERVER_PORT)
        if all(_free(p + offset) for p in ports):
            return offset
    raise AssertionError("no free port offset")


def test_shipped_manifest_is_the_example() -> None:
    assert demo_canary.canary_manifest_text() == EXAMPLE.read_text(encoding="utf-8")


def test_manifest_with_offset_env_and_analysis_step() -> None:
    text = demo_canary.canary_manifest(7, {"WELCOME": "VERSION V3", "ERROR_RATE": "0.5"}, analysis=True)
    assert "port: 8097" in text and "port: 8098" in text and "port: 8080" in text
    assert "ERROR_RATE" in text and "VERSION V3" in text
    import yaml

    ro = next(d for d in yaml.safe_load_all(text) if d and d["kind"] == "Rollout")
    steps = ro["spec"]["strategy"]["canary"]["steps"]
    assert list(steps[1]) == ["analysis"] and steps[0] == {"setWeight": 20} and len(steps) == 6


def test_shares_line() -> None:
    line = demo_canary.shares_line(Counter({"VERSION V2": 161, "VERSION V3": 19, "HTTP 500": 20}), "V3")
    assert line == "V2 80.5% (161/200), V3 19.5% (39/200, 20 of them HTTP 500)"
    assert demo_canary.shares_line(Counter()) == "no answers"


def _shares(line: str) -> dict[str, float]:
    return {v: float(p) for v, p in re.findall(r"(V\d) ([\d.]+)%", line)}


def test_canary_demo_prints_measured_shares_within_bounds() -> None:
    offset = free_offset()
    proc = subprocess.run(
        [sys.executable, "-m", "pyrollouts.cli.main", "demo", "--canary", "--port-offset", str(offset)],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, COLUMNS="200"),
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-2000:]
    measured = [_shares(line) for line in re.findall(r"^  measured: (.*)$", out, re.MULTILINE)]
    assert len(measured) == 6, out[-4000:]
    # 200 GETs per step; the proxy's weights are exact per request (a trickle of other GETs may
    # share the sequence in step 5), so these bounds are wide.
    assert measured[0] == {"V1": 100.0}
    assert set(measured[1]) == {"V1", "V2"} and 15.0 <= measured[1]["V2"] <= 25.0, measured[1]
    assert set(measured[2]) == {"V1", "V2"} and 45.0 <= measured[2]["V2"] <= 55.0, measured[2]
    assert measured[3] == {"V2": 100.0}
    assert set(measured[4]) == {"V2", "V3"} and 15.0 <= measured[4]["V3"] <= 25.0, measured[4]
    assert re.search(r"V3 [\d.]+% \(\d+/200, \d+ of them HTTP 500\)", out)
    assert measured[5] == {"V2": 100.0}
    # what `get rollout` showed on the way, as Argo's plugin shows it
    assert "  Step:          1/5\n  SetWeight:     20\n  ActualWeight:  20\n" in out
    assert "  Step:          3/5\n  SetWeight:     50\n  ActualWeight:  50\n" in out
    listed = re.search(r"^canary-hello +Canary +Paused +1/5 +20 +3/3 +2 +1 +3$", out, re.MULTILINE)
    assert listed is not None, out[:6000]
    assert "RolloutAborted: Rollout aborted update to revision 3" in out
    # the controller made the analysis step's run (<rollout>-<hash>-<revision>-<step index>), which
    # failed on the proxy's count of V3's answers, and aborted the update by itself
    run = re.search(r"run canary-hello-\w+-3-1: Failed; measured error rate of V3: ([\d.]+)%", out)
    assert run is not None and 20.0 <= float(run.group(1)) <= 80.0, out[-3000:]
    assert re.search(r"\u03b1 canary-hello-\w+-3-1 +AnalysisRun +✖ Failed", out), out[-3000:]
    assert " abort canary-hello" not in out  # nobody typed abort
    assert "Canary demo complete" in out
    state = re.search(r"--state-dir (\S+)", out)
    assert state is not None and not Path(state.group(1)).exists()
    assert not pids_using(state.group(1)), "the demo left a process of its state dir running"
