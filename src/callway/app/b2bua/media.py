"""Media of one call: the relay anchored at the PBX and the SDP each side saw.

Side ``a`` is the caller's leg, side ``b`` the callee's.  Each side's SDP
names the PBX's own relay port for that side (media is always anchored at
the PBX, as Asterisk does with ``direct_media=no``), and each side's remote
address comes from its SDP and is then latched (``rtp_symmetric``).

Each side has its own media encryption (the endpoint's ``media_encryption``):
a side with ``sdes`` is offered ``RTP/SAVP`` with an ``a=crypto`` per suite
and only ``RTP/SAVP`` offers from it are accepted, answered with a key of
ours for the chosen suite and tag (RFC 4568 §7.1); a plain ``RTP/AVP`` offer
from it gets 488 and a plain answer is refused.  Until its keys are known the
relay blocks that leg, so an SRTP-mandatory phone never gets plain RTP.  A
side with ``no`` stays plain RTP; the relay bridges SRTP on one leg with
plain RTP (or other keys) on the other.  Keys are kept across re-offers and
repeated answers, so libsrtp's contexts (and rollover counters) survive them.
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from callway.media.ports import PortPool
from callway.media.relay import RelaySession
from callway.media.srtp import BlockedLeg, LegSrtp
from callway.rtp.transcode import g711_transcoder
from callway.sdp.anchor import media_target
from callway.sdp.crypto import DEFAULT_SUITES, CryptoAttribute, choose_crypto
from callway.sdp.errors import SdpError
from callway.sdp.model import Direction, MediaDescription, SessionDescription
from callway.sdp.negotiate import (
    AUDIO_PROTOS,
    SECURE_PROTOS,
    answer_offer,
    audio_format,
    make_offer,
)
from callway.sdp.parse import format_sdp

log = logging.getLogger("callway.media")

_session_ids = itertools.count(secrets.randbelow(1 << 30))


@dataclass(slots=True)
class Side:
    """What one leg negotiated."""

    codecs: tuple[str, ...]
    local_host: str
    encryption: str = "no"  # the endpoint's media_encryption: no, sdes (dtls is taken as sdes)
    last_local: SessionDescription | None = None
    remote: SessionDescription | None = None
    session_id: int = field(default_factory=lambda: next(_session_ids))
    version: int = 0
    offered: list[CryptoAttribute] = field(default_factory=list)  # our last offer's keys
    srtp: LegSrtp | None = None  # the keys in use on this leg
    last_body: bytes = b""  # last_local as sent
    # (offer, codec order) that last_local answers: the same answer is given again as is
    answered: tuple[SessionDescription, tuple[str, ...]] | None = None
    # (remote, its codec): what codec() found for that remote
    remote_codec: tuple[SessionDescription, str | None] | None = None

    @property
    def secure(self) -> bool:
        """SRTP is mandatory on this side."""
        return self.encryption != "no"

    @property
    def protos(self) -> tuple[str, ...]:
        """The transport protocols acceptable in an offer from this side."""
        return SECURE_PROTOS if self.secure else AUDIO_PROTOS


class CallMedia:
    """A relay session plus offer/answer state for the two sides of a call."""

    def __init__(
        self,
        pool: PortPool,
        *,
        a_codecs: tuple[str, ...],
        a_host: str,
        a_encryption: str = "no",
        a_tos: int = 0,
        symmetric: bool = True,
        rtp_timeout: float = 0.0,
        rtp_timeout_hold: float = 0.0,
        on_timeout: Callable[[RelaySession, str], None] | None = None,
    ) -> None:
        self.relay = RelaySession(
            pool, symmetric=symmetric, rtp_timeout=rtp_timeout, on_timeout=on_timeout
        )
        self.rtp_timeouts = (rtp_timeout, rtp_timeout_hold)  # off hold, on hold
        self.held = False
        self.relay.start()
        self.sides: dict[str, Side] = {}
        self._add_side("a", Side(a_codecs or ("ulaw", "alaw"), a_host, a_encryption), a_tos)

    def set_held(self, held: bool) -> None:
        """The call went on hold (a re-offer not ``sendrecv``) or off it.

        On hold the phones may send no RTP at all (RFC 3264 §8.4): Asterisk's
        ``rtp_timeout_hold`` applies instead of ``rtp_timeout`` (0: none).
        """
        if held != self.held:
            self.held = held
            self.relay.set_rtp_timeout(self.rtp_timeouts[held])

    def add_side_b(
        self, codecs: tuple[str, ...], host: str, encryption: str = "no", tos: int = 0
    ) -> None:
        """Describe the callee's side before offering to it (``tos``: its ``tos_audio``)."""
        self._add_side("b", Side(codecs or ("ulaw", "alaw"), host, encryption), tos)

    def _add_side(self, name: str, side: Side, tos: int) -> None:
        self.relay.mark(name, tos)  # the endpoint's tos_audio (a reused pair is reset to 0)
        if side.encryption == "dtls":
            log.warning("DTLS-SRTP is not supported: leg %s gets SDES-SRTP", name)
        self.sides[name] = side
        self.relay.set_srtp(name, BlockedLeg() if side.secure else None)

    def _bump(self, side: Side, desc: SessionDescription) -> bytes:
        side.last_local = desc
        side.answered = None
        side.last_body = format_sdp(desc)
        return side.last_body

    def answer(
        self, name: str, offer: SessionDescription, prefer: str | None = None
    ) -> bytes | None:
        """Our answer to ``offer`` from side ``name``; None means 488 (RFC 3264 §6).

        Answering the same offer again with the same codec order (the channel
        checks the offer at once, and answers it when the callee answered)
        repeats the previous answer, version included: the session did not
        change (RFC 3264 §8); the relay keeps what it latched meanwhile.
        """
        side = self.sides[name]
        codecs = side.codecs
        if prefer and prefer in codecs:
            codecs = (prefer, *(c for c in codecs if c != prefer))
        answered = side.answered
        if answered is not None and answered[0] is offer and answered[1] == codecs:
            return side.last_body  # the relay already points where this offer says
        side.version += 1
        chosen: list[tuple[CryptoAttribute, CryptoAttribute]] = []

        def choose(media: MediaDescription) -> CryptoAttribute | None:
            remote = choose_crypto(media.crypto)
            if remote is None:
                return None
            local = self._our_key(side, remote.suite, remote.tag)
            chosen.append((local, remote))
            return local

        desc = answer_offer(
            offer,
            allowed_codecs=codecs,
            local_address=side.local_host,
            local_port=self.relay.leg(name).local_port,
            session_id=side.session_id,
            session_version=side.version,
            protos=side.protos,
            crypto=choose if side.secure else None,
        )
        if desc is None:
            return None
        side.remote = offer
        if side.secure:
            self._key(name, *chosen[-1])
        self._point(name, offer)
        body = self._bump(side, desc)
        if not side.secure:  # SRTP answers pick keys each time: never repeated as is
            side.answered = (offer, codecs)
        return body

    def _our_key(self, side: Side, suite: str, tag: int) -> CryptoAttribute:
        """Our key for ``suite``: the one in use or last offered, else a fresh one."""
        for known in (side.srtp.local,) if side.srtp else ():
            if known.suite == suite:
                return CryptoAttribute(tag, suite, known.keys)
        for known in side.offered:
            if known.suite == suite:
                return CryptoAttribute(tag, suite, known.keys)
        return CryptoAttribute.generate(tag, suite)

    def _key(self, name: str, local: CryptoAttribute, remote: CryptoAttribute) -> None:
        side = self.sides[name]
        if side.srtp is not None and side.srtp.same_keys(local, remote):
            return
        side.srtp = LegSrtp(local, remote, previous=side.srtp)
        self.relay.set_srtp(name, side.srtp)
        log.info("leg %s: SRTP %s (tag %d)", name, local.suite, local.tag)

    def offer(self, name: str, direction: Direction = Direction.SENDRECV) -> bytes:
        """Our (re-)offer to side ``name`` (RFC 3264 §5, §8)."""
        side = self.sides[name]
        if side.secure:
            side.offered = [
                self._our_key(side, suite, tag) for tag, suite in enumerate(DEFAULT_SUITES, 1)
            ]
        desc = make_offer(
            allowed_codecs=side.codecs,
            local_address=side.local_host,
            local_port=self.relay.leg(name).local_port,
            session_id=side.session_id,
            session_version=side.version,
            previous=side.last_local,
            direction=direction,
            proto=side.protos[0],
            crypto=side.offered if side.secure else (),
        )
        side.version = desc.origin.session_version
        return self._bump(side, desc)

    def take_answer(self, name: str, answer: SessionDescription) -> None:
        """Side ``name`` answered our offer; SdpError if the answer is unusable.

        An SRTP side must answer ``RTP/SAVP`` with one of our offered tags and
        suites (RFC 4568 §7.1.2, §7.2), or the answer is refused.
        """
        side = self.sides[name]
        if side.secure:
            self._key(name, *self._answered_keys(side, answer))
        side.remote = answer
        self._point(name, answer)

    def _answered_keys(
        self, side: Side, answer: SessionDescription
    ) -> tuple[CryptoAttribute, CryptoAttribute]:
        fmt = audio_format(answer)
        if fmt is None:
            raise SdpError("the answer has no active audio stream")
        media = answer.media[fmt.index]
        if media.proto not in SECURE_PROTOS:
            raise SdpError(f"SRTP is required but the answer has {media.proto}")
        for value in media.crypto:
            try:
                remote = CryptoAttribute.parse(value)
            except SdpError:
                continue
            for local in side.offered:
                if local.answered_with(remote) and remote.usable():
                    return local, remote
        raise SdpError("the answer has no crypto attribute matching the offer")

    def _point(self, name: str, desc: SessionDescription) -> None:
        target = media_target(desc)
        leg = self.relay.leg(name)
        if target is None:
            return
        leg.set_remote(target.rtp, target.rtcp)

    def codec(self, name: str) -> str | None:
        """The codec side ``name`` settled on (first of its remote's formats)."""
        side = self.sides.get(name)
        remote = side.remote if side is not None else None
        if remote is None or side is None:
            return None
        known = side.remote_codec
        if known is not None and known[0] is remote:
            return known[1]
        fmt = audio_format(remote)
        codec = fmt.codec.name if fmt is not None else None
        side.remote_codec = (remote, codec)
        return codec

    def bridge(self) -> None:
        """Set up ulaw<->alaw transcoding when the two sides disagree."""
        codec_a, codec_b = self.codec("a"), self.codec("b")
        if codec_a and codec_b and codec_a != codec_b:
            log.info("transcoding %s <-> %s", codec_a, codec_b)
            self.relay.set_transcoding(
                g711_transcoder(codec_a, codec_b), g711_transcoder(codec_b, codec_a)
            )
        else:
            self.relay.set_transcoding(None, None)

    def echo(self) -> None:
        """Send side a's audio back to it (Echo()): b's remote is b's own port."""
        leg_b = self.relay.leg("b")
        host = self.sides["a"].local_host
        leg_b.set_remote((host, leg_b.local_port), (host, leg_b.local_rtcp_port))

    def close(self) -> None:
        """Release the ports and the timeout handler (it refers back to the channel)."""
        self.relay.close()
        self.relay.on_timeout = None
