"""`rollouts demo --analysis`: blue-green with automated analysis on the local runtime, no metrics
system needed (`make demo-analysis`).

The seed's Rollout gains a pre-promotion and a post-promotion analysis whose one metric is a stock
Argo `web` metric on the server's built-in traffic metrics (the proxy counts every answer per
Service and revision; docs/analysis.md). While the story runs, a thread here sends a steady trickle
of GETs to both Services on 127.0.0.1 (bounded: at most one every 50 ms, only while the demo runs).

1. V2 is deployed (a first deploy runs no analysis).
2. A broken V3 (the demo app answers half of its requests with 500: ERROR_RATE=0.5) comes up on
   preview; its pre-promotion run measures the preview's real error rate, fails, and the update is
   aborted by itself: production never leaves V2.
3. A good V3 comes up; its pre-promotion run passes, auto-promotion switches production, and its
   post-promotion run (on production's traffic) passes: V3 becomes stable.

Each verdict is printed with the error rates the runs measured.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from typing import Any

import yaml

from .client import CliError
from .demo import NAMESPACE, ROLLOUT, STEP_TIMEOUT, Demo, manifest_text, shift_ports

TEMPLATE = "error-rate"


def analysis_template(server_url: str) -> dict[str, Any]:
    """The demo's AnalysisTemplate: the revision's share of 5xx answers on a Service over the last
    10 s, measured three times 3 s apart after 4 s of traffic; any measurement at 5% or more fails."""
    url = (
        "{{args.server}}/api/services/{{args.namespace}}/{{args.service-name}}/traffic"
        "?revision={{args.hash}}&window=10s"
    )
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": TEMPLATE, "namespace": NAMESPACE},
        "spec": {
            "args": [
                {"name": "service-name"},
                {"name": "hash"},
                {"name": "namespace", "value": NAMESPACE},
                {"name": "server", "value": server_url},
            ],
            "metrics": [
                {
                    "name": "error-rate",
                    "initialDelay": "4s",
                    "interval": "3s",
                    "count": 3,
                    "failureLimit": 0,
                    "successCondition": "result < 0.05",
                    "provider": {"web": {"url": url, "jsonPath": "{$.errorRate}", "timeoutSeconds": 5}},
                }
            ],
        },
    }


def analysis_manifest(offset: int, server_url: str, env: dict[str, str] | None = None) -> str:
    """The seed's manifest with 2 replicas, auto-promotion and both analyses, plus the template;
    ``env`` set on the container (WELCOME, ERROR_RATE)."""
    docs = [d for d in yaml.safe_load_all(shift_ports(manifest_text(), offset)) if d]
    for d in docs:
        if d.get("kind") != "Rollout":
            continue
        d["spec"]["replicas"] = 2
        container = d["spec"]["template"]["spec"]["containers"][0]
        values = {e["name"]: e.get("value") for e in container.get("env") or []}
        values.update(env or {})
        container["env"] = [{"name": k, "value": v} for k, v in values.items()]
        bg = d["spec"]["strategy"]["blueGreen"]
        bg["autoPromotionEnabled"] = True

        def analysis(service: str) -> dict[str, Any]:
            return {
                "templates": [{"templateName": TEMPLATE}],
                "args": [
                    {"name": "service-name", "value": service},
                    {"name": "hash", "valueFrom": {"podTemplateHashValue": "Latest"}},
                ],
            }

        bg["prePromotionAnalysis"] = analysis(bg["previewService"])
        bg["postPromotionAnalysis"] = analysis(bg["activeService"])
    docs.append(analysis_template(server_url))
    return yaml.safe_dump_all(docs, sort_keys=False)


def _percent(value: Any) -> str:
    """A measured error rate (the JSON text a web measurement keeps) as a percentage."""
    try:
        return f"{float(value):.1%}"
    except (TypeError, ValueError):
        return "no traffic yet" if value in (None, "null") else str(value)


class Traffic:
    """GETs to the production and preview ports, one every 50 ms, until stopped."""

    def __init__(self, ports: tuple[int, ...]) -> None:
        self.ports = ports
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="demo-traffic")

    def _run(self) -> None:
        while not self.stop.is_set():
            for port in self.ports:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                        r.read()
                except (urllib.error.URLError, OSError):
                    pass  # a 500 (the broken version) or a Service not up yet: counted by the proxy
                self.stop.wait(0.05)

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


class AnalysisDemo(Demo):
    """The analysis story (see the module docstring)."""

    def write(self, name: str, env: dict[str, str]) -> str:
        path = self.workdir / name
        path.write_text(analysis_manifest(self.offset, self.url, env), encoding="utf-8")
        return str(path)

    def runs_of(self, revision: str) -> list[dict[str, Any]]:
        return runs_of_revision(self.backend, NAMESPACE, revision)

    def report(self, revision: str) -> None:
        """Each run of the revision: its phase and the error rates it measured."""
        for run in self.runs_of(revision):
            kind = (run["metadata"].get("labels") or {}).get("rollout-type", "")
            status = run.get("status") or {}
            rates = [
                _percent(m.get("value"))
                for result in status.get("metricResults") or []
                for m in result.get("measurements") or []
            ]
            self.console.print(
                f"  {kind} run {run['metadata']['name']}: {status.get('phase', 'Pending')}; "
                f"measured error rate: {', '.join(rates) or 'none yet'}"
            )
        print()

    def wait_for(self, what: str, check: Any, limit: float = 120.0) -> None:
        deadline = time.monotonic() + limit
        while not check():
            if time.monotonic() > deadline:
                raise CliError(f"the demo waited {limit:.0f} s for {what}")
            time.sleep(0.5)

    def status(self) -> str:
        return str(self.backend.info(NAMESPACE, ROLLOUT).get("status") or "")

    def run(self) -> None:
        self.check_ports()
        self.start_server()
        ns = ["-n", NAMESPACE]
        manifest = self.write("super-hello-analysis.yaml", {})
        broken = self.write("super-hello-v3-broken.yaml", {"WELCOME": "VERSION V3", "ERROR_RATE": "0.5"})
        good = self.write("super-hello-v3.yaml", {"WELCOME": "VERSION V3", "ERROR_RATE": "0"})

        self.say(
            "1. Apply the seed's Rollout with a pre- and a post-promotion analysis, and the AnalysisTemplate "
            "they name: a stock Argo web metric on the server's own traffic counts (no Prometheus)."
        )
        self.rollouts("apply", "-f", manifest)
        self.rollouts("status", ROLLOUT, *ns, "--timeout", STEP_TIMEOUT)
        with Traffic((self.prod, self.preview)):
            self.say("   Traffic starts: a GET to each Service every 50 ms.\n")
            self.gets("VERSION V2", "VERSION V2")

            self.say(
                "2. A broken V3: the app answers half its requests with 500 (ERROR_RATE=0.5 in the manifest)."
            )
            self.rollouts("apply", "-f", broken)
            self.wait_for("the broken version's analysis to abort it", lambda: self.status() == "Degraded")
            self.rollouts("get", "rollout", ROLLOUT, *ns)
            self.say("   Its pre-promotion analysis measured the preview's real error rate and aborted it:")
            self.report("2")
            self.gets("VERSION V2", "")
            self.console.print("  production never left V2.\n")

            self.say("3. A good V3 (ERROR_RATE=0): analysis passes before and after the switch.")
            self.rollouts("apply", "-f", good)
            self.rollouts("status", ROLLOUT, *ns, "--timeout", "180s")
            self.wait_for(
                "the post-promotion run to finish",
                lambda: (
                    all((r.get("status") or {}).get("phase") == "Successful" for r in self.runs_of("3"))
                    and len(self.runs_of("3")) == 2
                ),
            )
            self.rollouts("get", "rollout", ROLLOUT, *ns)
            self.report("3")
            self.gets("VERSION V3", "VERSION V3")

        if not self.keep:
            self.say("Clean up.")
            self.rollouts("delete", "rollout", ROLLOUT, *ns)
        self.console.print(
            "[green]Analysis demo complete: one bad version aborted, one good version promoted, "
            "both by the measured error rate.[/green]"
        )


def run_analysis_demo(port_offset: int, keep: bool) -> None:
    d = AnalysisDemo(port_offset, keep, None)
    try:
        d.run()
    except BaseException:
        d.keep = False
        d.cleanup()
        raise
    d.cleanup()


__all__ = ["AnalysisDemo", "analysis_manifest", "run_analysis_demo"]


def runs_of_revision(backend: Any, namespace: str, revision: str) -> list[dict[str, Any]]:
    """The AnalysisRuns of a revision (the revision annotation the controller writes on them),
    oldest first."""
    runs = backend.list("AnalysisRun", namespace)
    mine = [
        r
        for r in runs
        if (r["metadata"].get("annotations") or {}).get("rollout.argoproj.io/revision") == revision
    ]
    return sorted(mine, key=lambda r: r["metadata"].get("creationTimestamp") or "")
