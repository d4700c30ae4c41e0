"""`rollouts demo --canary` (`make demo DEMO=canary`): Argo's canary strategy on the local runtime,
with the share of traffic each version really gets measured at every step.

The Rollout is examples/canary/canary-hello.yaml: 2 replicas, steps setWeight 20, pause,
setWeight 50, pause 10s, setWeight 100, and a trafficRouting entry, so the local proxy splits the
stable Service's requests (port 8090) between the stable and canary pods with exact weights. At each
step the demo sends 200 GETs through that port on one keep-alive connection and prints which
version answered how many.

1. V1 is deployed: all answers V1.
2. V2: the first step gives it 20% and the pause waits: 80/20.
3. `rollouts promote`: setWeight 50 and the 10 s pause: 50/50.
4. The last step gives it 100%, and V2 becomes stable.
5. V3 answers half its requests with 500 (the demo app's ERROR_RATE=0.5) and its steps have an
   analysis step after setWeight 20, running the AnalysisTemplate `error-rate` on the proxy's own
   counts of the canary's answers through the stable Service (no Prometheus). While a trickle of
   GETs runs, the analysis fails and the update is aborted: all traffic is back on V2.
   The controller runs the step's AnalysisRun and aborts the update by itself.
"""

from __future__ import annotations

import http.client
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from .client import CliError
from .demo import SERVER_PORT, STEP_TIMEOUT, Demo, port_free
from .demo_analysis import Traffic, analysis_template, runs_of_revision

NAMESPACE = "my-app"
ROLLOUT = "canary-hello"
STABLE_SERVICE, CANARY_SERVICE = "canary-hello-stable", "canary-hello-canary"
STABLE_PORT, CANARY_PORT = 8090, 8091
#: GETs per measurement.
SAMPLE = 200


def canary_manifest_text() -> str:
    """examples/canary/canary-hello.yaml (the copy shipped in the package; a test keeps them equal)."""
    return Path(__file__).with_name("canary-hello.yaml").read_text(encoding="utf-8")


def canary_manifest(offset: int, env: dict[str, str] | None = None, analysis: bool = False) -> str:
    """The example with its Service ports moved by ``offset``, ``env`` set on the container, and,
    with ``analysis``, an analysis step after the first setWeight plus the template it runs."""
    docs = [d for d in yaml.safe_load_all(canary_manifest_text()) if d]
    for d in docs:
        if d.get("kind") == "Service":
            for p in d["spec"]["ports"]:
                p["port"] += offset
        if d.get("kind") != "Rollout":
            continue
        container = d["spec"]["template"]["spec"]["containers"][0]
        values = {e["name"]: e.get("value") for e in container.get("env") or []}
        values.update(env or {})
        container["env"] = [{"name": k, "value": v} for k, v in values.items()]
        if analysis:
            d["spec"]["strategy"]["canary"]["steps"].insert(1, {"analysis": step_analysis()})
    return yaml.safe_dump_all(docs, sort_keys=False)


def step_analysis() -> dict[str, Any]:
    """The analysis step: the error-rate template on the canary's answers through the stable
    Service (the proxy counts each answer under the Service it came through and the revision that
    gave it)."""
    return {
        "templates": [{"templateName": "error-rate"}],
        "args": [
            {"name": "service-name", "value": STABLE_SERVICE},
            {"name": "hash", "valueFrom": {"podTemplateHashValue": "Latest"}},
        ],
    }


def measure(port: int, n: int = SAMPLE) -> tuple[Counter[str], int]:
    """``n`` GETs through ``port`` on one keep-alive connection (a new one after an error):
    the answers by body (``VERSION V2``, or the status for an error) and how many failed to
    connect."""
    answers: Counter[str] = Counter()
    failed = 0
    conn: http.client.HTTPConnection | None = None
    for _ in range(n):
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/")
            resp = conn.getresponse()
            body = resp.read(200).decode(errors="replace").strip()
            answers[body if resp.status == 200 else f"HTTP {resp.status}"] += 1
        except (OSError, http.client.HTTPException):
            failed += 1
            if conn is not None:
                conn.close()
            conn = None
    if conn is not None:
        conn.close()
    return answers, failed


def shares_line(answers: Counter[str], errors_of: str | None = None) -> str:
    """``V1 80.0% (160/200), V2 20.0% (40/200)``: each version's share of the answers, newest
    last; ``errors_of``: the version whose answers the 500s are (the broken one)."""
    total = sum(answers.values())
    per_version: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for body, n in answers.items():
        if body.startswith("VERSION "):
            per_version[body.removeprefix("VERSION ")] += n
        elif errors_of is not None:
            per_version[errors_of] += n
            errors[errors_of] += n
        else:
            per_version[body] += n
    parts = []
    for version in sorted(per_version):
        n = per_version[version]
        note = f", {errors[version]} of them HTTP 500" if errors[version] else ""
        parts.append(f"{version} {100.0 * n / total:.1f}% ({n}/{total}{note})")
    return ", ".join(parts) if parts else "no answers"


class CanaryDemo(Demo):
    """The canary story (see the module docstring)."""

    def __init__(self, port_offset: int, keep: bool) -> None:
        super().__init__(port_offset, keep, None)
        self.stable_port = STABLE_PORT + port_offset
        self.canary_port = CANARY_PORT + port_offset

    def check_ports(self) -> None:
        for port, what in (
            (self.stable_port, "stable Service"),
            (self.canary_port, "canary Service"),
            (SERVER_PORT + self.offset, "demo server"),
        ):
            if not port_free(port):
                raise CliError(
                    f"port {port} (the demo's {what}) is already in use on 127.0.0.1",
                    [
                        "free it, or shift the demo's ports: "
                        f"rollouts demo --canary --port-offset {self.offset + 10}"
                    ],
                )

    def keep_hint(self) -> list[str]:
        return [
            f"  rollouts --server {self.url} get rollout {ROLLOUT} -n {NAMESPACE} -w",
            f"  curl http://127.0.0.1:{self.stable_port}/   curl http://127.0.0.1:{self.canary_port}/",
        ]

    def write(self, name: str, env: dict[str, str] | None = None, analysis: bool = False) -> str:
        path = self.workdir / name
        docs = canary_manifest(self.offset, env, analysis)
        if analysis:
            docs += "---\n" + yaml.safe_dump(analysis_template(self.url), sort_keys=False)
        path.write_text(docs, encoding="utf-8")
        return str(path)

    def info(self) -> dict[str, Any]:
        return dict(self.backend.info(NAMESPACE, ROLLOUT))

    def wait_for(self, what: str, check: Any, limit: float = 120.0) -> Any:
        deadline = time.monotonic() + limit
        while True:
            got = check()
            if got:
                return got
            if time.monotonic() > deadline:
                raise CliError(f"the demo waited {limit:.0f} s for {what}")
            time.sleep(0.2)

    def at_step(self, step: str, weight: int) -> bool:
        """The Rollout is at ``step`` and the weight in force is ``weight``."""
        canary = self.info().get("canary") or {}
        return canary.get("step") == step and canary.get("actualWeight") == weight

    def show_shares(self, what: str, errors_of: str | None = None) -> str:
        answers, failed = measure(self.stable_port)
        line = shares_line(answers, errors_of)
        self.console.print(f"  {SAMPLE} GETs on http://127.0.0.1:{self.stable_port}/ ({what})")
        self.console.print(f"  measured: {line}" + (f"; {failed} failed to connect" if failed else ""))
        print()
        return line

    def runs_of(self, revision: str) -> list[dict[str, Any]]:
        return runs_of_revision(self.backend, NAMESPACE, revision)

    def report_runs(self, runs: list[dict[str, Any]]) -> None:
        for run in runs:
            status = run.get("status") or {}
            rates = [
                f"{float(m['value']):.1%}" if _is_number(m.get("value")) else str(m.get("value"))
                for result in status.get("metricResults") or []
                for m in result.get("measurements") or []
            ]
            self.console.print(
                f"  run {run['metadata']['name']}: {status.get('phase', 'Pending')}; "
                f"measured error rate of V3: {', '.join(rates) or 'none yet'}"
            )
        print()

    # -- the story -------------------------------------------------------------------------
    def run(self) -> None:
        self.check_ports()
        self.start_server()
        ns = ["-n", NAMESPACE]
        manifest = self.write("canary-hello.yaml")

        self.say(
            "1. Apply the canary Rollout (2 replicas, WELCOME=VERSION V1; steps setWeight 20, pause, "
            "setWeight 50, pause 10s, setWeight 100) and its stable and canary Services."
        )
        self.rollouts("apply", "-f", manifest)
        self.rollouts("status", ROLLOUT, *ns, "--timeout", STEP_TIMEOUT)
        self.rollouts("get", "rollout", ROLLOUT, *ns)
        self.show_shares("the stable Service: all V1")

        self.say("2. A new version, V2: the first step gives it 20% of the requests, then the pause waits.")
        self.rollouts("set", "env", ROLLOUT, ROLLOUT, "WELCOME=VERSION V2", *ns)
        self.rollouts("status", ROLLOUT, *ns, "--until", "paused", "--timeout", STEP_TIMEOUT)
        self.wait_for("the canary to take 20%", lambda: self.at_step("1/5", 20))
        self.rollouts("get", "rollout", ROLLOUT, *ns)
        self.rollouts("list", "rollouts", *ns)
        self.show_shares("the proxy splits them: setWeight 20")

        self.say("3. Promote: on to setWeight 50, then a 10 s pause.")
        self.rollouts("promote", ROLLOUT, *ns)
        self.wait_for("the canary to take 50%", lambda: self.at_step("3/5", 50), 60)
        self.show_shares("setWeight 50, during the 10 s pause")
        self.rollouts("get", "rollout", ROLLOUT, *ns)

        self.say("4. The pause ends by itself; the last step gives V2 100% and V2 becomes stable.")
        self.rollouts("status", ROLLOUT, *ns, "--timeout", STEP_TIMEOUT)
        self.rollouts("get", "rollout", ROLLOUT, *ns)
        self.show_shares("all V2")

        self.bad_version(ns)

        if not self.keep:
            self.say("Clean up.")
            self.rollouts("delete", "rollout", ROLLOUT, *ns)
        self.console.print(
            "[green]Canary demo complete: V2 promoted step by step, V3 aborted by the analysis of "
            "its measured error rate.[/green]"
        )

    def bad_version(self, ns: list[str]) -> None:
        self.say(
            "5. V3 answers half its requests with 500 (ERROR_RATE=0.5). Its steps gain an analysis "
            "step after setWeight 20: the AnalysisTemplate error-rate, on the proxy's own counts of "
            "V3's answers through the stable Service (no Prometheus). A failed run aborts the update."
        )
        broken = self.write("canary-hello-v3.yaml", {"WELCOME": "VERSION V3", "ERROR_RATE": "0.5"}, True)
        self.rollouts("apply", "-f", broken)
        with Traffic((self.stable_port,)):
            self.say("   A trickle of GETs starts: one every 50 ms through the stable Service.\n")
            self.wait_for("the canary to take 20%", lambda: self.at_step("1/6", 20))
            self.show_shares("setWeight 20 while the analysis runs", errors_of="V3")
            self.wait_for(
                "the analysis to abort the update", lambda: self.info().get("status") == "Degraded", 150
            )
            self.rollouts("get", "rollout", ROLLOUT, *ns)
            self.report_runs(self.runs_of(str(self.info_revision())))
            self.wait_for(
                "all traffic back on stable", lambda: self.info().get("canary", {}).get("actualWeight") == 0
            )
            self.show_shares("aborted: all traffic back on the stable V2")

    def info_revision(self) -> int:
        revisions = self.info().get("revisions") or []
        return int(revisions[0]["revision"]) if revisions else 0


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def run_canary_demo(port_offset: int, keep: bool) -> None:
    d = CanaryDemo(port_offset, keep)
    try:
        d.run()
    except BaseException:
        d.keep = False
        d.cleanup()
        raise
    d.cleanup()


__all__ = ["CanaryDemo", "canary_manifest", "measure", "run_canary_demo", "shares_line"]
