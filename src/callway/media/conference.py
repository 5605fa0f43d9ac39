"""Conference rooms (asyncio shell): sockets and the 20 ms clock around the mixer.

A :class:`ConferenceRoom` is what ``ConfBridge(room)`` joins a channel to.
Each member gets its own RTP/RTCP port pair from the
:class:`~callway.media.ports.PortPool` (the port goes into the SDP answer to
its phone), latched like a relay leg (:class:`~callway.rtp.latch.Latch`:
signalled address first, then the first source heard when ``symmetric``).
What a member's phone sends is pushed into the sans-I/O
:class:`~callway.rtp.mixer.ConferenceMixer`; every 20 ms a tick mixes one
frame for everyone (mix-minus) and sends it as RTP with the member's own
SSRC, sequence number and timestamp (RFC 3550 §5.1: the room is the source).

The tick is scheduled on absolute times ``epoch + k * period`` with
``loop.call_at``, so lateness of one tick does not shift the next (no
drift).  A tick that finds itself a whole frame or more behind (the loop was
blocked) skips the missed frames instead of sending a burst, and advances
the RTP timestamps by them so receivers see the gap.

Join and leave beeps are queued to the room (``tones=True``); the room ends
when its last member leaves (or :meth:`ConferenceRoom.close`), releasing
every port and firing ``on_empty(room)`` once.  :meth:`ConferenceRoom.kick`
removes a member and calls the ``on_kick`` callback it joined with, so the
signalling side hangs its call up.  :class:`RoomRegistry` keeps rooms by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from callway.media.ports import PortPair, PortPool
from callway.rtp.latch import Latch, SocketAddress
from callway.rtp.mixer import ConferenceMixer
from callway.rtp.packet import RtpError, is_rtcp, parse_rtp_header

__all__ = [
    "ConferenceRoom",
    "MemberInfo",
    "RoomClosedError",
    "RoomFullError",
    "RoomRegistry",
]

log = logging.getLogger("callway.media.conference")

_HEADER = struct.Struct("!BBHII")  # V=2, M/PT, sequence, timestamp, SSRC
_PAYLOAD_TYPES = {"ulaw": 0, "alaw": 8}  # RFC 3551 static types
_CODEC_BY_PT = {0: "ulaw", 8: "alaw"}
_MAX_DATAGRAM = 2048
_BATCH = 16
_HOT_GAP = 0.002  # seconds: a socket woken again this soon has a backlog
_HOLD_ADDRESSES = frozenset({"0.0.0.0", "::"})

EmptyHandler = Callable[["ConferenceRoom"], None]
KickHandler = Callable[[], None]


class RoomFullError(RuntimeError):
    """The room already holds ``max_members`` members."""


class RoomClosedError(RuntimeError):
    """The room has ended; join another (the registry makes a fresh one)."""


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """A snapshot of one member."""

    pid: str
    codec: str
    local_port: int
    remote_rtp: SocketAddress | None
    latched: bool
    muted: bool
    packets_in: int
    packets_out: int
    dropped: int  # refused by latching, malformed or not audio
    joined_at: float


class _Member:
    __slots__ = (
        "codec",
        "dropped",
        "joined_at",
        "latch",
        "marker",
        "on_kick",
        "packets_in",
        "packets_out",
        "pair",
        "pid",
        "recvfrom",
        "sendto",
        "seq",
        "ssrc",
        "timestamp",
        "woken",
    )

    def __init__(
        self, pid: str, codec: str, pair: PortPair, latch: Latch, on_kick: KickHandler | None
    ) -> None:
        self.pid = pid
        self.codec = codec
        self.pair = pair
        self.latch = latch
        self.on_kick = on_kick
        self.recvfrom = pair.rtp.recvfrom
        self.sendto = pair.rtp.sendto
        self.ssrc = secrets.randbits(32)
        self.seq = secrets.randbits(16)
        self.timestamp = secrets.randbits(32)
        self.marker = True  # first packet of the stream (RFC 3551 §4.1)
        self.packets_in = self.packets_out = self.dropped = 0
        self.joined_at = self.woken = 0.0


def _normalise(address: tuple[str, int] | None, family: int) -> SocketAddress | None:
    if address is None or address[0] in _HOLD_ADDRESSES:
        return None
    if family == socket.AF_INET6:
        return (address[0], address[1], 0, 0)  # the shape recvfrom reports on IPv6
    return (address[0], address[1])


class ConferenceRoom:
    """One conference: members' sockets, their latching, and the mixing clock."""

    def __init__(
        self,
        name: str,
        pool: PortPool,
        *,
        max_members: int = 0,
        on_empty: EmptyHandler | None = None,
        host: str | None = None,
        tones: bool = True,
        frame_samples: int = 160,
        latch_window: float = 2.0,
        latch_timeout: float = 3.0,
    ) -> None:
        self.name = name
        self.max_members = max_members
        self.on_empty = on_empty
        self.tones = tones
        self.mixer = ConferenceMixer(frame_samples)
        self.period = frame_samples / 8000
        self.late_ticks = 0  # frames skipped because the loop was blocked
        self._pool = pool
        self._host = host
        self._latch = {"window": latch_window, "timeout": latch_timeout}
        self._members: dict[str, _Member] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._epoch = 0.0
        self._ticks = 0
        self._closed = False

    # -- membership ------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True once the room ended."""
        return self._closed

    @property
    def members(self) -> tuple[str, ...]:
        """Member ids in joining order."""
        return tuple(self._members)

    def __contains__(self, pid: object) -> bool:
        return pid in self._members

    def __len__(self) -> int:
        return len(self._members)

    def join(
        self,
        pid: str,
        codec: str = "ulaw",
        remote_rtp: tuple[str, int] | None = None,
        symmetric: bool = True,
        *,
        muted: bool = False,
        on_kick: KickHandler | None = None,
    ) -> int:
        """Add member ``pid`` (G.711 ``codec``) and return its local RTP port.

        ``remote_rtp`` is the phone's SDP address (None or a hold address:
        learn it from the first packet).  Must run inside the event loop.
        """
        if self._closed:
            raise RoomClosedError(f"conference {self.name!r} has ended")
        if pid in self._members:
            raise ValueError(f"{pid!r} is already in conference {self.name!r}")
        if codec not in _PAYLOAD_TYPES:
            raise ValueError(f"conference codec must be ulaw or alaw, not {codec!r}")
        if self.max_members and len(self._members) >= self.max_members:
            raise RoomFullError(f"conference {self.name!r} is full ({self.max_members})")
        loop = self._loop or asyncio.get_running_loop()
        pair = self._pool.allocate(self._host)
        pair.unpark()  # a relay's parked pair: its discarding readers go, ours come
        latch = Latch(symmetric=symmetric, **self._latch)
        now = loop.time()
        latch.reset(_normalise(remote_rtp, pair.rtp.family), now)
        member = _Member(pid, codec, pair, latch, on_kick)
        member.joined_at = now
        self.mixer.add(pid, codec, muted=muted)
        self._members[pid] = member
        loop.add_reader(pair.rtp.fileno(), self._on_rtp, member)
        loop.add_reader(pair.rtcp.fileno(), self._drain_rtcp, pair.rtcp)
        if self._loop is None:
            self._start(loop)
        if self.tones:
            self.mixer.queue_tone("join")
        log.info("%s joined conference %s on port %d", pid, self.name, pair.rtp_port)
        return pair.rtp_port

    def update(
        self, pid: str, remote_rtp: tuple[str, int] | None, codec: str | None = None
    ) -> None:
        """A re-INVITE: take a new signalled address (learn again) and maybe codec."""
        member = self._members[pid]
        if codec is not None:
            if codec not in _PAYLOAD_TYPES:
                raise ValueError(f"conference codec must be ulaw or alaw, not {codec!r}")
            member.codec = codec
            self.mixer.set_codec(pid, codec)
        now = self._loop.time() if self._loop is not None else 0.0
        member.latch.reset(_normalise(remote_rtp, member.pair.rtp.family), now)

    def leave(self, pid: str) -> bool:
        """Remove ``pid`` and release its ports; the room ends with its last member."""
        member = self._members.pop(pid, None)
        if member is None:
            return False
        self.mixer.remove(pid)
        self._release(member)
        log.info("%s left conference %s", pid, self.name)
        if not self._members:
            self._end()
        elif self.tones:
            self.mixer.queue_tone("leave")
        return True

    def kick(self, pid: str) -> bool:
        """Remove ``pid`` and tell its signalling side (``on_kick``) to hang up."""
        member = self._members.get(pid)
        if member is None:
            return False
        self.leave(pid)
        _call(member.on_kick)
        return True

    def mute(self, pid: str, muted: bool = True) -> None:
        """Mute or unmute ``pid`` (it keeps hearing the room); a beep tells it."""
        self.mixer.set_muted(pid, muted)
        if self.tones:
            self.mixer.queue_tone("beep", pid)

    def is_muted(self, pid: str) -> bool:
        """True if ``pid`` is muted."""
        return self.mixer.is_muted(pid)

    def member(self, pid: str) -> MemberInfo:
        """A snapshot of ``pid``."""
        m = self._members[pid]
        return MemberInfo(
            pid,
            m.codec,
            m.pair.rtp_port,
            m.latch.remote,
            m.latch.latched,
            self.mixer.is_muted(pid),
            m.packets_in,
            m.packets_out,
            m.dropped,
            m.joined_at,
        )

    def close(self) -> None:
        """End the room: kick every member, release every port (idempotent)."""
        for pid in list(self._members):
            self.kick(pid)
        self._end()

    # -- internals -------------------------------------------------------
    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._epoch = loop.time()
        self._ticks = 0
        self._timer = loop.call_at(self._epoch + self.period, self._tick)

    def _end(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for member in self._members.values():
            self._release(member)
        self._members.clear()
        log.info("conference %s ended", self.name)
        if self.on_empty is not None:
            try:
                self.on_empty(self)
            except Exception:
                log.exception("on_empty handler of conference %s failed", self.name)

    def _release(self, member: _Member) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed() and not member.pair.closed:
            loop.remove_reader(member.pair.rtp.fileno())
            loop.remove_reader(member.pair.rtcp.fileno())
        member.pair.close()

    def _tick(self) -> None:
        loop = self._loop
        if loop is None or self._closed:
            return
        now = loop.time()
        self._ticks += 1
        behind = int((now - (self._epoch + self._ticks * self.period)) / self.period)
        if behind > 0:  # blocked loop: skip, don't burst; timestamps show the gap
            self._ticks += behind
            self.late_ticks += behind
            skipped = behind * self.mixer.frame_samples
            for member in self._members.values():
                member.timestamp = (member.timestamp + skipped) & 0xFFFFFFFF
        try:
            self._send(self.mixer.mix(now))
        finally:
            self._timer = loop.call_at(self._epoch + (self._ticks + 1) * self.period, self._tick)

    def _send(self, frames: dict[str, bytes]) -> None:
        step = self.mixer.frame_samples
        pack = _HEADER.pack
        for pid, payload in frames.items():
            member = self._members[pid]
            target = member.latch.remote
            if target is not None:
                marker = 0x80 if member.marker else 0
                packet = pack(
                    0x80,
                    marker | _PAYLOAD_TYPES[member.codec],
                    member.seq,
                    member.timestamp,
                    member.ssrc,
                )
                try:
                    member.sendto(packet + payload, target)
                    member.packets_out += 1
                    member.marker = False
                except OSError as exc:
                    log.debug("conference send to %s failed: %s", pid, exc)
            # Sequence and timestamp run on while nobody listens (RFC 3550 §5.1).
            member.seq = (member.seq + 1) & 0xFFFF
            member.timestamp = (member.timestamp + step) & 0xFFFFFFFF

    def _on_rtp(self, member: _Member) -> None:
        """Read what ``member``'s phone sent and push it into the mixer."""
        loop = self._loop
        if loop is None:
            return
        now = loop.time()
        budget = _BATCH if now - member.woken < _HOT_GAP else 1
        member.woken = now
        latch = member.latch
        for _ in range(budget):
            try:
                data, source = member.recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. an ICMP error queued on the socket
                log.debug("conference receive error: %s", exc)
                continue
            if (source != latch.remote or not latch.latched) and not _admit(latch, source, now):
                member.dropped += 1
                continue
            if is_rtcp(data):  # RTCP multiplexed on the RTP port (RFC 5761)
                continue
            try:
                header = parse_rtp_header(data)
            except RtpError:
                member.dropped += 1
                continue
            codec = _CODEC_BY_PT.get(header.payload_type)
            if codec is None:  # telephone-event, comfort noise: not mixed
                continue
            member.packets_in += 1
            payload = data[header.payload_offset : header.payload_end]
            self.mixer.push(member.pid, payload, header.sequence, now, codec=codec)

    @staticmethod
    def _drain_rtcp(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.recvfrom(_MAX_DATAGRAM)


def _admit(latch: Latch, source: SocketAddress, now: float) -> bool:
    moved = source != latch.remote
    if not latch.accept(source, now):
        return False
    if moved:
        log.info("conference media latched to %s:%s", source[0], source[1])
    return True


def _call(handler: KickHandler | None) -> None:
    if handler is None:
        return
    try:
        handler()
    except Exception:
        log.exception("conference kick handler failed")


class RoomRegistry:
    """Rooms by name: get-or-create, and forget a room when it ends."""

    def __init__(self, pool: PortPool, **room_defaults: Any) -> None:
        self._pool = pool
        self._defaults = room_defaults
        self._rooms: dict[str, ConferenceRoom] = {}

    def get(self, name: str) -> ConferenceRoom | None:
        """The live room ``name``, if any."""
        return self._rooms.get(name)

    def get_or_create(self, name: str, **options: Any) -> ConferenceRoom:
        """The live room ``name``, or a new one with ``options`` over the defaults.

        A caller's ``on_empty`` still fires after the registry forgets the room.
        """
        room = self._rooms.get(name)
        if room is not None and not room.closed:
            return room
        settings = {**self._defaults, **options}
        user_on_empty: EmptyHandler | None = settings.pop("on_empty", None)

        def ended(ended_room: ConferenceRoom) -> None:
            if self._rooms.get(ended_room.name) is ended_room:
                del self._rooms[ended_room.name]
            if user_on_empty is not None:
                user_on_empty(ended_room)

        room = ConferenceRoom(name, self._pool, on_empty=ended, **settings)
        self._rooms[name] = room
        return room

    @property
    def rooms(self) -> dict[str, ConferenceRoom]:
        """A copy of the live rooms by name."""
        return dict(self._rooms)

    def __contains__(self, name: object) -> bool:
        return name in self._rooms

    def __len__(self) -> int:
        return len(self._rooms)

    def close_all(self) -> None:
        """End every room (shutdown)."""
        for room in list(self._rooms.values()):
            room.close()
