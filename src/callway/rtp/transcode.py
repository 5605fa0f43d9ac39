"""Rewrite RTP packets between legs: payload type renumbering and G.711 transcoding.

Two legs of a call may have agreed on different codecs (A-law on one, u-law
on the other) or different dynamic payload types for the same format (e.g.
``telephone-event`` as 101 and 96).  A :class:`Transcoder` is set per relay
direction; per packet it costs one byte lookup, and for the codec payload one
``bytes.translate`` (RFC 3550 §5.1: the payload type is the low 7 bits of
octet 1; the payload starts after the CSRC list and extension, and ends
before the padding).  Packets that are not RTP version 2 (STUN, RFC 7983)
or are RTCP multiplexed on the RTP port (RFC 5761 §4) pass unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping

from callway.rtp.g711 import ALAW_TO_ULAW, ULAW_TO_ALAW

__all__ = ["G711_PAYLOAD_TYPES", "Transcoder", "g711_transcoder"]

G711_PAYLOAD_TYPES = {"ulaw": 0, "alaw": 8}  # RFC 3551 table 4
_TABLES = {("ulaw", "alaw"): ULAW_TO_ALAW, ("alaw", "ulaw"): ALAW_TO_ULAW}


class Transcoder:
    """Rewrites one relay direction.

    Payloads of ``codec_pt`` go through ``table``; every payload type is
    renumbered through ``pt_map`` (the codec's own entry included).
    """

    __slots__ = ("codec_pt", "pt_table", "table")

    def __init__(
        self,
        *,
        codec_pt: int | None = None,
        table: bytes | None = None,
        pt_map: Mapping[int, int] | None = None,
    ) -> None:
        if table is not None and (len(table) != 256 or codec_pt is None):
            raise ValueError("a translation table needs 256 bytes and the codec_pt it applies to")
        mapping = dict(pt_map or {})
        self.pt_table = bytes(mapping.get(pt, pt) for pt in range(128))
        self.codec_pt = codec_pt if table is not None else None
        self.table = table if table is not None else bytes(range(256))

    def apply(self, data: bytes) -> bytes | bytearray:
        """Return the packet as it must leave on the other leg."""
        if len(data) < 12 or data[0] >> 6 != 2:
            return data
        second = data[1]
        pt = second & 0x7F
        if 64 <= pt <= 95:  # RTCP on the RTP port
            return data
        new_pt = self.pt_table[pt]
        if pt != self.codec_pt:
            if new_pt == pt:
                return data
            out = bytearray(data)
            out[1] = (second & 0x80) | new_pt
            return out
        return self._translate(data, (second & 0x80) | new_pt)

    def _translate(self, data: bytes, second: int) -> bytes | bytearray:
        first = data[0]
        offset = 12 + 4 * (first & 0x0F)
        if first & 0x10 and len(data) >= offset + 4:
            offset += 4 + 4 * int.from_bytes(data[offset + 2 : offset + 4], "big")
        end = len(data) - data[-1] if first & 0x20 else len(data)
        if end < offset:
            return data  # malformed: forward untouched rather than guess
        out = bytearray(data)
        out[1] = second
        out[offset:end] = data[offset:end].translate(self.table)
        return out


def g711_transcoder(
    source: str,
    target: str,
    *,
    source_pt: int | None = None,
    target_pt: int | None = None,
    pt_map: Mapping[int, int] | None = None,
) -> Transcoder:
    """A transcoder from one G.711 law to the other (Asterisk names ``ulaw``/``alaw``).

    ``source_pt``/``target_pt`` default to the static types 0 and 8; ``pt_map``
    renumbers other payload types, e.g. ``{101: 96}`` for telephone-event.
    """
    try:
        table = _TABLES[(source, target)]
    except KeyError:
        raise ValueError(f"no G.711 transcoding from {source!r} to {target!r}") from None
    src = G711_PAYLOAD_TYPES[source] if source_pt is None else source_pt
    dst = G711_PAYLOAD_TYPES[target] if target_pt is None else target_pt
    mapping = dict(pt_map or {})
    mapping[src] = dst
    return Transcoder(codec_pt=src, table=table, pt_map=mapping)
