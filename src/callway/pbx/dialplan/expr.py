"""``$[ expression ]``: Asterisk's dialplan expression language (ast_expr2).

Operators, lowest precedence first (as the Asterisk "Operators" page lists them)::

    a ? b :: c          conditional (all three evaluated; b if a is true)
    a | b               a if a is neither empty nor zero, else b
    a & b               a if neither is empty or zero, else 0
    = == != < > <= >=   numeric comparison when both are numbers, else string
    + -                 addition, subtraction
    * / %               multiplication, floating point division, remainder
    -a  !a              unary minus, logical complement
    a : re   a =~ re    regex match (anchored / unanchored); a ~~ b concatenation
    ( )                 grouping

Operands are whitespace-separated words or ``"quoted strings"``; the quotes
stay part of the value (``"BUSY"`` compares equal to ``"BUSY"``), except for
``:``, ``=~`` and ``~~`` which strip them.  Results are strings: comparisons
give ``1`` or ``0``.  A syntax error is logged and yields the empty string;
a non-numeric operand of arithmetic counts as 0 (with a warning), as does a
division by zero.  The regex operators use Python's ``re`` syntax.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable

log = logging.getLogger("callway.pbx.dialplan")

_OPERATORS = (
    "::", "=~", "~~", "==", "!=", ">=", "<=",
    "|", "&", "=", ">", "<", "+", "-", "*", "/", "%", "?", "!", "(", ")", ":",
)  # fmt: skip
_OPERATOR_CHARS = frozenset("".join(_OPERATORS))
_NUMBER = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)\s*")
_COMPARISONS: dict[str, Callable[[int], bool]] = {
    "=": lambda c: c == 0,
    "==": lambda c: c == 0,
    "!=": lambda c: c != 0,
    "<": lambda c: c < 0,
    ">": lambda c: c > 0,
    "<=": lambda c: c <= 0,
    ">=": lambda c: c >= 0,
}


class ExpressionError(ValueError):
    """A ``$[...]`` expression that cannot be parsed."""


def tokenize(text: str) -> list[tuple[str, str]]:
    """``[(kind, text)]`` with kind ``"op"`` or ``"word"``."""
    tokens: list[tuple[str, str]] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char.isspace():
            index += 1
        elif char == '"':
            end = text.find('"', index + 1)
            end = len(text) - 1 if end < 0 else end
            tokens.append(("word", text[index : end + 1]))
            index = end + 1
        elif char in _OPERATOR_CHARS:
            op = next((op for op in _OPERATORS if text.startswith(op, index)), None)
            if op is None:  # a lone "~"
                raise ExpressionError(f"unexpected '{char}'")
            tokens.append(("op", op))
            index += len(op)
        else:
            start = index
            while index < len(text) and not (
                text[index].isspace() or text[index] in _OPERATOR_CHARS or text[index] == '"'
            ):
                index += 1
            tokens.append(("word", text[start:index]))
    return tokens


def is_number(value: str) -> bool:
    """Does the expression language treat ``value`` as a number?"""
    return _NUMBER.fullmatch(value) is not None


def is_true(value: str) -> bool:
    """Expression truth: neither empty (nor ``""``) nor numerically zero."""
    if value in ("", '""'):
        return False
    return not (is_number(value) and float(value) == 0)


def format_number(value: float) -> str:
    """Integers without a fraction, other values with up to 15 significant digits."""
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e18:
        return str(int(value))
    return f"{value:.15g}"


def _unquote(value: str) -> str:
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return value[1:-1]
    return value


def _number(value: str, op: str) -> float:
    if is_number(value):
        return float(value)
    log.warning("non-numeric argument '%s' to '%s' in expression; using 0", value, op)
    return 0.0


class _Parser:
    """Recursive descent over the token list, evaluating as it goes."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.index = 0

    def peek(self) -> str | None:
        if self.index < len(self.tokens) and self.tokens[self.index][0] == "op":
            return self.tokens[self.index][1]
        return None

    def take(self, *ops: str) -> str | None:
        op = self.peek()
        if op is not None and op in ops:
            self.index += 1
            return op
        return None

    def parse(self) -> str:
        value = self.conditional()
        if self.index != len(self.tokens):
            raise ExpressionError(f"unexpected '{self.tokens[self.index][1]}'")
        return value

    def conditional(self) -> str:
        value = self.logical_or()
        while self.take("?"):
            if_true = self.logical_or()
            if not self.take("::"):
                raise ExpressionError("'?' without '::'")
            if_false = self.logical_or()
            value = if_true if is_true(value) else if_false
        return value

    def logical_or(self) -> str:
        value = self.logical_and()
        while self.take("|"):
            other = self.logical_and()
            value = value if is_true(value) else other
        return value

    def logical_and(self) -> str:
        value = self.comparison()
        while self.take("&"):
            other = self.comparison()
            value = value if is_true(value) and is_true(other) else "0"
        return value

    def comparison(self) -> str:
        value = self.additive()
        while (op := self.take(*_COMPARISONS)) is not None:
            value = _compare(op, value, self.additive())
        return value

    def additive(self) -> str:
        value = self.multiplicative()
        while (op := self.take("+", "-")) is not None:
            left, right = _number(value, op), _number(self.multiplicative(), op)
            value = format_number(left + right if op == "+" else left - right)
        return value

    def multiplicative(self) -> str:
        value = self.unary()
        while (op := self.take("*", "/", "%")) is not None:
            value = _arithmetic(op, _number(value, op), _number(self.unary(), op))
        return value

    def unary(self) -> str:
        if self.take("-"):
            return format_number(-_number(self.unary(), "-"))
        if self.take("!"):
            return "0" if is_true(self.unary()) else "1"
        return self.matching()

    def matching(self) -> str:
        value = self.primary()
        while (op := self.take(":", "=~", "~~")) is not None:
            other = self.primary()
            if op == "~~":
                value = _unquote(value) + _unquote(other)
            else:
                value = _regex(value, other, anchored=op == ":")
        return value

    def primary(self) -> str:
        if self.take("("):
            value = self.conditional()
            if not self.take(")"):
                raise ExpressionError("missing ')'")
            return value
        if self.index >= len(self.tokens):
            raise ExpressionError("missing operand at end of expression")
        kind, text = self.tokens[self.index]
        if kind != "word":
            raise ExpressionError(f"unexpected '{text}'")
        self.index += 1
        return text


def _compare(op: str, left: str, right: str) -> str:
    if is_number(left) and is_number(right):
        a, b = float(left), float(right)
        order = (a > b) - (a < b)
    else:
        order = (left > right) - (left < right)
    return "1" if _COMPARISONS[op](order) else "0"


def _arithmetic(op: str, left: float, right: float) -> str:
    if op == "*":
        return format_number(left * right)
    if right == 0:
        log.warning("division by zero in expression; using 0")
        return "0"
    return format_number(left / right if op == "/" else math.fmod(left, right))


def _regex(value: str, pattern: str, *, anchored: bool) -> str:
    try:
        compiled = re.compile(_unquote(pattern))
    except re.error as exc:
        raise ExpressionError(f"bad regular expression '{pattern}': {exc}") from exc
    subject = _unquote(value)
    found = compiled.match(subject) if anchored else compiled.search(subject)
    if compiled.groups:
        return (found.group(1) or "") if found else ""
    return str(len(found.group(0))) if found else "0"


def evaluate(text: str) -> str:
    """The value of the expression ``text`` (the inside of ``$[...]``)."""
    if not text.strip():
        return ""
    try:
        return _Parser(tokenize(text)).parse()
    except ExpressionError as exc:
        log.warning("error in expression '%s': %s", text, exc)
        return ""
