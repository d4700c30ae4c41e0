"""What clients show and do with AnalysisRuns, pure: the run's summary and detail
(service/analysisinfo.py), Argo's AnalysisRunInfo (web/rolloutinfo.py), `create analysisrun`'s
run (service/analysisruns.py) and the terminate verb (service/verbs.py)."""

from __future__ import annotations

from typing import Any

import pytest

from pyrollouts.service import verbs
from pyrollouts.service.analysisinfo import analysis_icon, counts_text, run_detail, run_summary
from pyrollouts.service.analysisruns import parse_arg_flags, run_from_template
from pyrollouts.web.rolloutinfo import argo_analysis_run

TEMPLATE: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "AnalysisTemplate",
    "metadata": {
        "name": "error-rate",
        "namespace": "shop",
        "uid": "u-1",
        "resourceVersion": "7",
        "labels": {"team": "shop"},
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "note": "x"},
    },
    "spec": {
        "args": [{"name": "service"}, {"name": "threshold", "value": "0.05"}],
        "metrics": [{"name": "error-rate", "provider": {"web": {"url": "http://x/{{args.service}}"}}}],
        "dryRun": [{"metricName": "error-rate"}],
    },
}


def test_icons_and_counts_as_argo() -> None:
    assert [
        analysis_icon(p) for p in ("Successful", "Failed", "Error", "Inconclusive", "Running", "Pending")
    ] == [
        "✔",
        "✖",
        "⚠",
        "?",
        "◌",
        "◷",
    ]
    assert analysis_icon(None) == analysis_icon("Weird") == " "
    assert counts_text({"successful": 2, "failed": 0, "inconclusive": 1, "error": 3}) == "✔ 2,? 1,⚠ 3"
    assert counts_text({}) == ""


def test_summary_sums_metric_results_and_finds_the_revision() -> None:
    run = {
        "metadata": {"name": "r", "labels": {"rollouts-pod-template-hash": "abc", "rollout-type": "pre"}},
        "status": {
            "phase": "Running",
            "metricResults": [{"name": "a", "successful": 2, "error": 1}, {"name": "b", "failed": 1}],
        },
    }
    s = run_summary(run, {"abc": 4})
    assert (s["revision"], s["successful"], s["failed"], s["error"], s["icon"]) == (4, 2, 1, 1, "◌")
    run["metadata"]["annotations"] = {"rollout.argoproj.io/revision": "3"}  # Argo's annotation wins
    assert run_summary(run, {"abc": 4})["revision"] == 3
    assert run_summary({"metadata": {"name": "x"}}, {})["revision"] == 0


def test_detail_lists_spec_metrics_with_their_results() -> None:
    run = {
        "metadata": {"name": "r", "ownerReferences": [{"kind": "Rollout", "name": "web"}]},
        "spec": {
            "metrics": [{"name": "a"}, {"name": "b"}],
            "args": [{"name": "s", "value": "v"}],
            "terminate": True,
        },
        "status": {
            "metricResults": [
                {"name": "a", "phase": "Successful", "measurements": [{"phase": "Successful", "value": "1"}]}
            ]
        },
    }
    d = run_detail(run)
    assert d["owner"] == "Rollout/web" and d["terminate"] is True
    assert [(m["name"], m["status"], len(m["measurements"])) for m in d["metrics"]] == [
        ("a", "Successful", 1),
        ("b", "", 0),
    ]
    assert d["args"] == [{"name": "s", "value": "v", "valueFrom": None}]


def test_argo_analysis_run_info_fields() -> None:
    run = {
        "metadata": {"name": "r", "namespace": "shop", "uid": "u"},
        "spec": {
            "metrics": [
                {"name": "a", "successCondition": "result > 1", "count": 3, "failureLimit": "{{args.f}}"}
            ]
        },
        "status": {
            "phase": "Error",
            "metricResults": [
                {
                    "name": "a",
                    "error": 1,
                    "measurements": [
                        {"phase": "Error", "startedAt": "t1"},
                        {"phase": "Successful", "metadata": {"job-name": "j1"}, "startedAt": "t2"},
                    ],
                }
            ],
        },
    }
    info = argo_analysis_run(run_summary(run, {}), "shop")
    assert info["objectMeta"] == {"name": "r", "namespace": "shop", "creationTimestamp": None, "uid": "u"}
    assert (info["icon"], info["status"], info["error"]) == ("⚠", "Error", 1)
    assert info["metrics"] == [
        {"name": "a", "successCondition": "result > 1", "count": 3, "inconclusiveLimit": 0, "failureLimit": 0}
    ]
    assert info["nonJobInfo"] == [{"value": "", "status": "Error", "startedAt": "t1", "metricName": "a"}]
    assert [j["objectMeta"]["name"] for j in info["jobs"]] == ["j1"]
    assert info["specAndStatus"]["status"]["phase"] == "Error"


def test_run_from_template_as_argo_makes_it() -> None:
    run = run_from_template(TEMPLATE, parse_arg_flags(["service=web"]), namespace="shop")
    assert run["kind"] == "AnalysisRun" and run["apiVersion"] == "argoproj.io/v1alpha1"
    assert run["metadata"] == {
        "namespace": "shop",
        "generateName": "error-rate-",
        "labels": {"team": "shop"},
        "annotations": {"note": "x"},
    }
    assert run["spec"]["args"] == [
        {"name": "service", "value": "web"},
        {"name": "threshold", "value": "0.05"},
    ]
    assert run["spec"]["dryRun"] == [{"metricName": "error-rate"}]
    assert TEMPLATE["spec"]["args"][0] == {"name": "service"}  # the template is left as it was
    named = run_from_template(TEMPLATE, [{"name": "service", "value": "a"}], namespace="n", name="mine")
    assert named["metadata"]["name"] == "mine" and "generateName" not in named["metadata"]
    gen = run_from_template(
        TEMPLATE, [{"name": "service", "value": "a"}], namespace="n", generate_name="p-", instance_id="i"
    )
    assert gen["metadata"]["generateName"] == "p-"
    assert gen["metadata"]["labels"]["argo-rollouts.argoproj.io/controller-instance-id"] == "i"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ([], "analysistemplate 'error-rate': args.service was not resolved"),
        ([], "supply it with -a service=VALUE; nothing was created"),
        (["servce=web"], "declares no arg 'servce' (its args: service, threshold)"),
        (["novalue"], "arguments must be in the form NAME=VALUE"),
        (["=x"], "arguments must be in the form NAME=VALUE"),
    ],
)
def test_run_from_template_refusals(flags: list[str], message: str) -> None:
    with pytest.raises(verbs.VerbError) as refused:
        run_from_template(TEMPLATE, parse_arg_flags(flags), namespace="shop")
    assert refused.value.code == 400 and message in refused.value.message


def test_run_from_template_refuses_other_kinds_and_nested_templates() -> None:
    with pytest.raises(verbs.VerbError, match="expected an AnalysisTemplate"):
        run_from_template({**TEMPLATE, "kind": "Rollout"}, [], namespace="n")
    nested = {**TEMPLATE, "spec": {"templates": [{"templateName": "x"}]}}
    with pytest.raises(verbs.VerbError, match="includes other templates"):
        run_from_template(nested, [], namespace="n")


def test_terminate_plan_is_argos_patch() -> None:
    p = verbs.plan_run("terminate", {"metadata": {"name": "r1"}})
    assert [(x.body, x.subresource) for x in p.patches] == [({"spec": {"terminate": True}}, None)]
    assert p.message == "analysisRun 'r1' terminated"
    with pytest.raises(verbs.VerbError) as unknown:
        verbs.plan_run("retry", {"metadata": {"name": "r1"}})
    assert unknown.value.code == 404
