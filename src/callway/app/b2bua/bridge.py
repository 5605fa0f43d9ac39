"""Two answered legs talking: BYE, re-INVITE/UPDATE (hold) and INFO across.

Offers are not passed through verbatim: each side always sees the PBX's
relay address (media stays anchored), so a re-offer from one side becomes a
fresh re-offer to the other with the same direction (sendonly for hold,
RFC 3264 §8.4), and the first side gets an answer built from the other
side's answer.  While one re-offer is in progress a second one gets 491
(RFC 3261 §14.1); the phones retry after their random back-off.
"""

from __future__ import annotations

import asyncio
import logging

from callway.app.b2bua.legs import Leg
from callway.app.b2bua.media import CallMedia
from callway.sdp.errors import SdpError
from callway.sdp.model import Direction
from callway.sdp.negotiate import audio_format
from callway.sdp.parse import parse_sdp
from callway.sip.message import Request, make_response
from callway.sip.transaction import ServerTransactionKey

log = logging.getLogger("callway.bridge")


class Bridge:
    """The listener of both legs of an answered call."""

    def __init__(self, a: Leg, b: Leg, media: CallMedia) -> None:
        self.a = a
        self.b = b
        self.media = media
        self.gone: Leg | None = None
        self.done = asyncio.Event()
        self.busy = False
        self._tasks: set[asyncio.Task[None]] = set()
        a.listener = self
        b.listener = self
        a.on_ack_sdp = self._on_ack_sdp
        b.on_ack_sdp = self._on_ack_sdp

    async def run(self) -> Leg | None:
        """Wait until one side hangs up (or the media times out); hang up the other."""
        await self.done.wait()
        for leg in (self.a, self.b):
            if not leg.ended.is_set():
                await leg.bye()
        self._unlink()
        return self.gone

    def _unlink(self) -> None:
        """Both legs are over: drop the leg <-> bridge references (no garbage cycle)."""
        for leg in (self.a, self.b):
            if leg.listener is self:
                leg.listener = None
            leg.on_ack_sdp = None

    def hang_up(self) -> None:
        """End the bridge from the PBX side (e.g. RTP timeout)."""
        self.done.set()

    def _other(self, leg: Leg) -> Leg:
        return self.b if leg is self.a else self.a

    def _name(self, leg: Leg) -> str:
        return "a" if leg is self.a else "b"

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[call-overload]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- LegListener -----------------------------------------------------------------

    def on_bye(self, leg: Leg) -> None:
        if self.gone is None:
            self.gone = leg
        self.done.set()

    def on_info(self, leg: Leg, key: ServerTransactionKey, request: Request) -> None:
        leg.mgr.port.send_response(key, make_response(request, 200))
        other = self._other(leg)
        if other.dialog is not None and request.body:
            info = other.new_request("INFO", request.body, request.get("content-type"))
            self._spawn(other.send(info))

    def _on_ack_sdp(self, leg: Leg, body: bytes) -> None:
        """The answer to the offer in our 2xx of an offerless re-INVITE came in the ACK.

        It only moves this side's relay target (RFC 3264 §8.3.1); the other
        side keeps its session, so nothing is forwarded.
        """
        name = self._name(leg)
        try:
            self.media.take_answer(name, parse_sdp(body))
        except SdpError:
            log.warning("unusable SDP answer in the ACK from leg %s", name)
            return
        self.media.relay.leg(name).relatch()
        self.media.bridge()

    def on_reoffer(self, leg: Leg, key: ServerTransactionKey, request: Request) -> None:
        if request.method == "UPDATE" and not request.body:
            # a session refresh (RFC 4028 §7.4) or a target refresh: nothing to relay
            self._reply(leg, key, request, 200, b"")
            return
        if self.busy:
            response = make_response(request, 491)
            leg.mgr.port.send_response(key, response)
            return
        self.busy = True
        self._spawn(self._reoffer(leg, key, request))

    async def _reoffer(self, leg: Leg, key: ServerTransactionKey, request: Request) -> None:
        try:
            await self._relay_offer(leg, key, request)
        except Exception:
            log.exception("re-offer failed")
            leg.mgr.port.send_response(key, make_response(request, 500))
        finally:
            self.busy = False

    async def _relay_offer(self, leg: Leg, key: ServerTransactionKey, request: Request) -> None:
        name, other = self._name(leg), self._other(leg)
        other_name = self._name(other)
        if not request.body:
            # An offerless re-INVITE: we offer our current session; the answer is in the ACK.
            self._reply(leg, key, request, 200, self.media.offer(name))
            return
        try:
            offer = parse_sdp(request.body)
        except SdpError:
            leg.mgr.port.send_response(key, make_response(request, 400, "Bad SDP"))
            return
        fmt = audio_format(offer)
        direction = fmt.direction if fmt is not None else Direction.SENDRECV
        reoffer = other.new_request(
            request.method, self.media.offer(other_name, direction), "application/sdp"
        )
        response = await other.send(reoffer)
        if response is not None and response.status // 100 == 2 and request.method == "INVITE":
            other.ack_2xx(reoffer)
        if response is None or response.status >= 300:
            status = response.status if response is not None else 408
            leg.mgr.port.send_response(key, make_response(request, status))
            return
        try:
            self.media.take_answer(other_name, parse_sdp(response.body))
        except SdpError:
            log.warning("the other side answered the re-offer without usable SDP")
        answer = self.media.answer(name, offer, prefer=self.media.codec(other_name))
        if answer is None:
            leg.mgr.port.send_response(key, make_response(request, 488))
            return
        self.media.relay.leg(name).relatch()
        self.media.bridge()
        self.media.set_held(direction is not Direction.SENDRECV)
        self._reply(leg, key, request, 200, answer)

    def _reply(
        self, leg: Leg, key: ServerTransactionKey, request: Request, status: int, body: bytes
    ) -> None:
        response = make_response(request, status)
        response.add("Contact", leg.contact)
        for name, value in leg.timer_headers():
            response.add(name, value)
        if body:
            response.add("Content-Type", "application/sdp")
            response.body = body
        if request.method == "INVITE":
            leg.answer_2xx(key, response)
        else:
            leg.mgr.port.send_response(key, response)
