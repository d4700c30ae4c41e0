"""The one builder of Kubernetes Events: what the rollout controller and the local runtime's
supervisor record about an object (``kubectl get events`` and the dashboard's event log read them)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .timefmt import rfc3339


def involved_object(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The ObjectReference an Event names (as Kubernetes' event recorder writes it)."""
    meta = obj.get("metadata") or {}
    ref = {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
    }
    if meta.get("resourceVersion"):
        ref["resourceVersion"] = meta["resourceVersion"]
    return ref


def event(
    obj: Mapping[str, Any],
    type_: str,
    reason: str,
    message: str,
    *,
    component: str,
    now: datetime,
    name_suffix: str,
) -> dict[str, Any]:
    """A new Event (count 1) about ``obj``, named ``<obj name>.<name_suffix>`` in its namespace."""
    meta = obj.get("metadata") or {}
    when = rfc3339(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{meta.get('name')}.{name_suffix}",
            "namespace": meta.get("namespace") or "default",
        },
        "involvedObject": involved_object(obj),
        "reason": reason,
        "message": message,
        "type": type_,
        "source": {"component": component},
        "reportingComponent": component,
        "firstTimestamp": when,
        "lastTimestamp": when,
        "count": 1,
    }
