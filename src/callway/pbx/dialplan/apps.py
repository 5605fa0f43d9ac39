"""The dialplan applications: each turns its (substituted) argument text into an outcome.

An outcome is an :mod:`~callway.pbx.dialplan.actions` action for the shell, a
control-flow request for the runner (:class:`Jump`, :class:`GosubCall`,
:class:`GosubReturn`), a :class:`Failure` (the application "returned -1":
Asterisk hangs the channel up) or None (go on with the next priority).
Application names are case-insensitive, as in Asterisk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from callway.pbx.dialplan.actions import (
    CAUSE_NAMES,
    Action,
    Answer,
    Busy,
    ConfBridge,
    Congestion,
    Dial,
    DialStringError,
    DialTarget,
    Echo,
    Hangup,
    MusicOnHold,
    Playback,
    Progress,
    Ringing,
    Wait,
)
from callway.pbx.dialplan.args import ArgumentError, GotoTarget, arg, parse_goto, parse_number
from callway.pbx.dialplan.args import split_args as split
from callway.pbx.dialplan.variables import ChannelVariables, atoi, check_condition

log = logging.getLogger("callway.pbx.dialplan")

_LOG_LEVELS = {
    "ERROR": logging.ERROR, "WARNING": logging.WARNING, "NOTICE": logging.INFO,
    "VERBOSE": logging.INFO, "DEBUG": logging.DEBUG, "DTMF": logging.DEBUG,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Jump:
    """Continue at ``target`` (Goto, GotoIf)."""

    target: GotoTarget


@dataclass(frozen=True, slots=True)
class GosubCall:
    """Push a return address and continue at ``target`` with ``ARG1..n`` set."""

    target: GotoTarget
    args: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GosubReturn:
    """Return from a Gosub, setting ``GOSUB_RETVAL``."""

    value: str = ""


@dataclass(frozen=True, slots=True)
class Failure:
    """The application failed: the channel is hung up (Asterisk: app returned -1)."""

    reason: str


Outcome = Action | Jump | GosubCall | GosubReturn | Failure | None
Handler = Callable[[str, ChannelVariables], Outcome]


def _noop(args: str, scope: ChannelVariables) -> Outcome:
    return None


def _verbose(args: str, scope: ChannelVariables) -> Outcome:
    level, comma, message = args.partition(",")
    if not comma or not level.strip().isdigit():
        message = args
    log.info("%s", message)
    return None


def _log(args: str, scope: ChannelVariables) -> Outcome:
    level, _, message = args.partition(",")
    log.log(_LOG_LEVELS.get(level.strip().upper(), logging.INFO), "%s", message)
    return None


def _set(args: str, scope: ChannelVariables) -> Outcome:
    name, equals, value = args.partition("=")
    if not equals:
        log.warning("Set requires an '=' to be a valid assignment, got '%s'", args)
        return None
    scope.set(name, value)
    return None


def _mset(args: str, scope: ChannelVariables) -> Outcome:
    for pair in split(args):
        _set(pair, scope)
    return None


def _goto(args: str, scope: ChannelVariables) -> Outcome:
    try:
        return Jump(parse_goto(args))
    except ArgumentError as exc:
        return Failure(f"Goto: {exc}")


def _gotoif(args: str, scope: ChannelVariables) -> Outcome:
    condition, question, branches = args.partition("?")
    if not question and not condition.strip():
        return Failure("GotoIf requires an argument (condition?label1[:label2])")
    if_true, _, if_false = branches.partition(":")
    branch = if_true if check_condition(condition) else if_false
    if not branch.strip():
        return None
    return _goto(branch, scope)


def _gosub(args: str, scope: ChannelVariables) -> Outcome:
    head, paren, rest = args.partition("(")
    sub_args: tuple[str, ...] = ()
    if paren:
        if not rest.endswith(")"):
            return Failure(f"Gosub: unbalanced parentheses in '{args}'")
        sub_args = tuple(split(rest[:-1]))
    try:
        return GosubCall(parse_goto(head), sub_args)
    except ArgumentError as exc:
        return Failure(f"Gosub: {exc}")


def _return(args: str, scope: ChannelVariables) -> Outcome:
    return GosubReturn(args)


def _answer(args: str, scope: ChannelVariables) -> Outcome:
    return Answer(max(0, atoi(arg(split(args), 0))) / 1000)


def _wait(args: str, scope: ChannelVariables) -> Outcome:
    seconds = parse_number(args)
    if seconds is None or seconds <= 0:
        if args.strip():
            log.warning("Wait: invalid duration '%s'", args)
        return None
    return Wait(seconds)


def _playback(args: str, scope: ChannelVariables) -> Outcome:
    parts = split(args, limit=2)
    files = tuple(name.strip() for name in arg(parts, 0).split("&") if name.strip())
    if not files:
        return Failure("Playback requires an argument (filename)")
    return Playback(files, arg(parts, 1).strip())


def _moh(args: str, scope: ChannelVariables) -> Outcome:
    parts = split(args)
    duration = parse_number(arg(parts, 1))
    return MusicOnHold(arg(parts, 0).strip(), duration if duration and duration > 0 else None)


def dial_targets(text: str) -> tuple[DialTarget, ...]:
    """``PJSIP/8005&PJSIP/8006`` -> targets; raises DialStringError when malformed."""
    if not text.strip():
        raise DialStringError("Dial requires an argument (technology/resource)")
    return tuple(DialTarget.parse(part) for part in text.split("&"))


def _dial(args: str, scope: ChannelVariables) -> Outcome:
    parts = split(args)
    try:
        targets = dial_targets(arg(parts, 0))
    except DialStringError as exc:
        scope.set("DIALSTATUS", "INVALIDARGS")
        return Failure(f"Dial: {exc}")
    timeout_text = arg(parts, 1).strip()
    timeout = parse_number(timeout_text) if timeout_text else None
    if (timeout is not None and timeout <= 0) or (timeout_text and timeout is None):
        log.warning("Dial: invalid timeout '%s'; dialing without one", timeout_text)
        timeout = None
    return Dial(targets, timeout, arg(parts, 2).strip(), arg(parts, 3).strip())


def _confbridge(args: str, scope: ChannelVariables) -> Outcome:
    parts = [part.strip() for part in split(args)]
    if not arg(parts, 0):
        return Failure("ConfBridge requires an argument (conference name)")
    return ConfBridge(
        parts[0],
        arg(parts, 1) or "default_bridge",
        arg(parts, 2) or "default_user",
        arg(parts, 3),
    )


def hangup_cause(text: str) -> int | None:
    """``Hangup()``'s argument: a cause number or name (``USER_BUSY``); None if empty/bad."""
    text = text.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return int(text)
    cause = CAUSE_NAMES.get(text.upper().removeprefix("AST_CAUSE_"))
    if cause is None:
        log.warning("invalid cause given to Hangup(): '%s'", text)
    return cause


def _hangup(args: str, scope: ChannelVariables) -> Outcome:
    return Hangup(hangup_cause(args), "Hangup() application")


def _timeout(args: str) -> float | None:
    value = parse_number(arg(split(args), 0))
    return value if value is not None and value > 0 else None


APPLICATIONS: dict[str, tuple[str, Handler]] = {
    name.lower(): (name, handler)
    for name, handler in (
        ("NoOp", _noop),
        ("Verbose", _verbose),
        ("Log", _log),
        ("Set", _set),
        ("MSet", _mset),
        ("Goto", _goto),
        ("GotoIf", _gotoif),
        ("Gosub", _gosub),
        ("Return", _return),
        ("Answer", _answer),
        ("Ringing", lambda args, scope: Ringing()),
        ("Progress", lambda args, scope: Progress()),
        ("Wait", _wait),
        ("Playback", _playback),
        ("Echo", lambda args, scope: Echo()),
        ("MusicOnHold", _moh),
        ("Dial", _dial),
        ("ConfBridge", _confbridge),
        ("Hangup", _hangup),
        ("Busy", lambda args, scope: Busy(_timeout(args))),
        ("Congestion", lambda args, scope: Congestion(_timeout(args))),
    )
}
"""Known applications: lower-case name -> (canonical name, handler)."""


def find_application(name: str) -> tuple[str, Handler] | None:
    """The canonical name and handler of application ``name`` (any case), or None."""
    return APPLICATIONS.get(name.lower())
