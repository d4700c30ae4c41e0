"""The analysis verbs of the CLI against a real `rollouts server`: `get rollout` shows a Rollout's
AnalysisRuns under their revision (also with -w, and in Argo's /api/v1 info), `get analysisrun`,
`terminate analysisrun` and `create analysisrun --from TEMPLATE`.

The runs are written through the API as Argo's controller writes them: created with an owner
reference to the Rollout and the labels `rollouts-pod-template-hash` and `rollout-type`, then given
a finished status through the status subresource. They carry the instance-id label of another
controller, so the server's own AnalysisRun controller never measures them (the seed's Rollout has
no analysis, so its rollout controller leaves them alone too)."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path
from typing import Any

from cli_support import seed_manifest

from harness.serverharness import ServerProcess
from harness.support import MetricEndpoint

NAME = "super-hello"

TEMPLATE = """\
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: error-rate
  labels: {team: shop}
spec:
  args:
  - name: service
  - name: threshold
    value: "0.05"
  metrics:
  - name: error-rate
    interval: 10s
    count: 3
    successCondition: result <= {{args.threshold}}
    provider:
      web: {url: "http://127.0.0.1:9/{{args.service}}", jsonPath: "{$.errorRate}"}
---
apiVersion: argoproj.io/v1alpha1
kind: ClusterAnalysisTemplate
metadata:
  name: always-ok
spec:
  metrics:
  - name: ok
    provider: {web: {url: "http://127.0.0.1:9/"}}
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def start_rollout(server: ServerProcess, tmp_path: Path, ns: str) -> tuple[dict[str, Any], str]:
    """The seed's rollout (one replica) in ``ns`` with its first ReplicaSet: (Rollout, its hash)."""
    text, _, _ = seed_manifest(ns, replicas=1)
    assert server.cli("apply", "-f", write(tmp_path, f"{ns}.yaml", text)).code == 0
    info = server.wait_for("revision 1", lambda: (i := server.info(ns, NAME))["revisions"] and i)
    ro = server.http("GET", f"/api/rollouts/{ns}/{NAME}")
    return ro, info["revisions"][0]["replicaSets"][0]["podTemplateHash"]


def make_run(
    server: ServerProcess,
    ro: dict[str, Any],
    h: str,
    name: str,
    rollout_type: str,
    status: dict[str, Any] | None,
) -> dict[str, Any]:
    """An AnalysisRun of ``ro``'s revision ``h``, written as the controller writes one."""
    ns = ro["metadata"]["namespace"]
    run = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {
                "rollouts-pod-template-hash": h,
                "rollout-type": rollout_type,
                # as a controller of another instance writes them: the server's own AnalysisRun
                # controller leaves them alone, so the status below stays as written
                "argo-rollouts.argoproj.io/controller-instance-id": "cli-tests",
            },
            "ownerReferences": [
                {
                    "apiVersion": "argoproj.io/v1alpha1",
                    "kind": "Rollout",
                    "name": ro["metadata"]["name"],
                    "uid": ro["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "metrics": [
                {
                    "name": "error-rate",
                    "successCondition": "result <= 0.05",
                    "failureLimit": 1,
                    "provider": {"web": {"url": "http://127.0.0.1:9/", "jsonPath": "{$.errorRate}"}},
                }
            ]
        },
    }
    created = server.ok("POST", f"/api/analysisruns?namespace={ns}", run)
    if status is not None:
        created = server.ok("PATCH", f"/api/analysisruns/{ns}/{name}?subresource=status", {"status": status})
    return dict(created)


def measurement(phase: str, value: str, at: str, message: str | None = None) -> dict[str, Any]:
    m = {"phase": phase, "value": value, "startedAt": at, "finishedAt": at}
    if message:
        m["message"] = message
    return m


FAILED_STATUS = {
    "phase": "Failed",
    "message": 'Metric "error-rate" assessed Failed due to failed (2) > failureLimit (1)',
    "startedAt": "2026-01-01T12:00:00Z",
    "completedAt": "2026-01-01T12:00:30Z",
    "metricResults": [
        {
            "name": "error-rate",
            "phase": "Failed",
            "message": 'Metric "error-rate" assessed Failed due to failed (2) > failureLimit (1)',
            "count": 4,
            "successful": 1,
            "failed": 2,
            "inconclusive": 0,
            "error": 1,
            "measurements": [
                measurement("Successful", "0.01", "2026-01-01T12:00:00Z"),
                measurement("Error", "", "2026-01-01T12:00:10Z", "received non 2xx response code: 500"),
                measurement("Failed", "0.2", "2026-01-01T12:00:20Z"),
                measurement("Failed", "0.3", "2026-01-01T12:00:30Z"),
            ],
        }
    ],
}


def ok_status(successful: int) -> dict[str, Any]:
    return {
        "phase": "Successful",
        "metricResults": [
            {"name": "error-rate", "phase": "Successful", "count": successful, "successful": successful}
        ],
    }


def tree_line(out: str, name: str) -> tuple[str, ...]:
    """The tree line of ``name`` as (NAME with its prefix, KIND, STATUS, INFO): the AGE column
    depends on the clock and is left out."""
    for line in out.splitlines():
        m = re.search(rf"(^|[\s─]){re.escape(name)}\s", line + " ")
        if m:
            end = m.end() - 1
            cells = re.split(r"\s{2,}", line[end:].strip())
            assert len(cells) == 4, (line, cells)
            return (line[:end], cells[0], cells[1], cells[3])
    raise AssertionError(f"no line for {name} in:\n{out}")


def test_get_rollout_shows_runs_under_their_revision(server: ServerProcess, tmp_path: Path) -> None:
    ns = "cli-ar-tree"
    ro, h = start_rollout(server, tmp_path, ns)
    pre = f"{NAME}-{h}-1-pre"
    post = f"{NAME}-{h}-1-post"
    make_run(server, ro, h, pre, "PrePromotion", ok_status(3))
    make_run(server, ro, h, post, "PostPromotion", FAILED_STATUS)

    r = server.cli("get", "rollout", NAME, "-n", ns)
    assert r.code == 0, r
    lines = r.out.splitlines()
    rs_at = next(i for i, line in enumerate(lines) if f"⧉ {NAME}-{h}" in line)
    # the ReplicaSet is no longer the revision's last child: its branch and its pods' prefix say so
    assert lines[rs_at].startswith("   ├──⧉ ")
    assert all(line.startswith("   │  ") for line in lines if "□" in line)
    assert tree_line(r.out, pre) == (f"   ├──\u03b1 {pre}", "AnalysisRun", "✔ Successful", "✔ 3")
    assert tree_line(r.out, post) == (f"   └──\u03b1 {post}", "AnalysisRun", "✖ Failed", "✔ 1,✖ 2,⚠ 1")

    # Argo's dashboard API carries them as Argo's RolloutInfo does
    info = server.http("GET", f"/api/v1/rollouts/{ns}/{NAME}/info")
    runs = {r["objectMeta"]["name"]: r for r in info["analysisRuns"]}
    assert set(runs) == {pre, post}
    assert {k: runs[post][k] for k in ("icon", "revision", "status", "successful", "failed", "error")} == {
        "icon": "✖",
        "revision": 1,
        "status": "Failed",
        "successful": 1,
        "failed": 2,
        "error": 1,
    }
    assert [m["value"] for m in runs[post]["nonJobInfo"]] == ["0.01", "", "0.2", "0.3"]
    assert runs[post]["metrics"] == [
        {
            "name": "error-rate",
            "successCondition": "result <= 0.05",
            "count": 0,
            "inconclusiveLimit": 0,
            "failureLimit": 1,
        }
    ]


def test_get_rollout_watch_follows_the_runs(server: ServerProcess, tmp_path: Path) -> None:
    ns = "cli-ar-watch"
    ro, h = start_rollout(server, tmp_path, ns)
    proc = server.cli_process("get", "rollout", NAME, "-n", ns, "-w")

    def watching() -> bool:
        # Its stream from the server is open (a socket among its files): it is past start-up.
        fds = Path(f"/proc/{proc.pid}/fd")
        return fds.exists() and any(str(fd.readlink()).startswith("socket:") for fd in fds.iterdir())

    try:
        server.wait_for("the watch to be streaming", watching, timeout=60)
        make_run(server, ro, h, "late-run", "PrePromotion", ok_status(2))
        server.wait_for(
            "the run in the rollout's view",
            lambda: any(r.get("name") == "late-run" for r in server.info(ns, NAME).get("analysisRuns") or []),
            timeout=60,
        )
        time.sleep(3.0)  # the stream pushes the same view to the watch, which redraws
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "\u03b1 late-run" in out and "✔ 2" in out, out


def test_get_analysisrun_shows_metrics_and_measurements(server: ServerProcess, tmp_path: Path) -> None:
    ns = "cli-ar-get"
    ro, h = start_rollout(server, tmp_path, ns)
    make_run(server, ro, h, "post-run", "PostPromotion", FAILED_STATUS)

    r = server.cli("get", "analysisrun", "post-run", "-n", ns)
    assert r.code == 0, r
    head, _, table = r.out.partition("\n\n")
    assert head.splitlines()[:7] == [
        "Name:            post-run",
        f"Namespace:       {ns}",
        "Status:          ✖ Failed",
        'Message:         Metric "error-rate" assessed Failed due to failed (2) > failureLimit (1)',
        f"Owner:           Rollout/{NAME}",
        f"Pod hash:        {h}",  # no revision annotation on this run: its hash label says which
        "Type:            PostPromotion",
    ]
    assert "Measurements:    ✔ 1,✖ 2,⚠ 1" in head.splitlines()
    assert table.splitlines() == [
        "METRIC      STATUS        VALUE  TIME                  INFO",
        "error-rate  ✖ Failed                                   ✔ 1,✖ 2,⚠ 1; "
        'Metric "error-rate" assessed Failed due to failed (2) > failureLimit (1)',
        "├──#1       ✔ Successful  0.01   2026-01-01T12:00:00Z",
        "├──#2       ⚠ Error              2026-01-01T12:00:10Z  received non 2xx response code: 500",
        "├──#3       ✖ Failed      0.2    2026-01-01T12:00:20Z",
        "└──#4       ✖ Failed      0.3    2026-01-01T12:00:30Z",
    ]
    r = server.cli("get", "analysisrun", "post-run", "-n", ns, "-o", "json")
    assert r.code == 0 and '"phase": "Failed"' in r.out
    r = server.cli("get", "analysisrun", "nope", "-n", ns)
    assert r.code == 1 and f"analysisrun 'nope' not found in namespace '{ns}'" in r.err


def test_terminate_analysisrun_sets_spec_terminate(server: ServerProcess, tmp_path: Path) -> None:
    ns = "cli-ar-term"
    ro, h = start_rollout(server, tmp_path, ns)
    make_run(server, ro, h, "run-a", "PrePromotion", ok_status(1))
    make_run(server, ro, h, "run-b", "PrePromotion", ok_status(1))

    r = server.cli("terminate", "analysisrun", "run-a", "run-b", "-n", ns)
    assert r.code == 0, r
    assert r.out.splitlines() == ["analysisRun 'run-a' terminated", "analysisRun 'run-b' terminated"]
    for name in ("run-a", "run-b"):
        run = server.http("GET", f"/api/analysisruns/{ns}/{name}")
        assert run["spec"]["terminate"] is True
        assert run["status"]["phase"] == "Successful"  # the status is the controller's
    r = server.cli("terminate", "analysisrun", "nope", "-n", ns)
    assert r.code == 1 and f"analysisrun 'nope' not found in namespace '{ns}'" in r.err


def test_create_analysisrun_from_a_template(server: ServerProcess, tmp_path: Path) -> None:
    ns = "cli-ar-create"
    assert server.cli("apply", "-n", ns, "-f", write(tmp_path, "t.yaml", TEMPLATE)).code == 0

    def runs() -> list[str]:
        return sorted(
            o["metadata"]["name"] for o in server.http("GET", f"/api/analysisruns?namespace={ns}")["items"]
        )

    # a required arg not supplied: refused, naming the arg and the fix, nothing created
    r = server.cli("create", "analysisrun", "--from", "error-rate", "-n", ns)
    assert r.code == 1
    assert "args.service was not resolved" in r.err and "-a service=VALUE" in r.err, r.err
    assert "nothing was created" in r.err
    r = server.cli("create", "analysisrun", "--from", "error-rate", "-a", "servce=web", "-n", ns)
    assert r.code == 1 and "declares no arg 'servce' (its args: service, threshold)" in r.err, r.err
    r = server.cli("create", "analysisrun", "--from", "missing", "-n", ns)
    assert r.code == 1 and f"analysistemplate 'missing' not found in namespace '{ns}'" in r.err
    assert runs() == []

    r = server.cli("create", "analysisrun", "--from", "error-rate", "-a", "service=web", "-n", ns)
    assert r.code == 0, r
    m = re.fullmatch(r"analysisrun\.argoproj\.io/(error-rate-[a-z0-9]{5}) created\n", r.out)
    assert m, r.out
    run = server.http("GET", f"/api/analysisruns/{ns}/{m.group(1)}")
    assert run["spec"]["args"] == [
        {"name": "service", "value": "web"},
        {"name": "threshold", "value": "0.05"},
    ]
    assert [x["name"] for x in run["spec"]["metrics"]] == ["error-rate"]
    assert run["metadata"]["labels"] == {"team": "shop"}

    r = server.cli(
        "create",
        "analysisrun",
        "--from",
        "error-rate",
        "--name",
        "mine",
        "-a",
        "service=a",
        "-a",
        "threshold=0.1",
        "-n",
        ns,
    )
    assert r.code == 0 and r.out == "analysisrun.argoproj.io/mine created\n", r
    assert server.http("GET", f"/api/analysisruns/{ns}/mine")["spec"]["args"][1] == {
        "name": "threshold",
        "value": "0.1",
    }
    r = server.cli(
        "create", "analysisrun", "--from", "error-rate", "--name", "mine", "-a", "service=a", "-n", ns
    )
    assert r.code == 1 and f"analysisrun 'mine' already exists in namespace '{ns}'" in r.err, r

    r = server.cli("create", "analysisrun", "--from", "always-ok", "-n", ns)
    assert r.code == 1 and "(a ClusterAnalysisTemplate needs --global)" in r.err
    r = server.cli(
        "create", "analysisrun", "--global", "--from", "always-ok", "--generate-name", "smoke-", "-n", ns
    )
    assert r.code == 0 and r.out.startswith("analysisrun.argoproj.io/smoke-"), r
    assert len(runs()) == 3

    # --from-file: the one template of a file, linted first
    one = write(tmp_path, "one.yaml", TEMPLATE.split("---")[0])
    r = server.cli(
        "create", "analysisrun", "--from-file", one, "--name", "from-file", "-a", "service=f", "-n", ns
    )
    assert r.code == 0 and r.out == "analysisrun.argoproj.io/from-file created\n", r
    broken = write(
        tmp_path, "broken.yaml", TEMPLATE.split("---")[0].replace("interval: 10s", "intervall: 10s")
    )
    r = server.cli("create", "analysisrun", "--from-file", broken, "-a", "service=f", "-n", ns)
    assert r.code == 1 and "the template has errors; nothing was created" in r.err and "intervall" in r.err, r
    r = server.cli("create", "analysisrun", "--from-file", write(tmp_path, "two.yaml", TEMPLATE), "-n", ns)
    assert r.code == 1 and "expected one AnalysisTemplate or ClusterAnalysisTemplate, found 2" in r.err, r
    r = server.cli("create", "analysisrun", "-n", ns)
    assert r.code == 2 and "one of --from TEMPLATE or --from-file FILE" in r.err, r
    assert len(runs()) == 4


def test_a_run_the_controller_made_shows_under_its_revision(server: ServerProcess, tmp_path: Path) -> None:
    """End to end: the server's own controllers make and measure a pre-promotion run, and the CLI
    shows it where Argo's plugin would (under revision 2, by the run's revision annotation)."""
    ns = "cli-ar-e2e"
    endpoint = MetricEndpoint(True)
    try:
        text, _, _ = seed_manifest(ns, replicas=1)
        text = text.replace(
            "      autoPromotionEnabled: false\n",
            "      autoPromotionEnabled: false\n"
            "      prePromotionAnalysis:\n"
            "        templates: [{templateName: ok}]\n",
        )
        text += f"""---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: ok, namespace: {ns}}}
spec:
  metrics:
  - name: ok
    count: 2
    interval: 1s
    successCondition: result == true
    provider:
      web: {{url: "{endpoint.url}/ok", jsonPath: "{{$.value}}"}}
"""
        path = write(tmp_path, "e2e.yaml", text)
        assert server.cli("apply", "-f", path).code == 0
        assert server.cli("status", NAME, "-n", ns, "-t", "90s").code == 0
        r = server.cli("set", "env", NAME, "*", "WELCOME=VERSION V3", "-n", ns)
        assert r.code == 0, r

        def run_done() -> Any:
            runs = server.info(ns, NAME)["analysisRuns"]
            return runs if runs and runs[0]["status"] == "Successful" else None

        (run,) = server.wait_for("the pre-promotion run to succeed", run_done, timeout=120)
        assert run["revision"] == 2 and run["rolloutType"] == "PrePromotion"
        h = run["podTemplateHash"]
        assert run["name"] == f"{NAME}-{h}-2-pre"

        r = server.cli("get", "rollout", NAME, "-n", ns)
        assert r.code == 0, r
        lines = r.out.splitlines()
        assert tree_line(r.out, run["name"]) == (
            f"│  └──\u03b1 {run['name']}",
            "AnalysisRun",
            "✔ Successful",
            "✔ 2",
        )
        # under revision 2, after its ReplicaSet
        rev2 = lines.index("├──# revision:2")
        at = next(i for i, line in enumerate(lines) if f"\u03b1 {run['name']}" in line)
        assert rev2 < at < lines.index("└──# revision:1")

        r = server.cli("get", "analysisrun", run["name"], "-n", ns)
        assert r.code == 0, r
        assert (
            "Revision:        2" in r.out.splitlines()
            and "Status:          ✔ Successful" in r.out.splitlines()
        )
        assert [x.split()[:3] for x in r.out.splitlines() if x.startswith(("├──#", "└──#"))] == [
            ["├──#1", "✔", "Successful"],
            ["└──#2", "✔", "Successful"],
        ]
        assert all(" true " in x for x in r.out.splitlines() if x.startswith(("├──#", "└──#")))
    finally:
        endpoint.close()
