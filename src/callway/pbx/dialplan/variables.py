"""Channel variables, dialplan functions and ``${...}`` / ``$[...]`` substitution.

Substitution follows Asterisk (``pbx_substitute_variables``):

* ``${NAME}`` is replaced by the variable's value, the empty string when unset;
  ``${NAME:offset}`` and ``${NAME:offset:length}`` take a substring, a negative
  offset counting from the end and a negative length leaving that many
  characters off the end (``${EXTEN:-4}``, ``${EXTEN:1:-1}``);
* the inside of ``${...}`` is substituted first, so ``${X${Y}}`` reads the
  variable named by ``X`` followed by the value of ``Y``; braces nest;
* ``${NAME(args)}`` calls a dialplan function (``CALLERID(num)``, ``LEN(x)``,
  ``IF(expr?a:b)``...), also with ``:offset:length``;
* ``$[...]`` is an expression (:mod:`callway.pbx.dialplan.expr`), its inside
  substituted first.

Lookup order, as in Asterisk 12+: the built-in channel variables ``EXTEN``,
``CONTEXT``, ``PRIORITY``, ``CHANNEL``, ``UNIQUEID``, then the channel's own
variables, then the globals.  Names are case-sensitive; function names are not.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from callway.pbx.dialplan.expr import evaluate
from callway.pbx.dialplan_model import Dialplan

log = logging.getLogger("callway.pbx.dialplan")

_REFERENCE = re.compile(r"\$[{\[]")
_LEADING_INT = re.compile(r"\s*[+-]?\d+")
_CALLERID_ALL = re.compile(r'\s*(?:"(?P<q>[^"]*)"|(?P<n>[^<]*?))\s*<(?P<num>[^>]*)>\s*')


def check_condition(text: str) -> bool:
    """Asterisk's ``pbx_checkcondition``: empty is false, a leading integer is
    true when non-zero, and any other text is true (used by GotoIf and IF)."""
    if not text.strip():
        return False
    found = _LEADING_INT.match(text)
    return int(found.group(0)) != 0 if found else True


def atoi(text: str) -> int:
    """C ``atoi``: the leading integer of ``text``, 0 when there is none."""
    found = _LEADING_INT.match(text)
    return int(found.group(0)) if found else 0


def substring(value: str, offset: int, length: int | None = None) -> str:
    """``${VAR:offset:length}`` with Asterisk's negative offset/length rules."""
    size = len(value)
    if offset < 0:
        offset = max(0, size + offset)
    if offset >= size:
        return ""
    if length is None:
        return value[offset:]
    end = offset + length if length >= 0 else size + length
    return value[offset:end] if end > offset else ""


def split_modifiers(text: str) -> tuple[str, int | None, int | None]:
    """``"NAME:1:-1"`` -> ``("NAME", 1, -1)``; colons inside parentheses do not count."""
    depth = 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        elif char == ":" and not depth:
            offset_text, colon, length_text = text[index + 1 :].partition(":")
            return text[:index], atoi(offset_text), atoi(length_text) if colon else None
    return text, None, None


def _closing(text: str, start: int, opener: str, closer: str) -> int:
    """Index of the bracket closing the one just before ``start``, or -1."""
    depth = 1
    for index in range(start, len(text)):
        if text[index] == opener:
            depth += 1
        elif text[index] == closer:
            depth -= 1
            if not depth:
                return index
    return -1


@dataclass(slots=True)
class ChannelVariables:
    """Everything ``${...}`` can see on one channel; the runner keeps the position current."""

    channel_name: str = ""
    uniqueid: str = ""
    context: str = ""
    exten: str = ""
    priority: int = 1
    callerid_num: str = ""
    callerid_name: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    globals: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        """A variable's value (built-in, channel, then global), None when unset."""
        builtin = {
            "EXTEN": self.exten,
            "CONTEXT": self.context,
            "PRIORITY": str(self.priority),
            "CHANNEL": self.channel_name,
            "UNIQUEID": self.uniqueid,
        }.get(name)
        if builtin is not None:
            return builtin
        if name in self.variables:
            return self.variables[name]
        return self.globals.get(name)

    def set(self, name: str, value: str) -> None:
        """``Set(name=value)``: a variable, or a writable function such as ``CALLERID(num)``.

        Inheritance prefixes (``_VAR``, ``__VAR``) are dropped; an empty value
        unsets the variable, as in Asterisk.
        """
        name = name.strip()
        if name.endswith(")") and "(" in name:
            func, _, args = name[:-1].partition("(")
            self._write_function(func.strip().upper(), args.strip(), value)
            return
        name = name.lstrip("_")
        if not name:
            log.warning("Set: empty variable name")
        elif value:
            self.variables[name] = value
        else:
            self.variables.pop(name, None)

    def _write_function(self, func: str, args: str, value: str) -> None:
        if func == "CALLERID":
            self._write_callerid(args.lower(), value)
        elif func == "GLOBAL":
            if value:
                self.globals[args] = value
            else:
                self.globals.pop(args, None)
        else:
            log.warning("function %s cannot be written to (or does not exist)", func)

    def _write_callerid(self, what: str, value: str) -> None:
        if what in ("num", "number"):
            self.callerid_num = value
        elif what == "name":
            self.callerid_name = value
        elif what == "all":
            found = _CALLERID_ALL.fullmatch(value)
            if found:
                self.callerid_name = (found.group("q") or found.group("n") or "").strip()
                self.callerid_num = found.group("num").strip()
            else:
                self.callerid_name, self.callerid_num = "", value.strip()
        else:
            log.warning("CALLERID: unknown field '%s'", what)

    def call(self, name: str, args: str) -> str:
        """Read dialplan function ``name`` with (already substituted) ``args``."""
        function = FUNCTIONS.get(name.strip().upper())
        if function is None:
            log.warning("function %s not registered", name)
            return ""
        return function(self, args)

    def resolve(self, inner: str) -> str:
        """The value of ``${inner}`` once ``inner`` itself is substituted."""
        name, offset, length = split_modifiers(inner)
        if name.endswith(")") and "(" in name:
            func, _, args = name[:-1].partition("(")
            value = self.call(func, args)
        else:
            value = self.get(name) or ""
        return value if offset is None else substring(value, offset, length)

    def substitute(self, text: str) -> str:
        """``text`` with every ``${...}`` and ``$[...]`` replaced."""
        out: list[str] = []
        index = 0
        while (found := _REFERENCE.search(text, index)) is not None:
            start = found.start()
            opener = text[start + 1]
            closer = "}" if opener == "{" else "]"
            end = _closing(text, start + 2, opener, closer)
            if end < 0:
                log.warning("error in extension logic (missing '%s') in '%s'", closer, text)
                end = len(text)
            inner = text[start + 2 : end]
            if "$" in inner:
                inner = self.substitute(inner)
            out.append(text[index:start])
            out.append(self.resolve(inner) if opener == "{" else evaluate(inner))
            index = end + 1
        out.append(text[index:])
        return "".join(out)


def _callerid(scope: ChannelVariables, args: str) -> str:
    what = args.strip().lower()
    if what in ("num", "number"):
        return scope.callerid_num
    if what == "name":
        return scope.callerid_name
    if what == "all":
        if not scope.callerid_name:
            return scope.callerid_num
        return f'"{scope.callerid_name}" <{scope.callerid_num}>'
    log.warning("CALLERID: unknown field '%s'", what)
    return ""


def _if(scope: ChannelVariables, args: str) -> str:
    condition, question, branches = args.partition("?")
    if not question:
        log.warning("IF: syntax is IF(expr?[true][:false])")
        return ""
    if_true, _, if_false = branches.partition(":")
    return if_true.strip() if check_condition(condition) else if_false.strip()


FUNCTIONS: dict[str, Callable[[ChannelVariables, str], str]] = {
    "CALLERID": _callerid,
    "LEN": lambda scope, args: str(len(args)),
    "IF": _if,
    "ISNULL": lambda scope, args: "1" if not args else "0",
    "EXISTS": lambda scope, args: "1" if args else "0",
    "TOUPPER": lambda scope, args: args.upper(),
    "TOLOWER": lambda scope, args: args.lower(),
    "GLOBAL": lambda scope, args: scope.globals.get(args.strip(), ""),
    "EVAL": lambda scope, args: scope.substitute(args),
}
"""Readable dialplan functions by upper-case name."""


def load_globals(dialplan: Dialplan) -> dict[str, str]:
    """``[globals]`` with each value substituted against the globals before it, as loaded."""
    scope = ChannelVariables()
    for name, value in dialplan.global_vars.items():
        scope.globals[name] = scope.substitute(value)
    return scope.globals
