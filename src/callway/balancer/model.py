"""Destination sets, destination state flags and algorithm numbers.

These are the contracts a Kamailio operator already knows from the
``dispatcher`` module, kept bit-for-bit and number-for-number:

* a :class:`Destination` is one line of ``dispatcher.list``
  (``setid uri [flags [priority [attrs]]]``);
* :class:`DestState` holds the state bits (1 inactive, 2 trying, 4 disabled,
  8 probing, 16 no DNS resolve, 32 no ping) and renders the two letters
  ``kamcmd dispatcher.list`` prints (``AP``, ``IP``, ``TX``, ``DX`` ...);
* :class:`Algorithm` carries the numbers ``ds_select_dst(set, alg)`` takes;
* :class:`ProbeSettings` the prober's module parameters (``ds_ping_interval``,
  ``ds_probing_threshold``, ``ds_inactive_threshold``, ``ds_ping_reply_codes``,
  ``ds_probing_mode``); the prober's events and status snapshots are here too.

Everything here is plain data: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag

from callway.sip.uri import SipURI

__all__ = [
    "STATE_BITS",
    "Algorithm",
    "DestState",
    "Destination",
    "DestinationDown",
    "DestinationStatus",
    "DestinationUp",
    "DispatcherSet",
    "ProbeSettings",
    "ProberEvent",
    "ProbingMode",
    "ReplyCodes",
    "UnsupportedAlgorithmError",
]


class DestState(IntFlag):
    """Kamailio's destination flags (``DS_*_DST`` in ``dispatch.h``).

    A destination with none of the bits set is *active*.  Selection skips a
    destination that is :attr:`INACTIVE` or :attr:`DISABLED`; a
    :attr:`TRYING` one (failed before, not yet over the threshold) is still
    selected.
    """

    ACTIVE = 0
    INACTIVE = 1
    TRYING = 2
    DISABLED = 4
    PROBING = 8
    NODNSARES = 16
    NOPING = 32

    @property
    def usable(self) -> bool:
        """True if selection may pick this destination (not inactive, not disabled)."""
        return not self & (DestState.INACTIVE | DestState.DISABLED)

    def state_letters(self) -> str:
        """The two letters Kamailio's ``dispatcher.list`` RPC shows.

        First letter: ``I`` inactive, else ``D`` disabled, else ``T`` trying,
        else ``A`` active.  Second letter: ``P`` probing, else ``N`` no-ping,
        else ``X``.
        """
        if self & DestState.INACTIVE:
            first = "I"
        elif self & DestState.DISABLED:
            first = "D"
        elif self & DestState.TRYING:
            first = "T"
        else:
            first = "A"
        if self & DestState.PROBING:
            second = "P"
        elif self & DestState.NOPING:
            second = "N"
        else:
            second = "X"
        return first + second

    @classmethod
    def from_letters(cls, text: str) -> DestState:
        """Parse an operator's state as ``kamcmd dispatcher.set_state`` takes it.

        The first character is the state: ``a``/``1`` active, ``i``/``0``
        inactive, ``t``/``3`` trying, ``d``/``2`` disabled.  An optional second
        character adds ``p`` (probing), ``n`` (no ping) or ``x`` (nothing), so
        the letters printed by :meth:`state_letters` read back unchanged.
        Disabled never carries the probing bit, as in Kamailio.  Raises
        ``ValueError`` for anything else.
        """
        letters = text.strip().lower()
        if not 1 <= len(letters) <= 2:
            raise ValueError(f"bad destination state {text!r}: expected one or two letters")
        try:
            state = _STATE_LETTERS[letters[0]]
        except KeyError:
            raise ValueError(
                f"bad destination state {text!r}: first letter must be a, i, t or d"
            ) from None
        if len(letters) == 2:
            try:
                extra = _PROBE_LETTERS[letters[1]]
            except KeyError:
                raise ValueError(
                    f"bad destination state {text!r}: second letter must be p, n or x"
                ) from None
            if state != DestState.DISABLED:
                state |= extra
        return state


_STATE_LETTERS = {
    "a": DestState.ACTIVE,
    "1": DestState.ACTIVE,
    "i": DestState.INACTIVE,
    "0": DestState.INACTIVE,
    "t": DestState.TRYING,
    "3": DestState.TRYING,
    "d": DestState.DISABLED,
    "2": DestState.DISABLED,
}
_PROBE_LETTERS = {"p": DestState.PROBING, "n": DestState.NOPING, "x": DestState.ACTIVE}

#: All bits that describe a destination's state (Kamailio's ``DS_STATES_ALL``).
STATE_BITS = DestState(63)


class Algorithm(IntEnum):
    """Selection algorithms by Kamailio's numbers (``ds_select_dst(set, alg)``)."""

    HASH_CALLID = 0
    HASH_FROM_URI = 1
    HASH_TO_URI = 2
    HASH_RURI = 3
    ROUND_ROBIN = 4
    HASH_AUTH_USER = 5
    RANDOM = 6
    HASH_PV = 7
    PRIORITY = 8
    WEIGHT = 9
    CALL_LOAD = 10
    RELATIVE_WEIGHT = 11
    PARALLEL = 12
    LATENCY = 13

    @classmethod
    def parse(cls, value: int | str) -> Algorithm:
        """Accept ``9``, ``"9"`` or a member name such as ``"weight"``; raise ``ValueError``."""
        if isinstance(value, str):
            text = value.strip()
            if text.isascii() and text.isdigit():
                value = int(text)
            else:
                try:
                    return cls[text.upper().replace("-", "_")]
                except KeyError:
                    raise ValueError(f"unknown dispatcher algorithm {value!r}") from None
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"unknown dispatcher algorithm {value!r}") from None


class UnsupportedAlgorithmError(ValueError):
    """The algorithm number is Kamailio's but callway does not implement it."""

    def __init__(self, algorithm: Algorithm, why: str) -> None:
        self.algorithm = algorithm
        super().__init__(f"dispatcher algorithm {int(algorithm)} ({algorithm.name}): {why}")


@dataclass(frozen=True, slots=True)
class Destination:
    """One destination (gateway, PBX node) of a dispatcher set.

    ``uri`` is the text as written in ``dispatcher.list`` and is the
    destination's identity within its set.  ``flags`` are the *initial* state
    bits from the file; the live state is kept by the prober.  ``attrs`` is the
    raw attribute string and ``attributes`` its parsed form (names
    lower-cased); the special attributes Kamailio knows are broken out.
    ``weight`` 0 means "not set" exactly as in Kamailio (see
    :mod:`callway.balancer.algorithms`).
    """

    uri: str
    sip_uri: SipURI = field(compare=False, hash=False, repr=False)
    flags: DestState = DestState.ACTIVE
    priority: int = 0
    attrs: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    weight: int = 0
    rweight: int = 0
    duid: str = ""
    maxload: int = 0
    socket: str = ""
    ping_from: str = ""
    line: int = field(default=0, compare=False)

    @property
    def host(self) -> str:
        """Host part of the URI (IPv6 in brackets, as written)."""
        return self.sip_uri.host

    @property
    def port(self) -> int | None:
        """Port from the URI, or None when it relies on the default."""
        return self.sip_uri.port

    @property
    def transport(self) -> str | None:
        """The URI's ``transport=`` parameter, lower-cased, if present."""
        return self.sip_uri.transport

    @property
    def secure(self) -> bool:
        """True for a ``sips:`` destination."""
        return self.sip_uri.secure

    @property
    def load_key(self) -> str:
        """Key for call-load accounting: the ``duid``, or the URI when none is set."""
        return self.duid or self.uri


@dataclass(frozen=True, slots=True)
class DispatcherSet:
    """A destination set (group): its id and destinations in selection order.

    Kamailio orders a set by priority, highest value first; callway keeps
    file order among equal priorities (Kamailio reverses it, an artefact of
    its linked-list load).  :func:`callway.config.dispatcher.parse_dispatcher_list`
    builds sets already ordered; :meth:`ordered` does it for hand-made ones.
    """

    setid: int
    destinations: tuple[Destination, ...]

    @classmethod
    def ordered(cls, setid: int, destinations: list[Destination]) -> DispatcherSet:
        """A set with ``destinations`` sorted by priority (highest first, stable)."""
        return cls(setid, tuple(sorted(destinations, key=lambda d: -d.priority)))

    def find(self, uri: str) -> Destination | None:
        """The destination whose URI is ``uri`` (compared case-insensitively)."""
        wanted = uri.casefold()
        for dest in self.destinations:
            if dest.uri.casefold() == wanted:
                return dest
        return None

    def __len__(self) -> int:
        return len(self.destinations)


class ProbingMode(IntEnum):
    """``ds_probing_mode`` values."""

    FLAGGED_ONCE = 0
    ALL = 1
    INACTIVE = 2
    FLAGGED = 3


@dataclass(frozen=True, slots=True)
class ReplyCodes:
    """Extra probe replies accepted besides 2xx (``ds_ping_reply_codes``)."""

    codes: frozenset[int] = frozenset()
    classes: frozenset[int] = frozenset()

    @classmethod
    def parse(cls, text: str) -> ReplyCodes:
        """Parse Kamailio's ``class=2;code=403;code=488`` form; raise ``ValueError``."""
        codes: set[int] = set()
        classes: set[int] = set()
        for item in filter(None, (part.strip() for part in text.split(";"))):
            name, _, value = item.partition("=")
            name = name.strip().lower()
            value = value.strip()
            if not (value.isascii() and value.isdigit()):
                raise ValueError(f"bad reply code entry {item!r}: value must be a number")
            number = int(value)
            if name == "code" and 100 <= number < 700:
                codes.add(number)
            elif name == "class" and 1 <= number < 7:
                classes.add(number)
            else:
                raise ValueError(f"bad reply code entry {item!r}: use code=100-699 or class=1-6")
        return cls(frozenset(codes), frozenset(classes))

    def accepts(self, status: int) -> bool:
        """True if a probe answered with ``status`` shows the destination alive."""
        return 200 <= status < 300 or status in self.codes or status // 100 in self.classes


@dataclass(frozen=True, slots=True)
class ProbeSettings:
    """Prober parameters, named after Kamailio's module parameters.

    ``interval`` (``ds_ping_interval``) 0 disables probing, as in Kamailio;
    ``timeout`` plays ``ds_ping_fr_timeout``.
    """

    interval: float = 0.0
    probing_threshold: int = 1
    inactive_threshold: int = 1
    reply_codes: ReplyCodes = ReplyCodes()
    probing_mode: ProbingMode = ProbingMode.FLAGGED_ONCE
    timeout: float = 5.0
    method: str = "OPTIONS"
    ping_from: str = "sip:dispatcher@localhost"

    def __post_init__(self) -> None:
        if self.interval < 0:
            raise ValueError("ping interval must not be negative")
        if self.timeout <= 0:
            raise ValueError("probe timeout must be positive")
        if self.probing_threshold < 1 or self.inactive_threshold < 1:
            raise ValueError("probing and inactive thresholds must be at least 1")
        object.__setattr__(self, "probing_mode", ProbingMode(self.probing_mode))


@dataclass(frozen=True, slots=True)
class DestinationDown:
    """A destination stopped being selectable (``dispatcher:dst-down``)."""

    setid: int
    uri: str
    old: DestState
    new: DestState
    now: float
    cause: str


@dataclass(frozen=True, slots=True)
class DestinationUp:
    """A destination became selectable again (``dispatcher:dst-up``)."""

    setid: int
    uri: str
    old: DestState
    new: DestState
    now: float
    cause: str


ProberEvent = DestinationUp | DestinationDown


@dataclass(frozen=True, slots=True)
class DestinationStatus:
    """A snapshot of one destination for the console and the admin API."""

    setid: int
    uri: str
    flags: DestState
    priority: int
    probing_count: int
    probes_sent: int
    probes_ok: int
    probes_failed: int
    request_failures: int
    last_status: int | None
    last_change: float | None
    probe_pending: bool

    @property
    def letters(self) -> str:
        """Kamailio's two-letter state (``AP``, ``IX``, ``DX`` ...)."""
        return self.flags.state_letters()

    @property
    def usable(self) -> bool:
        """True if selection may pick this destination now."""
        return self.flags.usable
