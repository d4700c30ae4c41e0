"""Who owns what, and which revision a ReplicaSet is: the one owner check and the one revision
lookup every layer uses (the info view, the verbs, the dashboard, the CLI's Kubernetes backend)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from . import names


def owned_by(obj: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    """Whether one of ``obj``'s ownerReferences names ``owner`` (by uid; a reference without a uid,
    written by hand, matches the owner's kind and name)."""
    meta = owner.get("metadata") or {}
    uid = meta.get("uid") or ""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if uid and ref.get("uid") == uid:
            return True
        by_name = ref.get("kind") == owner.get("kind") and ref.get("name") == meta.get("name")
        if by_name and not ref.get("uid"):
            return True
    return False


def owned_by_uid(obj: Mapping[str, Any], uid: str) -> bool:
    """Whether one of ``obj``'s ownerReferences names this uid: the controller's strict check (it
    adopts and scales only what it created, never a reference written by hand)."""
    return any(ref.get("uid") == uid for ref in (obj.get("metadata") or {}).get("ownerReferences") or [])


def owned(objs: Iterable[Mapping[str, Any]], owner: Mapping[str, Any]) -> list[Any]:
    """The objects ``owner`` owns, in their order."""
    return [o for o in objs if owned_by(o, owner)]


def revision_of(rs: Mapping[str, Any]) -> int | None:
    """The ReplicaSet's ``rollout.argoproj.io/revision``; None when missing or not a number."""
    raw = ((rs.get("metadata") or {}).get("annotations") or {}).get(names.REVISION_ANNOTATION)
    try:
        return int(str(raw))
    except ValueError:
        return None


def revision(rs: Mapping[str, Any]) -> int:
    """The ReplicaSet's revision, 0 when it has none."""
    return revision_of(rs) or 0
