"""What the dialplan asks of the channel: the actions a B2BUA shell executes.

The interpreter runs bookkeeping applications (``Set``, ``Goto``...) itself and
stops at anything that needs the channel (media, signalling, time), returning
one of the frozen dataclasses below.  The shell performs it and reports back
with :meth:`DialplanRunner.complete`, passing a :class:`DialResult` after a
:class:`Dial` or a mapping of variables to set (``{"PLAYBACKSTATUS": "SUCCESS"}``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Q.850 cause codes Asterisk uses for hangups (include/asterisk/causes.h).
CAUSE_UNALLOCATED = 1
CAUSE_NORMAL_CLEARING = 16
CAUSE_USER_BUSY = 17
CAUSE_NO_USER_RESPONSE = 18
CAUSE_NO_ANSWER = 19
CAUSE_CALL_REJECTED = 21
CAUSE_CONGESTION = 34
CAUSE_NAMES = {
    "UNALLOCATED": CAUSE_UNALLOCATED,
    "NO_ROUTE_DESTINATION": 3,
    "NORMAL_CLEARING": CAUSE_NORMAL_CLEARING,
    "USER_BUSY": CAUSE_USER_BUSY,
    "NO_USER_RESPONSE": CAUSE_NO_USER_RESPONSE,
    "NO_ANSWER": CAUSE_NO_ANSWER,
    "CALL_REJECTED": CAUSE_CALL_REJECTED,
    "NUMBER_CHANGED": 22,
    "INVALID_NUMBER_FORMAT": 28,
    "NORMAL_UNSPECIFIED": 31,
    "CONGESTION": CAUSE_CONGESTION,
    "NORMAL_CIRCUIT_CONGESTION": CAUSE_CONGESTION,
    "NETWORK_OUT_OF_ORDER": 38,
    "NORMAL_TEMPORARY_FAILURE": 41,
    "SWITCH_CONGESTION": 42,
    "BEARERCAPABILITY_NOTAVAIL": 58,
    "INTERWORKING": 127,
}

DIAL_STATUSES = frozenset({
    "ANSWER", "BUSY", "NOANSWER", "CANCEL", "CONGESTION", "CHANUNAVAIL", "DONTCALL",
    "TORTURE", "INVALIDARGS",
})  # fmt: skip

_TECH = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_OPTION = re.compile(r"([A-Za-z])(?:\(([^()]*)\))?")


class DialStringError(ValueError):
    """A ``Tech/resource`` dial target that is not one."""


@dataclass(frozen=True, slots=True)
class DialTarget:
    """One ``Tech/resource`` of Dial: ``PJSIP/8006``, ``PJSIP/100@trunk``, ``PJSIP/x/sip:u@h``.

    ``resource`` keeps everything after the first ``/`` (any ``@`` or ``/``
    parts included), for the channel driver to interpret.
    """

    tech: str
    resource: str

    @classmethod
    def parse(cls, text: str) -> DialTarget:
        """Parse ``Tech/resource``; raises :class:`DialStringError`."""
        tech, slash, resource = text.strip().partition("/")
        if not slash or not _TECH.match(tech) or not resource.strip():
            raise DialStringError(f"bad dial target '{text}' (expected Tech/resource)")
        return cls(tech, resource.strip())

    @property
    def endpoint(self) -> str:
        """For PJSIP: the endpoint named (``8006`` in ``8006``, ``trunk`` in ``100@trunk``)."""
        head = self.resource.split("/", 1)[0]
        return head.rpartition("@")[2]

    @property
    def number(self) -> str:
        """For PJSIP: the user part before ``@`` (``100`` in ``100@trunk``), else ``""``."""
        head = self.resource.split("/", 1)[0]
        return head.rpartition("@")[0]

    def __str__(self) -> str:
        return f"{self.tech}/{self.resource}"


@dataclass(frozen=True, slots=True)
class Answer:
    """Answer the channel (200 OK), after ``delay`` seconds."""

    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class Ringing:
    """Indicate ringing (180)."""


@dataclass(frozen=True, slots=True)
class Progress:
    """Indicate progress with early media (183)."""


@dataclass(frozen=True, slots=True)
class Wait:
    """Wait ``seconds`` (media keeps flowing)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Playback:
    """Play sound files in order; ``options`` as given (``skip``, ``noanswer``...)."""

    files: tuple[str, ...]
    options: str = ""


@dataclass(frozen=True, slots=True)
class Echo:
    """Send the caller's audio back until they hang up."""


@dataclass(frozen=True, slots=True)
class MusicOnHold:
    """Play music class ``klass`` for ``duration`` seconds (None: until hangup)."""

    klass: str = ""
    duration: float | None = None


@dataclass(frozen=True, slots=True)
class Dial:
    """Call ``targets`` in parallel; ``timeout`` seconds (None: no limit); Dial ``options``."""

    targets: tuple[DialTarget, ...]
    timeout: float | None = None
    options: str = ""
    url: str = ""

    def option_flags(self) -> dict[str, str]:
        """The options as ``{letter: argument}`` (``"tm(jazz)"`` -> ``{"t": "", "m": "jazz"}``)."""
        return {found.group(1): found.group(2) or "" for found in _OPTION.finditer(self.options)}


@dataclass(frozen=True, slots=True)
class ConfBridge:
    """Join conference ``room`` with the given bridge and user profiles."""

    room: str
    bridge_profile: str = "default_bridge"
    user_profile: str = "default_user"
    menu: str = ""


@dataclass(frozen=True, slots=True)
class Hangup:
    """Hang up with Q.850 ``cause`` (None: the default); ``reason`` says why, for logs."""

    cause: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Busy:
    """Indicate busy (486 if unanswered) for ``timeout`` seconds, then hang up."""

    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Congestion:
    """Indicate congestion (503 if unanswered) for ``timeout`` seconds, then hang up."""

    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Done:
    """The dialplan ran out of steps: hang up normally, as Asterisk's autofallthrough does."""

    cause: int = CAUSE_NORMAL_CLEARING


Action = (
    Answer | Ringing | Progress | Wait | Playback | Echo | MusicOnHold | Dial | ConfBridge
    | Hangup | Busy | Congestion | Done
)  # fmt: skip
ACTION_TYPES = (
    Answer, Ringing, Progress, Wait, Playback, Echo, MusicOnHold, Dial, ConfBridge,
    Hangup, Busy, Congestion, Done,
)  # fmt: skip
TERMINAL_TYPES = (Hangup, Done)


@dataclass(frozen=True, slots=True)
class DialResult:
    """How a :class:`Dial` ended, reported by the shell.

    ``status`` becomes ``DIALSTATUS``; ``dialed_time`` / ``answered_time``
    (whole seconds) become ``DIALEDTIME`` / ``ANSWEREDTIME``; ``peer`` becomes
    ``DIALEDPEERNUMBER``.  ``caller_hung_up`` says the caller (not the callee)
    ended an answered call: the dialplan then stops, as Asterisk's Dial does.
    """

    status: str
    dialed_time: int = 0
    answered_time: int = 0
    peer: str = ""
    caller_hung_up: bool = False

    def __post_init__(self) -> None:
        if self.status not in DIAL_STATUSES:
            raise ValueError(f"unknown DIALSTATUS '{self.status}'")

    def variables(self) -> dict[str, str]:
        """The channel variables Dial sets."""
        values = {
            "DIALSTATUS": self.status,
            "DIALEDTIME": str(self.dialed_time),
            "ANSWEREDTIME": str(self.answered_time),
        }
        if self.peer:
            values["DIALEDPEERNUMBER"] = self.peer
        return values
