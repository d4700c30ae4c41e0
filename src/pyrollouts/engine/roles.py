"""Roles: which ReplicaSet is new, stable, active and preview in this reconcile.

Found once, at the start of a reconcile (``assign``), from the new ReplicaSet, status.stableRS and
the Services' selectors. Afterwards only the steps that move a role change it: the preview and
active Service steps (a selector switch) and marking the new ReplicaSet stable. Every other step
reads the roles from here instead of working them out again. A canary reconcile would fill in the
same new/stable roles and leave active and preview to its Services (docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import service
from .context import Ctx
from .replicaset import NewReplicaSet
from .types import ReplicaSetState


@dataclass
class Roles:
    """The hashes holding each role (None: nobody holds it), and the new RS itself."""

    new: NewReplicaSet
    stable: str | None
    active: str | None
    preview: str | None
    initial: bool  # first deploy: the new RS became stable without a cutover
    template_changed: bool  # the template moved since status.currentPodHash was written

    @classmethod
    def assign(cls, ctx: Ctx, new: NewReplicaSet) -> Roles:
        """The roles as found. On a first deploy (no stable RS yet, or an active Service that was
        never switched) the new RS is stable at once (docs/argo-compat.md "First deploy")."""
        previous = ctx.status.current_pod_hash or None
        stable = ctx.status.stable_rs or None
        active = service.selected_hash(ctx, ctx.rollout.bg.active_service)
        initial = new.rs is not None and stable != new.pod_hash and (stable is None or active is None)
        return cls(
            new=new,
            stable=new.pod_hash if initial else stable,
            active=active,
            preview=service.selected_hash(ctx, ctx.rollout.bg.preview_service),
            initial=initial,
            template_changed=previous is not None and previous != new.pod_hash,
        )

    @classmethod
    def assign_canary(cls, ctx: Ctx, new: NewReplicaSet) -> Roles:
        """The roles of a canary: new and stable only. The stable RS is what serves, so it also
        holds the "active" role the shared steps read (progress, status). With no stable RS to
        be found (a first deploy) the new RS is stable at once, as Argo's "Initial deploy"."""
        previous = ctx.status.current_pod_hash or None
        stable = ctx.status.stable_rs or None
        initial = new.rs is not None and stable != new.pod_hash and ctx.rs_by_hash(stable) is None
        stable = new.pod_hash if initial else stable
        return cls(
            new=new,
            stable=stable,
            active=stable,
            preview=None,
            initial=initial,
            template_changed=previous is not None and previous != new.pod_hash,
        )

    def canary_pod_roles(self, ctx: Ctx) -> dict[str, str]:
        """RS name -> "canary" / "stable", for canaryMetadata and stableMetadata."""
        out: dict[str, str] = {}
        new_rs = self.new.rs
        if new_rs is not None and not self.new_is_stable and not self.new.created:
            out[new_rs.name] = "canary"
        stable_rs = ctx.rs_by_hash(self.stable)
        if stable_rs is not None:
            out[stable_rs.name] = "stable"
        return out

    @property
    def new_hash(self) -> str:
        return self.new.pod_hash

    @property
    def new_rs(self) -> ReplicaSetState | None:
        return self.new.rs

    @property
    def new_is_stable(self) -> bool:
        return self.new.rs is not None and self.stable == self.new.pod_hash

    @property
    def in_flight(self) -> bool:
        """An update is under way: the new RS exists and the active Service is not on it yet."""
        return self.new.rs is not None and self.active != self.new.pod_hash

    def referenced(self) -> set[str]:
        """The hashes that hold a role (new, stable, active): every other RS is old."""
        new = self.new.pod_hash if self.new.rs is not None else None
        return {h for h in (new, self.stable, self.active) if h}

    def pod_roles(self, ctx: Ctx) -> dict[str, str]:
        """RS name -> "preview" / "active", for previewMetadata and activeMetadata."""
        out: dict[str, str] = {}
        new_rs = self.new.rs
        if new_rs is not None and self.active != self.new.pod_hash and not self.new.created:
            out[new_rs.name] = "preview"
        active_rs = ctx.rs_by_hash(self.active)
        if active_rs is not None:
            out[active_rs.name] = "active"
        return out
