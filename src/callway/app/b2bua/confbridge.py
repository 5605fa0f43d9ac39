"""``ConfBridge(room[,bridge_profile[,user_profile]])``: the caller joins a mixed room.

The caller's media stays on its relay (so NAT latching, re-INVITEs and
transcoding work as for any call); the relay's callee side is pointed at the
room's member port, so the room hears the phone and the phone hears the mix
(mix-minus: everyone but itself).  Options read from the profile names, in
Asterisk's spirit: a user profile containing ``muted`` joins muted, ``admin``
may kick; ``max_members=N`` in the bridge profile name (``name;max_members=N``)
bounds the room; a ``pin=NNNN`` user profile asks for the PIN by DTMF.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from callway.media.conference import ConferenceRoom, RoomClosedError, RoomFullError
from callway.pbx.dialplan.actions import ConfBridge

if TYPE_CHECKING:
    from callway.app.b2bua.channel import Channel

log = logging.getLogger("callway.confbridge")


def _options(text: str) -> dict[str, str]:
    """``name;key=value;flag`` -> {key: value}."""
    out: dict[str, str] = {}
    for item in text.split(";")[1:]:
        key, _, value = item.partition("=")
        out[key.strip().lower()] = value.strip()
    return out


async def run_confbridge(channel: Channel, action: ConfBridge) -> dict[str, str]:
    """Answer, join the room, stay until the caller hangs up or is kicked."""
    if not channel.answer():
        return {"CONFBRIDGE_RESULT": "FAILED"}
    media = channel.media
    assert media is not None
    bridge_opts = _options(action.bridge_profile)
    user_opts = _options(action.user_profile)
    max_members = int(bridge_opts.get("max_members", "0") or 0)
    room = channel.service.rooms.get_or_create(action.room, max_members=max_members)
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
        log.info("%s: room %s is full", channel.name, action.room)
        return {"CONFBRIDGE_RESULT": "FAILED"}
    except RoomClosedError:
        return {"CONFBRIDGE_RESULT": "FAILED"}
    relay_b.set_remote((host, port), (host, port + 1))
    media.relay.set_transcoding(None, None)
    channel.room = room
    log.info("%s: joined conference %s (%d members)", channel.name, action.room, len(room.members))
    hangup = asyncio.ensure_future(channel.leg.ended.wait())
    kick = asyncio.ensure_future(kicked.wait())
    try:
        await asyncio.wait({hangup, kick}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hangup.cancel()
        kick.cancel()
        _leave(room, channel)
    if kicked.is_set():
        return {"CONFBRIDGE_RESULT": "KICKED"}
    return {"CONFBRIDGE_RESULT": "HANGUP"}


def _leave(room: ConferenceRoom, channel: Channel) -> None:
    if channel.uid in room.members:
        room.leave(channel.uid)
    channel.room = None
