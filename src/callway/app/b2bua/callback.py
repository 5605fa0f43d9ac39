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

from callway.app.b2bua.events import publish
from callway.app.notify import CallbackNotice, Notifier
from callway.config.toml import CallbackSettings
from callway.pbx.dialplan.actions import ConfBridge, MusicOnHold
from callway.pbx.location import Binding, Location
from callway.pbx.model import Endpoint
from callway.sip.errors import ParseError
from callway.sip.headers import parse_params
from callway.sip.message import Request, Response, make_response

if TYPE_CHECKING:
    from callway.app.b2bua.channel import Channel
    from callway.app.b2bua.legs import Leg, OutboundLeg
    from callway.media.conference import ConferenceRoom
    from callway.sip.transaction import ServerTransactionKey

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
    number: str | None = None  # conference mode: the room's join number
    action: str = ""  # what ended the wait early: release, drop, joined
    wake: asyncio.Event = field(default_factory=asyncio.Event, repr=False)


class CallbackService:
    """Holds callers, notifies callees, wakes up when they register."""

    def __init__(self, settings: CallbackSettings, notifier: Notifier, location: Location) -> None:
        self.settings = settings
        self.notifier = notifier
        self.location = location
        self.held: dict[str, HeldCall] = {}
        self.numbers: dict[str, str] = {}  # join number -> held call uid
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

    # -- operator actions (admin API) -------------------------------------------------

    def release(self, uid: str) -> HeldCall:
        """Stop waiting and try the callee's contacts now (none: NOANSWER); KeyError."""
        return self._wake(uid, "release")

    def drop(self, uid: str) -> HeldCall:
        """End the wait and hang the caller up (480, or BYE once answered); KeyError."""
        return self._wake(uid, "drop")

    def _wake(self, uid: str, action: str) -> HeldCall:
        held = self.held[uid]
        if not held.action:
            held.action = action
            held.wake.set()
            log.info("callback %s: %s by the operator", uid, action)
        return held

    # -- conference mode: joining by number ---------------------------------------------

    def room_for_number(self, number: str) -> str | None:
        """The waiting room a join number stands for (None: not a callback number)."""
        uid = self.numbers.get(number)
        held = self.held.get(uid) if uid is not None else None
        return held.room if held is not None else None

    def joined(self, number: str) -> None:
        """Someone dialled ``number`` and is in the room: the callee came; stop waiting."""
        uid = self.numbers.get(number)
        if uid is not None and uid in self.held:
            self._wake(uid, "joined")

    def _new_number(self) -> str:
        while True:
            number = f"9{secrets.randbelow(100_000):05d}"
            if number not in self.numbers:
                return number

    # -- the wait ---------------------------------------------------------------------

    def _register(self, channel: Channel, endpoint: Endpoint) -> HeldCall:
        settings = self.settings
        conference = settings.mode == "conference"
        room = f"{settings.room_prefix}{channel.uid}" if conference else None
        now = time.time()
        push = next((self.push_params[a] for a in endpoint.aors if a in self.push_params), {})
        held = HeldCall(channel.uid, channel.endpoint.name, endpoint.name, settings.mode, room,
                        now, now + settings.timeout, push=dict(push))  # fmt: skip
        if conference:
            held.number = self._new_number()
            self.numbers[held.number] = channel.uid
        self.held[channel.uid] = held
        return held

    async def hold(self, channel: Channel, endpoint: Endpoint) -> list[tuple[Endpoint, Binding]]:
        """Keep the caller until ``endpoint`` registers (its contacts) or not ([])."""
        held = self._register(channel, endpoint)
        log.info("%s: %s is offline: holding the caller (%s mode), notifying", channel.name,
                 endpoint.name, held.mode)  # fmt: skip
        publish(channel, "callback_held", callee=endpoint.name, mode=held.mode, room=held.room,
                number=held.number, expires_at=held.expires_at)  # fmt: skip
        background = self._hold_media(channel, held.room)
        self._spawn(self.notifier.notify(self._notice(channel, held)))
        try:
            contacts = await self._wait(channel, endpoint, held, background)
            meet = contacts or held.action == "joined"
            if held.room is not None and background is not None and meet:
                await self._meet_in_room(channel, endpoint, contacts, held, background)
                return []
        finally:
            await _stop(background)
            self.held.pop(channel.uid, None)
            if held.number is not None:
                self.numbers.pop(held.number, None)
        await self._end_wait(channel, held, contacts)
        return contacts

    async def _meet_in_room(self, channel: Channel, endpoint: Endpoint,
                            contacts: list[tuple[Endpoint, Binding]], held: HeldCall,
                            background: asyncio.Task[object]) -> None:  # fmt: skip
        """Conference mode: call the callee into the room (unless it dialled in); wait."""
        held.state = channel.callback_state = "connected"
        publish(channel, "callback_connected", callee=endpoint.name, room=held.room,
                how="dialled in" if held.action == "joined" else "called")  # fmt: skip
        leg = None
        if held.action != "joined" and held.room is not None:
            # a callee that dials in while this rings ends the ringing (held.wake)
            leg = await invite_into_room(channel, endpoint, contacts, held.room, held.wake)
        await background  # the caller stays in the room until it leaves
        room = channel.service.rooms.get(held.room) if held.room is not None else None
        if room is not None:
            room.close()  # the caller left: the callback call is over for everyone
        if leg is not None and not leg.ended.is_set():
            await leg.bye()

    async def _end_wait(self, channel: Channel, held: HeldCall,
                        contacts: list[tuple[Endpoint, Binding]]) -> None:  # fmt: skip
        """Hold mode put through, or the wait failed: say so, hang up a dropped caller."""
        if held.action == "drop":
            held.state = channel.callback_state = "dropped"
            publish(channel, "callback_dropped", callee=held.callee)
            await _hang_up(channel)
            return
        held.state = "connected" if contacts else "timeout"
        channel.callback_state = held.state
        if contacts:
            publish(channel, "callback_connected", callee=held.callee, how="registered")
            return
        reason = "released" if held.action == "release" else "timeout"
        publish(channel, "callback_timeout", callee=held.callee, reason=reason)
        if not channel.leg.ended.is_set():
            await self._announce(channel)

    def _notice(self, channel: Channel, held: HeldCall) -> CallbackNotice:
        return CallbackNotice(
            call_id=channel.leg.invite.call_id,
            caller=held.caller,
            callee=held.callee,
            mode=held.mode,
            room=held.room,
            expires_at=held.expires_at,
            push=held.push,
            room_number=held.number,
        )

    def _hold_media(self, channel: Channel, room: str | None) -> asyncio.Task[object] | None:
        """Ringback, music on hold, or the waiting room.

        A caller already answered (an originated call) cannot hear a 180: it
        gets music on hold instead of ringback.
        """
        service = channel.service
        if room is not None:
            from callway.app.b2bua.confbridge import run_confbridge

            return self._spawn(run_confbridge(channel, ConfBridge(room)))
        if self.settings.hold_media == "moh" or channel.leg.answered:
            return self._spawn(service.play(channel, MusicOnHold("default")))
        if not channel.leg.final_sent:
            channel.leg.respond(180)
        return None

    async def _wait(self, channel: Channel, endpoint: Endpoint, held: HeldCall,
                    background: asyncio.Task[object] | None
                    ) -> list[tuple[Endpoint, Binding]]:  # fmt: skip
        """Poll the (possibly shared) location until a contact appears or we are woken."""
        while time.time() < held.expires_at:
            if channel.leg.ended.is_set():
                return []
            if held.room is not None and background is not None and background.done():
                held.action = held.action or "drop"  # the caller was kicked from the room
            if held.action:
                return self._woken(channel, endpoint, held)
            contacts = self._contacts(endpoint)
            if contacts:
                log.info("%s: %s registered: putting the call through", channel.name,
                         endpoint.name)  # fmt: skip
                return contacts
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_either(channel.leg.ended, held.wake), POLL)
        log.info("%s: %s did not come online in %ss", channel.name, endpoint.name,
                 self.settings.timeout)  # fmt: skip
        return []

    def _woken(self, channel: Channel, endpoint: Endpoint, held: HeldCall
               ) -> list[tuple[Endpoint, Binding]]:  # fmt: skip
        if held.action != "release":
            return []
        contacts = self._contacts(endpoint)
        log.info("%s: released: %d contact(s) of %s", channel.name, len(contacts), endpoint.name)
        return contacts

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


async def _either(first: asyncio.Event, second: asyncio.Event) -> None:
    """Wait until one of two events is set."""
    waits = {asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())}
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()


async def _stop(task: asyncio.Task[object] | None) -> None:
    """Cancel a background task and wait for it to finish."""
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def _hang_up(channel: Channel) -> None:
    """480 to a caller not answered yet, BYE to one that is."""
    leg = channel.leg
    if not leg.final_sent:
        leg.respond(480)
    elif leg.answered and not leg.ended.is_set():
        await leg.bye()


async def invite_into_room(
    channel: Channel,
    endpoint: Endpoint,
    contacts: list[tuple[Endpoint, Binding]],
    room_name: str,
    stop: asyncio.Event | None = None,
) -> OutboundLeg | None:
    """Call the callee's first contact and put its media straight into the room.

    ``stop`` set while it rings cancels the call (the callee dialled in itself).
    """
    from callway.app.b2bua.dial import path_destination
    from callway.app.b2bua.legs import OutboundLeg
    from callway.sdp.negotiate import make_offer
    from callway.sdp.parse import format_sdp

    room = channel.service.rooms.get(room_name)
    if room is None:
        return None
    _endpoint, binding = contacts[0]
    dest = path_destination(binding)
    host = dest.local[0] if dest.local else channel.leg.local[0]
    pid = f"{channel.uid}-callee"
    member = _RoomMember(channel, room, pid)
    port = room.join(pid, (endpoint.allow or ("ulaw",))[0], None, on_kick=member.kicked)
    offer = make_offer(
        allowed_codecs=endpoint.allow or ("ulaw", "alaw"),
        local_address=host,
        local_port=port,
        session_id=secrets.randbelow(1 << 30),
    )
    leg = OutboundLeg(
        channel.service.manager, dest, binding.uri,
        from_value=f'"{channel.endpoint.name}" <sip:{channel.endpoint.name}@{host}>',
        to_value=f"<{binding.uri}>", body=format_sdp(offer),
        extra=tuple(("Route", hop) for hop in binding.path),
    )  # fmt: skip
    member.leg = leg
    leg.start()
    if not await _answered_into(room, pid, leg, stop or asyncio.Event()):
        room.leave(pid)
        return None
    log.info("%s: %s joined conference %s", channel.name, endpoint.name, room_name)
    publish(channel, "room_joined", room=room_name, member=pid, who=endpoint.name)
    leg.listener = member
    return leg


async def _answered_into(room: ConferenceRoom, pid: str, leg: OutboundLeg,
                         stop: asyncio.Event) -> bool:  # fmt: skip
    """Wait for the callee's answer; point the member's media at its SDP."""
    from callway.sdp.anchor import media_target
    from callway.sdp.negotiate import audio_format
    from callway.sdp.parse import parse_sdp

    while True:
        response = await _response_or_stop(leg, stop)
        if stop.is_set() and (response is None or response.status < 300):
            leg.cancel()
            if response is not None and response.status < 300:
                await leg.bye()
            return False
        if response is None or response.status >= 200:
            break
    if response is None or response.status >= 300 or pid not in room:
        return False
    answer = parse_sdp(response.body)
    target = media_target(answer)
    fmt = audio_format(answer)
    room.update(pid, target.rtp if target else None, fmt.codec.name if fmt else None)
    return True


async def _response_or_stop(leg: OutboundLeg, stop: asyncio.Event) -> Response | None:
    """The leg's next response, or None as soon as ``stop`` is set."""
    following = asyncio.ensure_future(leg.responses.get())
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({following, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if following.done():
        return following.result()
    following.cancel()
    return None


class _RoomMember:
    """Listener of a leg whose media is a conference member."""

    def __init__(self, channel: Channel, room: ConferenceRoom, pid: str) -> None:
        self.channel = channel
        self.room = room
        self.pid = pid
        self.leg: OutboundLeg | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def kicked(self) -> None:
        """The operator kicked the member: BYE to its phone."""
        publish(self.channel, "room_left", room=self.room.name, member=self.pid, kicked=True)
        leg = self.leg
        if leg is not None and not leg.ended.is_set():
            task = asyncio.ensure_future(leg.bye())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def on_bye(self, leg: Leg) -> None:
        if self.pid in self.room:
            self.room.leave(self.pid)
            publish(self.channel, "room_left", room=self.room.name, member=self.pid)

    def on_reoffer(self, leg: Leg, key: ServerTransactionKey, request: Request) -> None:
        leg.mgr.port.send_response(key, make_response(request, 488))

    def on_info(self, leg: Leg, key: ServerTransactionKey, request: Request) -> None:
        leg.mgr.port.send_response(key, make_response(request, 200))
