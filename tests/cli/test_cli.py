"""Every verb of the CLI against a real `rollouts server` (real store, processes and proxy)."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from cli_support import EXAMPLE, seed_manifest

from harness.serverharness import ServerProcess, free_port, http_body
from pyrollouts.cli.main import run

# The seed's manifest as first written: probe timings inside httpGet and the port as a string.
FAITHFUL_SEED = EXAMPLE.read_text().replace(
    """            httpGet:
              path: /healthz
              port: 8080
""",
    """            httpGet:
              path: /healthz
              port: "8080"
              initialDelaySeconds: 3
""",
)


def write(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def rs_by_revision(server: ServerProcess, ns: str, name: str) -> dict[int, dict]:
    info = server.info(ns, name)
    return {rev["revision"]: rev["replicaSets"][0] for rev in info["revisions"]}


# ---------------------------------------------------------------------------------------------
# without a server


def test_no_server_says_how_to_start_one() -> None:
    port = free_port()
    for argv in (
        ["get", "rollout", "x"],
        ["promote", "x"],
        ["list", "rollouts"],
        ["apply", "-f", str(EXAMPLE)],
    ):
        err = io.StringIO()
        old = sys.stderr
        sys.stderr = err
        try:
            code = run(["--server", f"http://127.0.0.1:{port}", *argv])
        finally:
            sys.stderr = old
        assert code == 1, argv
        assert f"cannot reach a pyrollouts server at http://127.0.0.1:{port}" in err.getvalue()
        assert "rollouts server --state-dir" in err.getvalue()


def test_lint_clean_and_faulty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["lint", "-f", str(EXAMPLE)]) == 0
    assert "no errors" in capsys.readouterr().out
    bad = write(tmp_path, "seed.yaml", FAITHFUL_SEED)
    assert run(["lint", "-f", bad]) == 1
    out = capsys.readouterr()
    assert "error:" in out.out and f"{bad}:" in out.out  # findings name the file and line
    assert "error(s)" in out.err
    assert run(["lint", "-f", str(tmp_path / "missing.yaml")]) == 1
    assert "no such file" in capsys.readouterr().err


BAD_CONDITION = """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: error-rate
spec:
  metrics:
  - name: error-rate
    interval: 30s
    successCondition: result[0] <= 0.01 &&
    provider:
      web: {url: "http://127.0.0.1:8080/metrics.json", jsonPath: "{$.errorRate}"}
"""


def test_lint_names_a_condition_that_does_not_parse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path, "template.yaml", BAD_CONDITION)
    assert run(["lint", "-f", bad]) == 1
    out = capsys.readouterr().out
    assert f"error: {bad}:9: spec.metrics[0].successCondition: successCondition does not parse:" in out
    assert "(at offset 20)" in out and "e.g. result[0] >= 0.95" in out
    good = write(tmp_path, "good.yaml", BAD_CONDITION.replace(" &&", ""))
    assert run(["lint", "-f", good]) == 0


def test_completion_scripts(capsys: pytest.CaptureFixture[str]) -> None:
    for shell in ("bash", "zsh", "fish"):
        assert run(["completion", shell]) == 0
        assert "_ROLLOUTS_COMPLETE" in capsys.readouterr().out
    assert run(["completion", "tcsh"]) == 2


def test_rollouts_entry_point_runs(server: ServerProcess) -> None:
    exe = Path(sys.executable).with_name("rollouts")
    proc = subprocess.run(
        [str(exe), "--server", server.url, "version"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "rollouts: v" in proc.stdout and "server: v" in proc.stdout


# ---------------------------------------------------------------------------------------------
# errors against a server


def test_unknown_rollout_everywhere(server: ServerProcess) -> None:
    for argv in (
        ["get", "rollout", "nope"],
        ["promote", "nope"],
        ["abort", "nope"],
        ["retry", "rollout", "nope"],
        ["undo", "nope"],
        ["pause", "nope"],
        ["restart", "nope"],
        ["set", "image", "nope", "a=b"],
        ["set", "env", "nope", "a", "K=V"],
        ["status", "nope"],
        ["delete", "rollout", "nope"],
    ):
        r = server.cli(*argv, "-n", "ghost")
        assert r.code == 1, (argv, r)
        assert "rollout 'nope' not found in namespace 'ghost'" in r.err, (argv, r.err)


def test_bad_file_is_refused_and_nothing_stored(server: ServerProcess, tmp_path: Path) -> None:
    ns = "cli-bad"
    text, _, _ = seed_manifest(ns)
    bad_text = text.replace(
        """              port: 8080
""",
        """              port: "8080"
              initialDelaySeconds: 3
""",
    )
    r = server.cli("apply", "-f", write(tmp_path, "bad.yaml", bad_text))
    assert r.code == 1
    assert "nothing was applied" in r.err and "bad.yaml:" in r.err
    assert server.cli("list", "rollouts", "-n", ns).out.startswith("No resources found")
    assert server.http("GET", f"/api/services?namespace={ns}")["items"] == []
    r = server.cli("apply", "-f", write(tmp_path, "broken.yaml", "kind: [unclosed\n"))
    assert r.code == 1 and "invalid YAML" in r.err
    r = server.cli("apply", "-f", str(tmp_path / "absent.yaml"))
    assert r.code == 1 and "no such file" in r.err


def test_usage_errors_exit_2(server: ServerProcess) -> None:
    assert server.cli("set", "image", "x", "no-equals-sign").code == 2
    assert server.cli("set", "env", "x", "c", "NOVALUE").code == 2
    assert server.cli("get", "rollout", "x", "-o", "xml").code == 2
    assert server.cli("status", "x", "-t", "soon").code == 2
    assert server.cli("delete", "gizmo", "x").code == 2
    assert server.cli("frobnicate").code == 2


# ---------------------------------------------------------------------------------------------
# the seed's story, verb by verb


def _pod_names(server: ServerProcess, ns: str) -> set[str]:
    info = server.info(ns, "super-hello")
    return {p["name"] for rev in info["revisions"] for rs in rev["replicaSets"] for p in rs["pods"]}


def test_restart_after_the_test_clock_moved_replaces_each_pod_once(
    server: ServerProcess, tmp_path: Path
) -> None:
    """The store stamps creationTimestamp with the server's clock: with the test clock moved 40 s
    ahead, a restart (restartAt from that clock) replaces each pod once. Before, every pod created in
    the next 40 s of real time was "created before" restartAt and was replaced again, which made
    test_seed_story's last steps lose their pods under load."""
    ns = "cli-restart-clock"
    text, _prod, _preview = seed_manifest(ns, replicas=2)
    assert server.cli("create", "-f", write(tmp_path, "r.yaml", text)).code == 0
    assert server.cli("status", "super-hello", "-n", ns, "-t", "120s").code == 0
    before = server.wait_for("two pods", lambda: n if len(n := _pod_names(server, ns)) == 2 else None)
    server.http("POST", "/api/debug/clock", {"advance": 40})
    assert server.cli("restart", "super-hello", "-n", ns).code == 0
    restart_at = server.http("GET", f"/api/rollouts/{ns}/super-hello")["spec"]["restartAt"]
    seen: set[str] = set()

    def restarted() -> bool:
        seen.update(_pod_names(server, ns))
        ro = server.http("GET", f"/api/rollouts/{ns}/super-hello")
        return ro.get("status", {}).get("restartedAt") == restart_at

    server.wait_for("the restart to finish", restarted, timeout=180)
    # restartedAt is written once no pod is older than restartAt: the last old pod may still be
    # terminating then and its replacement not there yet, so wait for two new replicas.
    now = server.wait_for(
        "two new pods", lambda: n if len(n := _pod_names(server, ns)) == 2 and not n & before else None
    )
    seen |= now
    assert len(seen - before) == 2, sorted(seen - before)


def test_seed_story(server: ServerProcess, tmp_path: Path) -> None:
    ns = "cli-story"
    text, prod, preview = seed_manifest(ns)
    path = write(tmp_path, "super-hello.yaml", text)

    r = server.cli("create", "-f", path)
    assert r.code == 0, r
    assert r.out.splitlines() == [
        f"namespace/{ns} created",
        "rollout.argoproj.io/super-hello created",
        "service/super-hello-prod created",
        "service/super-hello-preview created",
    ]
    r = server.cli("create", "-f", path)
    assert r.code == 1 and "already exists (use apply to update it)" in " ".join(r.err.split())

    r = server.cli("status", "super-hello", "-n", ns, "-t", "60s")
    assert r.code == 0, (r, server.log_text()[-2000:])
    assert r.out.strip().splitlines()[-1] == "Healthy"
    # The proxy follows the Services a moment after the status says Healthy (as kube-proxy does).
    server.wait_for("production on V2", lambda: http_body(prod) == "VERSION V2", timeout=30)
    server.wait_for("preview on V2", lambda: http_body(preview) == "VERSION V2", timeout=30)

    r = server.cli("get", "rollout", "super-hello", "-n", ns)
    assert r.code == 0
    assert "Status:          ✔ Healthy" in r.out
    assert "Images:          ghcr.io/gbaeke/super:1.0.2 (stable, active)" in r.out
    assert "# revision:1" in r.out and "stable,active" in r.out
    assert r.out.count("ready:1/1") == 3 and "port:" in r.out

    r = server.cli("promote", "super-hello", "-n", ns)
    assert r.code == 1 and "rollout 'super-hello' is not paused" in r.err

    r = server.cli("apply", "-f", path)  # the same manifest again changes nothing
    assert r.code == 0 and "rollout.argoproj.io/super-hello unchanged" in r.out

    r = server.cli("set", "env", "super-hello", "super-hello", "WELCOME=VERSION V3", "-n", ns)
    assert r.code == 0 and r.out.strip() == "rollout 'super-hello' env updated"
    r = server.cli("status", "super-hello", "-n", ns, "--until", "paused", "-t", "60s")
    assert r.code == 0, r
    assert r.out.strip().splitlines()[-1] == "Paused - BlueGreenPause"
    assert http_body(prod) == "VERSION V2"
    server.wait_for("preview on V3", lambda: http_body(preview) == "VERSION V3", timeout=10)

    r = server.cli("get", "rollout", "super-hello", "-n", ns)
    assert "॥ Paused" in r.out and "Message:         BlueGreenPause" in r.out
    assert "# revision:2" in r.out and "preview" in r.out
    obj = json.loads(server.cli("get", "rollout", "super-hello", "-n", ns, "-o", "json").out)
    assert obj["status"]["phase"] == "Paused"
    assert (
        yaml.safe_load(server.cli("get", "rollout", "super-hello", "-n", ns, "-o", "yaml").out)["kind"]
        == "Rollout"
    )

    r = server.cli("list", "rollouts", "-n", ns)
    assert r.out.splitlines()[0].split()[:3] == ["NAME", "STRATEGY", "STATUS"]
    assert r.out.splitlines()[1].split()[:3] == ["super-hello", "BlueGreen", "Paused"]
    r = server.cli("list", "rollouts", "-A")
    assert r.out.splitlines()[0].startswith("NAMESPACE") and ns in r.out

    r = server.cli("promote", "super-hello", "-n", ns)
    assert r.code == 0 and r.out.strip() == "rollout 'super-hello' promoted"
    r = server.cli("status", "super-hello", "-n", ns, "-t", "60s")
    assert r.code == 0, r
    server.wait_for("production on V3", lambda: http_body(prod) == "VERSION V3", timeout=10)
    r = server.cli("get", "rollout", "super-hello", "-n", ns)
    assert "delay:" in r.out

    # The scale-down delay passes on the server's (test) clock.
    server.http("POST", "/api/debug/clock", {"advance": 40})
    server.wait_for(
        "revision 1 scaled down",
        lambda: rs_by_revision(server, ns, "super-hello")[1]["status"] == "ScaledDown",
        timeout=30,
    )
    r = server.cli("get", "rollout", "super-hello", "-n", ns)
    assert "• ScaledDown" in r.out

    r = server.cli("get", "all", "-n", ns)
    assert r.code == 0
    for word in (
        "rollout.argoproj.io/super-hello",
        "replicaset.apps/super-hello-",
        "pod/super-hello-",
        "service/super-hello-prod",
        f"{prod}/TCP",
        "rollouts-pod-template-hash=",
    ):
        assert word in r.out, word

    # undo: back to revision 1's template (V2), as a new revision 3
    r = server.cli("undo", "super-hello", "-n", ns)
    assert r.code == 0 and "undo" in r.out
    r = server.cli("status", "super-hello", "-n", ns, "--until", "paused", "-t", "60s")
    assert r.code == 0, r
    assert 3 in rs_by_revision(server, ns, "super-hello")
    server.wait_for("preview back on V2", lambda: http_body(preview) == "VERSION V2", timeout=10)

    # abort: production stays on V3, the rollout is Degraded; retry brings the pause back
    r = server.cli("abort", "super-hello", "-n", ns)
    assert r.code == 0 and r.out.strip() == "rollout 'super-hello' aborted"
    r = server.cli("status", "super-hello", "-n", ns, "-t", "30s")
    assert r.code == 1 and "Error: The rollout is in a degraded state with message: " in r.err, r
    assert http_body(prod) == "VERSION V3"
    r = server.cli("retry", "rollout", "super-hello", "-n", ns)
    assert r.code == 0 and r.out.strip() == "rollout 'super-hello' retried"
    r = server.cli("status", "super-hello", "-n", ns, "--until", "paused", "-t", "60s")
    assert r.code == 0, r

    r = server.cli("promote", "super-hello", "-n", ns, "--full")
    assert r.code == 0 and r.out.strip() == "rollout 'super-hello' fully promoted"
    assert server.cli("status", "super-hello", "-n", ns, "-t", "60s").code == 0
    server.wait_for("production back on V2", lambda: http_body(prod) == "VERSION V2", timeout=10)

    # pause / resume (spec.paused)
    assert server.cli("pause", "super-hello", "-n", ns).out.strip() == "rollout 'super-hello' paused"
    r = server.cli("status", "super-hello", "-n", ns, "--no-watch")
    assert r.code == 0 and "Paused - manually paused" in r.out  # as Argo's --watch=false
    assert server.cli("resume", "super-hello", "-n", ns).out.strip() == "rollout 'super-hello' resumed"
    assert server.cli("status", "super-hello", "-n", ns, "-t", "30s").code == 0

    # restart
    assert server.cli("restart", "super-hello", "-n", ns).code == 0
    assert server.http("GET", f"/api/rollouts/{ns}/super-hello")["spec"]["restartAt"]

    # set image: a container that does not exist, then one that does
    r = server.cli("set", "image", "super-hello", "web=ghcr.io/gbaeke/super:1.0.3", "-n", ns)
    assert r.code == 1 and "has no container named 'web'" in r.err
    r = server.cli("set", "image", "super-hello", "super-hello=ghcr.io/gbaeke/super:1.0.3", "-n", ns)
    assert r.code == 0 and r.out.strip() == 'rollout "super-hello" image updated'  # Argo's wording
    ro = server.http("GET", f"/api/rollouts/{ns}/super-hello")
    assert ro["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/gbaeke/super:1.0.3"

    # logs of a live pod: the new revision's, once it is up in preview (older pods may be going away
    # while the restart and the image change replace them, and a deleted pod's logs go with it)
    r = server.cli("status", "super-hello", "-n", ns, "--until", "paused", "-t", "120s")
    assert r.code == 0, r
    pods = [
        p
        for rev in server.info(ns, "super-hello")["revisions"]
        for rs in rev["replicaSets"]
        if "preview" in rs["roles"]
        for p in rs["pods"]
        if p["status"] == "Running"
    ]
    assert pods, server.info(ns, "super-hello")
    proc = server.cli_process("logs", pods[0]["name"], "-n", ns)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "listening" in out
    r = server.cli("logs", "no-such-pod", "-n", ns)
    assert r.code == 1 and "pod 'no-such-pod' not found" in r.err

    # delete: the rollout, its ReplicaSets and its processes go
    r = server.cli("delete", "rollout", "super-hello", "-n", ns)
    assert r.code == 0 and r.out.strip() == 'rollout.argoproj.io "super-hello" deleted'
    server.wait_for(
        "pods gone", lambda: server.http("GET", f"/api/pods?namespace={ns}")["items"] == [], timeout=30
    )
    assert server.cli("delete", "rollout", "super-hello", "-n", ns).code == 1


def test_status_timeout_and_degraded(server: ServerProcess, tmp_path: Path) -> None:
    ns = "cli-never-ready"
    text, _, _ = seed_manifest(ns, replicas=1, extra_env={"DEMO_FAIL": "never-ready"})
    text = text.replace(
        "  revisionHistoryLimit: 6\n", "  revisionHistoryLimit: 6\n  progressDeadlineSeconds: 4\n"
    )
    assert server.cli("apply", "-f", write(tmp_path, "never.yaml", text)).code == 0
    r = server.cli("status", "super-hello", "-n", ns, "-t", "1s")
    # Argo's plugin: exit 1, "Error: Rollout status watch exceeded timeout" on stderr
    assert r.code == 1 and r.err.strip() == "Error: Rollout status watch exceeded timeout", r
    server.http("POST", "/api/debug/clock", {"advance": 10})  # past progressDeadlineSeconds
    r = server.cli("status", "super-hello", "-n", ns, "-t", "30s")
    assert r.code == 1, r
    assert "ProgressDeadlineExceeded" in r.out and "degraded state" in r.err
    assert server.cli("delete", "rollout", "super-hello", "-n", ns).code == 0


def test_get_rollout_watch_redraws_until_interrupted(server: ServerProcess, tmp_path: Path) -> None:
    ns = "cli-watch"
    text, _, _ = seed_manifest(ns, replicas=1)
    assert server.cli("apply", "-f", write(tmp_path, "w.yaml", text)).code == 0
    proc = server.cli_process("get", "rollout", "super-hello", "-n", ns, "-w")

    def watching() -> bool:
        # Its stream from the server is open (a socket among its files): it is past start-up.
        fds = Path(f"/proc/{proc.pid}/fd")
        return fds.exists() and any(str(fd.readlink()).startswith("socket:") for fd in fds.iterdir())

    try:
        assert server.cli("status", "super-hello", "-n", ns, "-t", "60s").code == 0
        server.wait_for("the watch to be streaming", watching, timeout=60)
        time.sleep(1.5)  # a redraw or two (not a condition: the test checks what it drew at the end)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "⟳ super-hello" in out and "✔ Healthy" in out, out
    assert server.cli("delete", "rollout", "super-hello", "-n", ns).code == 0


def test_logs_follow_streams_until_interrupted(server: ServerProcess, tmp_path: Path) -> None:
    ns = "cli-logs"
    text, _, _ = seed_manifest(ns, replicas=1)
    assert server.cli("apply", "-f", write(tmp_path, "l.yaml", text)).code == 0
    assert server.cli("status", "super-hello", "-n", ns, "-t", "60s").code == 0
    pod = server.info(ns, "super-hello")["revisions"][0]["replicaSets"][0]["pods"][0]["name"]
    proc = server.cli_process("logs", pod, "-n", ns, "-f")
    first = threading.Event()
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            first.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert first.wait(30), "no log output"
        time.sleep(0.5)
        assert proc.poll() is None  # still following
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
        reader.join(5)
    assert proc.returncode == 0
    assert "listening" in "".join(lines)
    assert server.cli("delete", "rollout", "super-hello", "-n", ns).code == 0


def test_token_is_required_when_set(tmp_path: Path) -> None:
    tok = tmp_path / "token"
    tok.write_text("s3cret-token\n")
    (tmp_path / "state").mkdir()
    s = ServerProcess(tmp_path / "state", token_file=tok)
    try:
        r = s.cli("list", "rollouts")
        assert r.code == 1 and "needs a token" in r.err
        r = s.cli("--token-file", str(tok), "list", "rollouts")
        assert r.code == 0, r
        wrong = tmp_path / "wrong"
        wrong.write_text("nope")
        assert s.cli("--token-file", str(wrong), "list", "rollouts").code == 1
    finally:
        s.stop()
