"""The PBX and the balancer seen through :class:`~callway.admin.backend.AdminBackend`.

Read-only snapshots of the running applications' objects (location,
channels and their relays, CDRs, the dispatcher's prober); the only changes
are a configuration reload and an operator's destination state.

Quality: the relay counts packets but does not yet measure RFC 3550 loss and
jitter.  A leg's quality is computed as soon as its ``LegStats`` carries
``lost`` and ``expected`` packet counts (and ``jitter_ms``); until then it
is reported as unknown (null), never guessed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from callway import __version__
from callway.admin.backend import EventStream
from callway.admin.model import (
    Call,
    Cdr,
    Destination,
    HeldCallback,
    Leg,
    NodeInfo,
    Quality,
    Registration,
    Room,
)
from callway.admin.quality import estimate
from callway.app import captures
from callway.app.b2bua.originate import originate
from callway.core.address import Address

if TYPE_CHECKING:
    from callway.app.b2bua.callback import CallbackService
    from callway.app.b2bua.channel import Channel
    from callway.app.b2bua.events import Subscription
    from callway.app.balancer import BalancerApp
    from callway.app.pbx import PbxApp
    from callway.media.conference import ConferenceRoom
    from callway.media.relay import LegStats
    from callway.store.cdr import CdrRow

__all__ = ["BalancerBackend", "PbxBackend"]


def _source(address: Address) -> str:
    host = f"[{address.host}]" if ":" in address.host else address.host
    return f"{address.transport}:{host}:{address.port}"


def _hostport(address: tuple[object, ...] | None) -> str | None:
    if address is None:
        return None
    host = str(address[0])
    return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"


def leg_quality(stats: LegStats) -> Quality:
    """Loss, jitter and MOS of what a leg received, when the relay measures them."""
    lost = getattr(stats, "lost", None)
    expected = getattr(stats, "expected", None)
    jitter = getattr(stats, "jitter_ms", None)
    if not isinstance(lost, int) or not isinstance(expected, int) or expected <= 0:
        return Quality(jitter_ms=float(jitter) if isinstance(jitter, int | float) else None)
    jitter_ms = float(jitter) if isinstance(jitter, int | float) else None
    return estimate(max(0, lost) / expected, jitter_ms)


def _cdr(record: CdrRow) -> Cdr:
    return Cdr(
        uniqueid=record.uniqueid, src=record.caller, dst=record.callee, start=record.start,
        answer=record.answer, end=record.end, disposition=record.disposition,
        duration=record.duration, billsec=record.billsec, clid=record.clid,
        channel=record.channel, dstchannel=record.dstchannel, lastapp=record.lastapp,
        lastdata=record.lastdata, dcontext=record.dcontext, accountcode=record.accountcode,
    )  # fmt: skip


class PbxBackend:
    """A :class:`PbxApp` for the admin server."""

    role = "pbx"

    def __init__(self, app: PbxApp) -> None:
        self.app = app
        self.started = time.time()

    def node_info(self) -> NodeInfo:
        """PBX role, version and how often each protection limit was hit."""
        stack = self.app.stack
        counters: dict[str, int] = dict(stack.limit_hits)
        for server in stack.streams:
            for name, hits in server.limit_hits.items():
                counters[name] = counters.get(name, 0) + hits
        guard = stack.guard
        if guard is not None:
            counters["scanner_dropped"] = guard.scanners_dropped
            if guard.pike is not None:
                counters["pike_dropped"] = guard.pike.dropped
                counters["pike_bans"] = guard.pike.bans
        return NodeInfo(self.role, __version__, self.started, counters)

    def registrations(self) -> list[Registration]:
        """Every live contact in the location service."""
        now = time.time()
        out = []
        for b in self.app.location.all(now):
            out.append(Registration(
                aor=b.aor, uri=b.uri, expires_at=b.expires_at, expires_in=b.remaining(now),
                source=_source(b.source), user_agent=b.user_agent,
                registered_at=b.registered_at,
            ))  # fmt: skip
        return out

    def registration_count(self) -> int:
        """How many contacts are live (10 000 Registration objects a second cost 25 ms)."""
        return self.app.location.count(time.time())

    def calls(self) -> list[Call]:
        """Every channel with its relay legs."""
        return list(self.iter_calls())

    def iter_calls(self) -> Iterator[Call]:
        """Every channel of the moment of the call, one at a time."""
        for channel in list(self.app.calls.channels.values()):
            yield self._call(channel)

    def _call(self, channel: Channel) -> Call:
        legs: list[Leg] = []
        media = channel.media
        if media is not None:
            now = time.monotonic()  # the relay's clock
            for name in ("a", "b"):
                stats = media.relay.leg(name).stats()
                age = None if stats.last_packet_at is None else now - stats.last_packet_at
                legs.append(Leg(
                    name=name, packets_in=stats.packets_in, packets_out=stats.packets_out,
                    bytes_in=stats.bytes_in, bytes_out=stats.bytes_out, dropped=stats.dropped,
                    remote=_hostport(stats.remote_rtp), latched=stats.latched,
                    last_packet_age=None if age is None else round(max(0.0, age), 3),
                    quality=leg_quality(stats),
                ))  # fmt: skip
        return Call(
            id=channel.uid, name=channel.name, caller=channel.endpoint.name,
            exten=channel.exten, peer=channel.peer,
            state="up" if channel.leg.answered else "ringing",
            started=channel.started, answered_at=channel.answered_at, legs=tuple(legs),
        )  # fmt: skip

    def cdrs(self, limit: int | None = None, since: float | None = None) -> list[Cdr]:
        """The PBX's recent CDRs (of the last thousand in its CDR table), oldest first."""
        return [_cdr(r) for r in self.app.cdr.recent(limit, since)]

    def reload(self) -> bool:
        """``core reload``."""
        return self.app.reload()

    def dispatcher_sets(self) -> list[Destination]:
        """A PBX has no dispatcher."""
        return []

    def set_destination_state(self, uri: str, state: str, setid: int | None = None) -> int:
        """A PBX has no dispatcher: nothing matches."""
        raise KeyError(uri)

    def held_callbacks(self) -> list[HeldCallback]:
        """Callers held for an offline callee (hold-and-notify, conference mode)."""
        callback = self.app.calls.callback
        if callback is None:
            return []
        out = []
        for h in callback.held.values():
            out.append(HeldCallback(h.uid, h.caller, h.callee, h.started, h.state, h.mode,
                                    h.room, h.number, h.expires_at))  # fmt: skip
        return out

    def rooms(self) -> list[Room]:
        """Conference rooms with their members (and a callback room's join number)."""
        numbers = self._room_numbers()
        out = []
        for name, room in self.app.calls.rooms.rooms.items():
            members = room.members
            since = min((room.member(m).joined_at for m in members), default=0.0)
            muted = tuple(m for m in members if room.is_muted(m))
            out.append(Room(name, tuple(members), since, muted, numbers.get(name)))
        return out

    def _room_numbers(self) -> dict[str, str]:
        callback = self.app.calls.callback
        if callback is None:
            return {}
        return {h.room: h.number for h in callback.held.values() if h.room and h.number}

    def _held(self) -> CallbackService:
        callback = self.app.calls.callback
        if callback is None:
            raise KeyError("no callback service")
        return callback

    def release_callback(self, uid: str) -> None:
        """Stop holding ``uid``: the callee's contacts are tried now."""
        self._held().release(uid)

    def drop_callback(self, uid: str) -> None:
        """End the hold of ``uid`` and hang up its caller."""
        self._held().drop(uid)

    def originate(self, source: str, target: str) -> str:
        """Call ``source``, then ``target`` (see :mod:`callway.app.b2bua.originate`)."""
        return originate(self.app.calls, source, target)

    def _room(self, name: str, member: str) -> ConferenceRoom:
        room = self.app.calls.rooms.get(name)
        if room is None or member not in room:
            raise KeyError(f"{member} in {name}")
        return room

    def set_member_muted(self, room: str, member: str, muted: bool) -> None:
        """Mute or unmute one member (a beep tells it)."""
        self._room(room, member).mute(member, muted)

    def kick_member(self, room: str, member: str) -> None:
        """Kick one member: it leaves the room and its call is hung up."""
        self._room(room, member).kick(member)

    def start_capture(self, call_id: str) -> tuple[str, str]:
        """Per-call SIP capture (:func:`callway.app.captures.start`)."""
        main, path = captures.start(self.app, call_id)
        return main, str(path)

    def stop_capture(self, call_id: str) -> str:
        """Stop a per-call capture (:func:`callway.app.captures.stop`)."""
        return str(captures.stop(self.app, call_id))

    def events(self) -> EventStream:
        """A new subscription to the call service's event bus."""
        return _Events(self.app.calls.events.subscribe())


class _Events:
    """An :class:`EventBus` subscription as the admin server's :class:`EventStream`."""

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription

    async def next(self) -> dict[str, Any]:
        """The next event as JSON-ready data."""
        return (await self.subscription.get()).to_json()

    def close(self) -> None:
        """Unsubscribe."""
        self.subscription.close()


class BalancerBackend:
    """A :class:`BalancerApp` for the admin server."""

    role = "balancer"

    def __init__(self, app: BalancerApp) -> None:
        self.app = app
        self.started = time.time()

    def node_info(self) -> NodeInfo:
        """Balancer role, version and the proxy's counters (forwarded, failover ...)."""
        return NodeInfo(self.role, __version__, self.started, dict(self.app.proxy.stats))

    def registrations(self) -> list[Registration]:
        """The balancer keeps no registrations (its PBX nodes do)."""
        return []

    def registration_count(self) -> int:
        """None (see :meth:`registrations`)."""
        return 0

    def calls(self) -> list[Call]:
        """The balancer relays signalling only: no channels."""
        return []

    def iter_calls(self) -> Iterator[Call]:
        """No calls (see :meth:`calls`)."""
        return iter(())

    def cdrs(self, limit: int | None = None, since: float | None = None) -> list[Cdr]:
        """No CDRs on a balancer."""
        return []

    def reload(self) -> bool:
        """Re-read dispatcher.list."""
        return self.app.reload()

    def dispatcher_sets(self) -> list[Destination]:
        """Every destination's live state and probe counters."""
        out = []
        for s in self.app.picker.prober.states():
            out.append(Destination(
                setid=s.setid, uri=s.uri, state=s.letters, usable=s.usable,
                priority=s.priority, probes_sent=s.probes_sent, probes_ok=s.probes_ok,
                probes_failed=s.probes_failed, request_failures=s.request_failures,
                last_status=s.last_status, last_change=s.last_change,
            ))  # fmt: skip
        return out

    def set_destination_state(self, uri: str, state: str, setid: int | None = None) -> int:
        """Kamailio's ``dispatcher.set_state``; up/down alerts follow as for probes."""
        return self.app.picker.prober.set_state(uri, state, time.time(), setid)

    def held_callbacks(self) -> list[HeldCallback]:
        """No callbacks on a balancer."""
        return []

    def rooms(self) -> list[Room]:
        """No rooms on a balancer."""
        return []

    def release_callback(self, uid: str) -> None:
        """No callbacks on a balancer."""
        raise KeyError(uid)

    def drop_callback(self, uid: str) -> None:
        """No callbacks on a balancer."""
        raise KeyError(uid)

    def originate(self, source: str, target: str) -> str:
        """A balancer places no calls: no such endpoint."""
        raise KeyError(source)

    def set_member_muted(self, room: str, member: str, muted: bool) -> None:
        """No rooms on a balancer."""
        raise KeyError(room)

    def kick_member(self, room: str, member: str) -> None:
        """No rooms on a balancer."""
        raise KeyError(room)

    def events(self) -> EventStream | None:
        """A balancer has no calls of its own."""
        return None

    def start_capture(self, call_id: str) -> tuple[str, str]:
        """The balancer keeps no calls to capture (its PBX nodes do)."""
        raise KeyError(call_id)

    def stop_capture(self, call_id: str) -> str:
        """No captures on a balancer."""
        raise KeyError(call_id)
