"""The dialplan as ``extensions.conf`` states it: contexts, extensions, priorities.

Mirrors Asterisk's dialplan structure (pbx_config): a context holds extensions
(literal names such as ``8005`` or patterns such as ``_80XX``), each extension an
ordered list of numbered priorities, each priority one application call.
Nothing here matches patterns or runs applications; the interpreter does that.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from callway.pbx.model import ConfigWarning


@dataclass(frozen=True, slots=True)
class Priority:
    """One step of an extension: ``exten => 8005,2(dial),Dial(PJSIP/8005)``.

    ``app`` is the application name as written (``Dial``); ``args_raw`` is the
    text between its parentheses, unexpanded (``PJSIP/${EXTEN}``); ``label`` is
    ``""`` when the priority has none.
    """

    number: int
    label: str
    app: str
    args_raw: str
    filename: str
    line: int


@dataclass(frozen=True, slots=True)
class Include:
    """``include => other`` (optionally ``include => other,09:00-17:00,mon-fri,*,*``)."""

    context: str
    timing: str = ""
    filename: str = ""
    line: int = 0


@dataclass(frozen=True, slots=True)
class Context:
    """One ``[context]`` (every section of that name merged, in file order).

    ``extensions`` maps the extension as written (including any ``/callerid``
    suffix, such as ``100/5551234``) to its priorities in ascending order;
    ``hints`` maps an extension to the device its ``hint`` priority names.
    """

    name: str
    extensions: dict[str, tuple[Priority, ...]] = field(default_factory=dict)
    includes: tuple[Include, ...] = ()
    hints: dict[str, str] = field(default_factory=dict)
    ignorepats: tuple[str, ...] = ()

    def priority(self, exten: str, number: int) -> Priority | None:
        """The priority ``number`` of extension ``exten`` (as written), if defined."""
        return next((p for p in self.extensions.get(exten, ()) if p.number == number), None)

    def find_label(self, exten: str, label: str) -> Priority | None:
        """The priority of ``exten`` carrying ``label`` (as used by ``Goto(label)``)."""
        return next((p for p in self.extensions.get(exten, ()) if p.label == label), None)


@dataclass(frozen=True, slots=True)
class Dialplan:
    """A whole ``extensions.conf``: its contexts, ``[globals]`` and ``[general]`` settings."""

    contexts: dict[str, Context] = field(default_factory=dict)
    global_vars: dict[str, str] = field(default_factory=dict)
    general: dict[str, str] = field(default_factory=dict)
    warnings: tuple[ConfigWarning, ...] = ()
