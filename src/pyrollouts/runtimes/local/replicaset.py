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
from ...model.timefmt import rfc3339_micro
from . import ports as portmap
from .store import Store, Subscription, random_suffix
from .supervisor import DEFAULT_GRACE, parse_time, precise_now, record_event

log = logging.getLogger(__name__)
COMPONENT = "replicaset-controller"

#: The most replicas one object may ask of a local server (``rollouts server --max-replicas``):
#: every replica is a process of this machine.
DEFAULT_MAX_REPLICAS = 100
#: Pods created per sync of a ReplicaSet; the controller then yields to the event loop (the API
#: answers between batches) and syncs the ReplicaSet again for the rest.
CREATE_BATCH = 4
DOCS = "docs/local-runtime.md"

#: Counts that become processes on this machine, by kind: (field path, what it is).
_COUNTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "Rollout": (("spec", "replicas"), ("spec", "strategy", "blueGreen", "previewReplicaCount")),
    "ReplicaSet": (("spec", "replicas"),),
    "Deployment": (("spec", "replicas"),),
}


def check_counts(obj: Mapping[str, Any], cap: int) -> list[str]:
    """Errors for the object's replica counts that this machine will not run: not a whole
    number, negative, or more than ``cap`` (paths from the object's root)."""
    errors: list[str] = []
    for path in _COUNTS.get(str(obj.get("kind")), ()):
        value: Any = obj
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        if value is None:
            continue
        where = ".".join(path)
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"{where}: {value!r} is not a whole number; give a count from 0 to {cap}")
        elif value < 0:
            errors.append(f"{where}: {value} is negative; give a count from 0 to {cap}")
        elif value > cap:
            errors.append(
                f"{where}: {value} is more than this local server runs for one object "
                f"(--max-replicas {cap}: every replica is a process of this machine); lower it, "
                f"or start the server with a higher --max-replicas (see {DOCS})"
            )
    return errors


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

    def __init__(self, store: Store, *, max_replicas: int = DEFAULT_MAX_REPLICAS) -> None:
        self.store = store
        self.max_replicas = max_replicas
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
                if self.sync(*key):
                    self.enqueue(*key)  # more Pods to create: after the others waiting
            except Exception:  # keep the controller alive; try that ReplicaSet again shortly
                log.exception("replicaset %s/%s: sync failed", *key)
                self.enqueue(*key, after=1.0)
            # A get() from a non-empty queue does not yield: let the API and the supervisor run.
            await asyncio.sleep(0)

    def sync(self, namespace: str, name: str) -> bool:
        """Create (at most CREATE_BATCH) or delete Pods to match spec.replicas, then write status.
        True when Pods remain to be created (the caller syncs again after yielding)."""
        try:
            rs = self.store.get("ReplicaSet", namespace, name)
        except NotFound:
            return False
        meta = rs["metadata"]
        if meta.get("deletionTimestamp"):
            return False
        refused = check_counts(rs, self.max_replicas)
        if refused:
            self._refuse(rs, refused)
            return False
        owned = self.store.owned_by(meta["uid"], "Pod")
        active = [p for p in owned if not p["metadata"].get("deletionTimestamp")]
        replicas = (rs.get("spec") or {}).get("replicas")
        want = 1 if replicas is None else int(replicas)  # Kubernetes' default is 1
        failure: str | None = None
        more = False
        if len(active) < want:
            count = min(want - len(active), CREATE_BATCH)
            more = want - len(active) > count
            services = self.store.list("Service", meta.get("namespace") or "default")
            taken = portmap.used_host_ports(self.store.list("Pod"))
            for _ in range(count):
                try:
                    active.append(self._create_pod(rs, services, taken))
                except (ClusterError, OSError) as e:
                    failure = str(e)
                    more = False
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
        return more

    def _refuse(self, rs: Obj, errors: list[str]) -> None:
        """Act on nothing for a ReplicaSet whose counts this machine will not run (it reached the
        store before the checks, or straight into it): say so once in its ReplicaFailure
        condition, a Warning Event and the log; its Pods stay as they are."""
        meta = rs["metadata"]
        ns = meta.get("namespace") or "default"
        owner = next(
            (
                f"{r.get('kind')} {ns}/{r.get('name')}"
                for r in meta.get("ownerReferences") or []
                if r.get("controller")
            ),
            None,
        )
        fix = f"; fix the {owner} (rollouts apply, or delete it)" if owner else ""
        message = f"ReplicaSet {ns}/{meta['name']}: not acted on: {'; '.join(errors)}{fix}"
        status = copy.deepcopy(rs.get("status") or {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "ReplicaFailure"]
        old = next((c for c in status.get("conditions") or [] if c.get("type") == "ReplicaFailure"), None)
        if old is not None and old.get("reason") == "TooManyReplicas" and old.get("message") == message:
            return
        log.warning("%s", message)
        conditions.append(
            {
                "type": "ReplicaFailure",
                "status": "True",
                "reason": "TooManyReplicas",
                "message": message,
                "lastTransitionTime": precise_now(),
            }
        )
        status["conditions"] = conditions
        with contextlib.suppress(NotFound):
            self.store.update(
                "ReplicaSet",
                {"metadata": {"namespace": ns, "name": meta["name"]}, "status": status},
                subresource="status",
            )
        record_event(self.store, rs, "Warning", "TooManyReplicas", message, COMPONENT)

    def _create_pod(self, rs: Obj, services: list[Obj], taken: set[int]) -> Obj:
        meta = rs["metadata"]
        ns = meta.get("namespace") or "default"
        tmpl = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
        tmeta = tmpl.get("metadata") or {}
        spec = tmpl.get("spec") or {}
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("terminationGracePeriodSeconds", int(DEFAULT_GRACE))
        spec.setdefault("nodeName", "local")
        labels = dict(tmeta.get("labels") or {})
        wanted = portmap.wanted_ports(spec, labels, services)
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
        when = rfc3339_micro(datetime.fromtimestamp(time.time() + grace, UTC))
        pmeta = pod["metadata"]
        with contextlib.suppress(NotFound):
            mark = {"metadata": {"deletionTimestamp": when, "deletionGracePeriodSeconds": int(grace)}}
            self.store.patch("Pod", pmeta["namespace"], pmeta["name"], mark)
            record_event(
                self.store, rs, "Normal", "SuccessfulDelete", f"Deleted pod: {pmeta['name']}", COMPONENT
            )
