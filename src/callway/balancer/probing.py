"""Destination health: Kamailio dispatcher's keepalive prober, sans-I/O.

The :class:`Prober` owns the live :class:`DestState` of every destination.
Every ``interval`` seconds (``ds_ping_interval``) it queues a probe for each
destination the probing mode selects; the shell drains
:meth:`Prober.probes_to_send`, sends an OPTIONS to each and reports the final
status with :meth:`Prober.on_reply` (or :meth:`Prober.on_timeout`).  A probe
not answered within ``timeout`` seconds times out by itself in
:meth:`Prober.handle_timer`.  Relayed requests that time out or get a 5xx are
reported with :meth:`Prober.on_request_failure`.

State changes follow Kamailio's ``ds_update_state`` (see :func:`next_state`):

* a failure marks an active destination *trying*; after
  ``probing_threshold`` consecutive failures it becomes *inactive* (with
  ``probing_threshold`` 1, the default, the first failure does it);
* an inactive destination needs ``inactive_threshold`` consecutive accepted
  replies to become *active* again; a failure in between restarts the count;
* accepted replies are any 2xx plus ``reply_codes`` (``ds_ping_reply_codes``);
  a timeout counts as Kamailio's local 408, so accepting 408 means a silent
  destination is never taken down, exactly as in Kamailio;
* disabled destinations (an operator's drain, ``DX``) are never probed and
  keep their state until an operator changes it.

Probing modes (``ds_probing_mode``): 0 probes destinations with the probing
flag and clears the flag with the probe's result (Kamailio: "probe once"; a
destination that fails that probe stays inactive until an operator or a later
``on_request_failure`` sets the flag again), 1 probes every destination and
keeps them all probing, 2 probes only inactive destinations with the probing
flag, 3 probes flagged destinations and never clears the flag.  For health
checking a pool of PBX nodes use mode 1.

Up/down transitions are queued as :class:`DestinationUp` /
:class:`DestinationDown` (Kamailio's ``dispatcher:dst-up`` / ``dst-down``),
read with :meth:`Prober.next_event`.  The same URI in several sets is probed
once per round and the result applied to each set's entry that asked.

Several processes sharing the work (the balancer's ``--workers``) keep one
prober authoritative: :attr:`Prober.changes` counts state changes, and
:meth:`Prober.snapshot` / :meth:`Prober.apply_snapshot` copy the states to the
others' probers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from callway.balancer.model import (
    STATE_BITS,
    Destination,
    DestinationDown,
    DestinationStatus,
    DestinationUp,
    DestState,
    DispatcherSet,
    ProberEvent,
    ProbeSettings,
    ProbingMode,
)
from callway.core.timers import TimerHeap

__all__ = [
    "DestinationDown",
    "DestinationStatus",
    "DestinationUp",
    "Prober",
    "ProberEvent",
    "next_state",
]

# Bits from the list file that automatic updates leave alone.
_STICKY = DestState.NOPING | DestState.NODNSARES
#: Kamailio's transaction layer answers an unanswered probe with a local 408.
TIMEOUT_STATUS = 408


def next_state(
    old: DestState,
    count: int,
    requested: DestState,
    settings: ProbeSettings,
    *,
    force: bool = False,
) -> tuple[DestState, int]:
    """Apply a requested state to a destination, Kamailio's ``ds_update_state``.

    ``count`` is the consecutive failure (while trying) or success (while
    inactive) counter; the new flags and counter are returned.  ``force``
    skips both thresholds (Kamailio's set mode).  State bits not requested
    are cleared, except the no-ping and no-DNS bits, which come from the list
    file and which automatic updates keep.  Disabled wins over everything.
    """
    sticky = old & _STICKY
    state = requested & STATE_BITS & ~_STICKY
    if state & DestState.DISABLED:
        return DestState.DISABLED | sticky, 0
    if state & DestState.TRYING and old & DestState.INACTIVE:
        # An inactive destination must come back up before it can be "trying".
        state = (state & ~DestState.TRYING) | DestState.INACTIVE
    flags = state
    if state & DestState.TRYING:
        count += 1
        if force or count >= settings.probing_threshold:
            flags = (flags & ~DestState.TRYING) | DestState.INACTIVE
            count = 0
    elif not requested & DestState.TRYING and old & DestState.INACTIVE:
        count += 1
        if not force and count < settings.inactive_threshold:
            flags |= DestState.INACTIVE | (old & DestState.PROBING)
        else:
            count = 0
    else:
        count = 0
    return flags | sticky, count


@dataclass(slots=True)
class _Entry:
    setid: int
    dest: Destination
    flags: DestState
    count: int = 0
    probes_sent: int = 0
    probes_ok: int = 0
    probes_failed: int = 0
    request_failures: int = 0
    last_status: int | None = None
    last_change: float | None = None


@dataclass(slots=True)
class _Probe:
    dest: Destination
    entries: list[_Entry] = field(default_factory=list)


class Prober:
    """Live destination states, keepalive probing and up/down events."""

    def __init__(
        self,
        sets: Mapping[int, DispatcherSet],
        settings: ProbeSettings | None = None,
        *,
        first_round: float = 0.0,
    ) -> None:
        self.settings = settings if settings is not None else ProbeSettings()
        #: Kamailio's ``dispatcher.ping_active``: False pauses probing rounds.
        self.ping_active = True
        self._sets: dict[int, DispatcherSet] = {}
        self._entries: dict[tuple[int, str], _Entry] = {}
        self._pending: dict[str, _Probe] = {}
        self._deadlines: TimerHeap[str] = TimerHeap()
        self._outbox: list[Destination] = []
        self._events: deque[ProberEvent] = deque()
        self._next_round = first_round
        #: Bumped by every state change and reload (whoever mirrors the states re-reads them).
        self.changes = 0
        self.reload(sets)

    # -- configuration ------------------------------------------------------

    @property
    def sets(self) -> Mapping[int, DispatcherSet]:
        """The destination sets in force."""
        return self._sets

    def reload(self, sets: Mapping[int, DispatcherSet]) -> None:
        """Put new sets in force, keeping the live state of unchanged destinations.

        A destination whose flags in the list changed takes the new flags.
        """
        old = self._entries
        self.changes += 1
        self._sets = dict(sets)
        self._entries = {}
        for setid, dset in self._sets.items():
            for dest in dset.destinations:
                key = (setid, dest.uri.casefold())
                kept = old.get(key)
                if kept is not None and kept.dest.flags == dest.flags:
                    kept.dest = dest
                    self._entries[key] = kept
                else:
                    self._entries[key] = _Entry(setid, dest, dest.flags)
        for uri, probe in list(self._pending.items()):
            probe.entries = [e for e in probe.entries if self._entries.get(_key(e)) is e]
            if not probe.entries:
                del self._pending[uri]
                self._deadlines.cancel(uri)

    # -- queries ------------------------------------------------------------

    def flags_of(self, setid: int, dest: Destination) -> DestState:
        """Live flags of ``dest`` in set ``setid`` (a ``FlagsLookup`` for selection)."""
        entry = self._entries.get((setid, dest.uri.casefold()))
        return entry.flags if entry is not None else dest.flags

    def state_of(self, uri: str, setid: int | None = None) -> DestState:
        """Live flags of the first destination matching ``uri``; ``KeyError`` if none."""
        return next(self._matching(uri, setid)).flags

    def states(self) -> list[DestinationStatus]:
        """Every destination with its state and counters, by set then selection order."""
        pending = {id(entry) for entry in self._pending_entries()}
        result = []
        for setid in sorted(self._sets):
            for dest in self._sets[setid].destinations:
                e = self._entries[(setid, dest.uri.casefold())]
                result.append(
                    DestinationStatus(
                        setid=setid,
                        uri=dest.uri,
                        flags=e.flags,
                        priority=dest.priority,
                        probing_count=e.count,
                        probes_sent=e.probes_sent,
                        probes_ok=e.probes_ok,
                        probes_failed=e.probes_failed,
                        request_failures=e.request_failures,
                        last_status=e.last_status,
                        last_change=e.last_change,
                        probe_pending=id(e) in pending,
                    )
                )
        return result

    def snapshot(self) -> list[tuple[int, str, int]]:
        """Every destination's live flags as ``(setid, uri, flags)`` (to mirror elsewhere)."""
        return [(setid, uri, int(e.flags)) for (setid, uri), e in self._entries.items()]

    def apply_snapshot(self, states: Iterable[Sequence[object]]) -> None:
        """Take the flags of :meth:`snapshot` from the authoritative prober (no events)."""
        for setid, uri, flags in states:
            entry = self._entries.get((int(str(setid)), str(uri).casefold()))
            if entry is not None and int(entry.flags) != flags:
                entry.flags, entry.count = DestState(int(str(flags))), 0

    def next_event(self) -> ProberEvent | None:
        """The oldest unread up/down event, or None."""
        return self._events.popleft() if self._events else None

    # -- time -----------------------------------------------------------------

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` next has work: a probing round or a probe timeout."""
        deadlines = [self._deadlines.next_deadline()]
        if self.settings.interval > 0 and self.ping_active:
            deadlines.append(self._next_round)
        return min((d for d in deadlines if d is not None), default=None)

    def handle_timer(self, now: float) -> None:
        """Time out overdue probes and start a probing round when one is due."""
        for uri in self._deadlines.pop_due(now):
            self._finish_probe(uri, TIMEOUT_STATUS, now, "probe timeout")
        interval = self.settings.interval
        if interval <= 0 or not self.ping_active or now < self._next_round:
            return
        following = self._next_round + interval
        self._next_round = following if following > now else now + interval
        self._start_round(now)

    def probes_to_send(self) -> list[Destination]:
        """Destinations to send a probe to now (each once; drains the queue)."""
        out, self._outbox = self._outbox, []
        return out

    # -- inputs -------------------------------------------------------------------

    def on_reply(self, dest_uri: str, status: int, now: float) -> bool:
        """A final reply to the probe of ``dest_uri``; False if no probe was pending."""
        if status < 200:
            return False
        return self._finish_probe(dest_uri.casefold(), status, now, f"probe reply {status}")

    def on_timeout(self, dest_uri: str, now: float) -> bool:
        """The probe of ``dest_uri`` got no answer (counts as a local 408)."""
        return self._finish_probe(dest_uri.casefold(), TIMEOUT_STATUS, now, "probe timeout")

    def on_request_failure(self, dest_uri: str, now: float, setid: int | None = None) -> bool:
        """A relayed request to ``dest_uri`` timed out or got a 5xx.

        Like ``ds_mark_dst("tp")`` but counted against ``probing_threshold``:
        the destination goes trying (then inactive) and probing, so the next
        probe decides when it comes back.  Disabled destinations are left
        alone.  Returns False if ``dest_uri`` is not in the list.
        """
        found = False
        for entry in self._matching(dest_uri, setid, missing_ok=True):
            found = True
            entry.request_failures += 1
            if not entry.flags & DestState.DISABLED:
                self._update(entry, DestState.TRYING | DestState.PROBING, now, "request failure")
        return found

    def set_state(self, uri: str, state_letters: str, now: float, setid: int | None = None) -> int:
        """Set a destination's state as an operator (``dispatcher.set_state``).

        ``state_letters`` as :meth:`DestState.from_letters` reads them (``DX``
        drains a node, ``AP`` puts it back with probing).  Counters restart.
        ``uri`` ``"all"`` means every destination (of ``setid`` if given).
        Returns how many destinations changed; raises ``KeyError`` if none
        matched and ``ValueError`` for bad letters.
        """
        state = DestState.from_letters(state_letters)
        entries = (
            [e for e in self._entries.values() if setid is None or e.setid == setid]
            if uri == "all"
            else list(self._matching(uri, setid))
        )
        for entry in entries:
            old = entry.flags
            entry.flags, entry.count = state, 0
            self._note_change(entry, old, now, "operator")
        return len(entries)

    # -- internals -------------------------------------------------------------

    def _matching(
        self, uri: str, setid: int | None, *, missing_ok: bool = False
    ) -> Iterator[_Entry]:
        wanted = uri.casefold()
        found = False
        for (entry_setid, entry_uri), entry in self._entries.items():
            if entry_uri == wanted and (setid is None or entry_setid == setid):
                found = True
                yield entry
        if not found and not missing_ok:
            raise KeyError(uri if setid is None else f"{uri} in set {setid}")

    def _pending_entries(self) -> Iterator[_Entry]:
        for probe in self._pending.values():
            yield from probe.entries

    def _wants_probe(self, flags: DestState) -> bool:
        if flags & (DestState.DISABLED | DestState.NOPING | DestState.NODNSARES):
            return False
        mode = self.settings.probing_mode
        if mode is ProbingMode.ALL:
            return True
        if mode is ProbingMode.INACTIVE:
            return bool(flags & DestState.PROBING and flags & DestState.INACTIVE)
        return bool(flags & DestState.PROBING)

    def _start_round(self, now: float) -> None:
        for entry in self._entries.values():
            if not self._wants_probe(entry.flags):
                continue
            uri = entry.dest.uri.casefold()
            probe = self._pending.get(uri)
            if probe is None:
                probe = self._pending[uri] = _Probe(entry.dest)
                self._outbox.append(entry.dest)
                self._deadlines.schedule(now + self.settings.timeout, uri)
            elif any(e is entry for e in probe.entries):
                continue  # still waiting for the last round's answer
            probe.entries.append(entry)
            entry.probes_sent += 1

    def _finish_probe(self, uri: str, status: int, now: float, cause: str) -> bool:
        probe = self._pending.pop(uri, None)
        if probe is None:
            return False
        self._deadlines.cancel(uri)
        alive = self.settings.reply_codes.accepts(status)
        mode = self.settings.probing_mode
        for entry in probe.entries:
            entry.last_status = status
            if alive:
                entry.probes_ok += 1
            else:
                entry.probes_failed += 1
            if entry.flags & DestState.DISABLED:
                continue  # drained meanwhile: the operator's state stands
            flagged = bool(entry.flags & DestState.PROBING)
            if mode is ProbingMode.FLAGGED and not flagged:
                continue  # probing switched off meanwhile
            if alive:
                keep = mode is ProbingMode.ALL or (mode is ProbingMode.FLAGGED and flagged)
                requested = DestState.PROBING if keep else DestState.ACTIVE
            else:
                requested = DestState.TRYING
                if mode is not ProbingMode.FLAGGED_ONCE:
                    requested |= DestState.PROBING
            self._update(entry, requested, now, cause)
        return True

    def _update(self, entry: _Entry, requested: DestState, now: float, cause: str) -> None:
        old = entry.flags
        entry.flags, entry.count = next_state(old, entry.count, requested, self.settings)
        self._note_change(entry, old, now, cause)

    def _note_change(self, entry: _Entry, old: DestState, now: float, cause: str) -> None:
        new = entry.flags
        if new == old:
            return
        self.changes += 1
        entry.last_change = now
        if old.usable and not new.usable:
            self._events.append(DestinationDown(entry.setid, entry.dest.uri, old, new, now, cause))
        elif new.usable and not old.usable:
            self._events.append(DestinationUp(entry.setid, entry.dest.uri, old, new, now, cause))


def _key(entry: _Entry) -> tuple[int, str]:
    return entry.setid, entry.dest.uri.casefold()
