"""RFC 3264 offer/answer for the PBX's audio streams.

Codecs go by their Asterisk names (``allow=ulaw,alaw`` in pjsip.conf).  The
answerer keeps the offerer's payload type numbers and order (RFC 3264 §6.1,
Asterisk's ``prefer: pending``), keeps ``telephone-event`` (RFC 4733 §7.1)
with its dynamic type and ``fmtp`` when the offer has it at the codec's
clock rate, accepts the first usable audio stream and rejects every other
stream with port 0 (RFC 3264 §6).  No usable audio stream means the caller
answers 488 Not Acceptable Here (RFC 3261 §21.4.26).

SRTP with SDES keys (RFC 4568) rides on the same calls: ``protos`` says which
transport protocols are acceptable (``RTP/SAVP`` for an SRTP endpoint), and a
``crypto`` callback picks the answer's ``a=crypto`` for a stream; a secure
profile stream without a usable one is not acceptable (RFC 4568 §7.1.2), a
plain one is answered plain.  The offer side takes the attributes to list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from callway.sdp.crypto import CryptoAttribute
from callway.sdp.model import (
    Attribute,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    RtpMap,
    SessionDescription,
)

__all__ = [
    "CODECS",
    "DEFAULT_EVENT_PT",
    "SECURE_PROTOS",
    "AudioFormat",
    "Codec",
    "CryptoChooser",
    "answer_offer",
    "audio_format",
    "find_codec",
    "make_offer",
]

TELEPHONE_EVENT = "telephone-event"
DEFAULT_EVENT_PT = 101  # Asterisk's and most phones' choice
DEFAULT_EVENT_FMTP = "0-16"  # DTMF digits and flash (RFC 4733 §3.2)
DEFAULT_PTIME = 20
AUDIO_PROTOS = ("RTP/AVP",)
SECURE_PROTOS = ("RTP/SAVP",)  # RFC 3711 §12

# Picks this side's a=crypto for an offered stream (RFC 4568 §7.1.1), or None.
CryptoChooser = Callable[[MediaDescription], CryptoAttribute | None]
_HOLD_ADDRESSES = frozenset({"0.0.0.0", "::"})


@dataclass(frozen=True, slots=True)
class Codec:
    """An audio codec by Asterisk name with its RTP format (RFC 3551 table 4)."""

    name: str
    encoding: str
    clock_rate: int
    payload_type: int

    @property
    def rtpmap(self) -> RtpMap:
        """The rtpmap for the static payload type."""
        return RtpMap(self.payload_type, self.encoding, self.clock_rate)


CODECS: dict[str, Codec] = {
    codec.name: codec
    for codec in (
        Codec("ulaw", "PCMU", 8000, 0),
        Codec("alaw", "PCMA", 8000, 8),
        Codec("gsm", "GSM", 8000, 3),
        # RFC 3551 §4.5.2: G.722 is signalled at 8000 though it samples at 16 kHz.
        Codec("g722", "G722", 8000, 9),
    )
}


def _codecs(names: Iterable[str]) -> list[Codec]:
    try:
        return [CODECS[name] for name in names]
    except KeyError as exc:
        raise ValueError(f"unknown codec {exc.args[0]!r}; known: {', '.join(CODECS)}") from None


def find_codec(
    media: MediaDescription, payload_type: int, allowed: Iterable[str] = CODECS
) -> Codec | None:
    """The allowed codec a payload type of ``media`` stands for, if any."""
    rtpmap = media.rtpmap(payload_type)
    if rtpmap is None:
        return None
    for codec in _codecs(allowed):
        if rtpmap.matches(codec.encoding, codec.clock_rate):
            return codec
    return None


def _event_type(media: MediaDescription, clock_rate: int) -> int | None:
    for pt in media.payload_types:
        rtpmap = media.rtpmaps.get(pt)
        if rtpmap is not None and rtpmap.matches(TELEPHONE_EVENT, clock_rate):
            return pt
    return None


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """What an SDP settles for its audio stream: the first codec, DTMF type, ptime."""

    index: int
    payload_type: int
    codec: Codec
    event_pt: int | None
    ptime: int | None
    direction: Direction


def audio_format(desc: SessionDescription) -> AudioFormat | None:
    """The first active audio stream's first known codec (RFC 3264 §6.1: the preferred one)."""
    for index, media in enumerate(desc.media):
        if media.media != "audio" or media.port == 0:
            continue
        for pt in media.payload_types:
            codec = find_codec(media, pt)
            if codec is not None:
                event_pt = _event_type(media, codec.clock_rate)
                return AudioFormat(
                    index, pt, codec, event_pt, media.ptime, desc.direction_for(media)
                )
    return None


def _offered_direction(offer: SessionDescription, media: MediaDescription) -> Direction:
    direction = offer.direction_for(media)
    connection = offer.connection_for(media)
    if connection is not None and connection.address in _HOLD_ADDRESSES:
        # RFC 3264 §8.4: c=0.0.0.0 is the old way of asking not to be sent media.
        direction = Direction.from_flags(direction.sends, False)
    return direction


def _audio_stream(
    port: int,
    proto: str,
    formats: list[tuple[RtpMap, str | None]],
    ptime: int | None,
    direction: Direction,
    crypto: Sequence[CryptoAttribute] = (),
) -> MediaDescription:
    media = MediaDescription("audio", port, proto, [str(r.payload_type) for r, _ in formats])
    for rtpmap, fmtp in formats:
        media.attributes.append(Attribute("rtpmap", str(rtpmap)))
        if fmtp is not None:
            media.attributes.append(Attribute("fmtp", f"{rtpmap.payload_type} {fmtp}"))
    for attribute in crypto:
        media.attributes.append(Attribute("crypto", str(attribute)))
    if ptime is not None:
        media.attributes.append(Attribute("ptime", str(ptime)))
    media.attributes.append(Attribute(direction.value))
    return media


def _rejected(media: MediaDescription) -> MediaDescription:
    return MediaDescription(media.media, 0, media.proto, list(media.formats) or ["0"])


def _session(
    username: str, session_id: str, version: int, address: str, name: str
) -> SessionDescription:
    connection = Connection.for_address(address)
    origin = Origin(username, session_id, version, address, addrtype=connection.addrtype)
    return SessionDescription(origin, name, connection)


def _answer_stream(
    offer: SessionDescription,
    media: MediaDescription,
    allowed: tuple[str, ...],
    local_port: int,
    direction: Direction,
    ptime: int | None,
    dtmf: bool,
    crypto: CryptoChooser | None,
) -> MediaDescription | None:
    chosen = [(pt, c) for pt in media.payload_types if (c := find_codec(media, pt, allowed))]
    if not chosen:
        return None
    keys = crypto(media) if crypto is not None else None
    if keys is None and "SAVP" in media.proto:
        return None  # RFC 4568 §7.1.2: no usable crypto attribute, no secure stream
    formats: list[tuple[RtpMap, str | None]] = [
        (RtpMap(pt, codec.encoding, codec.clock_rate), media.fmtp(pt)) for pt, codec in chosen
    ]
    event_pt = _event_type(media, chosen[0][1].clock_rate) if dtmf else None
    if event_pt is not None:
        event = RtpMap(event_pt, TELEPHONE_EVENT, chosen[0][1].clock_rate)
        formats.append((event, media.fmtp(event_pt)))
    answer_ptime = media.ptime or ptime
    if answer_ptime is not None and media.maxptime is not None:
        answer_ptime = min(answer_ptime, media.maxptime)  # RFC 8866 §6.5
    offered = _offered_direction(offer, media)
    answered = Direction.from_flags(
        offered.receives and direction.sends, offered.sends and direction.receives
    )
    return _audio_stream(
        local_port, media.proto, formats, answer_ptime, answered, () if keys is None else (keys,)
    )


def answer_offer(
    offer: SessionDescription,
    *,
    allowed_codecs: tuple[str, ...],
    local_address: str,
    local_port: int,
    session_id: int | str,
    session_version: int = 0,
    direction: Direction = Direction.SENDRECV,
    ptime: int | None = DEFAULT_PTIME,
    dtmf: bool = True,
    protos: tuple[str, ...] = AUDIO_PROTOS,
    crypto: CryptoChooser | None = None,
    username: str = "-",
    session_name: str = "callway",
) -> SessionDescription | None:
    """Answer ``offer`` (RFC 3264 §6), or None when no audio stream is acceptable (488).

    ``direction`` is what this side is willing to do (e.g. ``SENDONLY`` to put
    the peer on hold); the answer is its intersection with the offer's
    direction reversed (RFC 3264 §6.1).  ``ptime`` applies when the offer has
    none; the answer never exceeds the offer's ``maxptime``.  Only streams
    whose proto is in ``protos`` are accepted; ``crypto`` (called once the
    codecs fit) chooses the answer's ``a=crypto``, required on ``RTP/SAVP``.
    """
    answer = _session(username, str(session_id), session_version, local_address, session_name)
    accepted = False
    for media in offer.media:
        stream = None
        if not accepted and media.media == "audio" and media.port != 0 and media.proto in protos:
            stream = _answer_stream(
                offer, media, allowed_codecs, local_port, direction, ptime, dtmf, crypto
            )
        accepted = accepted or stream is not None
        answer.media.append(stream or _rejected(media))
    return answer if accepted else None


def make_offer(
    *,
    allowed_codecs: tuple[str, ...],
    local_address: str,
    local_port: int,
    session_id: int | str | None = None,
    session_version: int = 0,
    previous: SessionDescription | None = None,
    direction: Direction = Direction.SENDRECV,
    ptime: int | None = DEFAULT_PTIME,
    telephone_event_pt: int | None = DEFAULT_EVENT_PT,
    proto: str = AUDIO_PROTOS[0],
    crypto: Sequence[CryptoAttribute] = (),
    username: str = "-",
    session_name: str = "callway",
) -> SessionDescription:
    """An offer of one audio stream with the allowed codecs in order (RFC 3264 §5).

    With ``previous`` (this side's last offer or answer in the dialog) it is a
    re-offer: the origin keeps its username and session id, the version is
    the previous one plus one, and every earlier m-line keeps its position,
    the others rejected with port 0 (RFC 3264 §8).  ``crypto`` lists the
    ``a=crypto`` attributes of an SRTP offer (``proto="RTP/SAVP"``, RFC 4568 §5).
    """
    codecs = _codecs(allowed_codecs)
    if not codecs:
        raise ValueError("an offer needs at least one codec")
    formats: list[tuple[RtpMap, str | None]] = [(codec.rtpmap, None) for codec in codecs]
    if telephone_event_pt is not None:
        event = RtpMap(telephone_event_pt, TELEPHONE_EVENT, codecs[0].clock_rate)
        formats.append((event, DEFAULT_EVENT_FMTP))
    stream = _audio_stream(local_port, proto, formats, ptime, direction, crypto)
    if previous is None:
        if session_id is None:
            raise ValueError("a first offer needs a session_id")
        offer = _session(username, str(session_id), session_version, local_address, session_name)
        offer.media.append(stream)
        return offer
    origin = previous.origin
    offer = _session(
        origin.username, origin.session_id, origin.session_version + 1, local_address, session_name
    )
    offer.media = [_rejected(media) for media in previous.media]
    audio = [i for i, media in enumerate(previous.media) if media.media == "audio"]
    if audio:
        offer.media[audio[0]] = stream
    else:
        offer.media.append(stream)
    return offer
