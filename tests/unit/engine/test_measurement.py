"""A measurement's phase from its result and the metric's conditions (engine.measurement), as Argo's
EvaluateResult decides it."""

from __future__ import annotations

from typing import Any

import pytest

from pyrollouts.engine.measurement import Assessment, assess


@pytest.mark.parametrize(
    ("result", "success", "failure", "phase"),
    [
        ([0.99], None, None, "Successful"),
        ([0.99], "", "", "Successful"),
        ([0.99], "result[0] >= 0.95", None, "Successful"),
        ([0.90], "result[0] >= 0.95", None, "Failed"),
        ([0.20], None, "result[0] > 0.1", "Failed"),
        ([0.05], None, "result[0] > 0.1", "Successful"),
        ([0.99], "result[0] >= 0.95", "result[0] < 0.5", "Successful"),
        ([0.30], "result[0] >= 0.95", "result[0] < 0.5", "Failed"),
        ([0.70], "result[0] >= 0.95", "result[0] < 0.5", "Inconclusive"),
        # both hold: failure wins, as in Argo
        ([0.99], "result[0] > 0", "result[0] > 0", "Failed"),
    ],
)
def test_phases(result: Any, success: str | None, failure: str | None, phase: str) -> None:
    assert assess(result, success, failure) == Assessment(phase)


def test_errors_carry_argos_message() -> None:
    a = assess("x", "result > 1", None)
    assert a.phase == "Error"
    assert a.message.startswith('could not evaluate successCondition "result > 1": invalid operation')
    a = assess([], "result[0] > 1", None)
    assert a.message == (
        'could not evaluate successCondition "result[0] > 1": '
        "metric result is nil or empty: no data returned from the metric provider"
    )
    a = assess(1, "result > 0", "result >")
    assert a.phase == "Error" and a.message.startswith('could not evaluate failureCondition "result >"')
    assert assess(1, "result", None).message.endswith("expected bool, but got int")
