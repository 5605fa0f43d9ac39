"""The dialplan interpreter: one channel's program, stepped without I/O.

:class:`DialplanRunner` is Asterisk's PBX loop (``__ast_pbx_run``) turned
inside out.  :meth:`~DialplanRunner.next_action` executes priorities until one
needs the channel and returns that :mod:`~callway.pbx.dialplan.actions` action;
the shell performs it and reports with :meth:`~DialplanRunner.complete`.
Bookkeeping applications (``Set``, ``Goto``, ``GotoIf``, ``Gosub``,
``NoOp``...) run inside.  As in Asterisk:

* a call to an extension with no priority 1 ends at once with
  ``Hangup(cause=1)`` (UNALLOCATED: the PBX answers 404);
* each step looks the priority up afresh (:func:`find_priority`), so a missing
  priority is found in a less specific matching pattern or an included context;
* an unknown application logs a warning and hangs up; so does an application
  that fails (a Goto to a missing label, a Dial without a target...);
* falling off the end of an extension hangs up (autofallthrough), indicating
  busy or congestion first when ``DIALSTATUS`` says so; jumping to an extension
  that does not exist goes to the context's ``i`` extension if any;
* after an answered Dial the caller is hung up when the bridge ends, unless the
  ``g`` option asks to continue after the callee hung up;
* when the dialplan ends, an ``h`` extension in the current context runs its
  bookkeeping steps.

Unlike Asterisk, internal steps are bounded: ``max_steps`` of them without an
action (a ``Goto`` loop) log an error and hang up.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from callway.pbx.dialplan import apps
from callway.pbx.dialplan.actions import (
    CAUSE_CONGESTION,
    CAUSE_NORMAL_CLEARING,
    CAUSE_UNALLOCATED,
    CAUSE_USER_BUSY,
    TERMINAL_TYPES,
    Action,
    Busy,
    Congestion,
    Dial,
    DialResult,
    Done,
    Hangup,
)
from callway.pbx.dialplan.args import GotoTarget
from callway.pbx.dialplan.patterns import Found, extension_exists, find_priority
from callway.pbx.dialplan.variables import ChannelVariables, load_globals
from callway.pbx.dialplan_model import Dialplan

log = logging.getLogger("callway.pbx.dialplan")
verbose = logging.getLogger("callway.verbose")  # callway.ops.logs.VERBOSE_LOGGER

# find_priority results by (dialplan, context, exten, priority, caller id): a loaded
# dialplan never changes (a reload makes a new one), and every call to the same
# extension takes the same steps.  The entry holds its dialplan, so an id is not reused.
_FOUND_SIZE = 4096
_FOUND: dict[tuple[int, str, str, int, str | None], tuple[Dialplan, Found | None]] = {}

MAX_STEPS = 10_000
MAX_GOSUB_DEPTH = 128
FALLTHROUGH_INDICATION_SECONDS = 10.0
_ARG_NAME = re.compile(r"ARGC|ARG[0-9]+")


@dataclass(slots=True)
class _Frame:
    """A Gosub return address and the ``ARGn`` values it hid."""

    context: str
    exten: str
    priority: int
    saved: dict[str, str | None] = field(default_factory=dict)


class DialplanRunner:
    """Runs one channel through the dialplan, one :class:`Action` at a time."""

    def __init__(
        self,
        dialplan: Dialplan,
        context: str,
        exten: str,
        *,
        variables: Mapping[str, str] | None = None,
        channel_name: str = "",
        callerid_num: str = "",
        callerid_name: str = "",
        uniqueid: str = "",
        global_vars: dict[str, str] | None = None,
        max_steps: int = MAX_STEPS,
    ) -> None:
        """``global_vars`` may be shared between runners (Asterisk's globals are);
        by default each runner gets the dialplan's ``[globals]``."""
        self.dialplan = dialplan
        self.max_steps = max_steps
        self.scope = ChannelVariables(
            channel_name=channel_name,
            uniqueid=uniqueid,
            context=context,
            exten=exten,
            callerid_num=callerid_num,
            callerid_name=callerid_name,
            variables=dict(variables or {}),
            globals=load_globals(dialplan) if global_vars is None else global_vars,
        )
        #: The last application run and its arguments, as Asterisk's CDR
        #: ``lastapp``/``lastdata`` (the ``h`` extension's apps do not count).
        self.last_app = ""
        self.last_data = ""
        self._started = False
        self._pending: Action | None = None
        self._queued: list[Action] = []
        self._terminal: Hangup | Done | None = None
        self._stack: list[_Frame] = []

    @property
    def context(self) -> str:
        """The current context."""
        return self.scope.context

    @property
    def exten(self) -> str:
        """The current extension (the dialed string, not the pattern)."""
        return self.scope.exten

    @property
    def priority(self) -> int:
        """The current priority."""
        return self.scope.priority

    @property
    def finished(self) -> bool:
        """True once a terminal action (Hangup or Done) was returned."""
        return self._terminal is not None

    def get_variable(self, name: str) -> str:
        """A variable as ``${name}`` reads it (``""`` when unset)."""
        return self.scope.get(name) or ""

    def set_variable(self, name: str, value: str) -> None:
        """Set a channel variable (or ``CALLERID(num)``...), as ``Set()`` does."""
        self.scope.set(name, value)

    def next_action(self) -> Action:
        """Run until the channel must do something; return what.

        A still pending action counts as completed without a result.  Once
        finished, the terminal action is returned again.
        """
        if self._terminal is not None:
            return self._terminal
        if self._pending is not None:
            self.complete(self._pending)
        if self._queued:
            return self._emit(self._queued.pop(0))
        if not self._started:
            self._started = True
            if self._lookup() is None:
                reason = f"no extension '{self.exten}' in context [{self.context}]"
                log.info("%s: %s", self.scope.channel_name, reason)
                self._terminal = Hangup(CAUSE_UNALLOCATED, reason)
                return self._terminal
        return self._run()

    def complete(
        self, action: Action, result: DialResult | Mapping[str, str] | None = None
    ) -> None:
        """Report that the shell finished ``action``; ``result`` sets variables."""
        if self._terminal is not None:
            return
        if action != self._pending:
            raise ValueError(f"{action!r} is not the pending action {self._pending!r}")
        self._pending = None
        if isinstance(result, DialResult):
            if not isinstance(action, Dial):
                raise ValueError("a DialResult completes a Dial only")
            self._dial_completed(action, result)
            return
        for name, value in (result or {}).items():
            self.scope.set(name, value)
        if isinstance(action, Busy):
            self._queued.append(Hangup(CAUSE_USER_BUSY, "Busy()"))
        elif isinstance(action, Congestion):
            self._queued.append(Hangup(CAUSE_CONGESTION, "Congestion()"))
        else:
            self.scope.priority += 1

    def caller_hangup(self) -> None:
        """The caller went away: stop, running the ``h`` extension if there is one."""
        self._finish(Hangup(CAUSE_NORMAL_CLEARING, "caller hung up"))

    def _dial_completed(self, action: Dial, result: DialResult) -> None:
        for name, value in result.variables().items():
            self.scope.set(name, value)
        if result.status == "CANCEL" or result.caller_hung_up:
            self._finish(Hangup(CAUSE_NORMAL_CLEARING, "caller hung up during Dial"))
        elif result.status == "ANSWER" and "g" not in action.option_flags():
            self._finish(Hangup(CAUSE_NORMAL_CLEARING, "answered call ended"))
        else:
            self.scope.priority += 1

    def _emit(self, action: Action) -> Action:
        if isinstance(action, TERMINAL_TYPES):
            return self._finish(action)
        self._pending = action
        return action

    def _finish(self, action: Hangup | Done) -> Hangup | Done:
        if self._terminal is None:
            self._terminal = action
            self._pending = None
            self._queued.clear()
            self._run_h()
        return self._terminal

    def _lookup(self) -> Found | None:
        scope = self.scope
        dialplan = self.dialplan
        key = (id(dialplan), scope.context, scope.exten, scope.priority, scope.callerid_num)
        hit = _FOUND.get(key)
        if hit is not None and hit[0] is dialplan:
            return hit[1]
        found = find_priority(dialplan, scope.context, scope.exten, scope.priority,
                              scope.callerid_num)  # fmt: skip
        if len(_FOUND) >= _FOUND_SIZE:
            _FOUND.clear()
        _FOUND[key] = (dialplan, found)
        return found

    def _run(self) -> Action:
        for _ in range(self.max_steps):
            found = self._lookup()
            action = self._no_step() if found is None else self._execute(found)
            if action is not None:
                return self._emit(action)
        reason = f"{self.max_steps} dialplan steps without an action (a Goto loop?)"
        log.error("%s: %s at %s", self.scope.channel_name, reason, self._where())
        return self._finish(Hangup(None, reason))

    def _run_h(self) -> None:
        scope = self.scope
        if not extension_exists(self.dialplan, scope.context, "h", scope.callerid_num):
            return
        scope.exten, scope.priority = "h", 1
        for _ in range(self.max_steps):
            found = self._lookup()
            if found is None or self._execute(found) is not None:
                return

    def _where(self) -> str:
        return f"[{self.scope.exten}@{self.scope.context}:{self.scope.priority}]"

    def _execute(self, found: Found) -> Action | None:
        step = found.priority
        app = apps.find_application(step.app)
        if app is None:
            reason = f"no application '{step.app}' ({step.filename}:{step.line})"
            log.warning("%s: %s for extension %s", self.scope.channel_name, reason, self._where())
            return self._finish(Hangup(None, reason))
        args = self.scope.substitute(step.args_raw)
        if self._terminal is None:  # not the h extension
            self.last_app, self.last_data = app[0], args
        if verbose.isEnabledFor(logging.INFO):  # Asterisk's verbose level 3: see ops.logs
            verbose.info(
                'Executing %s %s("%s", "%s")', self._where(), app[0], self.scope.channel_name, args
            )
        return self._apply(app[1](args, self.scope))

    def _apply(self, outcome: apps.Outcome) -> Action | None:
        if outcome is None:
            self.scope.priority += 1
            return None
        if isinstance(outcome, apps.Failure):
            log.warning("%s: %s at %s", self.scope.channel_name, outcome.reason, self._where())
            return self._finish(Hangup(None, outcome.reason))
        if isinstance(outcome, apps.Jump):
            return self._goto(outcome.target)
        if isinstance(outcome, apps.GosubCall):
            return self._gosub(outcome)
        if isinstance(outcome, apps.GosubReturn):
            return self._return(outcome.value)
        return outcome

    def _resolve(self, target: GotoTarget) -> tuple[str, str, int] | str:
        """``(context, exten, priority)`` of a Goto target, or why it is invalid."""
        scope = self.scope
        context = target.context or scope.context
        exten = target.exten or scope.exten
        text = target.priority
        if text[:1] in ("+", "-") and text[1:].isascii() and text[1:].isdigit():
            number = scope.priority + int(text)
        elif text.isascii() and text.isdigit():
            number = int(text)
        else:
            found = find_priority(self.dialplan, context, exten, text, scope.callerid_num)
            if found is None:
                return f"priority '{text}' must be a number > 0, or a label of {exten}@{context}"
            number = found.priority.number
        if number < 1:
            return f"priority must be a number > 0, got '{text}'"
        return context, exten, number

    def _goto(self, target: GotoTarget) -> Action | None:
        resolved = self._resolve(target)
        if isinstance(resolved, str):
            return self._apply(apps.Failure(f"Goto({target}): {resolved}"))
        self.scope.context, self.scope.exten, self.scope.priority = resolved
        return None

    def _gosub(self, call: apps.GosubCall) -> Action | None:
        resolved = self._resolve(call.target)
        if isinstance(resolved, str):
            return self._apply(apps.Failure(f"Gosub({call.target}): {resolved}"))
        context, exten, number = resolved
        if find_priority(self.dialplan, context, exten, number, self.scope.callerid_num) is None:
            reason = f"Gosub to a non-existent destination ({context},{exten},{number})"
            return self._apply(apps.Failure(reason))
        if len(self._stack) >= MAX_GOSUB_DEPTH:
            return self._apply(apps.Failure(f"Gosub nested deeper than {MAX_GOSUB_DEPTH}"))
        scope = self.scope
        frame = _Frame(scope.context, scope.exten, scope.priority + 1)
        hidden = {name for name in scope.variables if _ARG_NAME.fullmatch(name)}
        names = {"ARGC", *(f"ARG{n}" for n in range(1, len(call.args) + 1)), *hidden}
        for name in names:
            frame.saved[name] = scope.variables.pop(name, None)
        for index, value in enumerate(call.args, start=1):
            scope.set(f"ARG{index}", value)
        scope.set("ARGC", str(len(call.args)))
        self._stack.append(frame)
        scope.context, scope.exten, scope.priority = context, exten, number
        return None

    def _return(self, value: str) -> Action | None:
        if not self._stack:
            return self._apply(apps.Failure("Return without Gosub: stack is empty"))
        frame = self._stack.pop()
        scope = self.scope
        for name, saved in frame.saved.items():
            scope.variables.pop(name, None)
            if saved is not None:
                scope.variables[name] = saved
        scope.set("GOSUB_RETVAL", value)
        scope.context, scope.exten, scope.priority = frame.context, frame.exten, frame.priority
        return None

    def _no_step(self) -> Action | None:
        """No priority here: bad context, invalid extension, or the end of one."""
        scope = self.scope
        if scope.context not in self.dialplan.contexts:
            return self._finish(Hangup(None, f"context '{scope.context}' does not exist"))
        if not extension_exists(self.dialplan, scope.context, scope.exten, scope.callerid_num):
            return self._invalid_extension()
        status = scope.get("DIALSTATUS") or "UNKNOWN"
        log.info("Auto fallthrough, channel '%s' status is '%s'", scope.channel_name, status)
        if status == "BUSY":
            return Busy(FALLTHROUGH_INDICATION_SECONDS)
        if status in ("CONGESTION", "CHANUNAVAIL"):
            return Congestion(FALLTHROUGH_INDICATION_SECONDS)
        return Done()

    def _invalid_extension(self) -> Action | None:
        scope = self.scope
        if scope.exten != "i" and extension_exists(
            self.dialplan, scope.context, "i", scope.callerid_num
        ):
            log.info("Sent into invalid extension '%s' in context '%s'", scope.exten, scope.context)
            scope.set("INVALID_EXTEN", scope.exten)
            scope.exten, scope.priority = "i", 1
            return None
        reason = f"invalid extension '{scope.exten}' in [{scope.context}] and no 'i' handler"
        log.warning("%s: %s", scope.channel_name, reason)
        return self._finish(Hangup(None, reason))
