"""The local runtime's built-in traffic metrics, end to end (docs/analysis.md, "Built-in traffic
metrics").

Everything is real: a `rollouts server` subprocess with its proxy process, the demo app's
replicas as processes (V1 good, V2 answering every fourth `GET /` with 500 through ERROR_RATE),
requests sent through the Services' ports, and the answers read from the server's `/metrics`
(parsed by prometheus_client's own parser) and `/api/services/{ns}/{name}/traffic`. The numbers
must match what the client saw, request for request. Then the `web` provider
(controller/providers/web.py) measures the example AnalysisTemplate's metric
(examples/analysis/error-rate-web.yaml) against the live endpoint: Successful for V1, Failed for V2;
and a real Prometheus (Debian's package) scrapes /metrics and holds the same counts.
"""

from __future__ import annotations

import asyncio
import copy
import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_support import REPO, E2EServer, finish, new_state_dir, seed_docs, with_env
from prometheus_client.parser import text_string_to_metric_families

from harness.serverharness import ServerProcess, free_port
from pyrollouts.controller.providers.web import measure
from pyrollouts.model.analysisargs import merge_args, resolve_metric

NS = "traffic"
PROD, PREVIEW = "super-hello-prod", "super-hello-preview"
TEMPLATE = REPO / "examples" / "analysis" / "error-rate-web.yaml"


class Setup:
    def __init__(self, server: E2EServer, prod: int, preview: int, good: str, bad: str) -> None:
        self.server = server
        self.prod = prod
        self.preview = preview
        self.good = good  # V1's pod-template hash: behind the active Service
        self.bad = bad  # V2's: behind the preview Service, ERROR_RATE=0.25


def fetch(port: int, path: str = "/") -> tuple[int, str]:
    """One request through a Service port: (status, the answering pod's name)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            resp.read()
            return resp.status, resp.headers.get("X-Pod-Name", "")
    except urllib.error.HTTPError as exc:
        exc.read()
        return exc.code, exc.headers.get("X-Pod-Name", "")
    except OSError:
        return 0, ""


def hash_of(server: E2EServer, welcome: str) -> str:
    """The pod-template hash of the ReplicaSet whose WELCOME is ``welcome``."""
    for rs in server.http("GET", f"/api/replicasets?namespace={NS}")["items"]:
        env = rs["spec"]["template"]["spec"]["containers"][0].get("env") or []
        if {"name": "WELCOME", "value": welcome} in env:
            return str(rs["metadata"]["labels"]["rollouts-pod-template-hash"])
    raise KeyError(welcome)


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    """V1 (good) promoted behind the active Service, V2 (ERROR_RATE=0.25) behind the preview."""
    state_dir = new_state_dir()
    state_dir.mkdir(parents=True)
    server: E2EServer | None = None
    try:
        server = E2EServer(state_dir)
        prod, preview = free_port(), free_port()
        docs = seed_docs(NS, prod, preview, replicas=1, welcome="V1")
        server.ok("POST", "/api/apply", {"objects": docs})
        good = server.wait_for("V1's ReplicaSet", lambda: hash_of(server, "V1"))
        # /healthz, not /: the demo app's ERROR_RATE counts only GET /.
        server.wait_for("V1 behind the active Service", lambda: good in fetch(prod, "/healthz")[1])
        server.ok("POST", "/api/apply", {"objects": with_env(docs, WELCOME="V2", ERROR_RATE="0.25")})
        bad = server.wait_for("V2's ReplicaSet", lambda: hash_of(server, "V2"))
        server.wait_for("V2 behind the preview Service", lambda: bad in fetch(preview, "/healthz")[1])
        yield Setup(server, prod, preview, good, bad)
    finally:
        finish(state_dir, server)


def traffic(server: E2EServer, service: str, query: str) -> dict[str, Any]:
    return dict(server.http("GET", f"/api/services/{NS}/{service}/traffic?{query}"))


def scrape(server: E2EServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The server's /metrics, parsed: {(sample name, sorted labels): value}."""
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def labels(service: str, revision: str, **more: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"namespace": NS, "service": service, "revision": revision, **more}.items()))


def test_counts_through_a_service_port_are_exact(setup: Setup) -> None:
    srv = setup.server
    before = traffic(srv, PREVIEW, f"revision={setup.bad}&window=15m")
    statuses = [fetch(setup.preview)[0] for _ in range(20)]
    # A fresh V2 replica answers every fourth GET / with 500 (ERROR_RATE=0.25).
    assert statuses == [200, 200, 200, 500] * 5
    after = traffic(srv, PREVIEW, f"revision={setup.bad}&window=15m")
    assert after["requestsTotal"] == before["requestsTotal"] + 20
    assert after["errors5xxTotal"] == before["errors5xxTotal"] + 5 == 5
    # The proxy started less than 15 minutes ago: the window holds everything it counted.
    assert (after["requests"], after["errors5xx"]) == (after["requestsTotal"], 5)
    assert after["errorRate"] == 5 / after["requests"]
    assert after["hash"] == setup.bad and after["windowSeconds"] == 900
    assert after["byClass"]["5xx"] == 5 and sum(after["byClass"].values()) == after["requests"]
    assert after["latencyP50Seconds"] is not None and after["latencyP99Seconds"] is not None
    # The list form has the same revision in it, and sums over the Service's revisions.
    every = traffic(srv, PREVIEW, "window=15m")
    [listed] = [r for r in every["revisions"] if r["hash"] == setup.bad]
    assert {k: listed[k] for k in ("requests", "errors5xx", "errorRate")} == {
        k: after[k] for k in ("requests", "errors5xx", "errorRate")
    }
    assert every["requests"] == sum(r["requests"] for r in every["revisions"])
    # /metrics says the same in Prometheus' terms, with the documented labels.
    samples = scrape(srv)
    bad = labels(PREVIEW, setup.bad)
    assert samples[("pyrollouts_proxy_requests_total", labels(PREVIEW, setup.bad, code="5xx"))] == 5
    by_code = [
        v
        for (name, lbl), v in samples.items()
        if name == "pyrollouts_proxy_requests_total"
        and dict(lbl).get("revision") == setup.bad
        and dict(lbl)["service"] == PREVIEW
    ]
    assert sum(by_code) == after["requestsTotal"]
    assert samples[("pyrollouts_proxy_request_duration_seconds_count", bad)] == after["requestsTotal"]
    assert (
        "pyrollouts_proxy_request_duration_seconds_bucket",
        labels(PREVIEW, setup.bad, le="+Inf"),
    ) in samples


def test_old_traffic_leaves_a_short_window_and_a_fresh_burst_shows(setup: Setup) -> None:
    srv = setup.server
    query = f"revision={setup.bad}&window=10s"
    quiet = srv.wait_for(
        "the earlier requests to leave the 10 s window",
        lambda: (lambda t: t if t["requests"] == 0 else None)(traffic(srv, PREVIEW, query)),
    )
    assert quiet["errorRate"] is None and quiet["errors5xx"] == 0 and quiet["requestsTotal"] >= 20
    statuses = [fetch(setup.preview)[0] for _ in range(8)]
    burst = traffic(srv, PREVIEW, query)
    assert (burst["requests"], burst["errors5xx"]) == (8, statuses.count(500)) == (8, 2)
    assert burst["errorRate"] == 0.25
    # The active Service's revision is another series: V2's errors are not in it.
    good = traffic(srv, PROD, f"revision={setup.good}&window=15m")
    assert good["errors5xx"] == 0


def template_metric(
    server_url: str, service: str, revision: str, window: str = "1m", **extra: Any
) -> dict[str, Any]:
    """The example template's metric with its args resolved as a Rollout would supply them."""
    [template] = [d for d in yaml.safe_load_all(TEMPLATE.read_text()) if d]
    spec = template["spec"]
    args = merge_args(
        spec["args"],
        [
            {"name": "service-name", "value": service},
            {"name": "hash", "value": revision},
            {"name": "namespace", "value": NS},
            {"name": "window", "value": window},
            {"name": "server", "value": server_url},
        ],
    )
    metric = copy.deepcopy(spec["metrics"][0])
    metric["provider"]["web"].update(extra)
    return resolve_metric(metric, args)


def test_the_web_provider_passes_a_good_revision_and_fails_a_bad_one(setup: Setup) -> None:
    srv = setup.server
    assert [fetch(setup.prod)[0] for _ in range(10)] == [200] * 10
    assert [fetch(setup.preview)[0] for _ in range(4)].count(500) == 1
    # A 10 s window: the fixture's /healthz polls through the Services (all 200) are older.
    good = asyncio.run(measure(template_metric(srv.url, PROD, setup.good, "10s")))
    assert (good["phase"], good["value"]) == ("Successful", "0.0"), good
    bad = asyncio.run(measure(template_metric(srv.url, PREVIEW, setup.bad, "10s")))
    assert (bad["phase"], bad["value"]) == ("Failed", "0.25"), bad
    # No traffic in the window: no evidence either way, an Error measurement that says so.
    none = asyncio.run(measure(template_metric(srv.url, PREVIEW, "0000000000")))
    assert none["phase"] == "Error" and "metric result is nil" in none["message"], none


def test_with_a_token_both_routes_need_it_and_bad_queries_say_why() -> None:
    state_dir = new_state_dir()
    state_dir.mkdir(parents=True)
    server: Any = None
    try:
        server = ServerProcess(state_dir, token="s3cret-token")
        docs = [d for d in seed_docs(NS, free_port(), free_port()) if d["kind"] in ("Namespace", "Service")]
        server.ok("POST", "/api/apply", {"objects": docs})
        # The API answers before the proxy runs; until then both routes answer 503.
        server.wait_for("the proxy to answer", lambda: server.request("GET", "/metrics").status == 200, 120)
        for path in ("/metrics", f"/api/services/{NS}/{PROD}/traffic"):
            refused = server.request("GET", path, auth=False)
            assert refused.status == 401 and "Bearer" in refused.body["error"], (path, refused)
            assert server.request("GET", path).status == 200, path
        empty = server.ok("GET", f"/api/services/{NS}/{PROD}/traffic?window=30s")
        assert (empty["requests"], empty["errorRate"], empty["revisions"]) == (0, None, [])
        missing = server.request("GET", f"/api/services/{NS}/nope/traffic")
        assert missing.status == 404 and "service 'nope' not found" in missing.body["error"]
        bad = server.request("GET", f"/api/services/{NS}/{PROD}/traffic?window=soon")
        assert bad.status == 400 and "window='soon': expected a Go duration" in bad.body["error"]
        # A web metric passes the token as a header; without it the measurement is an Error.
        no_header = asyncio.run(measure(template_metric(server.url, PROD, "abc")))
        assert no_header["message"] == "received non 2xx response code: 401", no_header
        header = {"headers": [{"key": "Authorization", "value": f"Bearer {server.token}"}]}
        with_header = asyncio.run(measure(template_metric(server.url, PROD, "abc", **header)))
        assert "metric result is nil" in with_header["message"], with_header
    finally:
        if server is not None:
            server.stop()  # POST /api/shutdown {"all": true} with the token; fails on a leftover
        finish(state_dir, None)


def test_a_real_prometheus_scrapes_the_same_counts(setup: Setup, tmp_path: Path) -> None:
    """Debian's prometheus, started here on 127.0.0.1 with the scrape job docs/analysis.md shows,
    reads /metrics (as the server's own user: no token needed) and holds the same numbers."""
    srv = setup.server
    expected = traffic(srv, PREVIEW, f"revision={setup.bad}&window=15m")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: pyrollouts\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{srv.port}']}}]\n"
    )
    log = (tmp_path / "prometheus.log").open("wb")
    prom = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def query(q: str) -> float | None:
            url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    result = json.loads(resp.read())["data"]["result"]
            except OSError:
                return None
            return float(result[0]["value"][1]) if result else None

        sel = f'namespace="{NS}",service="{PREVIEW}",revision="{setup.bad}"'
        errors = srv.wait_for(
            "prometheus to scrape the server",
            lambda: query(f'pyrollouts_proxy_requests_total{{{sel},code="5xx"}}'),
        )
        assert query('up{job="pyrollouts"}') == 1.0
        assert errors == expected["errors5xxTotal"]
        assert query(f"sum(pyrollouts_proxy_requests_total{{{sel}}})") == expected["requestsTotal"]
        assert query(f"pyrollouts_proxy_request_duration_seconds_count{{{sel}}}") == expected["requestsTotal"]
    finally:
        prom.terminate()
        try:
            prom.wait(10)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait()
        log.close()
