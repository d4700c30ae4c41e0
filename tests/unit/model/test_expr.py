"""The analysis condition evaluator (model.expr): Argo's documented conditions, expr-lang's operators
with Go's number semantics, every error as ExprError, and a fuzz that nothing else ever escapes."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyrollouts.model.expr import (
    MAX_DEPTH,
    MAX_LENGTH,
    ExprError,
    compile_condition,
    evaluate,
    evaluate_condition,
)

# Conditions as they appear in Argo Rollouts' docs and examples, with a result each provider could
# return (prometheus: a vector is a list of floats, a scalar a float; web: parsed JSON).
ARGO_EXAMPLES = [
    ("result[0] >= 0.95", [0.97], True),
    ("result[0] >= 0.95", [0.90], False),
    ("result[0] >= 10", [12.0], True),
    ("result[0] <= 0.95", [0.5], True),
    ("result >= 0.95", 0.99, True),
    ("result == true", True, True),
    ("result == true", "true", False),
    ("result.major == '1'", {"major": "1", "minor": "27"}, True),
    ("result == 'It worked!'", "It worked!", True),
    ("result <= 0.01", 0.02, False),
    ("default(result, 0) < 5", None, True),
    ("default(result, 0) < 5", 7, False),
    ("result.ok && result.successPercent >= 0.90", {"ok": True, "successPercent": 0.95}, True),
    ("result.ok && result.successPercent >= 0.90", {"ok": False, "successPercent": 0.95}, False),
    ("result.successRate >= 0.95", {"successRate": 1}, True),
    ("result.Status == 999", {"Status": 999}, True),
    ("result == 'true'", "true", True),
    ("max(result) < 0.05", [0.01, 0.04], True),
    ("max(result) < 0.05", [0.01, 0.06], False),
    ("len(result) > 0 && result[0] >= 0.95", [], False),
    ("len(result) == 0 || result[0] >= 0.95", [], True),
    ("isNaN(result) || result >= 0.95", math.nan, True),
    ("isNaN(result) || result >= 0.95", 0.5, False),
    ("len(result[0].Values) >= 5 and all(result[0].Values, {# <= 0.01})", [{"Values": [0] * 5}], True),
    ("len(result[0].Values) >= 5 and all(result[0].Values, {# <= 0.01})", [{"Values": [0.1] * 5}], False),
    (
        "all(result.service_apdex.values.values, {asFloat(.value) >= 9900})",
        {"service_apdex": {"values": {"values": [{"value": "9950"}, {"value": "9999.5"}]}}},
        True,
    ),
    ("all(result, # < 1000)", [1, 999], True),
    ("all(result, # < 1000)", [1, 1000], False),
    ("isInf(result)", math.inf, True),
    ("isInf(result)", 1.0, False),
    ("result[0] < 0.50", [0.4], True),
    ("result.Status == -1", {"Status": -1}, True),
]


@pytest.mark.parametrize(("text", "result", "expected"), ARGO_EXAMPLES)
def test_argo_documented_conditions(text: str, result: Any, expected: bool) -> None:
    assert evaluate_condition(text, result) is expected


VALUES = [
    # literals
    ("1", 1),
    ("1.5", 1.5),
    ("1_000", 1000),
    ("0x1F", 31),
    ("1e3", 1000.0),
    ("'a\\tb'", "a\tb"),
    ('"q\\"uote"', 'q"uote'),
    ('"\\u00e9"', "é"),
    ("`raw\\n`", "raw\\n"),
    ("nil", None),
    ("true", True),
    ("[1, 'a', nil]", [1, "a", None]),
    ("{a: 1, 'b c': 2}", {"a": 1, "b c": 2}),
    ("[]", []),
    # arithmetic with Go's numbers
    ("1 + 2 * 3", 7),
    ("(1 + 2) * 3", 9),
    ("7 / 2", 3.5),
    ("6 / 3", 2.0),
    ("7 % 3", 1),
    ("-7 % 3", -1),
    ("7 % -3", 1),
    ("2 ** 10", 1024.0),
    ("2 ^ 3 ^ 2", 512.0),
    ("-2 ** 2", -4.0),
    ("1 / 0", math.inf),
    ("-1 / 0", -math.inf),
    ("9223372036854775807 + 1", -9223372036854775808),
    ("4611686018427387904 * 2", -(1 << 63)),
    ("1 + 0.5", 1.5),
    ("'a' + 'b'", "ab"),
    ("- -1", 1),
    ("+3", 3),
    # comparisons and logic
    ("1 == 1.0", True),
    ("true == 1", False),
    ("nil == nil", True),
    ("'a' == 1", False),
    ("[1, 2] == [1, 2.0]", True),
    ("{a: 1} == {a: 1}", True),
    ("1 != 2", True),
    ("'abc' < 'abd'", True),
    ("2 >= 2", True),
    ("!true", False),
    ("not false", True),
    ("!true == false", True),
    ("true && false || true", True),
    ("true or false and false", True),
    ("false && result.x.y", False),
    ("true || result.x.y", True),
    ("1 in [1, 2]", True),
    ("3 not in [1, 2]", True),
    ("'a' in {a: 1}", True),
    ("'bc' in nil", False),
    ("'abc' contains 'b'", True),
    ("'abc' startsWith 'ab'", True),
    ("'abc' endsWith 'bc'", True),
    ("true ? 1 : 2", 1),
    ("false ? 1 : true ? 2 : 3", 2),
    ("nil ?? 4", 4),
    ("0 ?? 4", 0),
    # members, indexes, slices
    ("{a: {b: 2}}.a.b", 2),
    ("{a: 1}.missing", None),
    ("{a: 1}['a']", 1),
    ("nil?.a", None),
    ("[1, 2, 3][-1]", 3),
    ("[1, 2, 3][1:]", [2, 3]),
    ("[1, 2, 3][:2]", [1, 2]),
    ("[1, 2, 3][:]", [1, 2, 3]),
    ("'hello'[1]", "e"),
    # functions
    ("len([1, 2])", 2),
    ("len('abc')", 3),
    ("len({a: 1})", 1),
    ("any([1, 2], {# > 1})", True),
    ("none([1, 2], {# > 2})", True),
    ("one([1, 2], {# > 1})", True),
    ("filter([1, 2, 3], {# >= 2})", [2, 3]),
    ("map([1, 2], {# * 2})", [2, 4]),
    ("count([1, 2, 3], {# > 1})", 2),
    ("all([[1], [2]], {all(#, {# > 0})})", True),
    ("map([{v: 1}, {v: 2}], .v)", [1, 2]),
    ("sum([1, 2, 3])", 6),
    ("sum([1, 2.5])", 3.5),
    ("sum([])", 0),
    ("max(1, 5, 3)", 5),
    ("min([4, 2])", 2),
    ("max(7)", 7),
    ("abs(-2)", 2),
    ("ceil(1.2)", 2.0),
    ("floor(-1.2)", -2.0),
    ("round(2.5)", 3.0),
    ("round(-2.5)", -3.0),
    ("round(2.4)", 2.0),
    ("first([1, 2])", 1),
    ("last([1, 2])", 2),
    ("first([])", None),
    ("int(2.9)", 2),
    ("int('42')", 42),
    ("float('1.5')", 1.5),
    ("keys({a: 1})", ["a"]),
    ("values({a: 1})", [1]),
    ("upper('a')", "A"),
    ("lower('A')", "a"),
    ("trim('  a ')", "a"),
    ("asInt('12')", 12),
    ("asInt(3.99)", 3),
    ("asFloat('2.5')", 2.5),
    ("asFloat(2)", 2.0),
    ("asFloat('NaN') != asFloat('NaN')", True),
    ("isNaN(1)", False),
    ("isInf(1 / 0)", True),
    ("isNil(result)", True),
    ("default(result, 'x')", "x"),
]


@pytest.mark.parametrize(("text", "expected"), VALUES)
def test_values(text: str, expected: Any) -> None:
    assert evaluate(text, None) == expected


@pytest.mark.parametrize(
    "text",
    ["true && 1", "1 || true", "!1", "-'a'", "'a' < 1", "nil < 1", "[1] < [2]", "1 - 'a'", "'a' * 2"],
)
def test_type_mismatches_are_errors(text: str) -> None:
    with pytest.raises(ExprError):
        evaluate(text, None)


@pytest.mark.parametrize(
    ("text", "result", "message"),
    [
        ("result[0] > 1", [], "index out of range"),
        ("result[3]", [1], "index out of range"),
        ("result.x", None, "cannot fetch x from nil"),
        ("result.x", [1], "cannot fetch x from array"),
        ("result['a']", [1], "must be an int"),
        ("result[1.5]", [1, 2], "must be an int"),
        ("result[0]", 5, "cannot index int"),
        ("len(result)", 5, "invalid argument for len"),
        ("all(result, {# > 0})", None, "needs an array"),
        ("all(result, {#})", [1], "needs a bool"),
        ("asInt(result)", "1.5", "cannot convert"),
        ("asInt(result)", "99999999999999999999", "64-bit"),
        ("asFloat(result)", "abc", "cannot convert"),
        ("asFloat(result)", " 1", "cannot convert"),
        ("isNaN(result)", "x", "needs a number"),
        ("1 % 0", None, "divide by zero"),
        ("1.5 % 1", None, "mismatched"),
        ("max([])", None, "empty"),
        ("result ? 1 : 2", 3, "needs a bool"),
    ],
)
def test_evaluation_errors(text: str, result: Any, message: str) -> None:
    with pytest.raises(ExprError, match=re.escape(message)) as info:
        evaluate(text, result)
    assert info.value.position is None


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        ("", "empty", 0),
        ("   ", "empty", 0),
        ("result >=", "expected a value, found the end", 9),
        ("result[0", "expected ']'", 8),
        ("(1 + 2", "expected ')'", 6),
        ("results[0] >= 90", "unknown name results", 0),
        ("foo(1)", "unknown function foo", 0),
        ("len(1, 2)", "takes 1 arguments, got 2", 0),
        ("all(result)", "takes 2 arguments", 0),
        ("'abc", "unterminated string", 0),
        ("1 @ 2", "unexpected character '@'", 2),
        ("# > 1", "only defined inside a predicate", 0),
        (".a", "only defined inside a predicate", 0),
        ("1 2", "unexpected token, found '2'", 2),
        ("'\\q'", "invalid escape", 0),
        ("9223372036854775808", "out of range", 0),
        ("result.", "expected a field name", 7),
        ("true ? 1", "expected ':'", 8),
        ("{1: 2}", "map key", 1),
    ],
)
def test_parse_errors_name_the_offset(text: str, message: str, position: int) -> None:
    with pytest.raises(ExprError, match=re.escape(message)) as info:
        compile_condition(text)
    assert info.value.position == position


def test_a_condition_must_give_a_bool() -> None:
    with pytest.raises(ExprError, match="expected bool, but got float64"):
        evaluate_condition("result[0]", [0.5])
    assert compile_condition("result > 1").holds(2) is True


def test_limits_are_errors_not_crashes() -> None:
    with pytest.raises(ExprError, match="nests more than"):
        compile_condition("(" * 500 + "1" + ")" * 500)
    with pytest.raises(ExprError, match="nests more than"):
        compile_condition(" + ".join(["1"] * (MAX_DEPTH + 5)))
    with pytest.raises(ExprError, match="nests more than"):
        compile_condition("-" * 300 + "1")
    with pytest.raises(ExprError, match="longer than"):
        compile_condition("1" * (MAX_LENGTH + 1))


def test_big_powers_stay_floats_and_never_hang() -> None:
    assert evaluate("9 ** 9 ** 9 ** 9", None) == math.inf
    assert evaluate("(-10) ** 1001", None) == -math.inf
    assert math.isnan(evaluate("(-8) ** 0.5", None))


def test_a_compiled_condition_is_reusable() -> None:
    cond = compile_condition("result < 3")
    assert [cond.holds(v) for v in (1, 3, 2.5)] == [True, False, True]


# --- fuzz: whatever the text and the result, a value or ExprError, nothing else -------------------

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from("abxyz"), inner, max_size=4),
    max_leaves=12,
)

_VOCABULARY = [
    "result", "#", ".", "?.", "a", "x", "Values", "0", "1", "-1", "2.5", "1e309", "9223372036854775807",
    "'a'", '"b"', "nil", "true", "false", "(", ")", "[", "]", "{", "}", ",", ":", "?", "??", "+", "-",
    "*", "/", "%", "**", "^", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "!", "and", "or", "not",
    "in", "contains", "startsWith", "len", "all", "any", "map", "filter", "count", "sum", "max", "min",
    "isNaN", "isInf", "isNil", "default", "asInt", "asFloat", "int", "float", "round", "abs", "first",
    "keys",
]  # fmt: skip


def _outcome(text: str, result: Any) -> None:
    try:
        value = evaluate(text, result)
    except ExprError as e:
        assert str(e)
        return
    assert value is None or isinstance(value, bool | int | float | str | list | dict)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=60), _json)
def test_fuzz_any_text(text: str, result: Any) -> None:
    _outcome(text, result)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_VOCABULARY), min_size=1, max_size=24), _json)
def test_fuzz_token_soup(tokens: list[str], result: Any) -> None:
    _outcome(" ".join(tokens), result)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_fuzz_results_against_argo_conditions(result: Any) -> None:
    for text, _, _ in ARGO_EXAMPLES:
        try:
            value = evaluate_condition(text, result)
        except ExprError:
            continue
        assert isinstance(value, bool)
