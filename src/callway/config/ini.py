"""Asterisk-flavoured INI reader: the file syntax shared by ``pjsip.conf`` and ``extensions.conf``.

Follows the format Asterisk's configuration parser documents (``configs/*.conf``
samples and the "Configuration Files" chapter of the Asterisk wiki):

* ``;`` starts a comment, ``\\;`` is a literal semicolon, ``;-- ... --;`` is a
  (nestable, multi-line) block comment;
* ``[name]`` opens a section; names may repeat, and each occurrence is its own
  section (``pjsip.conf`` uses ``[8005]`` for an endpoint, an auth and an aor);
* ``[name](!)`` marks a template, ``[name](tpl1,tpl2)`` first copies the options
  of each named section in order, ``[name](+)`` appends to the first earlier
  section of that name (``[name](+type=aor)`` to the first one whose options
  match, several conditions joined by ``&``);
* ``key = value`` and ``key => value`` (the operator is kept); keys may repeat;
* ``#include file`` / ``#include "file"`` / ``#tryinclude file`` insert another
  file in place, as a C preprocessor would; ``#exec`` is refused.

The reader is pure: included files are fetched through an injected loader.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from callway.config.errors import ConfigError

Loader = Callable[[str], tuple[str, str]]
"""``loader(name) -> (filename, text)``; raises ``OSError`` when the file cannot be read."""

MAX_INCLUDE_DEPTH = 16


@dataclass(frozen=True, slots=True)
class Option:
    """One ``key = value`` (``op="="``) or ``key => value`` (``op="=>"``) line."""

    key: str
    value: str
    filename: str
    line: int
    op: str = "="


@dataclass(frozen=True, slots=True)
class Section:
    """One ``[name]`` block with its options, inherited ones first, in file order."""

    name: str
    options: tuple[Option, ...]
    filename: str
    line: int
    templates: tuple[str, ...] = ()
    is_template: bool = False

    def get(self, key: str) -> str | None:
        """The value of the last option called ``key`` (case-insensitive), or None."""
        found = self.get_all(key)
        return found[-1] if found else None

    def get_all(self, key: str) -> tuple[str, ...]:
        """The values of every option called ``key`` (case-insensitive), in order."""
        wanted = key.lower()
        return tuple(opt.value for opt in self.options if opt.key.lower() == wanted)


@dataclass(slots=True)
class _SectionBuilder:
    name: str
    filename: str
    line: int
    templates: tuple[str, ...] = ()
    is_template: bool = False
    options: list[Option] = field(default_factory=list)

    def freeze(self) -> Section:
        return Section(
            self.name,
            tuple(self.options),
            self.filename,
            self.line,
            self.templates,
            self.is_template,
        )

    def matches(self, conditions: tuple[tuple[str, str], ...]) -> bool:
        values = {opt.key.lower(): opt.value for opt in self.options}
        return all(values.get(key.lower()) == value for key, value in conditions)


@dataclass(frozen=True, slots=True)
class _Header:
    name: str
    is_template: bool
    append: tuple[tuple[str, str], ...] | None
    templates: tuple[str, ...]


def parse_ini(text: str, filename: str = "<string>", loader: Loader | None = None) -> list[Section]:
    """Parse Asterisk configuration text into sections (templates included, flagged).

    Raises ConfigError naming the file and line of the first syntax problem.
    """
    reader = _Reader(loader)
    reader.feed(text, filename, (filename,))
    return [builder.freeze() for builder in reader.sections]


class _Reader:
    """Shared state while walking a file and everything it includes."""

    def __init__(self, loader: Loader | None) -> None:
        self.loader = loader
        self.sections: list[_SectionBuilder] = []
        self.current: _SectionBuilder | None = None

    def feed(self, text: str, filename: str, stack: tuple[str, ...]) -> None:
        depth = 0
        opened_at = 0
        for number, raw in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
            if depth == 0:
                opened_at = number
            content, depth = strip_comments(raw.rstrip("\r"), depth)
            content = content.strip()
            if content:
                self._line(content, filename, number, stack)
        if depth:
            raise ConfigError(filename, opened_at, "block comment ';--' is never closed by '--;'")

    def _line(self, content: str, filename: str, number: int, stack: tuple[str, ...]) -> None:
        if content.startswith("["):
            self._section(parse_header(content, filename, number), filename, number)
        elif content.startswith("#"):
            self._directive(content, filename, number, stack)
        else:
            self._option(content, filename, number)

    def _find(self, name: str) -> _SectionBuilder | None:
        return next((s for s in self.sections if s.name == name), None)

    def _section(self, header: _Header, filename: str, number: int) -> None:
        if header.append is not None:
            target = self._append_target(header, filename, number)
        else:
            target = _SectionBuilder(header.name, filename, number, header.templates)
            target.is_template = header.is_template
            self.sections.append(target)
        for template in header.templates:
            base = self._find(template)
            if base is None:
                problem = f"section '{header.name}' inherits from unknown section '{template}'"
                raise ConfigError(filename, number, problem)
            target.options.extend(base.options)
        self.current = target

    def _append_target(self, header: _Header, filename: str, number: int) -> _SectionBuilder:
        conditions = header.append or ()
        for section in self.sections:
            if section.name == header.name and section.matches(conditions):
                section.templates += header.templates
                return section
        which = " matching the filter" if conditions else ""
        problem = f"'[{header.name}](+)' appends to a section{which} that does not exist yet"
        raise ConfigError(filename, number, problem)

    def _option(self, content: str, filename: str, number: int) -> None:
        key, op, value = split_option(content, filename, number)
        if self.current is None:
            raise ConfigError(filename, number, f"option '{key}' appears before any [section]")
        self.current.options.append(Option(key, value, filename, number, op))

    def _directive(self, content: str, filename: str, number: int, stack: tuple[str, ...]) -> None:
        parts = content[1:].split(None, 1)
        word = parts[0].lower() if parts else ""
        name = _unquote(parts[1].strip()) if len(parts) > 1 else ""
        if word == "exec":
            raise ConfigError(filename, number, "#exec is not supported (it would run a program)")
        if word not in ("include", "tryinclude"):
            raise ConfigError(filename, number, f"unknown directive '#{word}'")
        if not name:
            raise ConfigError(filename, number, f"#{word} needs a file name")
        self._include(name, word == "tryinclude", filename, number, stack)

    def _include(
        self, name: str, optional: bool, filename: str, number: int, stack: tuple[str, ...]
    ) -> None:
        if self.loader is None:
            raise ConfigError(filename, number, f"cannot #include '{name}': no file loader given")
        if any(ch in name for ch in "*?["):
            raise ConfigError(filename, number, f"wildcard #include '{name}' is not supported")
        if len(stack) > MAX_INCLUDE_DEPTH:
            problem = f"#include nested more than {MAX_INCLUDE_DEPTH} deep"
            raise ConfigError(filename, number, problem)
        try:
            included, text = self.loader(resolve_include(name, filename))
        except FileNotFoundError:
            if optional:
                return
            problem = f"cannot #include '{name}': file not found"
            raise ConfigError(filename, number, problem) from None
        except OSError as exc:
            raise ConfigError(filename, number, f"cannot #include '{name}': {exc}") from None
        if included in stack:
            loop = " -> ".join((*stack, included))
            raise ConfigError(filename, number, f"#include loop: {loop}")
        self.feed(text, included, (*stack, included))


def resolve_include(name: str, including: str) -> str:
    """The path an ``#include`` names: absolute as given, else relative to the including file."""
    if os.path.isabs(name):
        return os.path.normpath(name)
    return os.path.normpath(os.path.join(os.path.dirname(including), name))


def strip_comments(line: str, depth: int) -> tuple[str, int]:
    """Drop ``;`` comments from one line; ``depth`` counts open ``;--`` block comments.

    Returns the remaining text (``\\;`` turned into ``;``) and the new depth.
    """
    out: list[str] = []
    i = 0
    while i < len(line):
        if depth:
            if line.startswith("--;", i):
                depth, i = depth - 1, i + 3
            elif line.startswith(";--", i):
                depth, i = depth + 1, i + 3
            else:
                i += 1
        elif line.startswith("\\;", i):
            out.append(";")
            i += 2
        elif line.startswith(";--", i):
            depth, i = 1, i + 3
        elif line[i] == ";":
            break
        else:
            out.append(line[i])
            i += 1
    return "".join(out), depth


def parse_header(content: str, filename: str, number: int) -> _Header:
    """Parse ``[name]``, ``[name](!)``, ``[name](tpl,...)`` or ``[name](+)``."""
    close = content.find("]")
    if close < 0:
        raise ConfigError(filename, number, "section header is missing its closing ']'")
    name = content[1:close].strip()
    if not name:
        raise ConfigError(filename, number, "section header has an empty name")
    rest = content[close + 1 :].strip()
    if not rest:
        return _Header(name, False, None, ())
    if not rest.startswith("("):
        raise ConfigError(filename, number, f"unexpected text after section header: '{rest}'")
    if not rest.endswith(")"):
        raise ConfigError(filename, number, f"section '{name}': '(' is missing its closing ')'")
    return _header_flags(name, rest[1:-1], filename, number)


def _header_flags(name: str, inner: str, filename: str, number: int) -> _Header:
    is_template = False
    append: tuple[tuple[str, str], ...] | None = None
    templates: list[str] = []
    for item in (part.strip() for part in inner.split(",")):
        if not item:
            raise ConfigError(filename, number, f"section '{name}': empty entry in '({inner})'")
        if item == "!":
            is_template = True
        elif item.startswith("+"):
            append = _append_filter(item[1:], name, filename, number)
        else:
            templates.append(item)
    if is_template and append is not None:
        problem = f"section '{name}': '!' and '+' cannot be combined"
        raise ConfigError(filename, number, problem)
    return _Header(name, is_template, append, tuple(templates))


def _append_filter(text: str, name: str, filename: str, number: int) -> tuple[tuple[str, str], ...]:
    conditions: list[tuple[str, str]] = []
    for part in filter(None, (p.strip() for p in text.split("&"))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            problem = f"section '{name}': bad append filter '{part}' (expected key=value)"
            raise ConfigError(filename, number, problem)
        conditions.append((key.strip(), value.strip()))
    return tuple(conditions)


def split_option(content: str, filename: str, number: int) -> tuple[str, str, str]:
    """Split ``key = value`` / ``key => value`` into (key, operator, value)."""
    eq = content.find("=")
    if eq < 0:
        problem = f"expected 'key = value', '[section]' or a '#' directive, got '{content}'"
        raise ConfigError(filename, number, problem)
    key = content[:eq].strip()
    if not key:
        raise ConfigError(filename, number, "option has no name before '='")
    if content.startswith(">", eq + 1):
        return key, "=>", content[eq + 2 :].strip()
    return key, "=", content[eq + 1 :].strip()


def _unquote(name: str) -> str:
    if len(name) >= 2 and (name[0], name[-1]) in (('"', '"'), ("<", ">")):
        return name[1:-1].strip()
    return name


def read_text_file(name: str) -> tuple[str, str]:
    """The loader shells pass for real files: ``(name, text)`` read as UTF-8.

    The only function in this package that touches the file system; undecodable
    bytes become U+FFFD rather than stopping the load.
    """
    with open(name, encoding="utf-8", errors="replace") as handle:
        return name, handle.read()
