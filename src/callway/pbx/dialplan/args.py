"""Application argument syntax: Asterisk's splitting rules and Goto destinations.

Asterisk substitutes variables in an application's argument text first and
then lets the application split it.  The standard split (``AST_STANDARD_APP_ARGS``)
cuts at commas except:

* inside parentheses (``Dial(PJSIP/8006,,m(class,x))`` has three arguments);
* inside double quotes, which are removed (``"a,b"`` is one argument ``a,b``);
* after a backslash, which is removed and makes the next character literal
  (``a\\,b`` is ``a,b``).

An empty text has no arguments; a trailing comma adds an empty one.  Spaces
are kept: they are significant in Asterisk too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")


class ArgumentError(ValueError):
    """Application arguments that do not have the required shape."""


def split_args(text: str, delimiter: str = ",", *, limit: int = 0) -> list[str]:
    """Split ``text`` Asterisk-style; ``limit`` > 0 caps the count (the last keeps the rest)."""
    if not text:
        return []
    args: list[str] = []
    current: list[str] = []
    depth = 0
    quoted = False
    index = 0
    while index < len(text):
        char = text[index]
        index += 1
        if char == "\\" and index < len(text):
            current.append(text[index])
            index += 1
            continue
        if char == "\\":
            continue
        if char == '"' and delimiter != '"':
            quoted = not quoted
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        elif char == delimiter and not (depth or quoted) and (not limit or len(args) < limit - 1):
            args.append("".join(current))
            current = []
            continue
        current.append(char)
    args.append("".join(current))
    return args


def arg(args: list[str], index: int, default: str = "") -> str:
    """``args[index]``, or ``default`` when absent."""
    return args[index] if index < len(args) else default


@dataclass(frozen=True, slots=True)
class GotoTarget:
    """``[[context,]exten,]priority``: ``None`` keeps the channel's current value.

    ``priority`` is as written: a number, ``+N``/``-N`` (relative to the
    current priority) or a label.
    """

    context: str | None
    exten: str | None
    priority: str

    def __str__(self) -> str:
        parts = [part for part in (self.context, self.exten) if part is not None]
        return ",".join([*parts, self.priority])


def parse_goto(text: str) -> GotoTarget:
    """Parse a Goto destination; raises ``ArgumentError`` when malformed."""
    parts = [part.strip() for part in split_args(text)]
    if not parts or len(parts) > 3 or not all(parts):
        raise ArgumentError(f"expected [[context,]extension,]priority, got '{text}'")
    if len(parts) == 1:
        return GotoTarget(None, None, parts[0])
    if len(parts) == 2:
        return GotoTarget(None, parts[0], parts[1])
    return GotoTarget(parts[0], parts[1], parts[2])


def parse_number(text: str) -> float | None:
    """A decimal number as applications read timeouts (``"30"``, ``"2.5"``); else None."""
    text = text.strip()
    return float(text) if _NUMBER.fullmatch(text) else None
