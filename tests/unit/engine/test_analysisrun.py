"""An AnalysisRun's progress (engine.analysisrun) with Argo's semantics: which metrics are due,
metric and run phases, limits, dryRun, terminate, retention, and the messages Argo writes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from pyrollouts.engine.analysisrun import (
    METRIC_TERMINATED_MESSAGE,
    RunEvent,
    effective_count,
    next_reconcile,
    plan,
    record,
)
from pyrollouts.engine.timeutil import rfc3339

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
Provider = Callable[[dict[str, Any], datetime], dict[str, Any]]


def run_of(*metrics: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": "r", "namespace": "default"},
        "spec": {"metrics": list(metrics), **spec},
    }


def metric(name: str = "m", **fields: Any) -> dict[str, Any]:
    return {"name": name, "provider": {"web": {"url": "http://x"}}, **fields}


def phases(*seq: str) -> Provider:
    """A provider answering the given phases in turn (the last one forever)."""
    it: Iterator[str] = iter(seq)
    last = [seq[-1]]

    def measure(m: dict[str, Any], now: datetime) -> dict[str, Any]:
        phase = next(it, last[0])
        out = {"phase": phase, "startedAt": rfc3339(now), "finishedAt": rfc3339(now), "value": "1"}
        if phase == "Error":
            out["message"] = "connection refused"
        return out

    return measure


def step(run: dict[str, Any], now: datetime, provider: Provider) -> tuple[list[str], list[RunEvent]]:
    """One reconcile: plan, measure the due metrics, record. Returns the metrics measured."""
    p = plan(run, now)
    taken = {t.metric["name"]: provider(t.metric, now) for t in p.tasks}
    update = record(run, p, taken, now)
    run["status"] = update.status
    return sorted(taken), update.events


def result(run: dict[str, Any], name: str = "m") -> dict[str, Any]:
    return next(r for r in run["status"]["metricResults"] if r["name"] == name)


def test_one_measurement_without_interval_completes_the_run() -> None:
    run = run_of(metric())
    measured, events = step(run, T0, phases("Successful"))
    assert measured == ["m"]
    st = run["status"]
    assert st["phase"] == "Successful" and "message" not in st
    assert st["startedAt"] == st["completedAt"] == rfc3339(T0)
    assert st["runSummary"] == {"count": 1, "successful": 1}
    r = result(run)
    assert (r["phase"], r["count"], r["successful"], r["consecutiveError"]) == ("Successful", 1, 1, 0)
    assert [e.reason for e in events] == ["MetricSuccessful", "AnalysisRunSuccessful"]
    assert events[-1] == RunEvent("Normal", "AnalysisRunSuccessful", "Analysis Completed. Result: Successful")
    # a completed run plans nothing and wants no reconcile
    assert plan(run, T0 + timedelta(hours=1)).done
    assert next_reconcile(run, plan(run, T0), T0) is None


def test_interval_and_count() -> None:
    run = run_of(metric(interval="30s", count=3))
    prov = phases("Successful")
    assert step(run, T0, prov)[0] == ["m"]
    assert run["status"]["phase"] == "Running" and result(run)["phase"] == "Running"
    assert step(run, T0 + timedelta(seconds=10), prov)[0] == []
    assert next_reconcile(run, plan(run, T0 + timedelta(seconds=10)), T0) == T0 + timedelta(seconds=30)
    assert step(run, T0 + timedelta(seconds=30), prov)[0] == ["m"]
    assert step(run, T0 + timedelta(seconds=60), prov)[0] == ["m"]
    assert run["status"]["phase"] == "Successful"
    assert result(run)["count"] == 3 and len(result(run)["measurements"]) == 3


def test_failure_limit_and_argos_message() -> None:
    run = run_of(metric(interval="10s", count=5, failureLimit=1))
    prov = phases("Failed")
    step(run, T0, prov)
    assert run["status"]["phase"] == "Running"  # one failure is tolerated
    _, events = step(run, T0 + timedelta(seconds=10), prov)
    st = run["status"]
    assert st["phase"] == "Failed"
    assert st["message"] == 'Metric "m" assessed Failed due to failed (2) > failureLimit (1)'
    assert st["runSummary"] == {"count": 1, "failed": 1}
    assert RunEvent("Warning", "AnalysisRunFailed", "Analysis Completed. Result: Failed") in events
    assert RunEvent("Warning", "MetricFailed", "Metric 'm' Completed. Result: Failed") in events


def test_failure_limit_minus_one_never_fails() -> None:
    run = run_of(metric(interval="10s", count=2, failureLimit=-1))
    step(run, T0, phases("Failed"))
    step(run, T0 + timedelta(seconds=10), phases("Failed"))
    assert run["status"]["phase"] == "Successful"


def test_inconclusive() -> None:
    run = run_of(metric(interval="10s", count=3, inconclusiveLimit=1))
    prov = phases("Inconclusive")
    step(run, T0, prov)
    step(run, T0 + timedelta(seconds=10), prov)
    assert run["status"]["phase"] == "Inconclusive"
    assert run["status"]["message"] == (
        'Metric "m" assessed Inconclusive due to inconclusive (2) > inconclusiveLimit (1)'
    )


def test_errors_retry_after_10s_and_end_the_run_past_the_consecutive_limit() -> None:
    run = run_of(metric(interval="5m"))
    prov = phases("Error")
    now = T0
    for _ in range(4):
        assert step(run, now, prov)[0] == ["m"]
        assert run["status"]["phase"] == "Running"
        assert step(run, now + timedelta(seconds=5), prov)[0] == []  # retried after 10 s, not 5 m
        now += timedelta(seconds=10)
    step(run, now, prov)
    st = run["status"]
    assert st["phase"] == "Error"
    assert st["message"] == (
        'Metric "m" assessed Error due to consecutiveErrors (5) > consecutiveErrorLimit (4): '
        '"Error Message: connection refused"'
    )
    assert (result(run)["error"], result(run)["consecutiveError"]) == (5, 5)


def test_a_success_resets_consecutive_errors() -> None:
    run = run_of(metric(interval="10s", count=4, consecutiveErrorLimit=1))
    prov = phases("Error", "Successful", "Error", "Successful")
    for i in range(4):
        step(run, T0 + timedelta(seconds=10 * i), prov)
    assert run["status"]["phase"] == "Running"  # errors do not count toward count
    assert result(run)["consecutiveError"] == 0 and result(run)["error"] == 2
    for i in range(4, 6):
        step(run, T0 + timedelta(seconds=10 * i), phases("Successful"))
    assert run["status"]["phase"] == "Successful"


def test_dry_run_metric_never_fails_the_run() -> None:
    run = run_of(
        metric("real"),
        metric("canary-err", interval="10s", count=2),
        dryRun=[{"metricName": "canary.*"}],
    )

    def prov(m: dict[str, Any], now: datetime) -> dict[str, Any]:
        return phases("Successful" if m["name"] == "real" else "Failed")(m, now)

    step(run, T0, prov)
    st = run["status"]
    # the dryRun metric failed, and nothing stops: the run goes on until it completes
    assert result(run, "canary-err")["phase"] == "Failed" and result(run, "canary-err")["dryRun"] is True
    assert (
        result(run, "canary-err")["message"] == "Metric assessed Failed due to failed (1) > failureLimit (0)"
    )
    assert st["phase"] == "Successful"
    assert st["runSummary"] == {"count": 1, "successful": 1}
    assert st["dryRunSummary"] == {"count": 1, "failed": 1}
    assert "dryRun" not in result(run, "real")


def test_terminate_ends_a_running_run_successfully() -> None:
    run = run_of(metric(interval="10s"))  # measures forever
    step(run, T0, phases("Successful"))
    assert run["status"]["phase"] == "Running"
    run["spec"]["terminate"] = True
    measured, events = step(run, T0 + timedelta(seconds=30), phases("Successful"))
    assert measured == []
    assert run["status"]["phase"] == "Successful" and run["status"]["message"] == "Run Terminated"
    assert events[-1].reason == "AnalysisRunSuccessful"


def test_terminate_before_any_measurement() -> None:
    run = run_of(metric(initialDelay="1m"), terminate=True)
    assert step(run, T0, phases("Successful"))[0] == []
    assert run["status"]["phase"] == "Successful"


def test_a_failed_metric_terminates_the_others() -> None:
    run = run_of(metric("bad", interval="10s", count=5), metric("forever", interval="10s"))

    def prov(m: dict[str, Any], now: datetime) -> dict[str, Any]:
        return phases("Failed" if m["name"] == "bad" else "Successful")(m, now)

    step(run, T0, prov)  # bad fails at once (failureLimit 0)
    assert result(run, "bad")["phase"] == "Failed"
    # As Argo: the run sees it is terminating on its next reconcile, which measures nothing more
    assert run["status"]["phase"] == "Running"
    assert next_reconcile(run, plan(run, T0), T0) == T0
    assert step(run, T0 + timedelta(seconds=1), prov)[0] == []
    assert run["status"]["phase"] == "Failed"
    assert result(run, "forever")["phase"] == "Successful"  # stopped: the run terminated


def test_initial_delay_counts_from_the_runs_start() -> None:
    run = run_of(metric(initialDelay="30s"))
    assert step(run, T0, phases("Successful"))[0] == []
    assert run["status"]["startedAt"] == rfc3339(T0) and run["status"]["phase"] == "Running"
    assert next_reconcile(run, plan(run, T0), T0) == T0 + timedelta(seconds=30)
    assert step(run, T0 + timedelta(seconds=29), phases("Successful"))[0] == []
    assert step(run, T0 + timedelta(seconds=30), phases("Successful"))[0] == ["m"]
    assert run["status"]["phase"] == "Successful"


def test_measurement_retention_and_the_default_of_10() -> None:
    run = run_of(
        metric("kept", interval="1s", count=12),
        metric("few", interval="1s", count=12),
        measurementRetention=[{"metricName": "few", "limit": 2}],
    )
    for i in range(12):
        step(run, T0 + timedelta(seconds=i), phases("Successful"))
    assert run["status"]["phase"] == "Successful"
    assert len(result(run, "kept")["measurements"]) == 10
    assert [m["startedAt"] for m in result(run, "few")["measurements"]] == [
        rfc3339(T0 + timedelta(seconds=10)),
        rfc3339(T0 + timedelta(seconds=11)),
    ]
    assert result(run, "few")["count"] == 12


def test_args_fill_counts_and_limits() -> None:
    run = run_of(
        metric(interval="1s", count="{{args.n}}", failureLimit="{{ args.limit }}"),
        args=[{"name": "n", "value": "2"}, {"name": "limit", "value": "1"}],
    )
    step(run, T0, phases("Failed", "Successful"))
    step(run, T0 + timedelta(seconds=1), phases("Successful"))
    assert run["status"]["phase"] == "Successful" and result(run)["count"] == 2


def test_value_from_args_are_read_by_the_caller() -> None:
    run = run_of(
        metric(successCondition="result == '{{args.token}}'"),
        args=[{"name": "token", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
    )
    p = plan(run, T0, {"token": "abc"})
    assert p.tasks[0].metric["successCondition"] == "result == 'abc'"
    bad = plan(run, T0)
    assert bad.error.startswith("Unable to resolve metric arguments: args.token")


def test_invalid_specs_end_the_run_in_error() -> None:
    for spec, message in [
        (run_of(metric(), metric()), "Analysis spec invalid: "),
        (
            run_of(metric(), dryRun=[{"metricName": "nope"}]),
            "Analysis spec invalid: dryRun[0]: Rule didn't match",
        ),
        (
            run_of(metric(), measurementRetention=[{"metricName": "(", "limit": 1}]),
            "Analysis spec invalid: measurementRetention[0]: Rule didn't match any metric name(s)",
        ),
        (run_of(metric(url="{{args.missing}}")), "Unable to resolve metric arguments: failed to resolve"),
    ]:
        measured, events = step(spec, T0, phases("Successful"))
        assert measured == []
        assert spec["status"]["phase"] == "Error"
        assert spec["status"]["message"].startswith(message), spec["status"]["message"]
        assert events == [RunEvent("Warning", "AnalysisRunError", "Analysis Completed. Result: Error")]


def test_a_measurement_in_flight_is_resumed_then_terminated() -> None:
    run = run_of(metric(interval="10s"))

    def in_flight(m: dict[str, Any], now: datetime) -> dict[str, Any]:
        return {
            "phase": "Running",
            "startedAt": rfc3339(now),
            "resumeAt": rfc3339(now + timedelta(seconds=5)),
        }

    step(run, T0, in_flight)
    assert result(run)["phase"] == "Running" and run["status"]["phase"] == "Running"
    assert plan(run, T0 + timedelta(seconds=2)).tasks == []  # not before resumeAt
    assert next_reconcile(run, plan(run, T0), T0) == T0 + timedelta(seconds=5)
    p = plan(run, T0 + timedelta(seconds=5))
    assert p.tasks[0].incomplete is not None and not p.terminating
    run["spec"]["terminate"] = True
    p = plan(run, T0 + timedelta(seconds=1))  # terminating: resumed at once, to be terminated
    assert p.terminating and p.tasks[0].incomplete is not None
    done = {"phase": "Successful", "startedAt": rfc3339(T0)}
    st = record(run, p, {"m": done}, T0 + timedelta(seconds=1)).status
    (m,) = st["metricResults"][0]["measurements"]
    assert m["message"] == METRIC_TERMINATED_MESSAGE and m["finishedAt"] == rfc3339(T0 + timedelta(seconds=1))
    assert st["phase"] == "Successful" and st["message"] == "Run Terminated"


def test_consecutive_success_limit() -> None:
    run = run_of(metric(interval="1s", count=5, consecutiveSuccessLimit=2, failureLimit=3))
    prov = phases("Successful", "Failed", "Successful", "Successful")
    for i in range(3):
        step(run, T0 + timedelta(seconds=i), prov)
    assert run["status"]["phase"] == "Running"
    step(run, T0 + timedelta(seconds=3), prov)
    assert run["status"]["phase"] == "Successful"
    run = run_of(metric(interval="1s", count=2, consecutiveSuccessLimit=2, failureLimit=1))
    step(run, T0, phases("Failed"))
    step(run, T0 + timedelta(seconds=1), phases("Successful"))
    assert run["status"]["phase"] == "Inconclusive"  # count reached without two successes in a row


def test_effective_count() -> None:
    assert effective_count({"name": "m"}) == 1
    assert effective_count({"name": "m", "interval": "1s"}) is None
    assert effective_count({"name": "m", "interval": "1s", "count": "3"}) == 3
