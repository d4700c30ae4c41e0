"""The Kubernetes runtime's pure pieces: error mapping, metrics exposition, leader timings, kubectl's
plugin arguments, the InvalidSpec status written on a refusal. No cluster needed."""

from __future__ import annotations

from typing import Any

import pytest
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import Status

from pyrollouts.cli.kube_backend import kubectl_args
from pyrollouts.controller.apply import _invalid_spec_status
from pyrollouts.daemons.operator import in_scope
from pyrollouts.model.cluster import ClusterError, Conflict, Invalid, NotFound
from pyrollouts.runtimes.kubernetes.cluster import translate
from pyrollouts.runtimes.kubernetes.informer import matches
from pyrollouts.runtimes.kubernetes.leader import LeaseTimings, micro_time
from pyrollouts.runtimes.kubernetes.metrics import ControllerMetrics


def _api_error(code: int, message: str) -> ApiError:
    return ApiError(status=Status(code=code, message=message))


@pytest.mark.parametrize(
    ("code", "kind"), [(404, NotFound), (409, Conflict), (422, Invalid), (400, Invalid), (500, ClusterError)]
)
def test_api_errors_map_to_the_protocol(code: int, kind: type[Exception]) -> None:
    err = translate(_api_error(code, "the server's words"), "ReplicaSet ns/x")
    assert type(err) is kind
    assert "the server's words" in str(err)


def test_invalid_keeps_the_servers_message_alone() -> None:
    msg = 'ReplicaSet.apps "x" is invalid: spec.template.spec.containers[0].readinessProbe.httpGet.port: ...'
    assert str(translate(_api_error(422, msg), "create")) == msg


def _rollout(
    phase: str, available: int, replicas: int, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": "ro", "labels": labels or {}},
        "spec": {"replicas": 3, "strategy": {"blueGreen": {}}},
        "status": {
            "phase": phase,
            "availableReplicas": available,
            "replicas": replicas,
            "updatedReplicas": 3,
        },
    }


def test_metrics_use_argos_names_and_live_values() -> None:
    rollouts = [_rollout("Paused", 3, 6)]
    m = ControllerMetrics(lambda: rollouts)
    m.observe_reconcile("ns/ro", 0.02, None)
    m.observe_reconcile("ns/ro", 0.02, RuntimeError("x"))
    m.count_event({"type": "Normal", "reason": "SwitchService"})
    text = m.exposition().decode()
    assert 'rollout_info{name="ro",namespace="ns",phase="Paused",strategy="blueGreen"} 1.0' in text
    assert 'rollout_info_replicas_unavailable{name="ro",namespace="ns"} 3.0' in text
    assert 'rollout_info_replicas_desired{name="ro",namespace="ns"} 3.0' in text
    assert 'rollout_reconcile_count{name="ro",namespace="ns"} 2.0' in text
    assert 'rollout_reconcile_error_total{name="ro",namespace="ns"} 1.0' in text
    assert 'rollout_events_total{reason="SwitchService",type="Normal"} 1.0' in text
    rollouts[0] = _rollout("Healthy", 3, 3)
    text = m.exposition().decode()
    assert 'phase="Healthy"' in text and 'phase="Paused"' not in text
    assert 'rollout_info_replicas_unavailable{name="ro",namespace="ns"} 0.0' in text


def test_lease_timings_are_checked() -> None:
    LeaseTimings().check()
    with pytest.raises(ValueError, match="lease-duration > renew-deadline > retry-period"):
        LeaseTimings(10, 10, 2).check()
    assert micro_time().endswith("Z") and "." in micro_time()


def test_kubectl_plugin_flags_anywhere() -> None:
    rest, found = kubectl_args(["promote", "x", "--kubeconfig", "/k", "-n", "ns", "--context=c"])
    assert rest == ["promote", "x", "-n", "ns"]
    assert found == {"--kubeconfig": "/k", "--context": "c"}


def test_instance_id_scope() -> None:
    plain = _rollout("Healthy", 1, 1)
    labelled = _rollout("Healthy", 1, 1, {"argo-rollouts.argoproj.io/controller-instance-id": "a"})
    assert in_scope(plain, None) and not in_scope(labelled, None)
    assert in_scope(labelled, "a") and not in_scope(labelled, "b") and not in_scope(plain, "a")


def test_label_match() -> None:
    obj = {"metadata": {"labels": {"a": "1", "b": "2"}}}
    assert matches(obj, {"a": "1"}) and matches(obj, None) and not matches(obj, {"a": "2"})


def test_invalid_spec_status_is_stable() -> None:
    planned = {"phase": "Progressing", "conditions": [{"type": "Progressing", "status": "True"}]}
    first = _invalid_spec_status(planned, None, "port bad", "2026-01-01T00:00:00Z")
    assert first["phase"] == "Degraded" and first["message"] == "InvalidSpec: port bad"
    assert first["conditions"][0]["type"] == "InvalidSpec"
    again = _invalid_spec_status(planned, first, "port bad", "2026-01-01T00:01:00Z")
    assert again == first  # unchanged message: times kept, so nothing is written again


def test_the_operator_runs_on_uvloop() -> None:
    import asyncio

    import uvloop

    from pyrollouts.daemons.operator import _run_loop

    seen: list[type] = []

    async def main() -> None:
        seen.append(type(asyncio.get_running_loop()))

    _run_loop(main())
    assert seen == [uvloop.Loop]
