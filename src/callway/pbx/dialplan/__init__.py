"""The Asterisk dialplan at run time: pattern matching, variables, the interpreter.

``extensions.conf`` is parsed by :mod:`callway.config.extensions` into a
:class:`~callway.pbx.dialplan_model.Dialplan`; this package runs it:
:func:`find_extension` picks the extension a dialed number reaches,
:class:`DialplanRunner` steps one channel through it and yields the
:mod:`~callway.pbx.dialplan.actions` the B2BUA performs, and
:func:`validate_dialplan` checks a loaded dialplan before any call uses it.
"""

from callway.pbx.dialplan.actions import (
    Action,
    Answer,
    Busy,
    ConfBridge,
    Congestion,
    Dial,
    DialResult,
    DialTarget,
    Done,
    Echo,
    Hangup,
    MusicOnHold,
    Playback,
    Progress,
    Ringing,
    Wait,
)
from callway.pbx.dialplan.args import split_args
from callway.pbx.dialplan.interpreter import DialplanRunner
from callway.pbx.dialplan.patterns import (
    extension_exists,
    find_extension,
    find_priority,
    match,
    sort_extensions,
)
from callway.pbx.dialplan.validate import DialplanProblem, validate_dialplan
from callway.pbx.dialplan.variables import ChannelVariables

__all__ = [
    "Action",
    "Answer",
    "Busy",
    "ChannelVariables",
    "ConfBridge",
    "Congestion",
    "Dial",
    "DialResult",
    "DialTarget",
    "DialplanProblem",
    "DialplanRunner",
    "Done",
    "Echo",
    "Hangup",
    "MusicOnHold",
    "Playback",
    "Progress",
    "Ringing",
    "Wait",
    "extension_exists",
    "find_extension",
    "find_priority",
    "match",
    "sort_extensions",
    "split_args",
    "validate_dialplan",
]
