"""Every user verb as each client spells it, for the test that drives them all (every client must
reach the same Rollout: tests/web/test_verbs_every_client.py, tests/k8s/test_verbs_kube.py).

A case starts from the objects of :func:`seed` (a Rollout paused on revision 2 with revision 1 as
stable, and both ReplicaSets), does one verb, and compares :func:`outcome` of the Rollout after it.
No controller runs meanwhile, so the outcome is the verb's patches and nothing else.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pyrollouts.model import names

Obj = dict[str, Any]

NAME = "web"
#: The time the clients' clocks show (restart writes it).
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _template(image: str, rev_hash: str | None = None) -> Obj:
    labels = {"app": NAME}
    if rev_hash:
        labels[names.POD_TEMPLATE_HASH_LABEL] = rev_hash
    return {
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": "app", "image": image, "env": [{"name": "MODE", "value": "a"}]}]},
    }


def rollout(ns: str, *, paused: bool = True) -> Obj:
    """The Rollout of every case: revision 2 (image app:2) paused before promotion, 1 stable."""
    status: Obj = {"currentPodHash": "h2", "stableRS": "h1", "phase": "Paused" if paused else "Healthy"}
    if paused:
        status["pauseConditions"] = [{"reason": names.PAUSE_BLUE_GREEN, "startTime": "2026-01-02T03:00:00Z"}]
    else:
        status["stableRS"] = "h2"
    return {
        "apiVersion": names.API_VERSION,
        "kind": "Rollout",
        "metadata": {"name": NAME, "namespace": ns},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": NAME}},
            "template": _template("app:2"),
            "strategy": {"blueGreen": {"activeService": f"{NAME}-active", "autoPromotionEnabled": False}},
        },
        "status": status,
    }


def replicaset(ns: str, ro: Obj, revision: int) -> Obj:
    """Revision ``revision`` (hash h<revision>, image app:<revision>) owned by ``ro``."""
    h = f"h{revision}"
    meta = ro["metadata"]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{NAME}-{h}",
            "namespace": ns,
            "labels": {"app": NAME, names.POD_TEMPLATE_HASH_LABEL: h},
            "annotations": {names.REVISION_ANNOTATION: str(revision)},
            "ownerReferences": [
                {
                    "apiVersion": names.API_VERSION,
                    "kind": "Rollout",
                    "name": meta["name"],
                    "uid": meta.get("uid", ""),
                    "controller": True,
                }
            ],
        },
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": NAME, names.POD_TEMPLATE_HASH_LABEL: h}},
            "template": _template(f"app:{revision}", h),
        },
    }


@dataclass(frozen=True)
class Case:
    """One verb as each client says it; None: that client does not offer it (Argo's dashboard has
    no pause, resume or set env; a scenario step sets the first container's image, no env)."""

    id: str
    verb: str
    args: Obj = field(default_factory=dict)  # the HTTP API's body, the CLI backends' body
    dashboard: tuple[str, Obj] | None = None  # path after /api/v1/rollouts/{ns}/{name}/, body
    scenario: Obj | None = None  # the scenario step
    paused: bool = True  # the Rollout starts paused
    error: tuple[int, str] | None = None  # the refusal every client reports: code, message part


CASES: tuple[Case, ...] = (
    Case("promote", "promote", {}, ("promote", {}), {"do": "promote"}),
    Case("promote-full", "promote", {"full": True}, ("promote", {"full": True}), {"do": "promote-full"}),
    Case("abort", "abort", {}, ("abort", {}), {"do": "abort"}),
    Case("retry", "retry", {}, ("retry", {}), {"do": "retry"}),
    Case("pause", "pause", {}, None, {"do": "pause"}, paused=False),
    Case("resume", "resume", {}, None, {"do": "resume"}),
    Case("restart", "restart", {}, ("restart", {}), {"do": "restart"}),
    Case("undo", "undo", {"toRevision": 1}, ("undo/1", {}), {"do": "undo", "toRevision": 1}),
    Case(
        "set-image",
        "set-image",
        {"container": "app", "image": "app:3"},
        ("set/app/app:3", {}),
        {"do": "image", "image": "app:3"},
    ),
    Case("set-env", "set-env", {"container": "app", "name": "MODE", "value": "b"}),
    Case(
        "promote-not-paused",
        "promote",
        {},
        ("promote", {}),
        {"do": "promote"},
        paused=False,
        error=(409, "rollout 'web' is not paused"),
    ),
    Case(
        "undo-unknown-revision",
        "undo",
        {"toRevision": 7},
        ("undo/7", {}),
        {"do": "undo", "toRevision": 7},
        error=(400, "rollout 'web' has no revision 7 (revisions: 1, 2)"),
    ),
    Case(
        "set-image-unknown-container",
        "set-image",
        {"container": "nosuch", "image": "app:3"},
        ("set/nosuch/app:3", {}),
        error=(400, "rollout 'web' has no container named 'nosuch'"),
    ),
)


def outcome(ro: Obj) -> Obj:
    """What a verb changes of a Rollout: its spec and the status fields users write."""
    status = ro.get("status") or {}
    return {
        "spec": copy.deepcopy(ro.get("spec") or {}),
        "status": {k: status.get(k) for k in ("pauseConditions", "abort", "promoteFull")},
    }
