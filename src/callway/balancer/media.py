"""The balancer as an ng client: which SIP messages go to the media relay, and how.

With ``media_relay`` set, the balancer anchors media at the edge the way
Kamailio's ``rtpengine_manage()`` does, speaking rtpengine's "ng" control
protocol (:mod:`callway.ng.protocol`) to ``callway relay`` or rtpengine.
An SDP body passing through is an offer or an answer (RFC 3264 §4, the
offer/answer model as RFC 3261 §13.2.1 carries it):

* an INVITE (initial or re-INVITE) or UPDATE (RFC 3311) with SDP: ``offer``;
* a 18x/2xx response to an INVITE (or UPDATE) with SDP: ``answer`` when the
  request carried the offer, ``offer`` when it had none (late offer, §13.2.1);
* an ACK with SDP (the answer to a late offer): ``answer``;
* BYE, CANCEL, and a final failure (>= 300) of an initial INVITE: ``delete``.

The relay returns the SDP to forward (its own address in ``c=`` and ports in
``m=``).  This module builds the ng dictionaries, encodes and decodes
datagrams and replaces bodies; it does no I/O (the asyncio shell is
:mod:`callway.app.balancer_media`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from callway.ng.bencode import Bencodable, BencodeError, BValue, decode, encode, text
from callway.ng.protocol import NgFrameError, split_cookie
from callway.sip.errors import ParseError
from callway.sip.message import Message, Request, Response

__all__ = [
    "NgCodec",
    "NgCommand",
    "NgReply",
    "parse_relay_address",
    "replace_sdp",
    "reply_reason",
    "reply_sdp",
    "request_command",
    "response_command",
    "sdp_of",
]

#: A reply dictionary, keys as text.
NgReply = dict[str, BValue]

#: What Kamailio's rtpengine_manage() sends by default, plus what an edge relay needs:
#: the relay's address in ``o=`` and the session ``c=``, ICE candidates removed (they
#: would route media around the relay).
OFFER_OPTIONS: dict[str, Bencodable] = {
    "replace": ["origin", "session-connection"],
    "ICE": "remove",
}


def parse_relay_address(value: str) -> tuple[str, int]:
    """``udp:IP:PORT`` (or ``IP:PORT``) as rtpengine's ``rtpengine_sock`` names it.

    :class:`ValueError` with a message an operator can act on otherwise.
    """
    rest = value.strip()
    if rest.startswith("udp:"):
        rest = rest[4:]
    host, colon, port = rest.rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"media_relay {value!r}: expected udp:IP:PORT (e.g. udp:127.0.0.1:2223)")
    return host, int(port)


@dataclass(frozen=True, slots=True)
class NgCommand:
    """One ng request to make: the command and the dialog it names."""

    command: str  # offer, answer, delete
    call_id: str
    from_tag: str
    to_tag: str | None = None
    sdp: bytes | None = None

    def to_dict(self) -> dict[str, Bencodable]:
        """The request dictionary (rtpengine's ng keys)."""
        out: dict[str, Bencodable] = {"command": self.command, "call-id": self.call_id,
                                      "from-tag": self.from_tag}  # fmt: skip
        if self.to_tag:
            out["to-tag"] = self.to_tag
        if self.sdp is not None:
            out["sdp"] = self.sdp
        if self.command in ("offer", "answer"):
            out.update(OFFER_OPTIONS)
        return out


def sdp_of(message: Message) -> bytes | None:
    """The SDP body (RFC 3261 §20.15 ``application/sdp``), None without one."""
    if not message.body:
        return None
    try:
        kind = message.content_type
    except ParseError:
        return None
    return message.body if kind in (None, "application/sdp") else None


def _tags(message: Message) -> tuple[str, str | None] | None:
    """(From tag, To tag); None without a From tag or when they cannot be read."""
    try:
        from_tag = message.from_.tag
        to_tag = message.to.tag
        call_id = message.call_id
    except ParseError:
        return None
    if not from_tag or not call_id:
        return None
    return from_tag, to_tag


def request_command(request: Request) -> NgCommand | None:
    """What an INVITE, UPDATE, ACK, BYE or CANCEL asks of the relay; None for the rest."""
    method = request.method
    if method not in ("INVITE", "UPDATE", "ACK", "BYE", "CANCEL"):
        return None
    tags = _tags(request)
    if tags is None:
        return None
    from_tag, to_tag = tags
    call_id = request.call_id
    if method in ("BYE", "CANCEL"):
        return NgCommand("delete", call_id, from_tag)
    sdp = sdp_of(request)
    if sdp is None:
        return None
    command = "answer" if method == "ACK" else "offer"
    return NgCommand(command, call_id, from_tag, to_tag, sdp)


def response_command(response: Response, *, offer_sent: bool, initial: bool) -> NgCommand | None:
    """What a response to an INVITE asks of the relay.

    ``offer_sent``: the INVITE carried SDP (so SDP here is the answer);
    ``initial``: the INVITE had no To tag (its failure ends the call).
    """
    status = response.status
    tags = _tags(response)
    if tags is None or status < 101:
        return None
    from_tag, to_tag = tags
    if status >= 300:
        return NgCommand("delete", response.call_id, from_tag) if initial else None
    sdp = sdp_of(response)
    if sdp is None:
        return None
    command = "answer" if offer_sent else "offer"
    return NgCommand(command, response.call_id, from_tag, to_tag, sdp)


def replace_sdp(message: Message, sdp: bytes) -> None:
    """Put ``sdp`` in the body; Content-Length follows (§20.14)."""
    message.body = sdp
    message.set("content-length", str(len(sdp)))


def reply_sdp(reply: NgReply | None) -> bytes | None:
    """The SDP of an ``ok`` reply, None for an error or no reply."""
    if reply is None or reply.get("result") != b"ok":
        return None
    sdp = reply.get("sdp")
    return sdp if isinstance(sdp, bytes) and sdp else None


def reply_reason(reply: NgReply | None) -> str:
    """Why a reply is not ``ok`` (for the log)."""
    if reply is None:
        return "no reply"
    reason = reply.get("error-reason")
    result = reply.get("result")
    if isinstance(reason, bytes):
        return text(reason)
    return text(result) if isinstance(result, bytes) else "no result"


class NgCodec:
    """Cookies and datagrams of the client side (Kamailio sends ``<n>_<pid>_<seq>``)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._seq = itertools.count(1)

    def encode(self, command: NgCommand) -> tuple[bytes, bytes]:
        """(cookie, datagram) for a new request."""
        cookie = f"{self.prefix}_{next(self._seq)}".encode()
        return cookie, cookie + b" " + encode(command.to_dict())

    @staticmethod
    def decode(datagram: bytes) -> tuple[bytes, NgReply] | None:
        """(cookie, reply dictionary); None for a datagram that is not a reply."""
        try:
            cookie, payload = split_cookie(datagram)
            value = decode(payload)
        except (NgFrameError, BencodeError):
            return None
        if not isinstance(value, dict):
            return None
        return cookie, {text(k): v for k, v in value.items()}
