"""Originate a callback (the admin API's ``POST /api/v1/originate``): call A, then B.

The PBX rings every registered contact of endpoint A (parallel forking, the
first answer wins).  Once A answers, the call continues exactly like a call
A placed to B: :class:`~callway.app.b2bua.dial.Dialer` rings B's contacts
(or holds A for a push-capable offline B: the callback scheme applies, with
music on hold since an answered party cannot hear a 180) and the
:class:`~callway.app.b2bua.bridge.Bridge` joins the two.

The machinery sees A's leg as a caller's: :class:`OriginatedLeg` is the
outbound leg to A made to look like an answered :class:`InboundLeg`
(provisional and final responses, and the answer, are already behind it), and
:class:`OriginateChannel` is a :class:`~callway.app.b2bua.channel.Channel`
whose "dialplan" is ``Dial(PJSIP/B)``.  It is listed with the other
channels, writes a CDR (src A, dst B) and publishes the usual call events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, cast

from callway.app.b2bua.channel import Channel
from callway.app.b2bua.dial import Dialer, path_destination, static_bindings
from callway.app.b2bua.events import publish
from callway.app.b2bua.legs import InboundLeg, OutboundLeg
from callway.pbx.dialplan.actions import Dial, DialTarget
from callway.pbx.location import Binding
from callway.pbx.model import Endpoint
from callway.sdp.errors import SdpError
from callway.sdp.parse import parse_sdp
from callway.sip.message import Response

if TYPE_CHECKING:
    from callway.app.b2bua.service import CallService

__all__ = ["OriginateChannel", "OriginateError", "OriginatedLeg", "originate"]

log = logging.getLogger("callway.originate")

RING_TIMEOUT = 30.0  # seconds A may ring
DIAL_TIMEOUT = 30.0  # seconds B may ring once A answered
_TASKS: set[asyncio.Task[None]] = set()


class OriginateError(ValueError):
    """The call cannot be started (A has no registered contact)."""


class OriginatedLeg(OutboundLeg):
    """The leg to A, standing in for a caller's :class:`InboundLeg`.

    The PBX placed this call, so there is no INVITE of A's to answer: once
    A's 200 came, the leg counts as answered and every response the
    caller-side code would send (180, 200, 480) is already settled.
    """

    final_sent = True

    @property
    def answered(self) -> bool:
        """True once A answered (and we did not cancel it)."""
        final = self.final
        return final is not None and final.status // 100 == 2 and not self.cancelled

    def respond(self, status: int, reason: str | None = None, *, body: bytes = b"",
                extra: tuple[tuple[str, str], ...] = ()) -> None:  # fmt: skip
        """Nothing to respond to: the PBX is the caller here."""

    def answer(self, body: bytes, extra: tuple[tuple[str, str], ...] = ()) -> None:
        """A already answered our offer."""


def _contacts(service: CallService, endpoint: Endpoint) -> list[Binding]:
    now = time.time()
    found: list[Binding] = []
    for aor in endpoint.aors:
        found.extend(static_bindings(service.config.aors.get(aor)))
        found.extend(service.location.lookup(aor, now))
    return found


class OriginateChannel(Channel):
    """A channel whose caller is A, called by the PBX, and whose dialplan is Dial(B)."""

    def __init__(self, service: CallService, forks: list[OriginatedLeg], endpoint: Endpoint,
                 target: str, uid: str) -> None:  # fmt: skip
        # Dial and the bridge only use the leg's answered-caller surface (see OriginatedLeg).
        super().__init__(service, cast(InboundLeg, forks[0]), endpoint, target, uid)
        self.forks = forks
        self.winner: OriginatedLeg | None = None
        self.ring_timeout = RING_TIMEOUT
        self.dial_timeout = DIAL_TIMEOUT

    async def run(self) -> None:
        """Ring A, dial B when A answers, and clean up whatever happens."""
        try:
            if await self._ring_a():
                await self._dial_b()
        except Exception:
            log.exception("%s: originate failed", self.name)
        finally:
            await self._cleanup()

    async def _dial_b(self) -> None:
        action = Dial((DialTarget("PJSIP", self.exten),), timeout=self.dial_timeout)
        result = await Dialer(self, action).run()
        self.dialstatus = result.status
        log.info("%s: originate to %s: %s", self.name, self.exten, result.status)
        if result.status != "ANSWER":
            self.disposition = "BUSY" if result.status == "BUSY" else "NO ANSWER"

    async def _ring_a(self) -> bool:
        """Wait for the first fork to answer (cancel the others); False: nobody did."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ring_timeout
        pending = {asyncio.ensure_future(leg.responses.get()): leg for leg in self.forks}
        try:
            while pending:
                timeout = max(0.0, deadline - loop.time())
                done, _ = await asyncio.wait(pending, timeout=timeout,
                                             return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                if not done:
                    return False
                for task in done:
                    leg = pending.pop(task)
                    response = task.result()
                    if response is not None and response.status < 200:
                        pending[asyncio.ensure_future(leg.responses.get())] = leg
                    elif response is not None and response.status < 300:
                        return await self._a_answered(leg, response)
            return False
        finally:
            for task in pending:
                task.cancel()
            for leg in self.forks:
                if leg is not self.winner:
                    leg.cancel()

    async def _a_answered(self, leg: OriginatedLeg, response: Response) -> bool:
        self.winner = leg
        self.leg = cast(InboundLeg, leg)
        leg.listener = None
        assert self.media is not None
        try:
            self.media.take_answer("a", parse_sdp(response.body))
        except SdpError as exc:
            log.warning("%s: A answered without usable SDP: %s", self.name, exc)
            await leg.bye()
            return False
        self.answered_at = time.time()
        self.disposition = "ANSWERED"
        publish(self, "call_answered", originated=True)
        log.info("%s: %s answered: dialling %s", self.name, self.endpoint.name, self.exten)
        return True


def originate(service: CallService, source: str, target: str) -> str:
    """Start calling ``source`` (then ``target``); the new call's id.

    Raises KeyError for an unknown endpoint and :class:`OriginateError` when
    ``source`` has no contact to ring.
    """
    endpoint = service.config.endpoints.get(source)
    if endpoint is None:
        raise KeyError(source)
    if target not in service.config.endpoints:
        raise KeyError(target)
    contacts = _contacts(service, endpoint)
    if not contacts:
        raise OriginateError(f"{source} has no registered contact")
    uid = f"{next(service._ids):08x}"
    forks = [_fork(service, binding, target) for binding in contacts]
    channel = OriginateChannel(service, forks, endpoint, target, uid)
    channel.media = service.new_media(channel)  # PortsExhaustedError: nothing started
    service.channels[uid] = channel
    publish(channel, "call_started", originated=True, target=target)
    log.info("originate %s: calling %s, then %s", uid, source, target)
    _start(channel, forks)
    return uid


def _fork(service: CallService, binding: Binding, target: str) -> OriginatedLeg:
    """An INVITE (body added later, by :func:`_start`) to one contact of A."""
    dest = path_destination(binding)
    host = dest.local[0] if dest.local else service.manager.port.default_local(dest.transport)[0]
    return OriginatedLeg(
        service.manager, dest, binding.uri,
        from_value=f"<sip:{target}@{host}>", to_value=f"<{binding.uri}>", body=b"",
        extra=tuple(("Route", hop) for hop in binding.path),
    )  # fmt: skip


def _start(channel: OriginateChannel, forks: list[OriginatedLeg]) -> None:
    """Offer the channel's relay to every fork of A, and run the call."""
    assert channel.media is not None
    offer = channel.media.offer("a")
    for leg in forks:
        leg.invite.body = offer
        leg.invite.add("Content-Type", "application/sdp")
        leg.start()
    task = asyncio.get_running_loop().create_task(channel.run())
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)
