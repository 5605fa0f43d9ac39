"""The ng command handler: rtpengine's control protocol over callway's relay, sans-I/O.

:meth:`NgEngine.receive` takes one control datagram and returns the reply
datagram (or None when there is no cookie to answer under).  The engine
keeps the calls (:mod:`callway.ng.calls`), the cookie cache
(:mod:`callway.ng.cache`), and opens relayed streams through the factory
it was given (:mod:`callway.ng.media`); it reads no clock and touches no
socket: the caller passes ``now`` and calls :meth:`NgEngine.expire` now and
then (every second) for the media timeout and delayed deletes.

Commands (rtpengine's ``ng_control_protocol``):

* ``ping``: ``{"result": "pong"}``; Kamailio marks a relay usable by it.
* ``offer`` (``call-id``, ``from-tag``, ``sdp``): opens a stream per media
  line the relay can carry (RTP or UDPTL over UDP, port not 0), points the
  offerer's leg at the address of its SDP, and returns the SDP with every
  ``c=`` moved to the relay's address and each relayed ``m=`` port (and
  ``a=rtcp``) replaced by the other leg's port.  ICE attributes of relayed
  streams are removed: their candidates would route media around the relay
  (rtpengine's ``ICE=remove``).  The ``o=`` address changes only with
  ``replace: [origin]``.  ``flags: [SIP-source-address]`` sends to the
  address the SIP message came from (``received-from``) instead of the
  SDP's (``media-address`` likewise).  A re-offer from either tag updates
  the same dialog.  Packets are forwarded as they came, so a
  ``transport-protocol`` change (RTP to SRTP...) is refused, and ``codec``
  options are ignored with a ``warning``.
* ``answer`` (``call-id``, ``from-tag``, ``to-tag``, ``sdp``): the SDP is
  the answerer's (the ``to-tag``); its leg is pointed at it, and it goes
  back to the offerer with the offerer-facing ports.
* ``delete`` (``call-id``[, ``from-tag``[, ``to-tag``]]): closes the named
  dialogs (all of the call without a tag) and frees their ports; with
  ``delete-delay`` seconds it happens that much later.  The reply carries
  the call's statistics, as ``query`` does.
* ``query`` (``call-id``): per tag and stream, the relay's port, where the
  party is, packets and bytes received; ``totals``.
* ``list`` (``limit``, default 32): the Call-IDs held.

Unknown keys are ignored; unknown commands get ``Unrecognized command``.
Timestamps in replies (``created``, ``last signal``, ``last packet``) are
on the clock the caller passes as ``now``.
"""

from __future__ import annotations

from collections.abc import Callable

from callway.ng.bencode import Bencodable
from callway.ng.cache import ReplyCache
from callway.ng.calls import Call, Dialog, Stream
from callway.ng.media import (
    LEGS,
    LegCounters,
    LegName,
    MediaFactory,
    OutOfPortsError,
    other_leg,
)
from callway.ng.protocol import (
    NgError,
    NgFrameError,
    Reply,
    Request,
    error_reply,
    format_reply,
    parse_request,
    split_cookie,
)
from callway.sdp import (
    MediaDescription,
    SdpError,
    SessionDescription,
    format_sdp,
    media_target,
    parse_sdp,
    rewrite_connection,
)

__all__ = ["DEFAULT_LIST_LIMIT", "DEFAULT_TIMEOUT", "NgEngine"]

DEFAULT_TIMEOUT = 60.0  # seconds without media before a call is deleted (rtpengine --timeout)
DEFAULT_LIST_LIMIT = 32
OUT_OF_PORTS = "Ran out of ports"  # the text Kamailio's module looks for to try another relay
UNKNOWN_CALL = "Unknown call-id"  # rtpengine's words
NOT_FOUND = "Call-ID not found or tags didn't match"

# ICE (RFC 8839 §5): attributes that would let the parties bypass the relay.
_ICE_ATTRIBUTES = frozenset(
    {
        "candidate",
        "remote-candidates",
        "end-of-candidates",
        "ice-ufrag",
        "ice-pwd",
        "ice-options",
        "ice-lite",
        "ice-mismatch",
        "ice-pacing",
    }
)


def relayable(media: MediaDescription) -> bool:
    """A stream over UDP the relay can carry: an RTP profile or UDPTL (T.38), port not 0."""
    proto = media.proto.upper()
    return media.port != 0 and ("RTP" in proto or proto == "UDPTL") and not proto.startswith("TCP")


class NgEngine:
    """Calls, cookie cache and command dispatch of one ng-speaking media relay."""

    def __init__(
        self,
        open_media: MediaFactory,
        advertise: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        cache: ReplyCache | None = None,
    ) -> None:
        self.open_media = open_media
        self.advertise = advertise
        self.timeout = timeout
        self.cache = cache if cache is not None else ReplyCache()
        self.calls: dict[str, Call] = {}
        self.dropped = 0  # datagrams without a cookie
        self.commands: dict[str, int] = {}
        # Told of each request carried out and its reply (the shell logs them).
        self.observer: Callable[[Request, Reply], None] | None = None
        self._handlers: dict[str, Callable[[Request, float], Reply]] = {
            "ping": self._ping,
            "offer": self._offer,
            "answer": self._answer,
            "delete": self._delete,
            "query": self._query,
            "list": self._list,
        }

    # -- datagrams ------------------------------------------------------------
    def receive(self, datagram: bytes, now: float) -> bytes | None:
        """The reply to one control datagram (the cached one for a repeated cookie)."""
        try:
            cookie, payload = split_cookie(datagram)
        except NgFrameError:
            self.dropped += 1
            return None
        cached = self.cache.get(cookie, now)
        if cached is not None:
            return cached
        try:
            request = parse_request(payload)
        except NgError as exc:
            reply = error_reply(exc.reason)
        else:
            try:
                reply = self.execute(request, now)
            except NgError as exc:
                reply = error_reply(exc.reason)
            if self.observer is not None:
                self.observer(request, reply)
        data = format_reply(cookie, reply)
        self.cache.put(cookie, data, now)
        return data

    def execute(self, request: Request, now: float) -> Reply:
        """Carry out one request; :class:`NgError` says why it could not be."""
        handler = self._handlers.get(request.command)
        if handler is None:
            raise NgError("Unrecognized command")
        self.commands[request.command] = self.commands.get(request.command, 0) + 1
        return handler(request, now)

    # -- time -----------------------------------------------------------------
    def expire(self, now: float) -> list[str]:
        """Delete dialogs silent for ``timeout`` seconds and due delayed deletes.

        Returns the Call-IDs deleted entirely.
        """
        gone: list[str] = []
        for call in list(self.calls.values()):
            if call.delete_at is not None and now >= call.delete_at:
                call.close()
            elif self.timeout > 0:
                for dialog in list(call.dialogs):
                    if now - dialog.last_activity() >= self.timeout:
                        call.remove(dialog)
            if not call.dialogs:
                del self.calls[call.call_id]
                gone.append(call.call_id)
        return gone

    def close(self) -> None:
        """Delete every call (the relay is stopping)."""
        for call in self.calls.values():
            call.close()
        self.calls.clear()

    @property
    def streams(self) -> int:
        """Relayed streams held by all calls (each holds two port pairs)."""
        return sum(call.streams for call in self.calls.values())

    # -- commands -------------------------------------------------------------
    def _ping(self, request: Request, now: float) -> Reply:
        return {"result": "pong"}

    def _offer(self, request: Request, now: float) -> Reply:
        call_id, from_tag = request.need_call_id(), request.need_from_tag()
        desc = _parse(request.need_sdp())
        call = self.calls.get(call_id) or Call(call_id, now, now)
        found = call.offer_dialog(from_tag, request.to_tag)
        dialog, side = found or (Dialog(from_tag, request.to_tag, now, now), "a")
        try:
            out = self._relay(dialog, side, desc, request, allocate=True)
        except OutOfPortsError:
            if found is None:
                dialog.close()
            raise NgError(OUT_OF_PORTS) from None
        if found is None:
            call.dialogs.append(dialog)
        self.calls[call_id] = call
        call.last_signal = dialog.last_signal = now
        call.delete_at = None
        return self._sdp_reply(out, request)

    def _answer(self, request: Request, now: float) -> Reply:
        call_id, from_tag = request.need_call_id(), request.need_from_tag()
        desc = _parse(request.need_sdp())
        call = self.calls.get(call_id)
        found = call.answer_dialog(from_tag, request.to_tag) if call is not None else None
        if call is None or found is None:
            raise NgError(UNKNOWN_CALL)
        dialog, side = found
        if side == "b" and request.to_tag:
            dialog.tag_b = request.to_tag  # the first answer, or a fork taking over
        out = self._relay(dialog, side, desc, request, allocate=False)
        dialog.answered = True
        call.last_signal = dialog.last_signal = now
        return self._sdp_reply(out, request)

    def _delete(self, request: Request, now: float) -> Reply:
        """Close the named dialogs; nothing to delete is a warning, not an error.

        As rtpengine does: a BYE after the media timeout, or a second BYE,
        is not the proxy's mistake.
        """
        call = self.calls.get(request.need_call_id())
        dialogs = call.tagged(request.from_tag, request.to_tag) if call and request.from_tag else []
        if call is None or (request.from_tag and not dialogs):
            return {"result": "ok", "warning": NOT_FOUND}
        reply = self._statistics(call)
        delay = request.delete_delay
        if delay is not None and delay > 0:
            call.delete_at = now + delay
            return reply
        if request.from_tag:
            for dialog in dialogs:
                call.remove(dialog)
        else:
            call.close()
        if not call.dialogs:
            del self.calls[call.call_id]
        return reply

    def _query(self, request: Request, now: float) -> Reply:
        return self._statistics(self._call(request))

    def _list(self, request: Request, now: float) -> Reply:
        limit = request.limit if request.limit is not None else DEFAULT_LIST_LIMIT
        calls: list[Bencodable] = [call_id for call_id in list(self.calls)[: max(limit, 0)]]
        return {"result": "ok", "calls": calls}

    def _call(self, request: Request) -> Call:
        call = self.calls.get(request.need_call_id())
        if call is None:
            raise NgError(UNKNOWN_CALL)
        return call

    # -- SDP ------------------------------------------------------------------
    def _relay(
        self,
        dialog: Dialog,
        side: LegName,
        desc: SessionDescription,
        request: Request,
        *,
        allocate: bool,
    ) -> SessionDescription:
        """Point ``side``'s legs at ``desc`` and return it rewritten to the other legs' ports.

        ``allocate`` (an offer) opens a stream for each new relayable line;
        an answer only uses the streams its offer opened.  A line with port
        0 (rejected, RFC 3264 §6) closes its stream.
        """
        out = desc
        other = other_leg(side)
        relayed: set[int] = set()
        _check_transport(desc, request)
        for index, media in enumerate(desc.media):
            stream = dialog.streams.get(index)
            if media.port == 0 and stream is not None:
                stream.close()
                del dialog.streams[index]
                continue
            if not relayable(media) or (stream is None and not allocate):
                continue
            if stream is None:
                stream = Stream(index, self.open_media(), media.media, media.proto)
                dialog.streams[index] = stream
            rtp, rtcp = _remote(desc, index, request)
            stream.media.leg(side).set_remote(rtp, rtcp)
            stream.signalled[side] = rtp
            port = stream.media.leg(other).local_port
            out = rewrite_connection(out, self.advertise, port, index=index)
            relayed.add(index)
        if not relayed:
            return desc
        return _finish(desc, out, relayed, request)

    def _sdp_reply(self, desc: SessionDescription, request: Request) -> Reply:
        reply: Reply = {"result": "ok", "sdp": format_sdp(desc)}
        if request.ice in ("force", "force-relay"):
            reply["warning"] = "ICE is not supported: candidates were removed"
        elif b"codec" in request.raw:
            reply["warning"] = "codec options are not supported: codecs were left as offered"
        return reply

    # -- statistics -----------------------------------------------------------
    def _statistics(self, call: Call) -> Reply:
        tags: dict[str, Bencodable] = {}
        totals = {"rtp_packets": 0, "rtp_bytes": 0, "rtcp_packets": 0, "errors": 0}
        for dialog in call.dialogs:
            for side in LEGS:
                tag = dialog.tag(side)
                key = tag if tag is not None else f"<untagged {len(tags) + 1}>"
                tags[key] = self._tag_entry(dialog, side, tag or "", totals)
        return {
            "result": "ok",
            "created": int(call.created),
            "last signal": int(call.last_signal),
            "tags": tags,
            "totals": {
                "RTP": {
                    "packets": totals["rtp_packets"],
                    "bytes": totals["rtp_bytes"],
                    "errors": totals["errors"],
                },
                "RTCP": {"packets": totals["rtcp_packets"], "bytes": 0, "errors": 0},
            },
        }

    def _tag_entry(
        self, dialog: Dialog, side: LegName, tag: str, totals: dict[str, int]
    ) -> dict[str, Bencodable]:
        medias: list[Bencodable] = []
        for index in sorted(dialog.streams):
            stream = dialog.streams[index]
            counters = stream.media.counters(side)
            totals["rtp_packets"] += counters.packets_in
            totals["rtp_bytes"] += counters.bytes_in
            totals["rtcp_packets"] += counters.rtcp_packets_in
            totals["errors"] += counters.errors
            medias.append(
                {
                    "index": index + 1,
                    "type": stream.kind,
                    "protocol": stream.proto,
                    "streams": [self._stream_entry(stream, side, counters)],
                }
            )
        entry: dict[str, Bencodable] = {
            "tag": tag,
            "created": int(dialog.created),
            "medias": medias,
        }
        entry["in dialogue with"] = dialog.tag(other_leg(side)) or ""
        return entry

    def _stream_entry(
        self, stream: Stream, side: LegName, counters: LegCounters
    ) -> dict[str, Bencodable]:
        entry: dict[str, Bencodable] = {
            "local address": self.advertise,
            "local port": stream.media.leg(side).local_port,
            "stats": {
                "packets": counters.packets_in,
                "bytes": counters.bytes_in,
                "errors": counters.errors,
                "packets sent": counters.packets_out,
                "bytes sent": counters.bytes_out,
            },
        }
        if counters.remote is not None:
            entry["endpoint"] = _endpoint(counters.remote)
        signalled = stream.signalled.get(side)
        if signalled is not None:
            entry["advertised endpoint"] = _endpoint(signalled)
        if counters.last_packet is not None:
            entry["last packet"] = int(counters.last_packet)
        return entry


def _parse(sdp: bytes) -> SessionDescription:
    try:
        return parse_sdp(sdp)
    except SdpError as exc:
        raise NgError(f"Failed to parse SDP: {exc}") from None


def _remote(
    desc: SessionDescription, index: int, request: Request
) -> tuple[tuple[str, int] | None, tuple[str, int] | None]:
    """Where the party of stream ``index`` receives RTP and RTCP (None: hold, RFC 3264 §8.4)."""
    target = media_target(desc, index)
    if target is None or target.rtp is None:
        return None, None
    rtp, rtcp = target.rtp, target.rtcp
    host = request.media_address
    if "sip-source-address" in request.flags and request.received_from is not None:
        host = request.received_from[1]
    if host:
        rtp = (host, rtp[1])
        rtcp = (host, rtcp[1]) if rtcp is not None else None
    return rtp, rtcp


def _check_transport(desc: SessionDescription, request: Request) -> None:
    """Refuse a ``transport-protocol`` change (RTP <-> SRTP, AVP <-> AVPF): the relay
    forwards packets as they come, so the SDP must keep the profile it has."""
    wanted = request.transport_protocol
    if wanted is None:
        return
    for media in desc.media:
        if relayable(media) and media.proto.upper() != wanted.upper():
            raise NgError(f"Unsupported transport-protocol change {media.proto} -> {wanted}")


def _finish(
    original: SessionDescription,
    out: SessionDescription,
    relayed: set[int],
    request: Request,
) -> SessionDescription:
    """Undo what the rewrite should not have changed; drop ICE from relayed streams.

    Streams the relay does not carry keep their own address, and ``o=``
    keeps the offerer's unless ``replace`` names ``origin``.
    """
    if "origin" not in request.replace:
        out.origin = original.origin
    for index, media in enumerate(out.media):
        if index in relayed:
            _strip_ice(media)
        elif media.port != 0:
            media.connection = original.connection_for(original.media[index])
    _strip_ice(out)
    return out


def _strip_ice(section: SessionDescription | MediaDescription) -> None:
    for name in _ICE_ATTRIBUTES:
        section.remove(name)


def _endpoint(address: tuple[str, int]) -> dict[str, Bencodable]:
    family = "IPv6" if ":" in address[0] else "IPv4"
    return {"family": family, "address": address[0], "port": address[1]}
