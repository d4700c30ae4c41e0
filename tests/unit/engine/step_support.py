"""Helpers of the per-step tests: a Rollout from the seed manifest, ReplicaSets and Services as the
engine sees them, and a ``Ctx`` to run one step on (no cluster: each step is a pure function)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from engine_support import manifest

from pyrollouts.engine.context import Ctx
from pyrollouts.engine.types import EmitEvent, Observed, ReplicaSetState, ServiceState
from pyrollouts.model import names
from pyrollouts.model.hash import pod_template_hash
from pyrollouts.model.rollout import Rollout

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
NOW_S = "2026-01-01T12:00:00Z"
ACTIVE = "super-hello-prod"
PREVIEW = "super-hello-preview"


def rollout(patch: dict[str, Any] | None = None, status: dict[str, Any] | None = None) -> Rollout:
    """The seed Rollout (3 replicas, autoPromotionEnabled false), merge-patched, with a status."""
    doc = next(d for d in manifest(patch) if d["kind"] == "Rollout")
    if status is not None:
        doc["status"] = status
    return Rollout.from_wire(doc)


def new_hash(r: Rollout) -> str:
    return pod_template_hash(r.spec.template)


def rs(
    h: str,
    *,
    replicas: int = 3,
    available: int | None = None,
    revision: int = 1,
    created: str = "2026-01-01T11:00:00Z",
    desired: int | None = 3,
    annotations: dict[str, str] | None = None,
) -> ReplicaSetState:
    """A ReplicaSet named ``super-hello-<h>``; ``available`` defaults to ``replicas`` (all up)."""
    ann = {names.REVISION_ANNOTATION: str(revision), **(annotations or {})}
    if desired is not None:
        ann[names.DESIRED_REPLICAS_ANNOTATION] = str(desired)
    up = replicas if available is None else available
    return ReplicaSetState(
        name=f"super-hello-{h}",
        uid=f"uid-{h}",
        pod_template_hash=h,
        template={"metadata": {"labels": {"app": "super-hello", names.POD_TEMPLATE_HASH_LABEL: h}}},
        replicas=replicas,
        status_replicas=replicas,
        ready_replicas=up,
        available_replicas=up,
        annotations=ann,
        labels={names.POD_TEMPLATE_HASH_LABEL: h},
        creation_timestamp=created,
    )


def svc(name: str, h: str | None = None, *, managed: bool = True) -> ServiceState:
    """A Service selecting the app (and hash ``h`` when given), marked as ours when ``managed``."""
    selector = {"app": "super-hello", **({names.POD_TEMPLATE_HASH_LABEL: h} if h else {})}
    annotations = {names.MANAGED_BY_ANNOTATION: "super-hello"} if managed else {}
    return ServiceState(name=name, selector=selector, annotations=annotations)


def ctx(
    r: Rollout,
    rss: Iterable[ReplicaSetState] = (),
    services: Iterable[ServiceState] = (),
    *,
    foreign: Iterable[ReplicaSetState] = (),
    now: datetime = NOW,
) -> Ctx:
    observed = Observed(
        replicasets=tuple(rss),
        services={s.name: s for s in services},
        foreign_replicasets=tuple(foreign),
    )
    status_in = r.status.wire() if r.status is not None else {}
    return Ctx(rollout=r, observed=observed, now=now, status_in=status_in)


def event_reasons(c: Ctx) -> list[str]:
    return [a.reason for a in c.actions if isinstance(a, EmitEvent)]
