"""Argo's analysis conditions: a safe evaluator of ``successCondition`` / ``failureCondition``.

Argo Rollouts evaluates a metric's conditions with expr-lang (the Go library), with ``result``
bound to the provider's measurement plus a few functions of its own (``asInt``, ``asFloat``,
``isNaN``, ``isInf``, ``isNil``, ``default``). No maintained Python library evaluates expr-lang,
and Python's own ``eval`` (or anything that compiles user text into Python) would run whatever a
manifest says. So this module is a small language of its own, written by hand: a regular-expression
tokenizer, a table-driven precedence-climbing parser that builds a tree of ``Node`` values, and an
evaluator that walks the tree through a dispatch table, one small function per kind of node.

It lives in ``model`` because a condition is part of the manifest's language: ``rollouts lint``
parses every condition (``compile_condition``) and the engine evaluates them (``Expression``), and
both import the model.

Everything that can go wrong, in the text or while evaluating it against a result, raises
``ExprError`` and nothing else: a condition that does not parse, an unknown name or function, a
wrong number of arguments, an operation on mismatched types (``"a" < 1``), an index out of range,
an expression that nests too deeply. Values follow Go's semantics where Python's differ: integers
are 64-bit and wrap, ``/`` always gives a float (``1/0`` is +Inf, as in Go), ``**`` is a float
power, ``%`` truncates toward zero, and ``true == 1`` is false. docs/analysis.md lists what is
supported and what differs from expr-lang.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

#: The longest condition accepted; real ones are a line or two.
MAX_LENGTH: Final = 4096
#: The deepest tree (and the deepest nesting of parentheses, calls and indexes) accepted.
MAX_DEPTH: Final = 100

_INT64_MIN: Final = -(1 << 63)
_INT64_SPAN: Final = 1 << 64


class ExprError(ValueError):
    """A condition that does not parse, or that cannot be evaluated against the given result.

    ``position`` is the 0-based offset in the text where parsing failed (None for evaluation errors).
    """

    def __init__(self, message: str, position: int | None = None) -> None:
        self.message = message
        self.position = position
        super().__init__(message if position is None else f"{message} (at offset {position})")


# ---------------------------------------------------------------------------------------------------
# Tokens

_TOKEN_RE: Final = re.compile(
    r"""
    (?P<space>\s+)
    |(?P<num>0[xX][0-9a-fA-F](?:_?[0-9a-fA-F])*|\d(?:_?\d)*(?:\.\d(?:_?\d)*)?(?:[eE][+-]?\d+)?)
    |(?P<str>"[^"\\]*(?:\\.[^"\\]*)*"|'[^'\\]*(?:\\.[^'\\]*)*'|`[^`]*`)
    |(?P<name>[A-Za-z_$][A-Za-z0-9_$]*)
    |(?P<op>\?\?|\?\.|\.\.|\*\*|==|!=|<=|>=|&&|\|\||[-+*/%^!<>?:.,()\[\]{}\#])
    """,
    re.VERBOSE | re.DOTALL | re.ASCII,
)


@dataclass(frozen=True)
class Token:
    """One token: ``kind`` is num, str, name, op or eof; ``value`` the literal's value."""

    kind: str
    text: str
    pos: int
    value: Any = None


_SIMPLE_ESCAPES: Final = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
}
_ESCAPE_RE: Final = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", re.DOTALL)


def _unescape(body: str, pos: int) -> str:
    def one(m: re.Match[str]) -> str:
        esc = m.group(1)
        if esc in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[esc]
        if len(esc) > 1:
            code = int(esc[1:], 16)
            if code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
                return chr(code)
        raise ExprError(f"invalid escape sequence \\{esc} in string", pos)

    return _ESCAPE_RE.sub(one, body)


def _number(text: str, pos: int) -> int | float:
    digits = text.replace("_", "")
    if digits[:2] in ("0x", "0X") or not any(c in digits for c in ".eE"):
        value = int(digits, 0) if digits[:2] in ("0x", "0X") else int(digits)
        if value >= 1 << 63:
            raise ExprError(f"integer literal {text} is out of range (64 bits)", pos)
        return value
    return float(digits)


def _literal(kind: str, text: str, pos: int) -> Any:
    if kind == "num":
        return _number(text, pos)
    if text[0] == "`":
        return text[1:-1]
    return _unescape(text[1:-1], pos)


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text`` ending with an eof token; ExprError for a character that starts none."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            what = "unterminated string" if text[pos] in "\"'`" else f"unexpected character {text[pos]!r}"
            raise ExprError(what, pos)
        kind = m.lastgroup or ""
        if kind != "space":
            value = _literal(kind, m.group(), pos) if kind in ("num", "str") else None
            tokens.append(Token(kind, m.group(), pos, value))
        pos = m.end()
    tokens.append(Token("eof", "", len(text)))
    return tokens


# ---------------------------------------------------------------------------------------------------
# The tree


@dataclass(frozen=True)
class Node:
    """One node of a parsed condition. ``kind`` picks the evaluator; ``value`` is the literal, the
    operator, the member or the function name; ``args`` are the child nodes."""

    kind: str
    value: Any = None
    args: tuple[Node, ...] = ()
    depth: int = 1


def _node(kind: str, value: Any = None, *args: Node, pos: int = 0) -> Node:
    depth = 1 + max((a.depth for a in args), default=0)
    if depth > MAX_DEPTH:
        raise ExprError(f"the expression nests more than {MAX_DEPTH} levels deep", pos)
    return Node(kind, value, tuple(args), depth)


#: Binary operators: precedence (higher binds tighter) and whether they group to the right. The
#: numbers are expr-lang's, so ``a ?? b + c`` and ``!a == b`` group as they do there.
_BINARY: Final[dict[str, tuple[int, bool]]] = {
    "||": (10, False),
    "or": (10, False),
    "&&": (15, False),
    "and": (15, False),
    "==": (20, False),
    "!=": (20, False),
    "<": (20, False),
    ">": (20, False),
    "<=": (20, False),
    ">=": (20, False),
    "in": (20, False),
    "not in": (20, False),
    "contains": (20, False),
    "startsWith": (20, False),
    "endsWith": (20, False),
    "+": (30, False),
    "-": (30, False),
    "*": (60, False),
    "/": (60, False),
    "%": (60, False),
    "**": (100, True),
    "^": (100, True),
    "??": (500, False),
}
_UNARY: Final[dict[str, int]] = {"!": 50, "not": 50, "-": 90, "+": 90}
_CONSTANTS: Final[dict[str, Any]] = {"true": True, "false": False, "nil": None}
_TERNARY_PRECEDENCE: Final = 0
#: Synonyms evaluated by one operator.
_CANONICAL: Final = {"or": "||", "and": "&&", "^": "**"}


@dataclass(frozen=True)
class _Function:
    low: int
    high: int
    predicate: bool = False


#: Every function a condition may call, with its arity; ``predicate`` functions take a closure second.
_FUNCTIONS: Final[dict[str, _Function]] = {
    "len": _Function(1, 1),
    "all": _Function(2, 2, True),
    "any": _Function(2, 2, True),
    "none": _Function(2, 2, True),
    "one": _Function(2, 2, True),
    "filter": _Function(2, 2, True),
    "map": _Function(2, 2, True),
    "count": _Function(2, 2, True),
    "sum": _Function(1, 1),
    "max": _Function(1, 64),
    "min": _Function(1, 64),
    "abs": _Function(1, 1),
    "ceil": _Function(1, 1),
    "floor": _Function(1, 1),
    "round": _Function(1, 1),
    "first": _Function(1, 1),
    "last": _Function(1, 1),
    "int": _Function(1, 1),
    "float": _Function(1, 1),
    "keys": _Function(1, 1),
    "values": _Function(1, 1),
    "upper": _Function(1, 1),
    "lower": _Function(1, 1),
    "trim": _Function(1, 1),
    "isNaN": _Function(1, 1),
    "isInf": _Function(1, 1),
    "isNil": _Function(1, 1),
    "default": _Function(2, 2),
    "asInt": _Function(1, 1),
    "asFloat": _Function(1, 1),
}


class _Parser:
    """Recursive descent for primaries and postfixes, precedence climbing for operators."""

    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.nesting = 0
        self.closures = 0

    # -- token helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def take(self) -> Token:
        t = self.tok
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return t

    def at(self, text: str) -> bool:
        return self.tok.kind in ("op", "name") and self.tok.text == text

    def expect(self, text: str) -> Token:
        if not self.at(text):
            raise self.error(f"expected {text!r}")
        return self.take()

    def error(self, what: str) -> ExprError:
        t = self.tok
        found = "the end of the expression" if t.kind == "eof" else repr(t.text)
        return ExprError(f"{what}, found {found}", t.pos)

    # -- grammar
    def parse(self) -> Node:
        root = self.expression()
        if self.tok.kind != "eof":
            raise self.error("unexpected token")
        return root

    def expression(self, min_prec: int = _TERNARY_PRECEDENCE) -> Node:
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise ExprError(f"the expression nests more than {MAX_DEPTH} levels deep", self.tok.pos)
        left = self.binary(self.unary(), min_prec)
        if min_prec == _TERNARY_PRECEDENCE and self.at("?"):
            left = self.ternary(left)
        self.nesting -= 1
        return left

    def ternary(self, cond: Node) -> Node:
        pos = self.take().pos
        yes = self.expression()
        self.expect(":")
        no = self.expression()
        return _node("cond", None, cond, yes, no, pos=pos)

    def binary_op(self) -> str | None:
        t = self.tok
        if t.kind not in ("op", "name"):
            return None
        if t.text == "not" and self.peek().kind == "name" and self.peek().text == "in":
            return "not in"
        return t.text if t.text in _BINARY else None

    def binary(self, left: Node, min_prec: int) -> Node:
        while (op := self.binary_op()) is not None:
            prec, right_assoc = _BINARY[op]
            if prec < min_prec:
                break
            pos = self.take().pos
            if op == "not in":
                self.take()
            right = self.binary(self.unary(), prec if right_assoc else prec + 1)
            left = _node("binary", _CANONICAL.get(op, op), left, right, pos=pos)
        return left

    def unary(self) -> Node:
        t = self.tok
        if t.kind in ("op", "name") and t.text in _UNARY and not self._not_in():
            self.take()
            operand = self.expression(_UNARY[t.text])
            return _node("unary", "!" if t.text == "not" else t.text, operand, pos=t.pos)
        return self.postfix(self.primary())

    def _not_in(self) -> bool:
        return self.tok.text == "not" and self.peek().text == "in"

    def postfix(self, node: Node) -> Node:
        while True:
            t = self.tok
            if t.kind != "op" or t.text not in (".", "?.", "["):
                return node
            self.take()
            if t.text == "[":
                node = self.index(node, t.pos)
            else:
                node = _node("member", (self.member_name(), t.text == "?."), node, pos=t.pos)

    def member_name(self) -> str:
        if self.tok.kind != "name":
            raise self.error("expected a field name after '.'")
        return self.take().text

    def index(self, obj: Node, pos: int) -> Node:
        self.nesting += 1
        lo = None if self.at(":") else self.expression()
        if self.at(":"):
            self.take()
            hi = None if self.at("]") else self.expression()
            self.expect("]")
            self.nesting -= 1
            bounds = [n for n in (lo, hi) if n is not None]
            return _node("slice", (lo is not None, hi is not None), obj, *bounds, pos=pos)
        self.expect("]")
        self.nesting -= 1
        assert lo is not None
        return _node("index", None, obj, lo, pos=pos)

    def primary(self) -> Node:
        t = self.tok
        handler = _PRIMARY.get(t.kind if t.kind != "op" else t.text)
        if handler is None:
            raise self.error("expected a value")
        return handler(self)

    def literal(self) -> Node:
        return _node("lit", self.take().value)

    def name(self) -> Node:
        t = self.take()
        if t.text in _CONSTANTS:
            return _node("lit", _CONSTANTS[t.text])
        if self.at("("):
            return self.call(t)
        if t.text == "result":
            return _node("result")
        raise ExprError(f"unknown name {t.text} (a condition can use result and functions)", t.pos)

    def call(self, name: Token) -> Node:
        fn = _FUNCTIONS.get(name.text)
        if fn is None:
            raise ExprError(f"unknown function {name.text}", name.pos)
        self.take()
        args = list(self.arguments(fn))
        self.expect(")")
        if not fn.low <= len(args) <= fn.high:
            want = str(fn.low) if fn.low == fn.high else f"{fn.low} to {fn.high}"
            raise ExprError(f"{name.text}() takes {want} arguments, got {len(args)}", name.pos)
        return _node("call", name.text, *args, pos=name.pos)

    def arguments(self, fn: _Function) -> Iterator[Node]:
        n = 0
        while not self.at(")"):
            if n:
                self.expect(",")
            yield self.closure() if fn.predicate and n == 1 else self.expression()
            n += 1

    def closure(self) -> Node:
        braced = self.at("{")
        if braced:
            self.take()
        self.closures += 1
        body = self.expression()
        self.closures -= 1
        if braced:
            self.expect("}")
        return _node("closure", None, body)

    def element(self) -> Node:
        t = self.take()
        if not self.closures:
            raise ExprError("# (the current element) is only defined inside a predicate", t.pos)
        return _node("elem")

    def element_member(self) -> Node:
        t = self.take()
        if not self.closures:
            raise ExprError(
                "a field of the current element (.name) is only defined inside a predicate", t.pos
            )
        return _node("member", (self.member_name(), False), _node("elem"), pos=t.pos)

    def parenthesised(self) -> Node:
        self.take()
        inner = self.expression()
        self.expect(")")
        return inner

    def array(self) -> Node:
        pos = self.take().pos
        items: list[Node] = []
        while not self.at("]"):
            if items:
                self.expect(",")
            items.append(self.expression())
        self.take()
        return _node("array", None, *items, pos=pos)

    def mapping(self) -> Node:
        pos = self.take().pos
        keys: list[str] = []
        values: list[Node] = []
        while not self.at("}"):
            if keys:
                self.expect(",")
            keys.append(self.map_key())
            self.expect(":")
            values.append(self.expression())
        self.take()
        return _node("map", tuple(keys), *values, pos=pos)

    def map_key(self) -> str:
        t = self.tok
        if t.kind == "name" or (t.kind == "str"):
            self.take()
            return t.text if t.kind == "name" else str(t.value)
        raise self.error("expected a map key (a name or a string)")


_PRIMARY: Final[dict[str, Callable[[_Parser], Node]]] = {
    "num": _Parser.literal,
    "str": _Parser.literal,
    "name": _Parser.name,
    "#": _Parser.element,
    ".": _Parser.element_member,
    "(": _Parser.parenthesised,
    "[": _Parser.array,
    "{": _Parser.mapping,
}


# ---------------------------------------------------------------------------------------------------
# Values


def type_name(value: Any) -> str:
    """The expr-lang (Go) name of a value's type, as error messages show it."""
    if value is None:
        return "nil"
    for kind, name in _TYPE_NAMES:
        if isinstance(value, kind):
            return name
    return type(value).__name__


_TYPE_NAMES: Final[tuple[tuple[type, str], ...]] = (
    (bool, "bool"),
    (int, "int"),
    (float, "float64"),
    (str, "string"),
    (list, "array"),
    (tuple, "array"),
    (dict, "map"),
)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _int64(v: int) -> int:
    return (v - _INT64_MIN) % _INT64_SPAN + _INT64_MIN


def _mismatch(op: str, a: Any, b: Any) -> ExprError:
    return ExprError(f"invalid operation: {op} (mismatched types {type_name(a)} and {type_name(b)})")


def _equal(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


def _divide(a: float, b: float) -> float:
    if b != 0:
        return a / b
    if a == 0 or math.isnan(a):
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _power(a: float, b: float) -> float:
    try:
        return math.pow(a, b)
    except OverflowError:
        return math.inf if a > 0 or (float(b).is_integer() and b % 2 == 0) else -math.inf
    except ValueError:
        return math.nan if a != 0 else math.inf


def _modulo(a: Any, b: Any) -> int:
    if not (isinstance(a, int) and isinstance(b, int)) or isinstance(a, bool) or isinstance(b, bool):
        raise _mismatch("%", a, b)
    if b == 0:
        raise ExprError("integer divide by zero")
    r = abs(a) % abs(b)
    return _int64(-r if a < 0 else r)


_INT_OPS: Final[dict[str, Callable[[int, int], int]]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
}
_FLOAT_OPS: Final[dict[str, Callable[[float, float], float]]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": _divide,
    "**": _power,
}


def _arithmetic(op: str, a: Any, b: Any) -> Any:
    if op == "%":
        return _modulo(a, b)
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        return a + b
    if not (_is_number(a) and _is_number(b)):
        raise _mismatch(op, a, b)
    if op in _INT_OPS and isinstance(a, int) and isinstance(b, int):
        return _int64(_INT_OPS[op](a, b))
    return _FLOAT_OPS[op](float(a), float(b))


_ORDER: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "<": lambda a, b: bool(a < b),
    ">": lambda a, b: bool(a > b),
    "<=": lambda a, b: bool(a <= b),
    ">=": lambda a, b: bool(a >= b),
}


def _compare(op: str, a: Any, b: Any) -> bool:
    if (_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str)):
        return _ORDER[op](a, b)
    raise _mismatch(op, a, b)


def _member_of(op: str, a: Any, b: Any) -> bool:
    if isinstance(b, list | tuple):
        found = any(_equal(a, x) for x in b)
    elif isinstance(b, dict):
        found = isinstance(a, str) and a in b
    elif b is None:
        found = False
    else:
        raise _mismatch(op, a, b)
    return found if op == "in" else not found


def _strings(op: str, a: Any, b: Any) -> bool:
    if not (isinstance(a, str) and isinstance(b, str)):
        raise _mismatch(op, a, b)
    return _STRING_OPS[op](a, b)


_STRING_OPS: Final[dict[str, Callable[[str, str], bool]]] = {
    "contains": lambda a, b: b in a,
    "startsWith": str.startswith,
    "endsWith": str.endswith,
}


def _apply_binary(op: str, a: Any, b: Any) -> Any:
    if op == "==":
        return _equal(a, b)
    if op == "!=":
        return not _equal(a, b)
    if op in _ORDER:
        return _compare(op, a, b)
    if op in ("in", "not in"):
        return _member_of(op, a, b)
    if op in _STRING_OPS:
        return _strings(op, a, b)
    return _arithmetic(op, a, b)


# ---------------------------------------------------------------------------------------------------
# Evaluation


@dataclass(frozen=True)
class _Scope:
    result: Any
    element: Any = None


def _eval(node: Node, scope: _Scope) -> Any:
    return _EVAL[node.kind](node, scope)


def _need_bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ExprError(f"{what} needs a bool, got {type_name(value)}")
    return value


def _eval_binary(node: Node, scope: _Scope) -> Any:
    op = node.value
    left = _eval(node.args[0], scope)
    if op in ("&&", "||"):
        # Short-circuit, as Go does: the right side is not evaluated once the left decides.
        if _need_bool(left, op) == (op == "||"):
            return left
        return _need_bool(_eval(node.args[1], scope), op)
    if op == "??":
        return left if left is not None else _eval(node.args[1], scope)
    return _apply_binary(op, left, _eval(node.args[1], scope))


def _eval_unary(node: Node, scope: _Scope) -> Any:
    value = _eval(node.args[0], scope)
    if node.value == "!":
        return not _need_bool(value, "!")
    if not _is_number(value):
        raise ExprError(f"invalid operation: {node.value}{type_name(value)}")
    if node.value == "+":
        return value
    return _int64(-value) if isinstance(value, int) else -value


def _eval_cond(node: Node, scope: _Scope) -> Any:
    branch = 1 if _need_bool(_eval(node.args[0], scope), "?:") else 2
    return _eval(node.args[branch], scope)


def _eval_member(node: Node, scope: _Scope) -> Any:
    name, optional = node.value
    obj = _eval(node.args[0], scope)
    if isinstance(obj, dict):
        return obj.get(name)
    if obj is None and optional:
        return None
    raise ExprError(f"cannot fetch {name} from {type_name(obj)}")


def _int_index(key: Any, length: int) -> int:
    if not isinstance(key, int) or isinstance(key, bool):
        raise ExprError(f"an array index must be an int, got {type_name(key)}")
    i = key + length if key < 0 else key
    if not 0 <= i < length:
        raise ExprError(f"index out of range: {key} (array length {length})")
    return i


def _eval_index(node: Node, scope: _Scope) -> Any:
    obj = _eval(node.args[0], scope)
    key = _eval(node.args[1], scope)
    if isinstance(obj, dict):
        if not isinstance(key, str):
            raise ExprError(f"a map key must be a string, got {type_name(key)}")
        return obj.get(key)
    if isinstance(obj, list | tuple | str):
        return obj[_int_index(key, len(obj))]
    raise ExprError(f"cannot index {type_name(obj)} with {type_name(key)}")


def _bound(value: Any, default: int) -> int:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise ExprError(f"a slice bound must be an int, got {type_name(value)}")
    return int(value)


def _eval_slice(node: Node, scope: _Scope) -> Any:
    has_lo, has_hi = node.value
    obj = _eval(node.args[0], scope)
    rest = [_eval(a, scope) for a in node.args[1:]]
    lo = rest.pop(0) if has_lo else None
    hi = rest.pop(0) if has_hi else None
    if not isinstance(obj, list | tuple | str):
        raise ExprError(f"cannot slice {type_name(obj)}")
    return obj[_bound(lo, 0) : _bound(hi, len(obj))]


def _eval_call(node: Node, scope: _Scope) -> Any:
    name = node.value
    if _FUNCTIONS[name].predicate:
        items = _iterable(name, _eval(node.args[0], scope))
        body = node.args[1].args[0]
        return _PREDICATES[name](items, lambda item: _eval(body, _Scope(scope.result, item)))
    return _CALLS[name](scope, [_eval(a, scope) for a in node.args])


_EVAL: Final[dict[str, Callable[[Node, _Scope], Any]]] = {
    "lit": lambda node, scope: node.value,
    "result": lambda node, scope: scope.result,
    "elem": lambda node, scope: scope.element,
    "array": lambda node, scope: [_eval(a, scope) for a in node.args],
    "map": lambda node, scope: {k: _eval(a, scope) for k, a in zip(node.value, node.args, strict=True)},
    "binary": _eval_binary,
    "unary": _eval_unary,
    "cond": _eval_cond,
    "member": _eval_member,
    "index": _eval_index,
    "slice": _eval_slice,
    "call": _eval_call,
}


# ---------------------------------------------------------------------------------------------------
# Functions

Predicate = Callable[[Any], Any]


def _iterable(name: str, value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    raise ExprError(f"{name}() needs an array, got {type_name(value)}")


def _tests(items: list[Any], pred: Predicate) -> Iterator[bool]:
    for item in items:
        yield _need_bool(pred(item), "a predicate")


_PREDICATES: Final[dict[str, Callable[[list[Any], Predicate], Any]]] = {
    "all": lambda items, pred: all(_tests(items, pred)),
    "any": lambda items, pred: any(_tests(items, pred)),
    "none": lambda items, pred: not any(_tests(items, pred)),
    "one": lambda items, pred: sum(_tests(items, pred)) == 1,
    "count": lambda items, pred: sum(_tests(items, pred)),
    "filter": lambda items, pred: [x for x, keep in zip(items, _tests(items, pred), strict=True) if keep],
    "map": lambda items, pred: [pred(x) for x in items],
}


def _number_arg(name: str, value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ExprError(f"{name}() needs a number, got {type_name(value)}")
    return value


def _numbers(name: str, args: list[Any]) -> list[int | float]:
    items = list(args[0]) if len(args) == 1 and isinstance(args[0], list | tuple) else args
    if not items:
        raise ExprError(f"{name}() of an empty array")
    return [_number_arg(name, v) for v in items]


def _sum(value: Any) -> int | float:
    items = [_number_arg("sum", v) for v in _iterable("sum", value)]
    if all(isinstance(v, int) for v in items):
        return _int64(sum(int(v) for v in items))
    return math.fsum(float(v) for v in items)


def _length(value: Any) -> int:
    if isinstance(value, list | tuple | str | dict):
        return len(value)
    raise ExprError(f"invalid argument for len (type {type_name(value)})")


_GO_INT: Final = re.compile(r"[+-]?[0-9]+")


def _to_int(name: str, value: Any) -> int:
    if isinstance(value, str) and _GO_INT.fullmatch(value):
        value = int(value)
        if not _INT64_MIN <= value < -_INT64_MIN:
            raise ExprError(f"{name}() of {value}: out of the 64-bit range")
    if isinstance(value, float) and math.isfinite(value):
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ExprError(f"{name}() cannot convert {type_name(value)} {str(value)[:40]!r} to an int")
    return _int64(value)


_GO_FLOAT: Final = re.compile(
    r"[+-]?([0-9]+\.?[0-9]*([eE][+-]?[0-9]+)?|\.[0-9]+([eE][+-]?[0-9]+)?|inf|infinity|nan)", re.I
)


def _to_float(name: str, value: Any) -> float:
    if isinstance(value, str) and _GO_FLOAT.fullmatch(value):
        return float(value)
    if not _is_number(value):
        raise ExprError(f"{name}() cannot convert {type_name(value)} {str(value)[:40]!r} to a float")
    return float(value)


def _rounding(name: str, fn: Callable[[float], Any]) -> Callable[[_Scope, list[Any]], Any]:
    def call(_scope: _Scope, args: list[Any]) -> Any:
        v = _number_arg(name, args[0])
        if isinstance(v, int) or not math.isfinite(v):
            return v
        return float(fn(v))

    return call


def _round_half_away(x: float) -> float:
    t = float(math.trunc(x))
    return t + math.copysign(1.0, x) if abs(x - t) >= 0.5 else t


def _string(name: str, fn: Callable[[str], str]) -> Callable[[_Scope, list[Any]], Any]:
    def call(_scope: _Scope, args: list[Any]) -> Any:
        if not isinstance(args[0], str):
            raise ExprError(f"{name}() needs a string, got {type_name(args[0])}")
        return fn(args[0])

    return call


def _mapping(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ExprError(f"{name}() needs a map, got {type_name(value)}")
    return value


def _float_test(name: str, fn: Callable[[float], bool]) -> Callable[[_Scope, list[Any]], Any]:
    return lambda _scope, args: fn(float(_number_arg(name, args[0])))


def _abs(value: Any) -> int | float:
    v = _number_arg("abs", value)
    return _int64(abs(v)) if isinstance(v, int) else abs(v)


def _edge(items: list[Any], at: int) -> Any:
    return items[at] if items else None


_CALLS: Final[dict[str, Callable[[_Scope, list[Any]], Any]]] = {
    "len": lambda _s, a: _length(a[0]),
    "sum": lambda _s, a: _sum(a[0]),
    "max": lambda _s, a: max(_numbers("max", a)),
    "min": lambda _s, a: min(_numbers("min", a)),
    "abs": lambda _s, a: _abs(a[0]),
    "ceil": _rounding("ceil", math.ceil),
    "floor": _rounding("floor", math.floor),
    "round": _rounding("round", _round_half_away),
    "first": lambda _s, a: _edge(_iterable("first", a[0]), 0),
    "last": lambda _s, a: _edge(_iterable("last", a[0]), -1),
    "int": lambda _s, a: _to_int("int", a[0]),
    "float": lambda _s, a: _to_float("float", a[0]),
    "keys": lambda _s, a: list(_mapping("keys", a[0])),
    "values": lambda _s, a: list(_mapping("values", a[0]).values()),
    "upper": _string("upper", str.upper),
    "lower": _string("lower", str.lower),
    "trim": _string("trim", str.strip),
    "isNaN": _float_test("isNaN", math.isnan),
    "isInf": _float_test("isInf", math.isinf),
    # Argo's isNil and default look at the whole result, whatever their first argument is.
    "isNil": lambda s, _a: s.result is None,
    "default": lambda s, a: a[1] if s.result is None else s.result,
    "asInt": lambda _s, a: _to_int("asInt", a[0]),
    "asFloat": lambda _s, a: _to_float("asFloat", a[0]),
}


# ---------------------------------------------------------------------------------------------------
# The public face


@dataclass(frozen=True)
class Expression:
    """A parsed condition, ready to evaluate against any number of results."""

    text: str
    root: Node

    def evaluate(self, result: Any) -> Any:
        """The condition's value with ``result`` bound to the measurement; ExprError if it cannot
        be evaluated (mismatched types, a field of nil, an index out of range...)."""
        return _eval(self.root, _Scope(result))

    def holds(self, result: Any) -> bool:
        """The condition's truth for ``result``; ExprError when the value is not a bool (as Argo)."""
        value = self.evaluate(result)
        if not isinstance(value, bool):
            raise ExprError(f"expected bool, but got {type_name(value)}")
        return value


def compile_condition(text: str) -> Expression:
    """Parse a successCondition/failureCondition; ExprError naming the problem and its offset."""
    if not isinstance(text, str):
        raise ExprError(f"a condition must be a string, got {type_name(text)}")
    if len(text) > MAX_LENGTH:
        raise ExprError(f"the condition is longer than {MAX_LENGTH} characters")
    if not text.strip():
        raise ExprError("the condition is empty", 0)
    return Expression(text, _Parser(text).parse())


def evaluate(text: str, result: Any) -> Any:
    """Parse and evaluate ``text`` with ``result`` bound; ExprError for any problem."""
    return compile_condition(text).evaluate(result)


def evaluate_condition(text: str, result: Any) -> bool:
    """Parse and evaluate a condition that must give a bool; ExprError for any problem."""
    return compile_condition(text).holds(result)
