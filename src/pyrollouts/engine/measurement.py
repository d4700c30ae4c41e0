"""One measurement's phase, from the provider's result and the metric's conditions, as Argo decides
it (Argo's EvaluateResult): pure, no I/O.

- neither condition: Successful;
- only a successCondition: Successful when it holds, else Failed;
- only a failureCondition: Failed when it holds, else Successful;
- both: Failed when the failure condition holds, Successful when only the success one does, and
  Inconclusive when neither does;
- a condition that does not parse or cannot be evaluated against the result (``model.expr``): Error,
  with Argo's message (``could not evaluate successCondition "...": ...``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..model.analysis import PHASE_ERROR, PHASE_FAILED, PHASE_INCONCLUSIVE, PHASE_SUCCESSFUL
from ..model.expr import ExprError, compile_condition


@dataclass(frozen=True)
class Assessment:
    """A measurement's phase and, for Error, why."""

    phase: str
    message: str = ""


class _ConditionError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def assess(result: Any, success_condition: str | None, failure_condition: str | None) -> Assessment:
    """The phase of a measurement whose value is ``result`` (see the module docstring)."""
    try:
        success = _holds("successCondition", success_condition, result)
        failure = _holds("failureCondition", failure_condition, result)
    except _ConditionError as e:
        return Assessment(PHASE_ERROR, e.message)
    if success is None and failure is None:
        return Assessment(PHASE_SUCCESSFUL)
    if failure is None:
        failure = not success
    if success is None:
        success = not failure
    if failure:
        return Assessment(PHASE_FAILED)
    return Assessment(PHASE_SUCCESSFUL if success else PHASE_INCONCLUSIVE)


def _holds(which: str, condition: str | None, result: Any) -> bool | None:
    if not condition:
        return None
    try:
        return compile_condition(condition).holds(result)
    except ExprError as e:
        if result is None or (isinstance(result, list | tuple) and not result):
            why = "metric result is nil or empty: no data returned from the metric provider"
        else:
            why = str(e)
        raise _ConditionError(f'could not evaluate {which} "{condition}": {why}') from e
