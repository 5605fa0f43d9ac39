"""Checks of a loaded dialplan, before any call runs it.

:func:`validate_dialplan` finds what Asterisk would only discover during a
call: unknown applications, malformed Dial targets or channel technologies
this PBX does not have, Goto/GotoIf/Gosub destinations that cannot exist,
``Set`` without ``=``, unclosed ``[`` in patterns.  Each problem names the file
and line of the priority, so the application layer can report it as a
``ConfigError`` (this layer does not import the config package).  Arguments
built from variables are checked only as far as their literal text goes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from callway.pbx.dialplan.actions import DialStringError, DialTarget
from callway.pbx.dialplan.apps import find_application
from callway.pbx.dialplan.args import ArgumentError, GotoTarget, parse_goto, parse_number
from callway.pbx.dialplan.args import split_args as split
from callway.pbx.dialplan.patterns import find_priority, is_pattern, split_callerid
from callway.pbx.dialplan_model import Context, Dialplan, Priority

DEFAULT_TECHNOLOGIES = frozenset({"PJSIP"})


@dataclass(frozen=True, slots=True)
class DialplanProblem:
    """One problem of the dialplan, at ``filename:line``."""

    filename: str
    line: int
    problem: str

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}: {self.problem}"


@dataclass(frozen=True, slots=True)
class _Site:
    """Where a priority lives, for messages and same-extension lookups."""

    dialplan: Dialplan
    context: Context
    exten: str
    step: Priority
    technologies: frozenset[str]

    def problem(self, text: str) -> DialplanProblem:
        where = f"[{self.context.name}] {self.exten},{self.step.number}"
        return DialplanProblem(self.step.filename, self.step.line, f"{where}: {text}")


def validate_dialplan(
    dialplan: Dialplan, *, technologies: frozenset[str] = DEFAULT_TECHNOLOGIES
) -> list[DialplanProblem]:
    """Every problem found, in file order of the contexts; empty when all is well."""
    upper = frozenset(tech.upper() for tech in technologies)
    problems: list[DialplanProblem] = []
    for context in dialplan.contexts.values():
        for exten, steps in context.extensions.items():
            for step in steps:
                site = _Site(dialplan, context, exten, step, upper)
                problems.extend(_check_step(site))
    return problems


def _check_step(site: _Site) -> Iterator[DialplanProblem]:
    if site.step.number == 1:
        yield from _check_pattern(site)
    app = find_application(site.step.app)
    if app is None:
        yield site.problem(f"unknown application '{site.step.app}'")
        return
    checker = _CHECKERS.get(app[0])
    if checker is not None:
        yield from checker(site, site.step.args_raw)


def _check_pattern(site: _Site) -> Iterator[DialplanProblem]:
    for part in split_callerid(site.exten):
        if part is not None and is_pattern(part) and part.count("[") > part.count("]"):
            yield site.problem(f"pattern '{part}' has an unclosed '['")


def _check_dial(site: _Site, raw: str) -> Iterator[DialplanProblem]:
    args = split(raw)
    targets = args[0] if args else ""
    if not targets.strip():
        yield site.problem("Dial requires a target (Tech/resource)")
        return
    for part in targets.split("&"):
        yield from _check_target(site, part)
    if len(args) > 1 and args[1].strip() and "$" not in args[1]:
        timeout = parse_number(args[1])
        if timeout is None or timeout <= 0:
            yield site.problem(f"Dial timeout '{args[1].strip()}' is not a positive number")


def _check_target(site: _Site, part: str) -> Iterator[DialplanProblem]:
    literal = part.split("$", 1)[0]
    if "$" in part and "/" not in literal:
        return  # built from variables: checked when dialed
    try:
        target = DialTarget.parse(part if "$" not in part else literal + "x")
    except DialStringError:
        yield site.problem(f"bad dial target '{part.strip()}' (expected Tech/resource)")
        return
    if target.tech.upper() not in site.technologies:
        known = ", ".join(sorted(site.technologies))
        yield site.problem(f"unknown channel technology '{target.tech}' (available: {known})")


def _check_goto(site: _Site, raw: str) -> Iterator[DialplanProblem]:
    if "$" in raw:
        return
    try:
        target = parse_goto(raw)
    except ArgumentError as exc:
        yield site.problem(str(exc))
        return
    yield from _check_destination(site, target)


def _check_destination(site: _Site, target: GotoTarget) -> Iterator[DialplanProblem]:
    context = target.context or site.context.name
    if context not in site.dialplan.contexts:
        yield site.problem(f"destination context '{context}' does not exist")
        return
    label = target.priority
    if label.isdigit() or (label[:1] in ("+", "-") and label[1:].isdigit()):
        return
    if target.exten is None:
        if site.context.find_label(site.exten, label) is None and not _label_anywhere(
            site.dialplan, context, label
        ):
            yield site.problem(f"label '{label}' does not exist in extension '{site.exten}'")
    elif find_priority(site.dialplan, context, target.exten, label) is None:
        yield site.problem(f"label '{label}' does not exist for {target.exten}@{context}")


def _label_anywhere(dialplan: Dialplan, context: str, label: str) -> bool:
    ctx = dialplan.contexts[context]
    return any(step.label == label for steps in ctx.extensions.values() for step in steps)


def _check_gotoif(site: _Site, raw: str) -> Iterator[DialplanProblem]:
    question = _top_level(raw, "?")
    if question < 0:
        yield site.problem("GotoIf needs 'condition?destination[:destination]'")
        return
    branches = raw[question + 1 :]
    colon = _top_level(branches, ":")
    parts = (branches, "") if colon < 0 else (branches[:colon], branches[colon + 1 :])
    for branch in parts:
        if branch.strip():
            yield from _check_goto(site, branch)


def _check_gosub(site: _Site, raw: str) -> Iterator[DialplanProblem]:
    yield from _check_goto(site, raw.partition("(")[0])


def _check_set(site: _Site, raw: str) -> Iterator[DialplanProblem]:
    if _top_level(raw, "=") < 0:
        yield site.problem(f"Set needs name=value, got '{raw}'")


def _top_level(text: str, char: str) -> int:
    """Index of ``char`` outside ``${...}``, ``$[...]`` and parentheses, or -1."""
    depth = 0
    for index, current in enumerate(text):
        if current in "{[(":
            depth += 1
        elif current in "}])":
            depth = max(0, depth - 1)
        elif current == char and not depth:
            return index
    return -1


_CHECKERS = {
    "Dial": _check_dial,
    "Goto": _check_goto,
    "GotoIf": _check_gotoif,
    "Gosub": _check_gosub,
    "Set": _check_set,
}
