"""Media of one call: the relay anchored at the PBX and the SDP each side saw.

Side ``a`` is the caller's leg, side ``b`` the callee's.  Each side's SDP
names the PBX's own relay port for that side (media is always anchored at
the PBX, as Asterisk does with ``direct_media=no``), and each side's remote
address comes from its SDP and is then latched (``rtp_symmetric``).
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from callway.media.ports import PortPool
from callway.media.relay import RelaySession
from callway.rtp.transcode import g711_transcoder
from callway.sdp.anchor import media_target
from callway.sdp.model import Direction, SessionDescription
from callway.sdp.negotiate import answer_offer, audio_format, make_offer
from callway.sdp.parse import format_sdp

log = logging.getLogger("callway.media")

_session_ids = itertools.count(secrets.randbelow(1 << 30))


@dataclass(slots=True)
class Side:
    """What one leg negotiated."""

    codecs: tuple[str, ...]
    local_host: str
    last_local: SessionDescription | None = None
    remote: SessionDescription | None = None
    session_id: int = field(default_factory=lambda: next(_session_ids))
    version: int = 0


class CallMedia:
    """A relay session plus offer/answer state for the two sides of a call."""

    def __init__(
        self,
        pool: PortPool,
        *,
        a_codecs: tuple[str, ...],
        a_host: str,
        symmetric: bool = True,
        rtp_timeout: float = 0.0,
        on_timeout: Callable[[RelaySession, str], None] | None = None,
    ) -> None:
        self.relay = RelaySession(
            pool, symmetric=symmetric, rtp_timeout=rtp_timeout, on_timeout=on_timeout
        )
        self.relay.start()
        self.sides = {"a": Side(a_codecs or ("ulaw", "alaw"), a_host)}

    def add_side_b(self, codecs: tuple[str, ...], host: str) -> None:
        """Describe the callee's side before offering to it."""
        self.sides["b"] = Side(codecs or ("ulaw", "alaw"), host)

    def _bump(self, side: Side, desc: SessionDescription) -> bytes:
        side.last_local = desc
        return format_sdp(desc)

    def answer(
        self, name: str, offer: SessionDescription, prefer: str | None = None
    ) -> bytes | None:
        """Our answer to ``offer`` from side ``name``; None means 488 (RFC 3264 §6)."""
        side = self.sides[name]
        codecs = side.codecs
        if prefer and prefer in codecs:
            codecs = (prefer, *(c for c in codecs if c != prefer))
        side.version += 1
        desc = answer_offer(
            offer,
            allowed_codecs=codecs,
            local_address=side.local_host,
            local_port=self.relay.leg(name).local_port,
            session_id=side.session_id,
            session_version=side.version,
        )
        if desc is None:
            return None
        side.remote = offer
        self._point(name, offer)
        return self._bump(side, desc)

    def offer(self, name: str, direction: Direction = Direction.SENDRECV) -> bytes:
        """Our (re-)offer to side ``name`` (RFC 3264 §5, §8)."""
        side = self.sides[name]
        desc = make_offer(
            allowed_codecs=side.codecs,
            local_address=side.local_host,
            local_port=self.relay.leg(name).local_port,
            session_id=side.session_id,
            session_version=side.version,
            previous=side.last_local,
            direction=direction,
        )
        side.version = desc.origin.session_version
        return self._bump(side, desc)

    def take_answer(self, name: str, answer: SessionDescription) -> None:
        """Side ``name`` answered our offer."""
        self.sides[name].remote = answer
        self._point(name, answer)

    def _point(self, name: str, desc: SessionDescription) -> None:
        target = media_target(desc)
        leg = self.relay.leg(name)
        if target is None:
            return
        leg.set_remote(target.rtp, target.rtcp)

    def codec(self, name: str) -> str | None:
        """The codec side ``name`` settled on (first of its remote's formats)."""
        remote = self.sides[name].remote if name in self.sides else None
        fmt = audio_format(remote) if remote is not None else None
        return fmt.codec.name if fmt is not None else None

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
        """Release the ports."""
        self.relay.close()
