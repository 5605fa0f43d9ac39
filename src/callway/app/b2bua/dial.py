"""``Dial(PJSIP/x[&PJSIP/y],timeout,options)``: ring every contact, bridge the first answer.

Every registered contact of every target endpoint gets its own INVITE
(parallel forking, like chan_pjsip's ``Dial(PJSIP/8006)`` with several
contacts).  The first 2xx wins, the others are CANCELled (§9.1); the caller
hears 180 when any callee rings.  ``DIALSTATUS`` follows Asterisk: ANSWER,
BUSY, NOANSWER, CANCEL, CONGESTION, CHANUNAVAIL.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import math
import time
from typing import TYPE_CHECKING

from callway.app.b2bua.bridge import Bridge
from callway.app.b2bua.legs import OutboundLeg
from callway.balancer.proxy import uri_address
from callway.core.address import Address
from callway.pbx.dialplan.actions import Dial, DialResult
from callway.pbx.location import Binding
from callway.pbx.model import Aor, Endpoint, PjsipConfig
from callway.sdp.errors import SdpError
from callway.sdp.parse import parse_sdp
from callway.sip.errors import ParseError
from callway.sip.headers import parse_name_addr, quote
from callway.sip.message import Response
from callway.sip.uri import SipURI, escape_user, parse_uri

if TYPE_CHECKING:
    from callway.app.b2bua.channel import Channel

log = logging.getLogger("callway.dial")

_CALLER_GONE = "caller gone"  # markers in Dialer.ready
_TIMEOUT = "timeout"


def dial_status(statuses: list[int]) -> str:
    """DIALSTATUS from the final responses of every fork (Asterisk's mapping)."""
    if any(s in (486, 600) for s in statuses):
        return "BUSY"
    if any(s in (408, 480, 487) for s in statuses):
        return "NOANSWER"
    if any(s >= 500 for s in statuses):
        return "CONGESTION"
    return "CHANUNAVAIL"


def path_destination(binding: Binding) -> Address:
    """Where a request to a registered contact goes (RFC 3327 §5: its Path first).

    Without a Path it is the address the REGISTER came from, which is the NAT
    binding of a phone (force_rport/rewrite_contact behaviour).
    """
    if binding.path:
        with contextlib.suppress(ParseError):
            uri = parse_name_addr(binding.path[0]).uri
            if isinstance(uri, SipURI):
                dest = uri_address(uri, binding.source.transport, follow_received=False)
                if (dest.host, dest.port) == (binding.source.host, binding.source.port):
                    return binding.source  # keep the connection/local address we know
                return dest
    return binding.source


@functools.lru_cache(maxsize=256)
def outbound_proxy(text: str) -> tuple[Address, str] | None:
    """Where requests to an endpoint with ``outbound_proxy=`` go, and the Route naming it.

    As chan_pjsip: the request keeps its Request-URI (the contact) and goes
    to the proxy, which is named in a Route (RFC 3261 §8.1.2, loose routing:
    ``;lr`` is added when the URI lacks it).  None (with a warning) for a
    URI that is not a SIP URI; the host is taken as written, like static
    contacts' (an address, or a name the transport looks up).
    """
    try:
        uri = parse_uri(text.strip())
    except ParseError:
        uri = None
    if not isinstance(uri, SipURI):
        log.warning("outbound_proxy %r is not a SIP URI: requests go direct", text)
        return None
    if "lr" not in uri.params:
        uri = dataclasses.replace(uri, params={**uri.params, "lr": None})
    return uri_address(uri), f"<{uri}>"


def static_bindings(aor: Aor | None) -> list[Binding]:
    """The ``contact=`` URIs of an AOR, dialled like registered contacts (res_pjsip aor)."""
    if aor is None or not aor.contact:
        return []
    return list(_static_bindings(aor.name, aor.contact))


@functools.lru_cache(maxsize=1024)
def _static_bindings(name: str, contacts: tuple[str, ...]) -> tuple[Binding, ...]:
    """The bindings of an AOR's static contacts, parsed once per configuration (they are frozen)."""
    found: list[Binding] = []
    for text in contacts:
        try:
            uri = parse_uri(text)
        except ParseError:
            log.warning("aor %s: bad static contact %r", name, text)
            continue
        if isinstance(uri, SipURI):
            found.append(Binding(name, text, math.inf, "", 0, uri_address(uri), registered_at=0.0))
    return tuple(found)


def with_user(contact: str, number: str) -> str:
    """The contact URI with ``number`` as its user: ``PJSIP/number@trunk`` (chan_pjsip)."""
    uri = parse_uri(contact)
    if not isinstance(uri, SipURI):
        return contact
    return str(dataclasses.replace(uri, user=number, password=None))


def outbound_credentials(
    config: PjsipConfig, endpoint: Endpoint
) -> tuple[tuple[str, str, str], ...]:
    """(username, password, realm) of the endpoint's ``outbound_auth`` (userpass auths)."""
    found: list[tuple[str, str, str]] = []
    for name in endpoint.outbound_auth:
        auth = config.auths.get(name)
        if auth is None or auth.auth_type != "userpass":
            continue  # md5_cred cannot answer a challenge for another realm: skipped
        found.append((auth.username or auth.name, auth.password, auth.realm))
    return tuple(found)


def from_value(name: str, user: str, host: str) -> str:
    """The From of an INVITE we send: CALLERID(name) quoted, CALLERID(num) escaped (§25.1).

    Caller ID comes from a phone's or a carrier's From: whatever it holds
    stays inside the quoted display name and the URI's user part.
    """
    return f"{quote(name)} <sip:{escape_user(user)}@{host}>"


def identity_headers(
    endpoint: Endpoint, name: str, number: str, host: str
) -> tuple[tuple[str, str], ...]:
    """P-Asserted-Identity (``send_pai``, RFC 3325 §9.1) and Remote-Party-ID (``send_rpid``).

    They carry CALLERID, whatever ``from_user`` puts in the From (a carrier
    account's number): the caller the carrier shows.
    """
    identity = from_value(name, number, endpoint.from_domain or host)
    headers: list[tuple[str, str]] = []
    if endpoint.send_pai:
        headers.append(("P-Asserted-Identity", identity))
    if endpoint.send_rpid:
        headers.append(("Remote-Party-ID", f"{identity};party=calling;privacy=off;screen=no"))
    return tuple(headers)


@functools.lru_cache(maxsize=4096)
def to_header(contact: str) -> str:
    """The To of an INVITE to a contact: its URI in angle brackets, as parsed (§8.1.1.2).

    Memoised: a registered contact is dialled with the same URI call after call.
    """
    return f"<{parse_uri(contact)}>"


class Dialer:
    """One execution of Dial for a channel."""

    def __init__(self, channel: Channel, action: Dial) -> None:
        self.channel = channel
        self.action = action
        self.started = time.time()
        self.legs: list[OutboundLeg] = []
        self.names: dict[OutboundLeg, str] = {}  # each leg's channel name (PJSIP/8006-0000000b)
        self.held = False
        self.answered_elsewhere = False
        # Forks with a response queued, or a marker (_CALLER_GONE, _TIMEOUT): see _wait.
        self.ready: asyncio.Queue[OutboundLeg | str] = asyncio.Queue()

    def _contacts(self) -> list[tuple[Endpoint, Binding, str]]:
        """(endpoint, contact, number): ``number`` from ``PJSIP/number@endpoint``, else ""."""
        service = self.channel.service
        found: list[tuple[Endpoint, Binding, str]] = []
        for target in self.action.targets:
            if target.tech.upper() != "PJSIP":
                log.warning("%s: unsupported technology %s", self.channel.name, target.tech)
                continue
            endpoint = service.config.endpoints.get(target.endpoint)
            if endpoint is None:
                log.info("%s: no endpoint %s", self.channel.name, target.endpoint)
                continue
            now = time.time()
            number = target.number
            for aor in endpoint.aors:
                for binding in (*static_bindings(service.config.aors.get(aor)),
                                *service.location.lookup(aor, now)):  # fmt: skip
                    if service.reachable(aor, binding.uri):
                        found.append((endpoint, binding, number))
                    else:  # qualify says Unavail: as res_pjsip, not dialled
                        log.info("%s: contact %s of %s is unreachable: skipped",
                                 self.channel.name, binding.uri, aor)  # fmt: skip
        return found

    async def _callback(self) -> list[tuple[Endpoint, Binding, str]]:
        """Hold the caller for a push-capable offline target (the callback scheme)."""
        service = self.channel.service
        callback = service.callback
        if callback is None:
            return []
        for target in self.action.targets:
            endpoint = service.config.endpoints.get(target.endpoint)
            if endpoint is not None and callback.applies(endpoint):
                self.held = True
                contacts = await callback.hold(self.channel, endpoint)
                if not contacts and self.channel.callback_state == "connected":
                    self.answered_elsewhere = True  # both talked in the callback room
                return [(e, binding, target.number) for e, binding in contacts]
        return []

    def _result(self, status: str, **kwargs: object) -> DialResult:
        dialed = int(time.time() - self.started)
        return DialResult(status, dialed_time=dialed, **kwargs)  # type: ignore[arg-type]

    async def run(self) -> DialResult:
        """Ring, wait, bridge; return how it ended."""
        contacts = self._contacts()
        if not contacts:
            contacts = await self._callback()
            if self.channel.leg.ended.is_set():
                return self._result("CANCEL")
            if self.answered_elsewhere:
                return self._result("ANSWER")
            if not contacts:
                return self._result("NOANSWER" if self.held else "CHANUNAVAIL")
        self._start_legs(contacts)
        try:
            return await self._wait()
        finally:
            for leg in self.legs:
                leg.cancel()

    def _start_legs(self, contacts: list[tuple[Endpoint, Binding, str]]) -> None:
        channel = self.channel
        media = channel.media
        assert media is not None
        first_endpoint, first_binding, _ = contacts[0]
        dest = first_binding.source
        local = dest.local or channel.leg.local
        host = local[0]
        media_host = channel.service.manager.nat.media_host(local, dest.transport, host, dest.host)
        media.add_side_b(
            first_endpoint.allow or media.sides["a"].codecs, media_host,
            first_endpoint.media_encryption, first_endpoint.tos_audio,
        )  # fmt: skip
        offer = media.offer("b")
        scope = channel.caller_id  # CALLERID(num/name), after any Set() of the dialplan
        caller = scope.callerid_num if scope is not None else channel.endpoint.name
        name = (scope.callerid_name if scope is not None else "") or caller
        config = channel.service.config
        for endpoint, binding, number in contacts:
            uri = with_user(binding.uri, number) if number else binding.uri
            from_user = endpoint.from_user or caller
            proxy = outbound_proxy(endpoint.outbound_proxy) if endpoint.outbound_proxy else None
            leg = OutboundLeg(
                channel.service.manager,
                proxy[0] if proxy else path_destination(binding),
                uri,
                from_value=from_value(name, from_user, endpoint.from_domain or host),
                to_value=to_header(uri),
                body=offer,
                extra=(*((("Route", proxy[1]),) if proxy else ()),
                       *(("Route", hop) for hop in binding.path),
                       *identity_headers(endpoint, name, caller, host)),
                credentials=outbound_credentials(config, endpoint),
            )
            log.debug("%s: ringing %s at %s", channel.name, endpoint.name, binding.source)
            self.names[leg] = f"PJSIP/{endpoint.name}-{channel.service.next_uid()}"
            channel.add_call_id(leg.call_id)
            leg.notify = self.ready.put_nowait
            leg.start()
            self.legs.append(leg)

    async def _wait(self) -> DialResult:
        """Take the forks' responses in arrival order until an answer, the end or the timeout.

        Legs, the caller's hangup and the Dial timeout all feed one queue
        (no Task per response): a leg puts itself when it queued a response,
        the caller's leg and the timer put a marker.
        """
        channel = self.channel
        if channel.leg.ended.is_set():
            return self._result("CANCEL")
        ready: asyncio.Queue[OutboundLeg | str] = self.ready
        channel.leg.end_hooks.append(self._caller_gone)
        timer = None
        if self.action.timeout:
            loop = asyncio.get_running_loop()
            timer = loop.call_later(self.action.timeout, ready.put_nowait, _TIMEOUT)
        pending = set(self.legs)
        finals: list[int] = []
        try:
            while pending:
                item = await ready.get()
                if item is _CALLER_GONE:
                    return self._result("CANCEL")
                if item is _TIMEOUT:
                    return self._result("NOANSWER")
                assert isinstance(item, OutboundLeg)
                if item not in pending or item.responses.empty():
                    continue
                leg, response = item, item.responses.get_nowait()
                if response is not None and response.status < 200:
                    self._provisional(response)
                    continue
                pending.discard(leg)
                if response is not None and response.status < 300:
                    return await self._bridge(leg, response)
                finals.append(response.status if response is not None else 408)
            return self._result(dial_status(finals))
        finally:
            if timer is not None:
                timer.cancel()
            with contextlib.suppress(ValueError):
                channel.leg.end_hooks.remove(self._caller_gone)
            for leg in self.legs:
                leg.notify = None

    def _caller_gone(self) -> None:
        self.ready.put_nowait(_CALLER_GONE)

    def _provisional(self, response: Response) -> None:
        """Relay ringing; a 183 with SDP opens early media through the relay.

        The callee's SDP is taken as the answer on leg b and the caller's
        offer is answered on leg a (RFC 3261 §13.2.1, RFC 3960 §2's
        gateway model), so early audio flows through the anchored relay;
        the 200 that follows repeats that answer to the caller.
        """
        channel = self.channel
        if response.status not in (180, 183) or channel.leg.final_sent:
            return
        if response.body and channel.offer is not None and channel.early_body is None:
            body = self._early_media(response.body)
            if body is not None:
                channel.leg.respond(183, body=body)
                return
        if channel.early_body is None:
            channel.leg.respond(180)

    def _early_media(self, sdp: bytes) -> bytes | None:
        """Our early answer to the caller from a callee's early SDP (None: unusable)."""
        channel = self.channel
        media = channel.media
        assert media is not None and channel.offer is not None
        try:
            media.take_answer("b", parse_sdp(sdp))
        except SdpError as exc:
            log.info("%s: ignoring unusable early SDP: %s", channel.name, exc)
            return None
        body = media.answer("a", channel.offer, prefer=media.codec("b"))
        if body is None:
            return None
        media.bridge()
        channel.early_body = body
        log.info("%s: early media from the callee", channel.name)
        return body

    async def _bridge(self, winner: OutboundLeg, response: Response) -> DialResult:
        channel = self.channel
        media = channel.media
        assert media is not None
        for leg in self.legs:
            if leg is not winner:
                leg.cancel()
        try:
            if response.body or channel.early_body is None:
                media.take_answer("b", parse_sdp(response.body))
        except SdpError as exc:
            log.warning("%s: callee answered without usable SDP: %s", channel.name, exc)
            await winner.bye()
            return self._result("CONGESTION")
        if not channel.answer(prefer=media.codec("b")):
            await winner.bye()
            return self._result("CONGESTION")
        media.bridge()
        answered = time.time()
        channel.peer = winner.invite.uri.__str__()
        channel.dstchannel = self.names.get(winner, "")
        bridge = Bridge(channel.leg, winner, media)
        gone = await bridge.run()
        return self._result(
            "ANSWER",
            answered_time=int(time.time() - answered),
            peer=winner.invite.to.uri.__str__(),
            caller_hung_up=gone is channel.leg,
        )
