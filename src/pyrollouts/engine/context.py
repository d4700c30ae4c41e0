"""The per-reconcile context: the inputs, what is derived from them, and the plan being built."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from ..model import names
from ..model.rollout import Rollout, RolloutStatus
from . import timeutil
from .types import Action, EmitEvent, Observed, ReplicaSetState


def revision_of(rs: ReplicaSetState) -> int:
    """The RS's ``rollout.argoproj.io/revision`` (0 when missing or not a number)."""
    try:
        return int(rs.annotations.get(names.REVISION_ANNOTATION, "0"))
    except ValueError:
        return 0


@dataclass
class Ctx:
    """Everything one ``plan`` call reads and writes. Built once, mutated only by the engine."""

    rollout: Rollout
    observed: Observed
    now: datetime
    status_in: dict[str, Any]  # the status as read (wire form), user writes included
    actions: list[Action] = field(default_factory=list)
    requeues: list[float] = field(default_factory=list)

    @cached_property
    def status(self) -> RolloutStatus:
        """The status as read, typed (the same content as ``status_in``)."""
        return self.rollout.status if self.rollout.status is not None else RolloutStatus()

    @property
    def name(self) -> str:
        return self.rollout.metadata.name

    @property
    def namespace(self) -> str:
        return self.rollout.metadata.namespace or "default"

    @property
    def replicas(self) -> int:
        return self.rollout.effective_replicas()

    @property
    def now_s(self) -> str:
        return timeutil.rfc3339(self.now)

    @property
    def rss(self) -> tuple[ReplicaSetState, ...]:
        return self.observed.replicasets

    def rs_by_hash(self, h: str | None) -> ReplicaSetState | None:
        """The ReplicaSet whose hash label is h (None for an empty hash or no such RS)."""
        if not h:
            return None
        for rs in self.rss:
            if rs.pod_template_hash == h:
                return rs
        return None

    def event(self, reason: str, message: str, type_: str = "Normal") -> None:
        self.actions.append(EmitEvent(type=type_, reason=reason, message=message))

    def requeue_at(self, t: datetime) -> None:
        self.requeues.append(timeutil.seconds_until(t, self.now))
