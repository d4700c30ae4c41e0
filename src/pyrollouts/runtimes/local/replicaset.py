"""The local ReplicaSet controller: keeps spec.replicas Pods per ReplicaSet and computes its status.

As kube-controller-manager does: Pods are named ``<rs>-<5 random chars>``, carry the template's
labels and an ownerReference to the ReplicaSet (so deleting it deletes them); scale-down picks the
Pods to delete not-ready first, then the most recently ready, the most restarted and the newest; a
Pod being deleted (deletionTimestamp set) no longer counts. Status (replicas, fullyLabeledReplicas,
readyReplicas, availableReplicas with minReadySeconds, observedGeneration) is computed from the
Pods and written through the status subresource. The rollout controller reads only that status.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ...model.cluster import ClusterError, NotFound, Obj
from . import ports as portmap
from .store import Store, Subscription, random_suffix
from .supervisor import DEFAULT_GRACE, parse_time, precise_now, record_event

log = logging.getLogger(__name__)
COMPONENT = "replicaset-controller"


def _ready_since(pod: Mapping[str, Any]) -> float | None:
    """When the Pod became Ready (epoch seconds), or None if it is not ready."""
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            if c.get("status") != "True":
                return None
            since = parse_time(c.get("lastTransitionTime"))
            return since if since is not None else 0.0
    return None


def _restarts(pod: Mapping[str, Any]) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return sum(int(s.get("restartCount") or 0) for s in statuses)


def deletion_order(pods: list[Obj]) -> list[Obj]:
    """Pods in the order a scale-down deletes them (first = first to go), as Kubernetes ranks them:
    pending before running, not ready before ready, ready more recently before ready longer, more
    restarts before fewer, newer before older (``pods`` is given oldest first)."""

    def key(item: tuple[int, Obj]) -> tuple[Any, ...]:
        index, pod = item
        phase = (pod.get("status") or {}).get("phase")
        phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(str(phase), 0)
        since = _ready_since(pod)
        return (phase_rank, since is not None, -(since or 0.0), -_restarts(pod), -index)

    return [p for _, p in sorted(enumerate(pods), key=key)]


def compute_status(rs: Mapping[str, Any], pods: list[Obj], now: float) -> tuple[dict[str, Any], float | None]:
    """The ReplicaSet's status from its active Pods, and when it next changes by itself (a ready Pod
    becoming available after minReadySeconds), or None."""
    spec = rs.get("spec") or {}
    min_ready = float(spec.get("minReadySeconds") or 0)
    tmpl_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    ready = available = labeled = 0
    next_change: float | None = None
    for pod in pods:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if all(labels.get(k) == v for k, v in tmpl_labels.items()):
            labeled += 1
        since = _ready_since(pod)
        if since is None:
            continue
        ready += 1
        if min_ready <= 0 or since + min_ready <= now:
            available += 1
        else:
            at = since + min_ready
            next_change = at if next_change is None else min(next_change, at)
    status: dict[str, Any] = {
        "replicas": len(pods),
        "fullyLabeledReplicas": labeled,
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": (rs.get("metadata") or {}).get("generation", 1),
    }
    return status, next_change


class ReplicaSetController:
    """Follows ReplicaSets and Pods in the store and keeps each ReplicaSet's Pods and status right."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._queued: set[tuple[str, str]] = set()
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._sub: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start following changes and sync every ReplicaSet once."""
        self._sub = self.store.subscribe(["ReplicaSet", "Pod"])
        for rs in self.store.list("ReplicaSet"):
            self.enqueue(rs["metadata"]["namespace"], rs["metadata"]["name"])
        self._tasks = [
            asyncio.create_task(self._follow(), name="rs follow"),
            asyncio.create_task(self._work(), name="rs worker"),
        ]

    async def stop(self) -> None:
        """Stop (Pods and processes are left as they are)."""
        if self._sub is not None:
            self._sub.close()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for h in self._timers.values():
            h.cancel()
        self._timers.clear()

    def enqueue(self, namespace: str, name: str, after: float | None = None) -> None:
        """Sync a ReplicaSet soon (or after ``after`` seconds); repeated requests coalesce."""
        key = (namespace, name)
        if after is not None and after > 0:
            old = self._timers.pop(key, None)
            if old is not None:
                old.cancel()
            self._timers[key] = asyncio.get_running_loop().call_later(after, self._fire, key)
            return
        if key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def _fire(self, key: tuple[str, str]) -> None:
        self._timers.pop(key, None)
        self.enqueue(*key)

    async def _follow(self) -> None:
        assert self._sub is not None
        async for ev in self._sub:
            meta = ev.obj.get("metadata") or {}
            ns = meta.get("namespace") or "default"
            if ev.kind == "ReplicaSet":
                if ev.type != "DELETED":
                    self.enqueue(ns, meta["name"])
                continue
            for ref in meta.get("ownerReferences") or []:
                if ref.get("kind") == "ReplicaSet" and ref.get("controller"):
                    self.enqueue(ns, ref["name"])

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            try:
                self.sync(*key)
            except Exception:  # keep the controller alive; try that ReplicaSet again shortly
                log.exception("replicaset %s/%s: sync failed", *key)
                self.enqueue(*key, after=1.0)

    def sync(self, namespace: str, name: str) -> None:
        """Create or delete Pods to match spec.replicas, then write status."""
        try:
            rs = self.store.get("ReplicaSet", namespace, name)
        except NotFound:
            return
        meta = rs["metadata"]
        if meta.get("deletionTimestamp"):
            return
        owned = self.store.owned_by(meta["uid"], "Pod")
        active = [p for p in owned if not p["metadata"].get("deletionTimestamp")]
        replicas = (rs.get("spec") or {}).get("replicas")
        want = 1 if replicas is None else max(0, int(replicas))  # Kubernetes' default is 1
        failure: str | None = None
        if len(active) < want:
            for _ in range(want - len(active)):
                try:
                    active.append(self._create_pod(rs))
                except (ClusterError, OSError) as e:
                    failure = str(e)
                    break
        elif len(active) > want:
            victims = deletion_order(active)[: len(active) - want]
            for pod in victims:
                self._delete_pod(rs, pod)
            gone = {p["metadata"]["uid"] for p in victims}
            active = [p for p in active if p["metadata"]["uid"] not in gone]
        status, next_change = compute_status(rs, active, time.time())
        conditions = [
            c for c in (rs.get("status") or {}).get("conditions") or [] if c.get("type") != "ReplicaFailure"
        ]
        if failure:
            conditions.append(
                {
                    "type": "ReplicaFailure",
                    "status": "True",
                    "reason": "FailedCreate",
                    "message": failure,
                    "lastTransitionTime": precise_now(),
                }
            )
        if conditions:
            status["conditions"] = conditions
        if status != (rs.get("status") or {}):
            with contextlib.suppress(NotFound):
                self.store.update(
                    "ReplicaSet",
                    {"metadata": {"namespace": namespace, "name": name}, "status": status},
                    subresource="status",
                )
        if next_change is not None:
            self.enqueue(namespace, name, after=max(0.01, next_change - time.time() + 0.01))
        elif failure:
            self.enqueue(namespace, name, after=5.0)

    def _create_pod(self, rs: Obj) -> Obj:
        meta = rs["metadata"]
        ns = meta.get("namespace") or "default"
        tmpl = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
        tmeta = tmpl.get("metadata") or {}
        spec = tmpl.get("spec") or {}
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("terminationGracePeriodSeconds", int(DEFAULT_GRACE))
        spec.setdefault("nodeName", "local")
        labels = dict(tmeta.get("labels") or {})
        services = self.store.list("Service", ns)
        wanted = portmap.wanted_ports(spec, labels, services)
        taken = portmap.used_host_ports(self.store.list("Pod"))
        host_ports = portmap.allocate(wanted, taken)
        annotations = dict(tmeta.get("annotations") or {})
        annotations[portmap.PORTS_ANNOTATION] = portmap.encode_ports(host_ports)
        for _ in range(10):
            name = f"{meta['name']}-{random_suffix()}"
            pod: Obj = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": ns,
                    "labels": labels,
                    "annotations": annotations,
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "ReplicaSet",
                            "name": meta["name"],
                            "uid": meta["uid"],
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "spec": spec,
                "status": {
                    "phase": "Pending",
                    "hostIP": portmap.POD_IP,
                    "podIP": portmap.POD_IP,
                    "podIPs": [{"ip": portmap.POD_IP}],
                    "conditions": [
                        {"type": "PodScheduled", "status": "True", "lastTransitionTime": precise_now()}
                    ],
                },
            }
            try:
                created = self.store.create("Pod", pod, keep_status=True)
            except ClusterError as e:
                if "already exists" in str(e):
                    continue
                raise
            record_event(self.store, rs, "Normal", "SuccessfulCreate", f"Created pod: {name}", COMPONENT)
            return created
        raise ClusterError(f"could not find a free pod name for ReplicaSet {meta['name']}")

    def _delete_pod(self, rs: Obj, pod: Obj) -> None:
        grace = float((pod.get("spec") or {}).get("terminationGracePeriodSeconds", DEFAULT_GRACE))
        when = datetime.fromtimestamp(time.time() + grace, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        pmeta = pod["metadata"]
        with contextlib.suppress(NotFound):
            mark = {"metadata": {"deletionTimestamp": when, "deletionGracePeriodSeconds": int(grace)}}
            self.store.patch("Pod", pmeta["namespace"], pmeta["name"], mark)
            record_event(
                self.store, rs, "Normal", "SuccessfulDelete", f"Deleted pod: {pmeta['name']}", COMPONENT
            )
