"""Asterisk extension matching: which extension of a context handles a dialed string.

Syntax (as Asterisk's ``pbx.c`` and its "Pattern Matching" documentation define it):

* an extension not starting with ``_`` is literal and matches that exact string,
  case-sensitively;
* ``_`` starts a pattern.  ``X`` is any digit ``0-9``, ``Z`` is ``1-9``, ``N`` is
  ``2-9`` (each in either case); ``[...]`` is a character set of single
  characters and ranges (``[1-5]``, ``[135]``, ``[a-d]``; a ``-`` first or last
  is literal, an empty set is ignored, an unclosed set matches nothing); ``.``
  matches one or more remaining characters and ``!`` zero or more; matching
  stops at either of them.  Any other character matches itself, case-sensitively;
* a ``-`` outside a set is decoration, ignored in both the pattern and the
  dialed string (``555-1212`` is ``5551212``);
* ``EXTEN/CID`` only matches when the caller ID matches ``CID`` (itself a
  literal or a ``_`` pattern); with no caller ID only an empty ``CID`` matches.

Pattern matching order (the documented sort, which Asterisk applies to a
context's extensions; the first matching one wins):

1. literal extensions sort before patterns, among themselves in ASCII order;
2. patterns are compared position by position, left to right; at the first
   position where they differ, the one whose character set has *fewer* possible
   matches sorts first (a literal character has 1, ``N`` 8, ``Z`` 9, ``X`` 10);
3. sets of the same size sort in ASCII order of their members written out as a
   string (``X`` is ``0123456789`` so it sorts before ``[a-j]``);
4. the ``.`` wildcard sorts after every set, ``!`` after ``.``, and the end of a
   pattern after both (Asterisk's ``pbx.c`` scores; so ``_80XX!`` is tried
   before ``_80XX``);
5. for the same extension, the variants with a ``/callerid`` sort before the
   one without, caller-ID patterns ordered by the same rules.

So for ``8006`` the order is ``8006``, ``_800X``, ``_80XX``, ``_8[0-5]XX``,
``_X.``, ``_!``.  A context is searched first, then its ``include =>`` contexts
depth-first in include order, each context at most once (so include loops
terminate); the first context holding a match wins, even over a more specific
pattern in an included context.  Timed includes are treated as always active.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from callway.pbx.dialplan_model import Context, Dialplan, Priority

MAX_INCLUDE_DEPTH = 128

# Sort scores of one pattern position (a set of n characters starting at c scores
# n * 256 + c, so smaller sets come first; the specials come after every set).
_DOT_SCORE = 0x18000
_BANG_SCORE = 0x28000
_END_SCORE = 0x30000
_ERROR_SCORE = 0x40000

_CLASSES = {"X": "0123456789", "Z": "123456789", "N": "23456789"}

PositionKey = tuple[int, tuple[int, ...]]
ExtensionKey = tuple[int, str | tuple[PositionKey, ...]]


@dataclass(frozen=True, slots=True)
class _Position:
    """One element of a compiled pattern: a set of characters or a wildcard."""

    chars: frozenset[str] = frozenset()
    wildcard: str = ""  # "." or "!"
    broken: bool = False  # an unclosed "[": never matches


@dataclass(frozen=True, slots=True)
class Found:
    """Where a dialed extension landed: context, extension as written, and the step."""

    context: str
    extension: str
    priority: Priority


def is_pattern(name: str) -> bool:
    """True for ``_`` patterns, False for literal extensions."""
    return name.startswith("_")


def split_callerid(name: str) -> tuple[str, str | None]:
    """``"306/_101"`` -> ``("306", "_101")``; ``"306"`` -> ``("306", None)``."""
    exten, slash, cid = name.partition("/")
    return (exten, cid) if slash else (exten, None)


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> tuple[_Position, ...]:
    """The positions of a pattern written without its leading ``_``."""
    positions: list[_Position] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        index += 1
        if char == "-":
            continue
        if char == "[":
            end = pattern.find("]", index)
            if end < 0:
                positions.append(_Position(broken=True))
                break
            members = _set_members(pattern[index:end])
            index = end + 1
            if members:
                positions.append(_Position(members))
        elif char in ".!":
            positions.append(_Position(wildcard=char))
        else:
            positions.append(_Position(frozenset(_CLASSES.get(char.upper(), char))))
    return tuple(positions)


def _set_members(body: str) -> frozenset[str]:
    """Characters of a ``[...]`` body: single characters and ``a-z`` ranges."""
    members: set[str] = set()
    index = 0
    while index < len(body):
        first = body[index]
        if index + 2 < len(body) and body[index + 1] == "-":
            members.update(chr(code) for code in range(ord(first), ord(body[index + 2]) + 1))
            index += 3
        else:
            members.add(first)
            index += 1
    return frozenset(members)


def _strip_dashes(text: str) -> str:
    return text.replace("-", "")


def match(name: str, dialed: str) -> bool:
    """Does extension ``name`` (literal or ``_`` pattern, no ``/cid``) match ``dialed``?"""
    if not is_pattern(name):
        return _strip_dashes(name) == _strip_dashes(dialed)
    if dialed.startswith("_") and extension_key(name) == extension_key(dialed):
        return True  # a pattern names itself (Goto(_X.,1) reaches _X.)
    data = _strip_dashes(dialed)
    positions = _compile(name[1:])
    for index, position in enumerate(positions):
        if index == len(data):
            return position.wildcard == "!"
        if position.broken:
            return False
        if position.wildcard:
            return True
        if data[index] not in position.chars:
            return False
    return len(data) == len(positions)


def match_callerid(cid_pattern: str | None, callerid: str | None) -> bool:
    """Caller-ID part of an ``EXTEN/CID`` extension (``None``: no such part, matches all)."""
    if cid_pattern is None:
        return True
    if not callerid:
        return not cid_pattern
    return match(cid_pattern, callerid)


def _position_key(position: _Position) -> PositionKey:
    if position.broken:
        return (_ERROR_SCORE, ())
    if position.wildcard:
        return (_DOT_SCORE if position.wildcard == "." else _BANG_SCORE, ())
    codes = tuple(sorted(ord(char) for char in position.chars))
    return (len(codes) * 256 + codes[0], codes)


@lru_cache(maxsize=4096)
def extension_key(name: str) -> ExtensionKey:
    """Sort key placing more specific extensions first (see the module docstring)."""
    if not is_pattern(name):
        return (0, _strip_dashes(name))
    keys = tuple(_position_key(position) for position in _compile(name[1:]))
    return (1, (*keys, (_END_SCORE, ())))


def _full_key(name: str) -> tuple[ExtensionKey, int, ExtensionKey | tuple[()]]:
    exten, cid = split_callerid(name)
    if cid is None:
        return (extension_key(exten), 1, ())
    return (extension_key(exten), 0, extension_key(cid))


@lru_cache(maxsize=1024)
def sort_extensions(names: tuple[str, ...]) -> tuple[str, ...]:
    """Extensions (as written, ``/cid`` included) in Asterisk's matching order."""
    return tuple(sorted(names, key=_full_key))


def matching_extensions(context: Context, dialed: str, callerid: str | None = None) -> list[str]:
    """The extensions of one context matching ``dialed``, best first."""
    names = sort_extensions(tuple(context.extensions))
    return [
        name
        for name in names
        if match(split_callerid(name)[0], dialed)
        and match_callerid(split_callerid(name)[1], callerid)
    ]


def search_order(dialplan: Dialplan, context: str) -> Iterator[Context]:
    """The context, then its includes depth-first in order; each context once."""
    return _walk(dialplan, context, 0, set())


def _walk(dialplan: Dialplan, name: str, depth: int, seen: set[str]) -> Iterator[Context]:
    # A module-level function, not a closure calling itself: that closure would be
    # a reference cycle, garbage left to the cycle collector on every call.
    found = dialplan.contexts.get(name)
    if found is None or name.lower() in seen or depth > MAX_INCLUDE_DEPTH:
        return
    seen.add(name.lower())
    yield found
    for include in found.includes:
        yield from _walk(dialplan, include.context, depth + 1, seen)


def find_extension(
    dialplan: Dialplan, context: str, exten: str, callerid: str | None = None
) -> tuple[str, str] | None:
    """``(context_name, extension_as_written)`` of the best match, or None."""
    for ctx in search_order(dialplan, context):
        names = matching_extensions(ctx, exten, callerid)
        if names:
            return ctx.name, names[0]
    return None


def find_priority(
    dialplan: Dialplan,
    context: str,
    exten: str,
    target: int | str,
    callerid: str | None = None,
) -> Found | None:
    """The step to run for ``exten`` at priority ``target`` (an int) or label (a str).

    As in Asterisk, the first matching extension in search order that *has*
    that priority wins: when the best match lacks it, a less specific match
    (or an included context) that defines it is used.
    """
    for ctx in search_order(dialplan, context):
        for name in matching_extensions(ctx, exten, callerid):
            if isinstance(target, int):
                step = ctx.priority(name, target)
            else:
                step = ctx.find_label(name, target)
            if step is not None:
                return Found(ctx.name, name, step)
    return None


def extension_exists(
    dialplan: Dialplan, context: str, exten: str, callerid: str | None = None
) -> bool:
    """True when some extension in the search order matches ``exten``."""
    return find_extension(dialplan, context, exten, callerid) is not None
