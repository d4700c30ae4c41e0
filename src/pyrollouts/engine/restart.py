"""spec.restartAt: replace every pod created before that time, one at a time, while all are up."""

from __future__ import annotations

from . import timeutil
from .context import Ctx
from .types import DeletePod, ReplicaSetState


def reconcile(ctx: Ctx, running: list[ReplicaSetState], restarted_at: str | None) -> str | None:
    """Returns the new status.restartedAt. Emits at most one DeletePod per reconcile, and only when
    every running ReplicaSet has all its pods available, so capacity drops by one pod at most."""
    restart_at = ctx.rollout.spec.restart_at
    if not restart_at or restart_at == restarted_at:
        return restarted_at
    t = timeutil.parse(restart_at)
    if t is None:
        return restarted_at
    if t > ctx.now:
        ctx.requeue_at(t)
        return restarted_at
    names_running = {rs.name for rs in running if rs.replicas > 0}
    stale = [
        p
        for p in ctx.observed.pods
        if p.replicaset in names_running and (timeutil.parse(p.creation_timestamp) or t) < t
    ]
    if not stale:
        return restart_at
    if all(rs.available_replicas >= rs.replicas and rs.status_replicas == rs.replicas for rs in running):
        oldest = min(stale, key=lambda p: (p.creation_timestamp, p.name))
        ctx.actions.append(DeletePod(pod=oldest.name))
    return restarted_at
