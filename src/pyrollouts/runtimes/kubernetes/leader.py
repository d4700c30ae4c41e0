"""Leader election over a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it.

Every replica tries to hold one Lease. The holder renews it every ``retry_period``; a replica that
has seen the same record unchanged for ``lease_duration`` (measured on its *own* clock, from the
moment it observed that record, so clock skew between machines does not matter) takes it over.
A leader that cannot renew within ``renew_deadline`` stops leading before its lease can expire
for the others, so two leaders never write at once. Every write carries the resourceVersion it
was based on: of two replicas racing for the Lease, exactly one wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.types import PatchType

from ...model.timefmt import rfc3339_micro
from .resources import LEASE

log = logging.getLogger("pyrollouts.kubernetes.leader")

DEFAULT_LEASE_NAME = "argo-rollouts-controller-lock"


@dataclass(frozen=True)
class LeaseTimings:
    """Argo's (and client-go's) defaults: lease 15 s, renew deadline 10 s, retry every 2 s."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def check(self) -> None:
        """ValueError unless lease_duration > renew_deadline > retry_period > 0."""
        if not (self.lease_duration > self.renew_deadline > self.retry_period > 0):
            raise ValueError(
                "leader election timings must satisfy lease-duration > renew-deadline > retry-period > 0 "
                f"(got {self.lease_duration}, {self.renew_deadline}, {self.retry_period})"
            )


def micro_time(t: datetime | None = None) -> str:
    """Kubernetes' MicroTime format (RFC3339 with microseconds, UTC)."""
    return rfc3339_micro(t or datetime.now(UTC))


class LeaderElector:
    """Hold the Lease ``namespace/name`` as ``identity``; run ``lead()`` only while holding it.

    ``lead`` is started when the Lease is acquired and cancelled as soon as it is lost (or cannot be
    renewed in time), so whatever it runs stops writing. Then the elector goes back to candidacy.
    """

    def __init__(
        self,
        client: AsyncClient,
        namespace: str,
        name: str,
        identity: str,
        lead: Callable[[], Awaitable[None]],
        timings: LeaseTimings | None = None,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lead = lead
        self.timings = timings or LeaseTimings()
        self.timings.check()
        self.on_change = on_change
        self.is_leader = False
        # What we last saw of the record, and when (monotonic, our own clock).
        self._observed: tuple[str, str, str] | None = None
        self._observed_at = 0.0

    # -- one attempt -------------------------------------------------------------------------
    async def _get(self) -> dict[str, Any] | None:
        try:
            return dict((await self.client.get(LEASE, self.name, namespace=self.namespace)).to_dict())
        except ApiError as exc:
            if getattr(exc.status, "code", None) == 404:
                return None
            raise

    def _spec(self, acquire: bool, transitions: int) -> dict[str, Any]:
        now = micro_time()
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.timings.lease_duration)),
            "renewTime": now,
            "leaseTransitions": transitions,
        }
        if acquire:
            spec["acquireTime"] = now
        return spec

    async def try_acquire_or_renew(self) -> bool:
        """One round: create, renew, or take over the Lease. True when we hold it afterwards."""
        now = time.monotonic()
        lease = await self._get()
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(True, 0),
            }
            try:
                await self.client.create(LEASE(body), namespace=self.namespace)
            except ApiError as exc:
                if getattr(exc.status, "code", None) == 409:
                    return False  # another replica created it first
                raise
            self._observed = None
            self._observed_at = now
            return True
        spec = lease.get("spec") or {}
        meta = lease.get("metadata") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, str(spec.get("renewTime") or ""), str(spec.get("acquireTime") or ""))
        if record != self._observed:
            self._observed = record
            self._observed_at = now
        duration = float(spec.get("leaseDurationSeconds") or self.timings.lease_duration)
        if holder and holder != self.identity and now < self._observed_at + duration:
            return False  # held by another replica that renewed within the lease
        transitions = int(spec.get("leaseTransitions") or 0)
        taking_over = holder != self.identity
        body = {
            "metadata": {"resourceVersion": meta.get("resourceVersion")},
            "spec": self._spec(taking_over, transitions + 1 if taking_over else transitions),
        }
        try:
            await self.client.patch(
                LEASE, self.name, body, namespace=self.namespace, patch_type=PatchType.MERGE
            )
        except ApiError as exc:
            if getattr(exc.status, "code", None) == 409:
                return False  # someone else wrote the Lease between our read and our write
            raise
        if taking_over:
            log.info("acquired lease %s/%s as %s (was %r)", self.namespace, self.name, self.identity, holder)
        self._observed_at = now
        return True

    async def release(self) -> None:
        """Give the Lease up at once (on a clean shutdown), so another replica need not wait it out."""
        try:
            lease = await self._get()
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            body = {
                "metadata": {"resourceVersion": lease["metadata"]["resourceVersion"]},
                "spec": {"holderIdentity": None, "leaseDurationSeconds": 1, "renewTime": micro_time()},
            }
            await self.client.patch(
                LEASE, self.name, body, namespace=self.namespace, patch_type=PatchType.MERGE
            )
            log.info("released lease %s/%s", self.namespace, self.name)
        except Exception as exc:  # best effort: the lease expires anyway
            log.warning("releasing the lease failed: %s", exc)

    def _set_leader(self, value: bool) -> None:
        if self.is_leader != value:
            self.is_leader = value
            if self.on_change is not None:
                with contextlib.suppress(Exception):
                    self.on_change(value)

    async def _attempt(self) -> bool:
        try:
            return await self.try_acquire_or_renew()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
            return False

    # -- the loop ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Campaign, lead, renew; forever (cancel to stop, which releases the Lease if held)."""
        t = self.timings
        try:
            while True:
                # Candidacy: try every retry period until we hold the Lease.
                while not await self._attempt():
                    await asyncio.sleep(t.retry_period)
                self._set_leader(True)
                log.info("leading as %s", self.identity)
                task = asyncio.create_task(self.lead(), name="leader-work")
                last_renew = time.monotonic()
                try:
                    while True:
                        done, _ = await asyncio.wait({task}, timeout=t.retry_period)
                        if done:
                            task.result()  # the work ended by itself: surface its error, if any
                            return
                        if await self._attempt():
                            last_renew = time.monotonic()
                        elif time.monotonic() - last_renew >= t.renew_deadline or await self._lost():
                            log.error("lost lease %s/%s; stopping all writes", self.namespace, self.name)
                            break
                finally:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    self._set_leader(False)
        except asyncio.CancelledError:
            if self.is_leader or self._observed is None or self._observed[0] == self.identity:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.release())
            raise

    async def _lost(self) -> bool:
        """True when the Lease is now held by someone else (no point waiting out the deadline)."""
        try:
            lease = await self._get()
        except Exception:
            return False
        holder = ((lease or {}).get("spec") or {}).get("holderIdentity")
        return bool(holder) and holder != self.identity
