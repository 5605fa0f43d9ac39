"""The admin server's view of a node: a Protocol the composition roots implement.

``admin/`` sits above the domain layers and below ``app/``: it never imports
an application.  ``app/admin_backends.py`` adapts :class:`PbxApp` and
:class:`BalancerApp` to this Protocol; tests pass a fake.  Every method is
called on the event loop and must return quickly (a snapshot, no I/O).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from callway.admin.model import (
    Call,
    Cdr,
    Destination,
    HeldCallback,
    NodeInfo,
    Registration,
    Room,
)


class EventStream(Protocol):
    """One listener's stream of call events (JSON-ready dicts)."""

    async def next(self) -> dict[str, Any]:
        """The next event (waits for one)."""
        ...

    def close(self) -> None:
        """Stop listening."""
        ...


class AdminBackend(Protocol):
    """What the admin API, the dashboard and the metrics read and change."""

    def node_info(self) -> NodeInfo:
        """Role, version, start time and event counters of this node."""
        ...

    def registrations(self) -> list[Registration]:
        """Every live registered contact."""
        ...

    def registration_count(self) -> int:
        """How many contacts are registered (the metrics' gauge, without building them)."""
        ...

    def calls(self) -> list[Call]:
        """Active calls with their legs, media counters and quality."""
        ...

    def iter_calls(self) -> Iterator[Call]:
        """The same calls one at a time, so a caller can yield to the event loop between them."""
        ...

    def cdrs(self, limit: int | None = None, since: float | None = None) -> list[Cdr]:
        """Finished calls, oldest first: the last ``limit`` that ended at or after ``since``."""
        ...

    def reload(self) -> bool:
        """Re-read the configuration; False (old one kept) when it is broken."""
        ...

    def dispatcher_sets(self) -> list[Destination]:
        """Every dispatcher destination with its state, by set (empty on a PBX)."""
        ...

    def set_destination_state(self, uri: str, state: str, setid: int | None = None) -> int:
        """Set a destination's state letters (``DX`` drains, ``AP`` restores).

        ``uri`` ``"all"`` means every destination of ``setid``.  Returns how
        many changed; raises KeyError when nothing matches, ValueError for bad
        letters.
        """
        ...

    def held_callbacks(self) -> list[HeldCallback]:
        """Callers on hold waiting for a callee to come online."""
        ...

    def rooms(self) -> list[Room]:
        """Conference rooms in use."""
        ...

    def release_callback(self, uid: str) -> None:
        """Stop holding ``uid`` and try the callee now (none: NOANSWER); KeyError."""
        ...

    def drop_callback(self, uid: str) -> None:
        """End the hold of ``uid``: the caller gets 480 (or BYE once answered); KeyError."""
        ...

    def originate(self, source: str, target: str) -> str:
        """Call ``source``'s contacts, then ``target``, and bridge them; the call's id.

        KeyError for an unknown endpoint; ValueError when it cannot start
        (``source`` has no contact).
        """
        ...

    def set_member_muted(self, room: str, member: str, muted: bool) -> None:
        """Mute or unmute a room member; KeyError when there is no such room or member."""
        ...

    def kick_member(self, room: str, member: str) -> None:
        """Remove a member from a room (its call is hung up); KeyError as above."""
        ...

    def start_capture(self, call_id: str) -> tuple[str, str]:
        """Capture a live call's SIP messages to a pcap file from now on.

        ``call_id`` is the call's id (as :meth:`calls` lists it) or one of its
        Call-IDs.  Returns (the caller's Call-ID, the file's path); KeyError
        when there is no such call, ValueError when no capture can start.
        """
        ...

    def stop_capture(self, call_id: str) -> str:
        """Stop a call's capture (id or Call-ID); the file's path; KeyError if none runs."""
        ...

    def events(self) -> EventStream | None:
        """A new stream of call events (None: this node has no calls)."""
        ...
