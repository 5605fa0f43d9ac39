"""``ConfBridge(room[,bridge_profile[,user_profile]])``: the caller joins a mixed room.

The caller's media stays on its relay (so NAT latching, re-INVITEs and
transcoding work as for any call); the relay's callee side is pointed at the
room's member port, so the room hears the phone and the phone hears the mix
(mix-minus: everyone but itself).  Options read from the profile names, in
Asterisk's spirit: a user profile containing ``muted`` joins muted, ``admin``
may kick; ``max_members=N`` in the bridge profile name (``name;max_members=N``)
bounds the room (a joiner beyond it hears a falling tone and is hung up); a
``pin=NNNN`` user profile asks for the PIN by DTMF (see :func:`ask_pin`).

Callback rooms: a held caller in conference mode waits in room
``callback-<id>`` whose *join number* (``9XXXXX``) goes out in the push
notice.  ``ConfBridge(<join number>)`` joins that room, so the dialplan line
``exten => _9XXXXX,1,ConfBridge(${EXTEN})`` is all the callee needs to dial in;
a number that is no (longer a) callback room is an ordinary room name.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING

from callway.app.b2bua.events import publish
from callway.app.b2bua.player import RtpPlayer
from callway.media.conference import ConferenceRoom, RoomClosedError, RoomFullError
from callway.pbx.dialplan.actions import ConfBridge
from callway.rtp.mixer import tone
from callway.rtp.packet import RtpError, is_rtcp, parse_rtp_header
from callway.sip.message import Request, make_response

if TYPE_CHECKING:
    from callway.app.b2bua.channel import Channel
    from callway.app.b2bua.legs import Leg, LegListener
    from callway.sip.transaction import ServerTransactionKey

log = logging.getLogger("callway.confbridge")

PIN_TRIES = 3
PIN_TIMEOUT = 10.0  # seconds to enter the whole PIN
_EVENT_DIGITS = "0123456789*#ABCD"  # RFC 4733 §3.2 event codes 0-15


def _options(text: str) -> dict[str, str]:
    """``name;key=value;flag`` -> {key: value}."""
    out: dict[str, str] = {}
    for item in text.split(";")[1:]:
        key, _, value = item.partition("=")
        out[key.strip().lower()] = value.strip()
    return out


def resolve_room(channel: Channel, name: str) -> tuple[str, str | None]:
    """The room a ``ConfBridge`` argument names, and the callback join number it was."""
    callback = channel.service.callback
    room = callback.room_for_number(name) if callback is not None else None
    if room is None:
        return name, None
    log.info("%s: join number %s is callback room %s", channel.name, name, room)
    return room, name


async def play_tone(channel: Channel, kind: str) -> None:
    """Play one of the mixer's tones (join, leave, beep) to the caller."""
    media = channel.media
    if media is None or channel.leg.ended.is_set():
        return
    leg = media.relay.leg("a")
    player = RtpPlayer(leg.send_rtp, lambda: leg.remote_rtp, media.codec("a") or "ulaw")
    await player.play(tone(kind).tobytes(), channel.leg.ended)


async def _refuse(channel: Channel, room_name: str) -> dict[str, str]:
    """The room is full: a tone, then hang up (Asterisk plays conf-locked)."""
    log.info("%s: room %s is full", channel.name, room_name)
    for _ in range(2):
        await play_tone(channel, "leave")
    if not channel.leg.ended.is_set():
        await channel.leg.bye()
    return {"CONFBRIDGE_RESULT": "FAILED"}


async def _redirected(channel: Channel, room_name: str) -> bool:
    """Cluster (Redis store): the room lives on another node: 302 to it (True).

    The first node to open a room claims it in Redis (see
    :mod:`callway.store.redis_state`); a joiner landing elsewhere is redirected
    to ``sip:ROOM@OWNER`` before anything is answered (so the dialplan must
    not ``Answer()`` before ``ConfBridge()`` for rooms shared by a cluster).
    """
    cluster = channel.service.cluster
    if cluster is None or room_name in channel.service.rooms:
        return False
    owner = await cluster.claim_room(room_name)
    if owner.node == cluster.node_id or not owner.uri.startswith("sip:"):
        return False
    if channel.leg.answered:  # Answer() ran before ConfBridge(): too late for a 3xx
        log.warning("%s: room %s lives on node %s but the call is already answered: "
                    "joining a local room", channel.name, room_name, owner.node)  # fmt: skip
        return False
    contact = f"<sip:{room_name}@{owner.uri.removeprefix('sip:')}>"
    log.info("%s: room %s lives on node %s: redirecting to %s", channel.name, room_name,
             owner.node, contact)  # fmt: skip
    channel.disposition = "REDIRECTED"
    channel.leg.respond(302, extra=(("Contact", contact),))
    return True


async def run_confbridge(channel: Channel, action: ConfBridge) -> dict[str, str]:
    """Answer, (ask the PIN,) join the room, stay until the caller hangs up or is kicked."""
    room_name, number = resolve_room(channel, action.room)
    if await _redirected(channel, room_name):
        return {"CONFBRIDGE_RESULT": "REDIRECTED"}
    if not channel.answer():
        return {"CONFBRIDGE_RESULT": "FAILED"}
    media = channel.media
    assert media is not None
    bridge_opts = _options(action.bridge_profile)
    user_opts = _options(action.user_profile)
    pin = user_opts.get("pin", "")
    if pin and not await ask_pin(channel, pin):
        if not channel.leg.ended.is_set():
            await channel.leg.bye()
        return {"CONFBRIDGE_RESULT": "FAILED"}
    max_members = int(bridge_opts.get("max_members", "0") or 0)
    room = channel.service.rooms.get_or_create(room_name, max_members=max_members)
    if max_members and room.max_members != max_members:
        room.max_members = max_members  # the profile of the latest joiner rules, as in Asterisk
    relay_b = media.relay.leg("b")
    host = media.sides["a"].local_host
    kicked = asyncio.Event()
    try:
        port = room.join(
            channel.uid,
            media.codec("a") or "ulaw",
            (host, relay_b.local_port),
            muted="muted" in user_opts,
            on_kick=kicked.set,
        )
    except RoomFullError:
        return await _refuse(channel, room_name)
    except RoomClosedError:
        return {"CONFBRIDGE_RESULT": "FAILED"}
    relay_b.set_remote((host, port), (host, port + 1))
    media.relay.set_transcoding(None, None)
    channel.room = room
    log.info("%s: joined conference %s (%d members)", channel.name, room_name, len(room.members))
    publish(channel, "room_joined", room=room_name, member=channel.uid, who=channel.endpoint.name)
    if number is not None and channel.service.callback is not None:
        channel.service.callback.joined(number)
    return await _stay(channel, room, kicked)


async def _stay(channel: Channel, room: ConferenceRoom, kicked: asyncio.Event) -> dict[str, str]:
    """Until the caller hangs up or is kicked; then leave the room."""
    hangup = asyncio.ensure_future(channel.leg.ended.wait())
    kick = asyncio.ensure_future(kicked.wait())
    try:
        await asyncio.wait({hangup, kick}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hangup.cancel()
        kick.cancel()
        _leave(room, channel, kicked.is_set())
    if kicked.is_set():
        log.info("%s: kicked from conference %s", channel.name, room.name)
        if not channel.leg.ended.is_set():
            await channel.leg.bye()
        return {"CONFBRIDGE_RESULT": "KICKED"}
    return {"CONFBRIDGE_RESULT": "HANGUP"}


def _leave(room: ConferenceRoom, channel: Channel, kicked: bool) -> None:
    if channel.uid in room.members:
        room.leave(channel.uid)
    if channel.room is room:
        publish(channel, "room_left", room=room.name, member=channel.uid, kicked=kicked)
    channel.room = None


# -- the PIN -------------------------------------------------------------------------


async def ask_pin(channel: Channel, pin: str) -> bool:
    """Ask for ``pin`` (a beep), up to :data:`PIN_TRIES` times; True when it was given.

    Digits come as RFC 4733 telephone-events in the phone's RTP or as SIP
    INFO (``application/dtmf-relay``, ``application/dtmf``); ``#`` ends an
    entry early.  A wrong entry is answered with the falling tone.
    """
    collector = DigitCollector(channel)
    collector.start()
    try:
        for attempt in range(1, PIN_TRIES + 1):
            await play_tone(channel, "beep")
            entered = await collector.read(len(pin), PIN_TIMEOUT)
            if entered == pin:
                log.info("%s: PIN accepted", channel.name)
                return True
            if channel.leg.ended.is_set():
                return False
            log.info("%s: wrong PIN (attempt %d of %d)", channel.name, attempt, PIN_TRIES)
            await play_tone(channel, "leave")
        return False
    finally:
        collector.close()


class DigitCollector:
    """DTMF digits from a caller in a room's lobby.

    The caller's relay forwards what the phone sends to the relay's ``b``
    side; while the PIN is asked that side points at this collector's own
    socket, which picks the RFC 4733 event packets out (one digit per event,
    on its end bit; the three redundant end packets count once).  It is
    also the leg's listener meanwhile, so INFO digits arrive here too.
    """

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.digits: asyncio.Queue[str] = asyncio.Queue()
        media = channel.media
        assert media is not None
        self.host = media.sides["a"].local_host
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((self.host, 0))
        self.sock.setblocking(False)
        self._last_end: tuple[int, int] | None = None  # (ssrc, timestamp) of the last event
        self._previous: LegListener | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Receive the relay's output and the leg's INFO requests."""
        media = self.channel.media
        assert media is not None
        port = self.sock.getsockname()[1]
        media.relay.set_transcoding(None, None)
        media.relay.leg("b").set_remote((self.host, port), None)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._on_packet)
        self._previous = self.channel.leg.listener
        self.channel.leg.listener = self

    def close(self) -> None:
        """Stop listening (idempotent)."""
        if self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
            self._loop = None
        self.sock.close()
        if self.channel.leg.listener is self:
            self.channel.leg.listener = self._previous

    async def read(self, count: int, timeout: float) -> str:
        """Up to ``count`` digits (``#`` ends early) within ``timeout`` seconds."""
        entered = ""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(entered) < count and not self.channel.leg.ended.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                digit = await asyncio.wait_for(self.digits.get(), min(remaining, 0.5))
            except TimeoutError:
                continue
            if digit == "#":
                break
            entered += digit
        return entered

    def _on_packet(self) -> None:
        for _ in range(16):
            try:
                data = self.sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            self._event(data)

    def _event(self, data: bytes) -> None:
        """An RFC 4733 §2.3 event packet: 4 octets, E bit in the second."""
        if is_rtcp(data):
            return
        try:
            header = parse_rtp_header(data)
        except RtpError:
            return
        payload = data[header.payload_offset : header.payload_end]
        if header.payload_type < 96 or len(payload) != 4 or not payload[1] & 0x80:
            return
        key = (header.ssrc, header.timestamp)
        if key == self._last_end or payload[0] >= len(_EVENT_DIGITS):
            return
        self._last_end = key
        self.digits.put_nowait(_EVENT_DIGITS[payload[0]])

    # -- LegListener: INFO digits (RFC 2976 + application/dtmf-relay) ----------------
    def on_bye(self, leg: Leg) -> None:
        """The leg has ended itself; :meth:`read` sees it."""

    def on_reoffer(self, leg: Leg, key: ServerTransactionKey, request: Request) -> None:
        """No re-INVITE while the PIN is asked."""
        leg.mgr.port.send_response(key, make_response(request, 491))

    def on_info(self, leg: Leg, key: ServerTransactionKey, request: Request) -> None:
        """Take the digit of a DTMF INFO."""
        leg.mgr.port.send_response(key, make_response(request, 200))
        digit = info_digit(request.get("content-type") or "", request.body)
        if digit:
            self.digits.put_nowait(digit)


def info_digit(content_type: str, body: bytes) -> str:
    """The digit of an INFO body: ``Signal=5`` (dtmf-relay) or ``5`` (application/dtmf)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    text = body.decode("utf-8", "replace").strip()
    if kind == "application/dtmf-relay":
        for line in text.splitlines():
            name, _, value = line.partition("=")
            if name.strip().lower() == "signal":
                text = value.strip()
                break
        else:
            return ""
    elif kind != "application/dtmf":
        return ""
    if text.isascii() and text.isdigit() and 9 < int(text) < len(_EVENT_DIGITS):
        text = _EVENT_DIGITS[int(text)]  # an event code: 10 is *, 11 is #
    return text.upper() if len(text) == 1 and text.upper() in _EVENT_DIGITS else ""
