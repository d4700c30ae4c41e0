"""The pure rendering of AnalysisRuns in the dashboard: their line under a revision, the page of
one run, and the chart of a metric (values, thresholds, range, escaping)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from pyrollouts.model.cluster import Obj
from pyrollouts.service.info import rollout_info
from pyrollouts.web import analysisview, argo_info, render
from pyrollouts.web.metricchart import chart_value, metric_chart, thresholds, y_range

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
EVIL = '<img src=x onerror="alert(1)">'


def rollout() -> Obj:
    return {
        "metadata": {"name": "shop", "namespace": "ns", "uid": "u1"},
        "spec": {"replicas": 1, "strategy": {"blueGreen": {"activeService": "p"}}},
        "status": {"phase": "Paused", "stableRS": "aaa", "currentPodHash": "bbb"},
    }


def replica_set(h: str, revision: int) -> Obj:
    return {
        "metadata": {
            "name": f"shop-{h}",
            "namespace": "ns",
            "labels": {"rollouts-pod-template-hash": h},
            "annotations": {"rollout.argoproj.io/revision": str(revision)},
            "ownerReferences": [{"kind": "Rollout", "name": "shop", "uid": "u1"}],
        },
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "c", "image": "app:1"}]}}},
        "status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1},
    }


def measurement(phase: str, value: Any, second: int) -> Obj:
    out: Obj = {"phase": phase, "startedAt": f"2026-01-02T03:04:{second:02d}Z"}
    out["finishedAt"] = out["startedAt"]
    if value is not None:
        out["value"] = value
    return out


def run(run_name: str, revision: int, phase: str, measurements: list[Obj], **metric: Any) -> Obj:
    counts = {"successful": 0, "failed": 0, "inconclusive": 0, "error": 0}
    for m in measurements:
        key = {"Successful": "successful", "Failed": "failed", "Inconclusive": "inconclusive"}.get(
            m["phase"], "error"
        )
        counts[key] += 1
    return {
        "metadata": {
            "name": run_name,
            "namespace": "ns",
            "uid": f"uid-{run_name}",
            "creationTimestamp": "2026-01-02T03:04:00Z",
            "labels": {"rollouts-pod-template-hash": "bbb", "rollout-type": "PrePromotion"},
            "annotations": {"rollout.argoproj.io/revision": str(revision)},
            "ownerReferences": [{"kind": "Rollout", "name": "shop", "uid": "u1"}],
        },
        "spec": {
            "args": [{"name": "limit", "value": "0.05"}, {"name": "svc", "valueFrom": {"fieldRef": {}}}],
            "metrics": [
                {
                    "name": "error-rate",
                    "successCondition": "result[0] <= {{args.limit}}",
                    "failureCondition": "result[0] > 0.2",
                    "provider": {
                        "web": {
                            "url": "http://metrics/rate?svc={{args.svc}}",
                            "jsonPath": "{$.rate}",
                            "headers": [{"key": "Authorization", "value": "Bearer SECRET"}],
                        }
                    },
                    **metric,
                }
            ],
        },
        "status": {
            "phase": phase,
            "message": "",
            "metricResults": [
                {"name": "error-rate", "phase": phase, "measurements": measurements, "count": 2, **counts}
            ],
        },
    }


def info_with_runs(*runs: Obj) -> Obj:
    rss = [replica_set("aaa", 1), replica_set("bbb", 2)]
    return argo_info(rollout_info(rollout(), rss, [], NOW, list(runs)))


def test_runs_appear_under_their_revision_with_icon_phase_counts_and_a_link() -> None:
    ok = run("shop-bbb-2-pre", 2, "Successful", [measurement("Successful", "[0.01]", 1)])
    bad = run(
        "shop-aaa-1-post", 1, "Failed", [measurement("Successful", "0", 1), measurement("Failed", "0.5", 2)]
    )
    html = render.revisions(info_with_runs(ok, bad))
    rev2 = html[html.index('data-revision="2"') : html.index('data-revision="1"')]
    assert 'data-run="shop-bbb-2-pre"' in rev2 and 'data-run="shop-aaa-1-post"' not in rev2
    assert 'href="/rollouts/ns/shop/analysisruns/shop-bbb-2-pre"' in rev2
    assert "✔" in rev2 and "Analysis 2-pre" in rev2 and "✔ 1" in rev2
    rev1 = html[html.index('data-revision="1"') :]
    assert 'data-phase="Failed"' in rev1 and "✖" in rev1 and "✔ 1,✖ 1" in rev1


def test_a_revision_with_runs_but_no_replicaset_is_shown() -> None:
    old = run("shop-zzz-7-pre", 7, "Error", [measurement("Error", None, 1)])
    html = render.revisions(info_with_runs(old))
    assert 'data-revision="7"' in html and "⚠" in html
    assert "btn-rollback-7" not in html, "no ReplicaSet to roll back to"


def test_short_names_as_argo() -> None:
    assert analysisview.short_name("shop-6d9f-2-pre") == "Analysis 2-pre"
    assert analysisview.short_name("shop-6d9f-2-pre.1") == "Analysis 2-pre.1"
    assert analysisview.short_name("single") == "Analysis"


def test_the_run_page_shows_phase_message_args_metrics_measurements_and_chart() -> None:
    r = run(
        "shop-bbb-2-pre",
        2,
        "Failed",
        [measurement("Successful", "[0.01]", 1), measurement("Failed", "[0.5]", 11)],
    )
    r["status"]["message"] = 'Metric "error-rate" assessed Failed due to failed (1) > failureLimit (0)'
    body = analysisview.run_page_body("ns", "shop", r)
    assert 'id="run-phase"' in body and 'data-phase="Failed"' in body and "✖ Failed" in body
    assert "assessed Failed" in body
    assert 'data-arg="limit"' in body and "0.05" in body and "valueFrom" in body
    assert 'data-metric="error-rate"' in body
    assert body.count('class="measurement"') == 2
    # Newest first in the table.
    table = body[body.index('class="measurements"') :]
    assert table.index("[0.5]") < table.index("[0.01]")
    assert 'data-points="2"' in body
    assert 'href="/rollouts/ns/shop"' in body
    # What it measures, as written: placeholders unresolved, headers never shown.
    assert "web GET http://metrics/rate?svc={{args.svc}} {$.rate}" in body
    assert "SECRET" not in body


def test_what_a_metric_measures() -> None:
    prom = {"prometheus": {"address": "http://p:9090", "query": "sum(rate(x[1m]))"}}
    assert analysisview.provider_text(prom) == "prometheus http://p:9090: sum(rate(x[1m]))"
    web = {"web": {"url": "http://w/", "method": "post", "body": "TOKEN"}}
    assert analysisview.provider_text(web) == "web POST http://w/"
    job = {"job": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "curl:8"}]}}}}}
    assert analysisview.provider_text(job) == "job (curl:8)"
    assert analysisview.provider_text({"job": {}}) == "job"
    assert analysisview.provider_text({"datadog": {"query": "q"}}) == "datadog"
    assert analysisview.provider_text({}) == ""
    assert analysisview.provider_text({"web": "not a map"}) == "web"


def test_a_job_measurement_names_its_job() -> None:
    m = measurement("Successful", None, 1)
    m["metadata"] = {"job-name": "shop-job-1"}
    body = analysisview.run_page_body("ns", "shop", run("shop-bbb-2-pre", 2, "Successful", [m]))
    assert '<td class="value">job shop-job-1</td>' in body


def test_chart_values() -> None:
    assert chart_value("0.25") == 0.25
    assert chart_value("[0.01]") == 0.01
    assert chart_value("[]") is None
    assert chart_value("true") == 1.0 and chart_value("false") == 0.0
    assert chart_value('"3"') == 3.0
    assert chart_value("NaN") is None and chart_value("Infinity") is None
    assert chart_value('{"a": 1}') is None and chart_value("") is None and chart_value(None) is None
    assert chart_value("not a number") is None
    assert chart_value(7) == 7.0


def test_thresholds_from_simple_conditions_with_args() -> None:
    args = [{"name": "limit", "value": "0.05"}]
    assert thresholds("result[0] <= {{ args.limit }}", args) == [0.05]
    assert thresholds("result >= 0.9 && result < 2", []) == [0.9, 2.0]
    assert thresholds("default(result[0], 0) > 5 || asFloat(result) < 1e-3", []) == [5.0, 0.001]
    assert thresholds("0.95 <= result[0]", []) == [0.95]
    assert thresholds("result == true", []) == []
    assert thresholds("len(result) > 3", []) == []
    assert thresholds("result[0] <= {{args.unknown}}", args) == []
    assert thresholds(None) == [] and thresholds("") == []


def test_y_range() -> None:
    assert y_range([0.1, 0.3], []) == (0.0, 1.0)
    lo, hi = y_range([0.1], [0.05, 0.2])
    assert lo == 0.0 and abs(hi - 0.24) < 1e-9
    lo, hi = y_range([-2.0, 5.0], [])
    assert lo == -2.0 and hi == 6.0
    assert y_range([], []) == (0.0, 1.0)
    assert y_range([0.0], [0.0]) == (0.0, 1.0)


def dots(svg: str) -> list[tuple[str, float]]:
    return [(p, float(cy)) for p, cy in re.findall(r'data-phase="(\w*)"[^>]*cy="([\d.]+)"', svg)]


def test_the_chart_draws_dots_by_phase_thresholds_and_errors_on_the_axis() -> None:
    ms = [
        measurement("Successful", "0.01", 1),
        measurement("Error", None, 11),
        measurement("Failed", "0.5", 21),
    ]
    svg = metric_chart("rate", ms, success_condition="result <= 0.05", failure_condition="result > 0.2")
    assert svg.count("<circle") == 3
    [(p1, y1), (p2, y2), (p3, y3)] = dots(svg)
    assert (p1, p2, p3) == ("Successful", "Error", "Failed")
    assert y3 < y1, "a higher value is drawn higher"
    assert y2 >= y1, "a measurement without a value sits on the axis"
    assert 'data-threshold="0.05"' in svg and "threshold-success" in svg
    assert 'data-threshold="0.2"' in svg and "threshold-failure" in svg
    # x runs with time: the dots are left to right.
    xs = [float(x) for x in re.findall(r'cx="([\d.]+)"', svg)]
    assert xs == sorted(xs) and xs[0] < xs[-1]
    assert "03:04:01" in svg and "03:04:21" in svg


def test_one_measurement_and_none() -> None:
    svg = metric_chart("m", [measurement("Running", "1", 1)])
    assert svg.count("<circle") == 1
    assert "no measurements yet" in metric_chart("m", [])


def test_everything_in_a_run_is_escaped() -> None:
    r = run(EVIL, 2, "Failed", [measurement("Failed", EVIL, 1)], name=EVIL)
    r["status"]["message"] = EVIL
    r["status"]["metricResults"][0]["name"] = EVIL
    r["status"]["metricResults"][0]["measurements"][0]["message"] = EVIL
    r["spec"]["args"][0]["value"] = EVIL
    r["spec"]["metrics"][0]["successCondition"] = EVIL
    r["spec"]["metrics"][0]["provider"]["web"]["url"] = EVIL
    body = analysisview.run_page_body(EVIL, EVIL, r)
    assert "<img" not in body and 'onerror="' not in body
    under = analysisview.revision_runs(EVIL, EVIL, [argo_run(r)])
    assert "<img" not in under and 'onerror="' not in under


def argo_run(r: Obj) -> Obj:
    return {
        "objectMeta": {"name": r["metadata"]["name"], "creationTimestamp": EVIL},
        "status": r["status"]["phase"],
        "failed": 1,
    }
