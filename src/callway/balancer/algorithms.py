"""Destination selection by Kamailio's algorithm numbers.

:func:`select_destinations` answers "where does this request go, and where
next if that fails": the first element is the chosen destination, the rest the
failover order ``ds_next_dst()`` would walk (the destinations after the chosen
one in set order, wrapping round).  Inactive and disabled destinations are
never returned; *trying* ones are, as in Kamailio.  An empty list means "no
destination" (the caller answers ``404 No destination``).

Each algorithm is a small *picker* in a registry keyed by :class:`Algorithm`
(aioquic's strategy-registry pattern).  What they remember between calls
(round-robin cursors, weight tables, call load) lives in a
:class:`SelectorState`, so the functions themselves stay pure apart from the
``rng`` they are handed.  Where callway deliberately differs from Kamailio:

* hash algorithms (0, 1, 2, 3, 5, 7) keep a request on its hashed destination
  while that one is usable; when it is not, the request is re-hashed over the
  usable destinations (Kamailio takes the next one in the list, which piles
  all of a dead node's load on its neighbour);
* random (6) chooses uniformly among usable destinations.

Weight (9) follows Kamailio exactly: a 100-slot table filled in set order,
``weight`` slots per destination (over 100 is cut, under 100 goes to the last
destination; if the first destination has no weight every request goes to the
first usable one), shuffled once and walked by a cursor, so every 100
selections split exactly by weight.  Relative weight (11) builds the same
table from ``rweight`` over the usable destinations only, rebuilt whenever
that set changes.  Parallel forking (12) and latency (13) are not implemented.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from callway.balancer.model import (
    Algorithm,
    Destination,
    DestState,
    DispatcherSet,
    UnsupportedAlgorithmError,
)
from callway.core.timers import TimerHeap
from callway.sip.errors import ParseError
from callway.sip.uri import SipURI, parse_uri

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "CallLoad",
    "FlagsLookup",
    "RequestFacts",
    "SelectorState",
    "select_destinations",
]

#: Live state of a destination of a set: ``flags_of(setid, destination)``.
FlagsLookup = Callable[[int, Destination], DestState]

_SLOTS = 100


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """The parts of a request the hash algorithms look at.

    ``from_uri`` and ``to_uri`` are the URIs from the headers (without the
    display name or tag); ``ruri_user`` the Request-URI user; ``auth_user``
    the username of an Authorization / Proxy-Authorization header, empty if
    none (algorithm 5 then falls back to round-robin, as Kamailio does).
    ``hash_key`` is the expanded text algorithm 7 hashes (Kamailio's
    ``hash_pvar``); without it algorithm 7 is refused.
    """

    call_id: str = ""
    from_uri: str = ""
    to_uri: str = ""
    ruri_user: str = ""
    auth_user: str = ""
    hash_key: str | None = None


class CallLoad:
    """Active calls per destination for algorithm 10 (Kamailio's ``ds_ht``).

    Calls are counted per ``duid`` (or per URI when a destination has none:
    :attr:`Destination.load_key`).  The caller reports a call when it forwards
    the INVITE and again on failover (the call moves), and reports its end on
    BYE, CANCEL or a failure reply.  Calls started with ``now`` are forgotten
    ``expire`` seconds later if their end was never seen (``ds_hash_expire``);
    drive that with :meth:`get_timer` / :meth:`handle_timer`.
    """

    def __init__(self, expire: float = 7200.0) -> None:
        self.expire = expire
        self._call_key: dict[str, str] = {}
        self._load: dict[str, int] = {}
        self._timers: TimerHeap[str] = TimerHeap()

    def call_started(self, duid: str, call_id: str, now: float | None = None) -> None:
        """Count ``call_id`` against ``duid``; a known call moves to ``duid``."""
        self.call_ended(call_id)
        self._call_key[call_id] = duid
        self._load[duid] = self._load.get(duid, 0) + 1
        if now is not None:
            self._timers.schedule(now + self.expire, call_id)

    def call_ended(self, call_id: str) -> bool:
        """Stop counting ``call_id``; return whether it was counted."""
        duid = self._call_key.pop(call_id, None)
        if duid is None:
            return False
        self._timers.cancel(call_id)
        left = self._load[duid] - 1
        if left:
            self._load[duid] = left
        else:
            del self._load[duid]
        return True

    def load(self, duid: str) -> int:
        """Number of active calls counted against ``duid``."""
        return self._load.get(duid, 0)

    def destination_of(self, call_id: str) -> str | None:
        """The ``duid`` a call is counted against, if any."""
        return self._call_key.get(call_id)

    def __len__(self) -> int:
        return len(self._call_key)

    def get_timer(self) -> float | None:
        """When the oldest call started with ``now`` expires."""
        return self._timers.next_deadline()

    def handle_timer(self, now: float) -> list[str]:
        """Forget calls past their expiry; return their Call-IDs."""
        expired = self._timers.pop_due(now)
        for call_id in expired:
            self.call_ended(call_id)
        return expired


@dataclass(slots=True)
class _SlotTable:
    """A shuffled 100-slot weight table, its inputs and its cursor."""

    signature: tuple[object, ...]
    slots: list[int]
    cursor: int = 0


def _initial_flags(setid: int, dest: Destination) -> DestState:
    return dest.flags


@dataclass(slots=True)
class SelectorState:
    """What selection remembers between requests.

    ``flags_of`` gives a destination's live state (usually
    ``Prober.flags_of``; by default the flags from ``dispatcher.list``).
    ``call_load`` feeds algorithm 10.
    """

    flags_of: FlagsLookup = _initial_flags
    call_load: CallLoad = field(default_factory=CallLoad)
    round_robin: dict[int, int] = field(default_factory=dict)
    weight_tables: dict[int, _SlotTable] = field(default_factory=dict, repr=False)
    rweight_tables: dict[int, _SlotTable] = field(default_factory=dict, repr=False)


@dataclass(slots=True)
class _Context:
    dset: DispatcherSet
    usable: list[bool]
    facts: RequestFacts
    state: SelectorState
    now: float
    rng: random.Random

    @property
    def size(self) -> int:
        return len(self.usable)

    def next_usable(self, start: int) -> int | None:
        """``start`` if usable, else the next usable index after it (wrapping)."""
        for step in range(self.size):
            index = (start + step) % self.size
            if self.usable[index]:
                return index
        return None


_Picker = Callable[[_Context], "int | None"]


def select_destinations(
    dset: DispatcherSet,
    algorithm: Algorithm | int,
    request_facts: RequestFacts,
    state: SelectorState,
    now: float,
    rng: random.Random,
) -> list[Destination]:
    """Chosen destination first, then the failover order; empty if none is usable.

    Raises :class:`UnsupportedAlgorithmError` for algorithms 12 and 13 (and 7
    without ``hash_key``) and ``ValueError`` for numbers Kamailio does not
    define.
    """
    alg = Algorithm.parse(algorithm) if not isinstance(algorithm, Algorithm) else algorithm
    picker = _PICKERS.get(alg)
    if picker is None:
        raise UnsupportedAlgorithmError(alg, "not implemented by callway")
    dests = dset.destinations
    usable = [state.flags_of(dset.setid, dest).usable for dest in dests]
    if alg is Algorithm.CALL_LOAD:
        load = state.call_load
        usable = [
            ok and (dest.maxload == 0 or load.load(dest.load_key) < dest.maxload)
            for ok, dest in zip(usable, dests, strict=True)
        ]
    if not any(usable):
        return []
    first = picker(_Context(dset, usable, request_facts, state, now, rng))
    if first is None:
        return []
    order = [(first + step) % len(dests) for step in range(len(dests))]
    return [dests[index] for index in order if usable[index]]


# -- hashing ---------------------------------------------------------------


def _hashes(key: str) -> tuple[int, int]:
    """Two independent 32-bit hashes of ``key``, stable across processes."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest[:4], "big"), int.from_bytes(digest[4:], "big")


def _pick_by_hash(ctx: _Context, key: str) -> int | None:
    primary, secondary = _hashes(key)
    index = primary % ctx.size
    if ctx.usable[index]:
        return index
    candidates = [i for i, ok in enumerate(ctx.usable) if ok]
    return candidates[secondary % len(candidates)] if candidates else None


def _uri_key(text: str) -> str:
    """``user@host[:port]`` of a URI (the port only when not the default), as Kamailio hashes."""
    try:
        uri = parse_uri(text.strip())
    except ParseError:
        return text
    if not isinstance(uri, SipURI):
        return text
    default_port = 5061 if uri.secure else 5060
    host = uri.host.lower()
    if uri.port is not None and uri.port != default_port:
        host = f"{host}:{uri.port}"
    return f"{uri.user or ''}@{host}"


def _pick_call_id(ctx: _Context) -> int | None:
    return _pick_by_hash(ctx, ctx.facts.call_id)


def _pick_from(ctx: _Context) -> int | None:
    return _pick_by_hash(ctx, _uri_key(ctx.facts.from_uri))


def _pick_to(ctx: _Context) -> int | None:
    return _pick_by_hash(ctx, _uri_key(ctx.facts.to_uri))


def _pick_ruri(ctx: _Context) -> int | None:
    return _pick_by_hash(ctx, ctx.facts.ruri_user)


def _pick_auth_user(ctx: _Context) -> int | None:
    if not ctx.facts.auth_user:
        return _pick_round_robin(ctx)
    return _pick_by_hash(ctx, ctx.facts.auth_user)


def _pick_pv(ctx: _Context) -> int | None:
    if ctx.facts.hash_key is None:
        raise UnsupportedAlgorithmError(
            Algorithm.HASH_PV, "needs RequestFacts.hash_key (Kamailio's hash_pvar)"
        )
    return _pick_by_hash(ctx, ctx.facts.hash_key)


# -- stateful algorithms ---------------------------------------------------


def _pick_round_robin(ctx: _Context) -> int | None:
    cursors = ctx.state.round_robin
    setid = ctx.dset.setid
    index = ctx.next_usable(cursors.get(setid, 0) % ctx.size)
    if index is not None:
        cursors[setid] = (index + 1) % ctx.size
    return index


def _pick_random(ctx: _Context) -> int | None:
    return ctx.rng.choice([i for i, ok in enumerate(ctx.usable) if ok])


def _pick_priority(ctx: _Context) -> int | None:
    return ctx.next_usable(0)


def _pick_call_load(ctx: _Context) -> int | None:
    load = ctx.state.call_load
    best: int | None = None
    best_load = 0
    for index, dest in enumerate(ctx.dset.destinations):
        if not ctx.usable[index]:
            continue
        calls = load.load(dest.load_key)
        if best is None or calls < best_load:
            best, best_load = index, calls
    return best


def _fill_slots(shares: list[tuple[int, int]], filler: int) -> list[int]:
    """``shares`` is (index, slot count) in order; cut at 100, pad with ``filler``."""
    slots: list[int] = []
    for index, count in shares:
        slots.extend([index] * count)
    del slots[_SLOTS:]
    slots.extend([filler] * (_SLOTS - len(slots)))
    return slots


def _walk(table: _SlotTable) -> int:
    slot = table.slots[table.cursor]
    table.cursor = (table.cursor + 1) % _SLOTS
    return slot


def _pick_weight(ctx: _Context) -> int | None:
    dests = ctx.dset.destinations
    signature = tuple((dest.uri, dest.weight) for dest in dests)
    table = ctx.state.weight_tables.get(ctx.dset.setid)
    if table is None or table.signature != signature:
        if dests[0].weight == 0:
            slots = [0] * _SLOTS  # Kamailio: weights unset, always the first
        else:
            slots = _fill_slots([(i, d.weight) for i, d in enumerate(dests)], len(dests) - 1)
            ctx.rng.shuffle(slots)
        table = _SlotTable(signature, slots)
        ctx.state.weight_tables[ctx.dset.setid] = table
    return ctx.next_usable(_walk(table))


def _pick_relative_weight(ctx: _Context) -> int | None:
    dests = ctx.dset.destinations
    members = [i for i, d in enumerate(dests) if ctx.usable[i] and d.rweight > 0]
    if not members:
        return ctx.next_usable(0)
    signature = tuple((dests[i].uri, dests[i].rweight) for i in members)
    table = ctx.state.rweight_tables.get(ctx.dset.setid)
    if table is None or table.signature != signature:
        total = sum(dests[i].rweight for i in members)
        shares = [(i, dests[i].rweight * _SLOTS // total) for i in members]
        slots = _fill_slots(shares, members[-1])
        ctx.rng.shuffle(slots)
        table = _SlotTable(signature, slots, table.cursor if table else 0)
        ctx.state.rweight_tables[ctx.dset.setid] = table
    return ctx.next_usable(_walk(table))


_PICKERS: dict[Algorithm, _Picker] = {
    Algorithm.HASH_CALLID: _pick_call_id,
    Algorithm.HASH_FROM_URI: _pick_from,
    Algorithm.HASH_TO_URI: _pick_to,
    Algorithm.HASH_RURI: _pick_ruri,
    Algorithm.ROUND_ROBIN: _pick_round_robin,
    Algorithm.HASH_AUTH_USER: _pick_auth_user,
    Algorithm.RANDOM: _pick_random,
    Algorithm.HASH_PV: _pick_pv,
    Algorithm.PRIORITY: _pick_priority,
    Algorithm.WEIGHT: _pick_weight,
    Algorithm.CALL_LOAD: _pick_call_load,
    Algorithm.RELATIVE_WEIGHT: _pick_relative_weight,
}

#: The algorithm numbers :func:`select_destinations` implements.
SUPPORTED_ALGORITHMS = frozenset(_PICKERS)
