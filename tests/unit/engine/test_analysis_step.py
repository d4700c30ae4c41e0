"""The Rollout's analysis step, one decision at a time (the scenarios cover the flows end to end):
the run it makes (name, labels, owner, args, flattened templates), collisions, history limits,
InvalidSpec for what cannot make a run, and when it cancels."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from step_support import ACTIVE, NOW_S, PREVIEW, ctx, new_hash, rollout, rs, svc

from pyrollouts.engine import analysis, sync
from pyrollouts.engine.context import Ctx
from pyrollouts.engine.pause import PauseContext
from pyrollouts.engine.replicaset import NewReplicaSet
from pyrollouts.engine.roles import Roles
from pyrollouts.engine.types import (
    AnalysisRunState,
    CreateAnalysisRun,
    DeleteAnalysisRun,
    Observed,
    TerminateAnalysisRun,
)
from pyrollouts.model import names

OLD = "oldhash"
NEW = new_hash(rollout())


def template(
    name: str, metrics: list[str], args: list[dict[str, Any]] | None = None, **spec: Any
) -> dict[str, Any]:
    return {
        "kind": "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": {
            "metrics": [
                {"name": m, "provider": {"web": {"url": "http://127.0.0.1:9/{{args.hash}}"}}} for m in metrics
            ],
            "args": args or [],
            **spec,
        },
    }


PRE = {
    "prePromotionAnalysis": {
        "templates": [{"templateName": "a"}],
        "args": [{"name": "hash", "valueFrom": {"podTemplateHashValue": "Latest"}}],
    }
}


def run(
    name: str, h: str, phase: str = "", created: str = "2026-01-01T10:00:00Z", **kw: Any
) -> AnalysisRunState:
    labels = {names.POD_TEMPLATE_HASH_LABEL: h, names.ROLLOUT_TYPE_LABEL: "PrePromotion"}
    return AnalysisRunState(
        name=name, labels=labels, phase=phase, message="", terminate=False, creation_timestamp=created, **kw
    )


def update(
    bg: dict[str, Any],
    templates: dict[str, dict[str, Any]],
    runs: tuple[AnalysisRunState, ...] = (),
    status: dict[str, Any] | None = None,
    spec: dict[str, Any] | None = None,
) -> tuple[Ctx, Roles, PauseContext]:
    """OLD stable and active, NEW saturated in preview (revision 2), as status last said."""
    st = {
        "stableRS": OLD,
        "currentPodHash": NEW,
        "blueGreen": {"activeSelector": OLD, "previewSelector": NEW},
    }
    st.update(status or {})
    r = rollout({"metadata": {"uid": "ro-uid"}, "spec": {"strategy": {"blueGreen": bg}, **(spec or {})}}, st)
    new_rs = rs(NEW, revision=2)
    c = ctx(r, [rs(OLD), new_rs], [svc(ACTIVE, OLD), svc(PREVIEW, NEW)])
    observed = dataclasses.replace(
        c.observed, analysis_runs=runs, analysis_templates={(False, k): v for k, v in templates.items()}
    )
    c = dataclasses.replace(c, observed=observed)
    roles = Roles.assign(c, NewReplicaSet(NEW, new_rs, 2, False))
    return c, roles, PauseContext.read(c, roles)


def test_the_pre_run_it_makes() -> None:
    t = template(
        "a", ["m1"], [{"name": "hash"}, {"name": "fixed", "value": "x"}], dryRun=[{"metricName": "m1"}]
    )
    c, roles, pc = update(
        {
            **PRE,
            "prePromotionAnalysis": {
                **PRE["prePromotionAnalysis"],
                "analysisRunMetadata": {"labels": {"team": "a"}, "annotations": {"note": "n"}},
            },
        },
        {"a": t},
    )
    runs = analysis.reconcile(c, roles, pc, fast_rollback=False)
    [create] = [a for a in c.actions if isinstance(a, CreateAnalysisRun)]
    body = create.body
    assert create.name == f"super-hello-{NEW}-2-pre" == body["metadata"]["name"]
    assert body["metadata"]["labels"] == {
        names.POD_TEMPLATE_HASH_LABEL: NEW,
        "rollout-type": "PrePromotion",
        "team": "a",
        "app": "super-hello",
    }
    assert body["metadata"]["annotations"] == {names.REVISION_ANNOTATION: "2", "note": "n"}
    assert body["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "name": "super-hello",
            "uid": "ro-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert body["spec"]["args"] == [{"name": "hash", "value": NEW}, {"name": "fixed", "value": "x"}]
    assert body["spec"]["dryRun"] == [{"metricName": "m1"}]
    assert [m["name"] for m in body["spec"]["metrics"]] == ["m1"]
    assert runs.pre is not None and runs.pre.phase == "" and runs.post is None
    assert analysis.status_of(runs.pre) == {"name": create.name}


def test_nested_templates_are_flattened_once_and_stable_hash_args() -> None:
    a = template("a", ["m1"], [{"name": "hash"}, {"name": "stable"}], templates=[{"templateName": "b"}])
    b = template("b", ["m2"], templates=[{"templateName": "a"}])
    bg = {
        "prePromotionAnalysis": {
            "templates": [{"templateName": "a"}],
            "args": [
                {"name": "hash", "valueFrom": {"podTemplateHashValue": "Latest"}},
                {"name": "stable", "valueFrom": {"podTemplateHashValue": "Stable"}},
            ],
        }
    }
    c, roles, pc = update(bg, {"a": a, "b": b})
    analysis.reconcile(c, roles, pc, fast_rollback=False)
    [create] = [x for x in c.actions if isinstance(x, CreateAnalysisRun)]
    assert [m["name"] for m in create.body["spec"]["metrics"]] == ["m1", "m2"]
    assert create.body["spec"]["args"] == [{"name": "hash", "value": NEW}, {"name": "stable", "value": OLD}]


def test_a_second_run_of_the_revision_gets_the_collision_counter() -> None:
    base = f"super-hello-{NEW}-2-pre"
    taken = (run(base, NEW, "Failed"), run(f"{base}.1", NEW, "Failed"))
    # retry: abort cleared, abortedAt kept; the current run (the failed .1) is replaced
    c, roles, pc = update(
        PRE,
        {"a": template("a", ["m1"], [{"name": "hash"}])},
        taken,
        status={
            "abortedAt": NOW_S,
            "blueGreen": {
                "activeSelector": OLD,
                "prePromotionAnalysisRunStatus": {"name": f"{base}.1", "status": "Failed"},
            },
        },
    )
    runs = analysis.reconcile(c, roles, pc, fast_rollback=False)
    assert runs.pre is not None and runs.pre.name == f"{base}.2"


@pytest.mark.parametrize(
    ("templates", "bg", "why"),
    [
        ({}, PRE, "AnalysisTemplate 'a' not found"),
        (
            {"a": template("a", ["m1"], [{"name": "hash"}, {"name": "needed"}])},
            PRE,
            "args.needed was not resolved",
        ),
        ({"a": template("a", ["m1", "m1"], [{"name": "hash"}])}, PRE, "two metrics have the same name 'm1'"),
    ],
)
def test_what_cannot_make_a_run_is_invalid_spec(
    templates: dict[str, Any], bg: dict[str, Any], why: str
) -> None:
    c, _, _ = update(bg, templates)
    message = sync.analysis_problem(c)
    assert message is not None and why in message, message
    assert message.startswith(
        'The Rollout "super-hello" is invalid: spec.strategy.blueGreen.prePromotionAnalysis'
    )


def test_history_keeps_the_newest_runs_per_outcome_and_drops_runs_of_gone_replicasets() -> None:
    runs = (
        run("ok-1", OLD, "Successful", "2026-01-01T01:00:00Z"),
        run("ok-2", OLD, "Successful", "2026-01-01T02:00:00Z"),
        run("ok-3", OLD, "Successful", "2026-01-01T03:00:00Z"),
        run("bad-1", OLD, "Failed", "2026-01-01T04:00:00Z"),
        run("bad-2", OLD, "Error", "2026-01-01T05:00:00Z"),
        run("gone", "nosuchrs", "Successful", "2026-01-01T06:00:00Z"),
    )
    c, roles, pc = update(
        PRE,
        {"a": template("a", ["m1"], [{"name": "hash"}])},
        runs,
        spec={"analysis": {"successfulRunHistoryLimit": 2, "unsuccessfulRunHistoryLimit": 1}},
    )
    analysis.reconcile(c, roles, pc, fast_rollback=False)
    assert sorted(a.name for a in c.actions if isinstance(a, DeleteAnalysisRun)) == ["bad-1", "gone", "ok-1"]


@pytest.mark.parametrize("why", ["abort", "promote_full", "fast_rollback"])
def test_abort_promote_full_and_fast_rollback_cancel_the_current_run(why: str) -> None:
    name = f"super-hello-{NEW}-2-pre"
    status: dict[str, Any] = {
        "blueGreen": {
            "activeSelector": OLD,
            "prePromotionAnalysisRunStatus": {"name": name, "status": "Running"},
        }
    }
    if why == "abort":
        status["abort"] = True
    if why == "promote_full":
        status["promoteFull"] = True
    c, roles, pc = update(
        PRE, {"a": template("a", ["m1"], [{"name": "hash"}])}, (run(name, NEW, "Running"),), status=status
    )
    runs = analysis.reconcile(c, roles, pc, fast_rollback=why == "fast_rollback")
    assert [a for a in c.actions if isinstance(a, TerminateAnalysisRun)] == [TerminateAnalysisRun(name)]
    assert not [a for a in c.actions if isinstance(a, CreateAnalysisRun)]
    assert runs.pre is not None and runs.pre.name == name  # still named in status, as Argo keeps it


def test_no_run_before_the_preview_is_saturated() -> None:
    c, roles, pc = update(PRE, {"a": template("a", ["m1"], [{"name": "hash"}])})
    c = dataclasses.replace(
        c, observed=dataclasses.replace(c.observed, replicasets=(rs(OLD), rs(NEW, revision=2, available=2)))
    )
    roles = Roles.assign(c, NewReplicaSet(NEW, c.observed.replicasets[1], 2, False))
    runs = analysis.reconcile(c, roles, pc, fast_rollback=False)
    assert runs.pre is None and not c.actions


def test_field_ref_args_read_the_rollout() -> None:
    c, roles, _ = update(PRE, {})
    assert analysis.rollout_args(
        c,
        roles,
        [
            {"name": "n", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "l", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['missing']"}}},
            {"name": "r", "valueFrom": {"fieldRef": {"fieldPath": "spec.replicas"}}},
        ],
    ) == [{"name": "n", "value": "super-hello"}, {"name": "l", "value": ""}, {"name": "r", "value": "3"}]
    assert isinstance(c.observed, Observed)
