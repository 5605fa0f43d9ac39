"""Qualify: OPTIONS pings to registered contacts, as res_pjsip does per AOR.

An AOR with ``qualify_frequency`` N > 0 has each of its contacts sent an
OPTIONS request (RFC 3261 §11) every N seconds.  Any response marks the
contact *Reachable* (Asterisk counts 401/404/405 too: something answered);
no response within ``qualify_timeout`` seconds marks it *Unreachable*.  For
a phone behind NAT the pings are what keeps the NAT's UDP mapping open
between registrations (RFC 5626 §3.5 explains why the server side must
help; the phone's own keep-alives are optional).

Sans-I/O: :class:`Qualifier` takes ``now`` everywhere, exposes
``get_timer()``/``handle_timer(now)`` and queues :class:`SendOptions` and
:class:`StatusChanged` events for ``next_event()``.  The shell sends the
OPTIONS and reports the outcome with :meth:`Qualifier.response`.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from callway.core.timers import TimerHeap
from callway.pbx.location import Binding
from callway.pbx.model import Aor

ContactKey = tuple[str, str]
"""(AOR name, contact URI): how the location service names a binding."""


class ContactStatus(Enum):
    """Asterisk's contact states (``pjsip show contacts``)."""

    UNKNOWN = "Unknown"
    REACHABLE = "Avail"
    UNREACHABLE = "Unavail"


@dataclass(frozen=True, slots=True)
class SendOptions:
    """Send an OPTIONS to ``binding``; report the outcome with ``token``."""

    binding: Binding
    token: int


@dataclass(frozen=True, slots=True)
class StatusChanged:
    """A contact became reachable or unreachable (``rtt`` in seconds when reachable)."""

    aor: str
    uri: str
    status: ContactStatus
    rtt: float | None = None


QualifyEvent = SendOptions | StatusChanged


@dataclass(slots=True)
class _Contact:
    binding: Binding
    status: ContactStatus = ContactStatus.UNKNOWN
    rtt: float | None = None
    token: int | None = None  # the OPTIONS in flight
    sent_at: float = 0.0


@dataclass(slots=True)
class Qualifier:
    """Per-contact qualify timers.

    ``aor_of`` gives the current :class:`Aor` for a name (the config may be
    reloaded); ``lookup`` tells whether a binding is still registered, so a
    contact that expired or was unregistered silently drops out at its next
    due time.
    """

    aor_of: Callable[[str], Aor | None]
    lookup: Callable[[str, str], Binding | None]
    _contacts: dict[ContactKey, _Contact] = field(default_factory=dict)
    # timer keys: ("ping", key) when the next OPTIONS is due, ("wait", key) its timeout
    _timers: TimerHeap[tuple[str, ContactKey]] = field(default_factory=TimerHeap)
    _events: deque[QualifyEvent] = field(default_factory=deque)
    _tokens: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # -- input ------------------------------------------------------------------------

    def on_binding(self, binding: Binding, now: float) -> None:
        """A REGISTER added or refreshed ``binding``: qualify it now, then every N s.

        A refresh of a contact that is already being qualified only updates
        where the pings go (the NAT mapping may have changed).
        """
        aor = self.aor_of(binding.aor)
        key = (binding.aor, binding.uri)
        if aor is None or aor.qualify_frequency <= 0:
            self.forget(key)
            return
        known = self._contacts.get(key)
        if known is not None:
            known.binding = binding
            return
        self._contacts[key] = _Contact(binding)
        self._timers.schedule(now, ("ping", key))

    def forget(self, key: ContactKey) -> None:
        """Stop qualifying a contact."""
        if self._contacts.pop(key, None) is None:
            return  # never qualified: no timer runs for it (the REGISTER hot path)
        self._timers.cancel(("ping", key))
        self._timers.cancel(("wait", key))

    def response(self, token: int, status: int | None, now: float) -> None:
        """The outcome of the OPTIONS sent for ``token``: a status code or None (timeout)."""
        found = [(k, c) for k, c in self._contacts.items() if c.token == token]
        if not found:
            return  # a late answer for a contact that timed out or went away
        [(key, contact)] = found
        contact.token = None
        self._timers.cancel(("wait", key))
        if status is None or status == 408:
            self._set(key, contact, ContactStatus.UNREACHABLE, None)
        else:
            self._set(key, contact, ContactStatus.REACHABLE, max(0.0, now - contact.sent_at))

    # -- timers -------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The next ping or timeout."""
        return self._timers.next_deadline()

    def handle_timer(self, now: float) -> None:
        """Send due pings and time out unanswered ones."""
        for kind, key in self._timers.pop_due(now):
            contact = self._contacts.get(key)
            if contact is None:
                continue
            if kind == "wait":
                contact.token = None
                self._set(key, contact, ContactStatus.UNREACHABLE, None)
                continue
            binding = self.lookup(*key)
            aor = self.aor_of(key[0])
            if binding is None or binding.expires_at <= now or aor is None \
                    or aor.qualify_frequency <= 0:  # fmt: skip
                self.forget(key)
                continue
            contact.binding = binding
            contact.token = next(self._tokens)
            contact.sent_at = now
            self._events.append(SendOptions(binding, contact.token))
            self._timers.schedule(now + aor.qualify_timeout, ("wait", key))
            self._timers.schedule(now + aor.qualify_frequency, ("ping", key))

    def next_event(self) -> QualifyEvent | None:
        """The next thing for the shell to do or to log."""
        return self._events.popleft() if self._events else None

    # -- state ----------------------------------------------------------------------------

    def status(self, aor: str, uri: str) -> tuple[ContactStatus, float | None]:
        """A contact's status and last round-trip time (UNKNOWN if not qualified)."""
        contact = self._contacts.get((aor, uri))
        if contact is None:
            return ContactStatus.UNKNOWN, None
        return contact.status, contact.rtt

    def __len__(self) -> int:
        return len(self._contacts)

    def _set(
        self, key: ContactKey, contact: _Contact, status: ContactStatus, rtt: float | None
    ) -> None:
        contact.rtt = rtt
        if status is not contact.status:
            contact.status = status
            self._events.append(StatusChanged(key[0], key[1], status, rtt))
