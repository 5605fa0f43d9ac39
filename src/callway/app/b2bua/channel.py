"""A caller's channel: runs the dialplan and performs its actions.

The :class:`~callway.pbx.dialplan.interpreter.DialplanRunner` (sans-I/O)
says what to do next; this shell does it with real legs, media and time,
then reports back.  Hangup causes become SIP responses the way chan_pjsip
maps them (Q.850 -> SIP, RFC 3398 §8.2.6.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from callway.app.b2bua.confbridge import run_confbridge
from callway.app.b2bua.dial import Dialer
from callway.app.b2bua.events import publish
from callway.app.b2bua.legs import InboundLeg, Leg
from callway.app.b2bua.media import CallMedia
from callway.app.b2bua.timers import Negotiated, negotiate
from callway.media.conference import ConferenceRoom
from callway.ops.logs import call_context
from callway.pbx.dialplan.actions import (
    Action,
    Answer,
    Busy,
    ConfBridge,
    Congestion,
    Dial,
    DialResult,
    Done,
    Echo,
    Hangup,
    MusicOnHold,
    Playback,
    Progress,
    Ringing,
    Wait,
)
from callway.pbx.dialplan.interpreter import DialplanRunner
from callway.pbx.dialplan.variables import ChannelVariables
from callway.pbx.model import Endpoint
from callway.sdp.errors import SdpError
from callway.sdp.model import SessionDescription
from callway.sdp.parse import parse_sdp
from callway.sip.errors import ParseError
from callway.sip.headers import parse_name_addr, split_list
from callway.sip.message import Request
from callway.sip.uri import SipURI

if TYPE_CHECKING:
    from callway.app.b2bua.service import CallService

log = logging.getLogger("callway.channel")

# Q.850 cause -> SIP status for a call that was never answered (RFC 3398 §8.2.6.1).
CAUSE_TO_SIP = {
    1: 404, 3: 404, 16: 480, 17: 486, 18: 408, 19: 480, 20: 480, 21: 403, 22: 410,
    27: 502, 28: 484, 31: 480, 34: 503, 38: 500, 41: 503, 42: 503, 58: 488, 127: 500,
}  # fmt: skip


class Channel:
    """One inbound call from an endpoint, from INVITE to the last BYE."""

    def __init__(
        self, service: CallService, leg: InboundLeg, endpoint: Endpoint, exten: str, uid: str
    ) -> None:
        self.service = service
        self.leg = leg
        self.endpoint = endpoint
        self.exten = exten
        self.uid = uid
        self.name = f"PJSIP/{endpoint.name}-{uid}"
        self.offer: SessionDescription | None = None
        self.media: CallMedia | None = None
        self.started = time.time()
        self.answered_at: float | None = None
        self.disposition = "NO ANSWER"
        self.peer = ""
        self.dstchannel = ""  # the answering callee's channel name (the CDR's dstchannel)
        self.runner: DialplanRunner | None = None
        self.dialstatus = ""
        #: The dialplan's variables once it runs: Dial reads CALLERID(num/name) there.
        self.caller_id: ChannelVariables | None = None
        self.room: ConferenceRoom | None = None
        self.callback_state = ""
        self.early_body: bytes | None = None  # our SDP answer sent in a 183 (early media)
        self.timers = Negotiated()
        self.call_ids: list[str] = [leg.invite.call_id]  # the caller's, then each callee leg's
        self.on_call_id: Callable[[str], None] | None = None  # told each new callee leg's
        self.on_end: list[Callable[[], None]] = []  # called once the channel is over
        self.logged = True  # its start and end are logged (the service's per-second budget)
        leg.listener = None

    # -- lifecycle --------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the call to its end, whatever happens.

        Every log line of this task (and of the tasks it starts) carries the
        caller's Call-ID.
        """
        with call_context(self.leg.invite.call_id):
            try:
                if self._check_timers() and self._check_offer():
                    await self._run_dialplan()
            except Exception:
                log.exception("%s: channel failed", self.name)
                self._hangup(500)
            finally:
                await self._cleanup()
                for hook in self.on_end:
                    try:
                        hook()
                    except Exception:
                        log.exception("%s: end hook failed", self.name)

    def add_call_id(self, call_id: str) -> None:
        """A callee leg of this channel with its own Call-ID (before its INVITE is sent)."""
        self.call_ids.append(call_id)
        if self.on_call_id is not None:
            self.on_call_id(call_id)

    def _check_timers(self) -> bool:
        """RFC 4028 §8.1/§9: 422 when Session-Expires is below our Min-SE, 421 if required."""
        self.timers = negotiate(self.endpoint, self.leg.invite)
        if self.timers.status:
            self.leg.respond(self.timers.status, extra=self.timers.reject_headers())
            return False
        return True

    def _check_offer(self) -> bool:
        """Parse the caller's SDP; 488 if it offers nothing the endpoint allows."""
        body = self.leg.invite.body
        if body:
            try:
                self.offer = parse_sdp(body)
            except SdpError as exc:
                self.leg.respond(400, f"Bad SDP ({exc})"[:60])
                return False
        self.media = self.service.new_media(self)
        if self.offer is not None and self.media.answer("a", self.offer) is None:
            self.leg.respond(488)
            return False
        return True

    async def _run_dialplan(self) -> None:
        number, name = caller_id(self.endpoint, self.leg.invite)
        runner = DialplanRunner(
            self.service.dialplan,
            self.endpoint.context,
            self.exten,
            channel_name=self.name,
            callerid_num=number,
            callerid_name=name,
            uniqueid=self.uid,
        )
        self.caller_id = runner.scope  # CALLERID(num/name) as the dialplan leaves it
        self.runner = runner
        while True:
            if self.leg.ended.is_set():
                runner.caller_hangup()
                return
            action = runner.next_action()
            log.debug("%s: %s", self.name, action)
            if isinstance(action, Hangup | Done):
                self._hangup(None, action.cause)
                return
            result = await self._perform(action)
            runner.complete(action, result)

    async def _perform(self, action: Action) -> DialResult | dict[str, str] | None:
        """Execute one action; the result goes back to the runner."""
        if isinstance(action, Dial):
            result = await Dialer(self, action).run()
            self.dialstatus = result.status
            return result
        if isinstance(action, Answer):
            await self._sleep(action.delay)
            self.answer()
        elif isinstance(action, Ringing):
            self.leg.respond(180)
        elif isinstance(action, Progress):
            self.leg.respond(183, body=self._early_sdp())
        elif isinstance(action, Wait):
            await self._sleep(action.seconds)
        elif isinstance(action, Echo):
            self.answer()
            assert self.media is not None
            self.media.echo()
            await self.leg.ended.wait()
        elif isinstance(action, ConfBridge):
            return await run_confbridge(self, action)
        elif isinstance(action, Playback | MusicOnHold):
            return await self.service.play(self, action)
        elif isinstance(action, Busy):
            self._hangup(486)
            await self._sleep(action.timeout or 0)
        elif isinstance(action, Congestion):
            # After an unreachable target (CHANUNAVAIL) Asterisk's autofallthrough
            # congestion would be a 503; 480 (RFC 3261 §21.4.18) keeps a balancer
            # in front from failing the node over for an unregistered callee.
            self._hangup(480 if self.dialstatus == "CHANUNAVAIL" else 503)
            await self._sleep(action.timeout or 0)
        else:
            log.warning("%s: %s is not supported yet", self.name, type(action).__name__)
        return None

    async def _sleep(self, seconds: float) -> None:
        """Wait, but stop early when the caller hangs up."""
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.leg.ended.wait(), seconds)

    # -- signalling towards the caller -------------------------------------------------------

    def _early_sdp(self) -> bytes:
        assert self.media is not None
        return self.media.sides["a"].last_body  # as sent: not formatted again

    def _take_ack_answer(self, _leg: Leg, body: bytes) -> None:
        """The caller's ACK answers the offer of our 200 (delayed offer, RFC 3261 §13.2.1)."""
        assert self.media is not None
        try:
            self.media.take_answer("a", parse_sdp(body))
        except SdpError as exc:
            log.warning("%s: unusable SDP in the ACK: %s", self.name, exc)

    def answer(self, prefer: str | None = None) -> bool:
        """Answer the caller (200 OK with our SDP); False if the codecs do not match."""
        if self.leg.answered:
            return True
        assert self.media is not None
        body: bytes | None
        if self.early_body is not None:
            body = self.early_body  # the answer already given in the 183 (RFC 3264 §4)
        elif self.offer is not None:
            body = self.media.answer("a", self.offer, prefer)
            if body is None:
                self.leg.respond(488)
                return False
        else:
            body = self.media.offer("a")  # delayed offer: the answer comes in the ACK
            self.leg.on_ack_sdp = self._take_ack_answer
        self.leg.answer(body, self.timers.answer_headers())
        self.leg.refresh_body = self._early_sdp
        self.leg.start_session_timer(self.timers)
        self.answered_at = time.time()
        self.disposition = "ANSWERED"
        publish(self, "call_answered")
        return True

    def _hangup(self, status: int | None, cause: int | None = None) -> None:
        if self.leg.answered:
            if not self.leg.ended.is_set():
                asyncio.get_running_loop().create_task(self.leg.bye())
            return
        if status is None:
            status = CAUSE_TO_SIP.get(cause or 16, 480)
        if status == 486:
            self.disposition = "BUSY"
        elif status >= 500:
            self.disposition = "FAILED"
        self.leg.respond(status)

    async def _cleanup(self) -> None:
        if not self.leg.final_sent:
            self.leg.respond(480)
        if self.leg.answered and not self.leg.ended.is_set():
            await self.leg.bye()
        self.leg.finish()
        self.leg.refresh_body = self.leg.on_ack_sdp = None  # bound to this channel: a cycle
        if self.media is not None:
            self.media.close()
        self.service.channel_ended(self)


def caller_id(endpoint: Endpoint, invite: Request) -> tuple[str, str]:
    """CALLERID(num) and CALLERID(name) of a new channel, as chan_pjsip sets them.

    With ``trust_id_inbound=yes`` the INVITE's P-Asserted-Identity (RFC 3325
    §9.1), else its Remote-Party-ID, wins (a carrier asserts the caller
    there, its From may say ``anonymous``); then the endpoint's
    ``callerid="Name" <num>``; else the From of the INVITE (user part and
    display name: a trunk's customer number), else the endpoint's name.
    """
    if endpoint.trust_id_inbound:
        asserted = asserted_id(invite)
        if asserted is not None:
            return asserted
    text = endpoint.callerid.strip()
    if text:
        name, _, rest = text.partition("<")
        number = rest.partition(">")[0].strip() if rest else ""
        name = name.strip().strip('"') or ("" if rest else text)
        return number or endpoint.name, name or number or endpoint.name
    from_ = invite.from_
    uri = from_.uri
    number = uri.user if isinstance(uri, SipURI) and uri.user else endpoint.name
    return number, from_.display or number


def asserted_id(invite: Request) -> tuple[str, str] | None:
    """(number, name) of the first P-Asserted-Identity, else Remote-Party-ID; None if neither.

    A ``tel:`` URI's number is taken up to its parameters (RFC 3966); a value
    that does not parse is ignored, as if absent.
    """
    for header in ("P-Asserted-Identity", "Remote-Party-ID"):
        for value in invite.get_all(header):
            for item in split_list(value):
                try:
                    addr = parse_name_addr(item)
                except ParseError:
                    continue
                uri = addr.uri
                if isinstance(uri, SipURI):
                    number = uri.user or ""
                elif uri.scheme.lower() == "tel":
                    number = uri.raw.partition(":")[2].partition(";")[0]
                else:
                    continue
                if number:
                    return number, addr.display or number
    return None
