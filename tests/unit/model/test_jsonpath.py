"""The web metric's jsonPath (model.jsonpath): the Kubernetes template syntax Argo uses."""

from __future__ import annotations

from typing import Any

import pytest

from pyrollouts.model.jsonpath import JSONPathError, compile_path

DOC: dict[str, Any] = {"data": {"ok": True, "rate": 0.02, "items": [{"v": 1}, {"v": 2}], "a b": "x"}}


@pytest.mark.parametrize(
    ("path", "found"),
    [
        (None, [DOC]),
        ("", [DOC]),
        ("{$}", [DOC]),
        ("{$.data.ok}", [True]),
        ("{.data.rate}", [0.02]),
        ("{ $.data.items[1].v }", [2]),
        ("{$.data.items[-1].v}", [2]),
        ("{$.data['a b']}", ["x"]),
        ('{$["data"].ok}', [True]),
        ("{$.data.items[*].v}", [1, 2]),
        ("{$.data.items.*.v}", [1, 2]),
    ],
)
def test_finds(path: str | None, found: list[Any]) -> None:
    assert compile_path(path).find(DOC) == found


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("{$.data.missing}", "missing is not found"),
        ("{$.data.items[5]}", "array index out of bounds: index 5, length 2"),
        ("{$.data.ok[0]}", "cannot index [0]: not an array"),
    ],
)
def test_find_errors(path: str, message: str) -> None:
    with pytest.raises(JSONPathError, match=message.replace("[", r"\[").replace("]", r"\]")):
        compile_path(path).find(DOC)


@pytest.mark.parametrize(
    "path", ["$.data", "{$.data[?(@.v==1)]}", "{$..v}", "{$.data.items[0:1]}", "{$.data"]
)
def test_unsupported_paths_are_refused_when_parsed(path: str) -> None:
    with pytest.raises(JSONPathError, match="jsonPath"):
        compile_path(path)
