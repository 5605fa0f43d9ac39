"""The callback scheme (the seed's §5): an offline app user is woken and joined.

When Dial finds no contact for a push-capable target (listed in
``[callback] endpoints`` or whose last registration carried RFC 8599
``pn-provider``/``pn-prid``/``pn-param``), the caller is kept and a
:class:`~callway.app.notify.CallbackNotice` goes to the back end.

* **hold** mode: the caller hears ringback (180) or music on hold; as soon as
  the callee registers, Dial rings the new contact and bridges the two.
* **conference** mode: the caller waits in room ``callback-<id>`` (announced
  in the notice); when the callee registers the PBX calls it into the room
  (it may also dial into the room itself with ``ConfBridge``).

A timeout ends the wait with an announcement; the caller hanging up cancels
the wait cleanly, and a late registration then rings nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from callway.app.notify import CallbackNotice, Notifier
from callway.config.toml import CallbackSettings
from callway.pbx.dialplan.actions import ConfBridge, MusicOnHold
from callway.pbx.location import Binding, Location
from callway.pbx.model import Endpoint
from callway.sip.errors import ParseError
from callway.sip.headers import parse_params

if TYPE_CHECKING:
    from callway.app.b2bua.channel import Channel
    from callway.app.b2bua.legs import OutboundLeg

log = logging.getLogger("callway.callback")

PUSH_PARAMS = ("pn-provider", "pn-prid", "pn-param")
POLL = 0.25


@dataclass(slots=True)
class HeldCall:
    """A caller waiting for an offline callee (shown by the admin API)."""

    uid: str
    caller: str
    callee: str
    mode: str
    room: str | None
    started: float
    expires_at: float
    state: str = "waiting"
    push: dict[str, str] = field(default_factory=dict)


class CallbackService:
    """Holds callers, notifies callees, wakes up when they register."""

    def __init__(self, settings: CallbackSettings, notifier: Notifier, location: Location) -> None:
        self.settings = settings
        self.notifier = notifier
        self.location = location
        self.held: dict[str, HeldCall] = {}
        self.push_params: dict[str, dict[str, str]] = {}
        self._tasks: set[asyncio.Task[object]] = set()

    # -- registrations ------------------------------------------------------------

    def on_binding(self, binding: Binding) -> None:
        """Registrar listener: remember RFC 8599 push parameters per AOR."""
        try:
            params = parse_params(binding.params) if binding.params else {}
        except ParseError:
            return
        push = {k: v or "" for k, v in params.items() if k in PUSH_PARAMS}
        if push:
            self.push_params[binding.aor] = push

    def applies(self, endpoint: Endpoint) -> bool:
        """Is ``endpoint`` push-capable?"""
        if self.settings.push_capable(endpoint.name):
            return True
        return any(aor in self.push_params for aor in endpoint.aors)

    def _contacts(self, endpoint: Endpoint) -> list[tuple[Endpoint, Binding]]:
        now = time.time()
        return [(endpoint, b) for aor in endpoint.aors for b in self.location.lookup(aor, now)]

    # -- the wait ---------------------------------------------------------------------

    async def hold(self, channel: Channel, endpoint: Endpoint) -> list[tuple[Endpoint, Binding]]:
        """Keep the caller until ``endpoint`` registers (its contacts) or not ([])."""
        settings = self.settings
        mode = settings.mode
        room = f"{settings.room_prefix}{channel.uid}" if mode == "conference" else None
        now = time.time()
        push = next((self.push_params[a] for a in endpoint.aors if a in self.push_params), {})
        held = HeldCall(channel.uid, channel.endpoint.name, endpoint.name, mode, room, now,
                        now + settings.timeout, push=dict(push))  # fmt: skip
        self.held[channel.uid] = held
        log.info("%s: %s is offline: holding the caller (%s mode), notifying", channel.name,
                 endpoint.name, mode)  # fmt: skip
        background = self._hold_media(channel, room)
        self._spawn(self.notifier.notify(self._notice(channel, held)))
        try:
            contacts = await self._wait(channel, endpoint, held.expires_at)
            if contacts and room is not None and background is not None:
                # Conference mode: call the callee into the room; the caller stays there.
                held.state = channel.callback_state = "connected"
                leg = await invite_into_room(channel, endpoint, contacts, room)
                await background
                if leg is not None and not leg.ended.is_set():
                    await leg.bye()  # the caller left: the callback call is over
                return []
        finally:
            if background is not None and not background.done():
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await background
            self.held.pop(channel.uid, None)
        held.state = "connected" if contacts else "timeout"
        channel.callback_state = held.state
        if not contacts and not channel.leg.ended.is_set():
            await self._announce(channel)
        return contacts

    def _notice(self, channel: Channel, held: HeldCall) -> CallbackNotice:
        return CallbackNotice(
            call_id=channel.leg.invite.call_id,
            caller=held.caller,
            callee=held.callee,
            mode=held.mode,
            room=held.room,
            expires_at=held.expires_at,
            push=held.push,
        )

    def _hold_media(self, channel: Channel, room: str | None) -> asyncio.Task[object] | None:
        """Ringback, music on hold, or the waiting room."""
        service = channel.service
        if room is not None:
            from callway.app.b2bua.confbridge import run_confbridge

            return self._spawn(run_confbridge(channel, ConfBridge(room)))
        if self.settings.hold_media == "moh":
            return self._spawn(service.play(channel, MusicOnHold("default")))
        if not channel.leg.final_sent:
            channel.leg.respond(180)
        return None

    async def _wait(self, channel: Channel, endpoint: Endpoint, deadline: float
                    ) -> list[tuple[Endpoint, Binding]]:  # fmt: skip
        """Poll the (possibly shared) location until a contact appears."""
        while time.time() < deadline:
            if channel.leg.ended.is_set():
                return []
            contacts = self._contacts(endpoint)
            if contacts:
                log.info("%s: %s registered: putting the call through", channel.name,
                         endpoint.name)  # fmt: skip
                return contacts
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(channel.leg.ended.wait(), POLL)
        log.info("%s: %s did not come online in %ss", channel.name, endpoint.name,
                 self.settings.timeout)  # fmt: skip
        return []

    async def _announce(self, channel: Channel) -> None:
        """Tell a caller who was answered (music, room) that nobody came."""
        from callway.pbx.dialplan.actions import Playback

        if channel.leg.answered and self.settings.announcement:
            await channel.service.play(channel, Playback((self.settings.announcement,)))

    def _spawn(self, coro: object) -> asyncio.Task[object]:
        task: asyncio.Task[object] = asyncio.ensure_future(coro)  # type: ignore[call-overload]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


async def invite_into_room(
    channel: Channel, endpoint: Endpoint, contacts: list[tuple[Endpoint, Binding]], room_name: str
) -> OutboundLeg | None:
    """Call the callee's first contact and put its media straight into the room."""
    from callway.app.b2bua.dial import path_destination
    from callway.sdp.anchor import media_target
    from callway.sdp.negotiate import audio_format, make_offer
    from callway.sdp.parse import format_sdp, parse_sdp

    service = channel.service
    room = service.rooms.get(room_name)
    if room is None:
        return None
    _endpoint, binding = contacts[0]
    dest = path_destination(binding)
    host = dest.local[0] if dest.local else channel.leg.local[0]
    pid = f"{channel.uid}-callee"
    port = room.join(pid, (endpoint.allow or ("ulaw",))[0], None)
    offer = make_offer(
        allowed_codecs=endpoint.allow or ("ulaw", "alaw"),
        local_address=host,
        local_port=port,
        session_id=secrets.randbelow(1 << 30),
    )
    from callway.app.b2bua.legs import OutboundLeg

    leg = OutboundLeg(
        service.manager, dest, binding.uri,
        from_value=f'"{channel.endpoint.name}" <sip:{channel.endpoint.name}@{host}>',
        to_value=f"<{binding.uri}>", body=format_sdp(offer),
        extra=tuple(("Route", hop) for hop in binding.path),
    )  # fmt: skip
    leg.start()
    response = None
    while True:
        response = await leg.responses.get()
        if response is None or response.status >= 200:
            break
    if response is None or response.status >= 300:
        room.leave(pid)
        return None
    answer = parse_sdp(response.body)
    target = media_target(answer)
    fmt = audio_format(answer)
    room.update(pid, target.rtp if target else None, fmt.codec.name if fmt else None)
    log.info("%s: %s joined conference %s", channel.name, endpoint.name, room_name)
    leg.listener = _RoomMember(room, pid)
    return leg


class _RoomMember:
    """Listener of a leg whose media is a conference member."""

    def __init__(self, room: object, pid: str) -> None:
        self.room = room
        self.pid = pid

    def on_bye(self, leg: object) -> None:
        if self.pid in self.room.members:  # type: ignore[attr-defined]
            self.room.leave(self.pid)  # type: ignore[attr-defined]

    def on_reoffer(self, leg: object, key: object, request: object) -> None:
        from callway.sip.message import make_response

        leg.mgr.port.send_response(key, make_response(request, 488))  # type: ignore[attr-defined,arg-type]

    def on_info(self, leg: object, key: object, request: object) -> None:
        from callway.sip.message import make_response

        leg.mgr.port.send_response(key, make_response(request, 200))  # type: ignore[attr-defined,arg-type]
