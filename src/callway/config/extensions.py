"""``extensions.conf`` -> ``Dialplan``: the Asterisk dialplan syntax, parsed faithfully.

Statement forms follow Asterisk's pbx_config module:

* ``exten => EXTEN,PRIORITY[(LABEL)],App(args)``; ``same => PRIORITY,App(args)``
  continues the last ``exten`` of the section;
* PRIORITY is a number, ``n``/``next`` (previous priority + 1), ``s``/``same``
  (the previous priority again), a label of this extension, any of these with
  ``+N``, or ``hint`` (``exten => 8005,hint,PJSIP/8005``).  As in Asterisk, the
  "previous priority" is the last one written in the section, whichever
  extension it belonged to;
* ``include => context[,timing]``, ``ignorepat => pattern``;
* ``[general]`` holds settings, ``[globals]`` global variables.

Anything else in a context, an application written without parentheses but
with arguments (the pre-1.6 ``App,args`` form), a reused priority or label is
a ``ConfigError`` naming file and line.  ``switch`` statements are ignored with
a warning, as are ``include``s of contexts this file does not define.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from callway.config.errors import ConfigError, ConfigWarning
from callway.config.ini import Loader, Option, Section, parse_ini, read_text_file
from callway.pbx.dialplan_model import Context, Dialplan, Include, Priority

GENERAL_KEYS = frozenset({
    "static", "writeprotect", "autofallthrough", "clearglobalvars", "extenpatternmatchnew",
    "userscontext", "priorityjumping",
})  # fmt: skip
CONTEXT_KEYS = ("exten", "same", "include", "ignorepat", "switch", "eswitch", "lswitch")

_APP_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_LABEL = re.compile(r"^[A-Za-z0-9_-]+$")


def parse_extensions(
    text: str, filename: str = "extensions.conf", loader: Loader | None = None
) -> Dialplan:
    """Parse ``extensions.conf`` text (``#include``s through ``loader``) into a Dialplan."""
    return build_dialplan(parse_ini(text, filename, loader))


def load_extensions(path: Path) -> Dialplan:
    """Read and parse an ``extensions.conf`` file; includes are resolved next to it."""
    name, text = read_text_file(str(path))
    return parse_extensions(text, name, read_text_file)


def build_dialplan(sections: Iterable[Section]) -> Dialplan:
    """Turn parsed INI sections into a Dialplan."""
    builder = _DialplanBuilder()
    for section in sections:
        if not section.is_template:
            builder.add(section)
    return builder.finish()


@dataclass(slots=True)
class _ContextBuilder:
    name: str
    extensions: dict[str, list[Priority]] = field(default_factory=dict)
    hints: dict[str, tuple[str, Option]] = field(default_factory=dict)
    includes: list[Include] = field(default_factory=list)
    ignorepats: list[str] = field(default_factory=list)

    def freeze(self) -> Context:
        return Context(
            self.name,
            {ext: tuple(sorted(pris, key=_number)) for ext, pris in self.extensions.items()},
            tuple(self.includes),
            {ext: device for ext, (device, _) in self.hints.items()},
            tuple(self.ignorepats),
        )


def _number(priority: Priority) -> int:
    return priority.number


@dataclass(slots=True)
class _SectionState:
    """What ``same =>`` and ``n`` refer to: the last extension and priority of the section."""

    context: _ContextBuilder
    last_exten: str | None = None
    last_priority: int | None = None


class _DialplanBuilder:
    def __init__(self) -> None:
        self.contexts: dict[str, _ContextBuilder] = {}
        self.global_vars: dict[str, str] = {}
        self.general: dict[str, str] = {}
        self.warnings: list[ConfigWarning] = []

    def add(self, section: Section) -> None:
        special = section.name.lower()
        if special == "general":
            self._general(section)
        elif special == "globals":
            self.global_vars.update((opt.key, opt.value) for opt in section.options)
        else:
            context = self.contexts.setdefault(section.name, _ContextBuilder(section.name))
            state = _SectionState(context)
            for opt in section.options:
                self._statement(state, opt)

    def _general(self, section: Section) -> None:
        for opt in section.options:
            if opt.key.lower() not in GENERAL_KEYS:
                message = f"unknown [general] setting '{opt.key}'; ignored"
                self.warnings.append(ConfigWarning(opt.filename, opt.line, message))
            self.general[opt.key.lower()] = opt.value

    def _statement(self, state: _SectionState, opt: Option) -> None:
        key = opt.key.lower()
        if key == "exten":
            exten, rest = _split_extension(opt)
            _add_priority(state, exten, rest, opt)
        elif key == "same":
            if state.last_exten is None:
                problem = f"'same =>' needs an earlier 'exten =>' in [{state.context.name}]"
                raise ConfigError(opt.filename, opt.line, problem)
            _add_priority(state, state.last_exten, opt.value, opt)
        elif key == "include":
            state.context.includes.append(_include(opt))
        elif key == "ignorepat":
            state.context.ignorepats.append(_required(opt, "a dial pattern"))
        elif key in ("switch", "eswitch", "lswitch"):
            message = f"'{opt.key}' in [{state.context.name}] is not supported; ignored"
            self.warnings.append(ConfigWarning(opt.filename, opt.line, message))
        else:
            problem = (
                f"unknown dialplan statement '{opt.key}' in [{state.context.name}] "
                f"(expected one of {', '.join(CONTEXT_KEYS)})"
            )
            raise ConfigError(opt.filename, opt.line, problem)

    def finish(self) -> Dialplan:
        for context in self.contexts.values():
            for inc in context.includes:
                if inc.context not in self.contexts:
                    message = f"[{context.name}] includes undefined context '{inc.context}'"
                    self.warnings.append(ConfigWarning(inc.filename, inc.line, message))
        return Dialplan(
            {name: builder.freeze() for name, builder in self.contexts.items()},
            dict(self.global_vars),
            dict(self.general),
            tuple(self.warnings),
        )


def _required(opt: Option, what: str) -> str:
    if not opt.value:
        raise ConfigError(opt.filename, opt.line, f"'{opt.key} =>' needs {what}")
    return opt.value


def _include(opt: Option) -> Include:
    target = re.split(r"[,|]", _required(opt, "a context name"), maxsplit=1)
    timing = target[1].strip() if len(target) > 1 else ""
    return Include(target[0].strip(), timing, opt.filename, opt.line)


def _split_extension(opt: Option) -> tuple[str, str]:
    """Split ``EXTEN,rest``; commas inside ``[...]`` character classes belong to EXTEN."""
    depth = 0
    for index, char in enumerate(opt.value):
        if char == "[":
            depth += 1
        elif char == "]":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            exten = opt.value[:index].strip()
            if exten:
                return exten, opt.value[index + 1 :]
            break
    problem = f"expected 'exten => EXTEN,PRIORITY,App(args)', got '{opt.value}'"
    raise ConfigError(opt.filename, opt.line, problem)


def _add_priority(state: _SectionState, exten: str, text: str, opt: Option) -> None:
    pri_text, comma, app_text = text.partition(",")
    if not comma or not app_text.strip():
        problem = f"'{opt.key} =>' needs PRIORITY,App(args), got '{opt.value}'"
        raise ConfigError(opt.filename, opt.line, problem)
    pri_text = pri_text.strip()
    if pri_text.lower() == "hint":
        _add_hint(state.context, exten, app_text.strip(), opt)
        state.last_exten = exten
        return
    number, label = _priority(state, exten, pri_text, opt)
    app, args = _application(app_text.strip(), opt)
    _store(state.context, exten, Priority(number, label, app, args, opt.filename, opt.line))
    state.last_exten, state.last_priority = exten, number


def _add_hint(context: _ContextBuilder, exten: str, device: str, opt: Option) -> None:
    if exten in context.hints:
        first = context.hints[exten][1]
        problem = (
            f"extension '{exten}' in [{context.name}] already has a hint "
            f"(at {first.filename}:{first.line})"
        )
        raise ConfigError(opt.filename, opt.line, problem)
    context.hints[exten] = (device, opt)


def _priority(state: _SectionState, exten: str, text: str, opt: Option) -> tuple[int, str]:
    base, label = _split_label(text, opt)
    word, plus, offset_text = (part.strip() for part in base.partition("+"))
    if plus and not (offset_text.isascii() and offset_text.isdigit()):
        raise ConfigError(opt.filename, opt.line, f"bad priority offset in '{text}'")
    offset = int(offset_text) if plus else 0
    if word.lower() in ("n", "next", "s", "same"):
        if state.last_priority is None:
            problem = f"priority '{word}' cannot be the first priority in [{state.context.name}]"
            raise ConfigError(opt.filename, opt.line, problem)
        number = state.last_priority + (1 if word.lower() in ("n", "next") else 0)
    elif word.isascii() and word.isdigit():
        number = int(word)
    else:
        number = _labelled(state.context, exten, word, text, opt)
    if number + offset < 1:
        raise ConfigError(opt.filename, opt.line, f"priority must be 1 or more, got '{text}'")
    return number + offset, label


def _split_label(text: str, opt: Option) -> tuple[str, str]:
    if "(" not in text:
        return text, ""
    base, _, rest = text.partition("(")
    label = rest.removesuffix(")").strip()
    if not rest.endswith(")") or not _LABEL.match(label):
        problem = f"bad priority label in '{text}' (expected e.g. 'n(label)')"
        raise ConfigError(opt.filename, opt.line, problem)
    return base, label


def _labelled(context: _ContextBuilder, exten: str, label: str, text: str, opt: Option) -> int:
    for existing in context.extensions.get(exten, ()):
        if label and existing.label == label:
            return existing.number
    problem = (
        f"bad priority '{text}' (expected a number, n, s, hint, "
        f"or a label defined earlier for extension '{exten}')"
    )
    raise ConfigError(opt.filename, opt.line, problem)


def _application(text: str, opt: Option) -> tuple[str, str]:
    name, paren, rest = text.partition("(")
    name = name.strip()
    if "," in name:
        problem = f"write the application as App(args), not '{text}'"
        raise ConfigError(opt.filename, opt.line, problem)
    if not _APP_NAME.match(name):
        raise ConfigError(opt.filename, opt.line, f"bad application name '{name}' in '{text}'")
    if not paren:
        return name, ""
    if not rest.endswith(")"):
        problem = f"application call '{text}' does not end with ')'"
        raise ConfigError(opt.filename, opt.line, problem)
    return name, rest[:-1]


def _store(context: _ContextBuilder, exten: str, priority: Priority) -> None:
    for existing in context.extensions.setdefault(exten, []):
        if existing.number == priority.number:
            _clash(context, exten, f"priority {priority.number}", existing, priority)
        if priority.label and existing.label == priority.label:
            _clash(context, exten, f"label '{priority.label}'", existing, priority)
    context.extensions[exten].append(priority)


def _clash(
    context: _ContextBuilder, exten: str, what: str, existing: Priority, new: Priority
) -> None:
    problem = (
        f"extension '{exten}' in [{context.name}] already has {what} "
        f"(at {existing.filename}:{existing.line})"
    )
    raise ConfigError(new.filename, new.line, problem)
