"""The one registry of kinds, owner check, revision lookup, time formats, Event builder and label
selector parser (model/kinds.py, owners.py, timefmt.py, events.py, selectors.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from pyrollouts.model import kinds, owners
from pyrollouts.model.events import event
from pyrollouts.model.selectors import parse_label_selector
from pyrollouts.model.timefmt import rfc3339, rfc3339_micro


def test_kinds_by_any_name_a_user_types() -> None:
    for word in ("rollout", "Rollouts", "ro", "RO"):
        assert kinds.client_kind(word) is kinds.ROLLOUT
    assert kinds.client_kind("svc") is kinds.SERVICE
    assert kinds.client_kind("deploy") is None  # stored, but no client names it
    assert kinds.by_plural("replicasets") is kinds.REPLICASET
    assert kinds.REPLICASET.api_version == "apps/v1" and kinds.POD.api_version == "v1"
    assert {"Namespace", "ClusterAnalysisTemplate"} == kinds.CLUSTER_SCOPED
    assert "Namespace" not in kinds.NAMESPACED and "Deployment" in kinds.NAMESPACED


def test_owner_by_uid_or_by_kind_and_name_without_uid() -> None:
    owner = {"kind": "Rollout", "metadata": {"name": "web", "uid": "u1"}}
    mine = {"metadata": {"ownerReferences": [{"kind": "Rollout", "name": "other", "uid": "u1"}]}}
    by_name = {"metadata": {"ownerReferences": [{"kind": "Rollout", "name": "web"}]}}
    stranger = {"metadata": {"ownerReferences": [{"kind": "Rollout", "name": "web", "uid": "u2"}]}}
    assert owners.owned([mine, by_name, stranger, {"metadata": {}}], owner) == [mine, by_name]


def test_revision_lookup() -> None:
    def rs(value: object) -> dict[str, object]:
        return {"metadata": {"annotations": {"rollout.argoproj.io/revision": value}}}

    assert owners.revision_of(rs("3")) == 3 and owners.revision(rs("3")) == 3
    assert owners.revision_of(rs("x")) is None and owners.revision(rs("x")) == 0
    assert owners.revision_of({"metadata": {}}) is None


def test_times_are_utc_whatever_the_zone() -> None:
    t = datetime(2026, 1, 2, 5, 4, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert rfc3339(t) == "2026-01-02T03:04:05Z"
    assert rfc3339_micro(t) == "2026-01-02T03:04:05.123456Z"
    assert rfc3339(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05Z"  # naive: taken as UTC


def test_event_names_the_object() -> None:
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns", "uid": "u"}}
    ev = event(
        obj,
        "Normal",
        "Started",
        "started",
        component="c",
        now=datetime(2026, 1, 1, tzinfo=UTC),
        name_suffix="x",
    )
    assert ev["metadata"] == {"name": "p.x", "namespace": "ns"}
    assert ev["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "p",
        "namespace": "ns",
        "uid": "u",
    }
    assert ev["firstTimestamp"] == ev["lastTimestamp"] == "2026-01-01T00:00:00Z"
    assert ev["source"] == {"component": "c"} and ev["count"] == 1


def test_label_selectors() -> None:
    assert parse_label_selector("") is None
    assert parse_label_selector("app=web, tier==front") == {"app": "web", "tier": "front"}
    for bad in ("app", "app!=web", "=web"):
        with pytest.raises(ValueError, match="only key=value pairs"):
            parse_label_selector(bad)
