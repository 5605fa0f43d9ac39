"""G.711 u-law and A-law (ITU-T G.711, RFC 3551 §4.5.14 PCMU/PCMA).

The per-sample functions are the reference formulas of G.711 (section 2,
tables 1a/1b and 2a/2b) for 16-bit linear samples: u-law encodes the top 14
bits with a bias of 33 (0x84 at 16-bit scale), A-law the top 13 bits with
segments 0 and 1 sharing one step size; decoding yields the segment
midpoints at 16-bit scale.  They build the tables once
at import; codec work on packets then runs inside C:

* ``ulaw_to_alaw`` / ``alaw_to_ulaw`` are one ``bytes.translate`` through a
  256-byte table (Asterisk transcodes the same way: encode(decode(x))).
* decoding to linear is two ``translate`` calls (low and high byte of each
  sample) interleaved by slice assignment;
* encoding from linear maps each 16-bit sample through a 64 KiB table with
  ``map`` over a ``memoryview`` (no Python bytecode per sample).

Linear PCM here is signed 16-bit in native byte order (``array('h')``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

__all__ = [
    "ALAW_TO_ULAW",
    "ULAW_TO_ALAW",
    "alaw_decode",
    "alaw_decode_sample",
    "alaw_encode",
    "alaw_encode_sample",
    "alaw_to_ulaw",
    "ulaw_decode",
    "ulaw_decode_sample",
    "ulaw_encode",
    "ulaw_encode_sample",
    "ulaw_to_alaw",
]

_ULAW_BIAS = 0x21  # 33 at 14-bit scale
_ULAW_CLIP = 8159
# Upper bound of each A-law segment at 13-bit scale (G.711 table 1a).
_ALAW_SEGMENT_END = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def ulaw_decode_sample(code: int) -> int:
    """Decode one u-law byte to a 16-bit linear sample (G.711 table 2a)."""
    code = ~code & 0xFF
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84  # 16-bit scale bias
    return -magnitude if code & 0x80 else magnitude


def ulaw_encode_sample(sample: int) -> int:
    """Encode one 16-bit linear sample to u-law (G.711 table 2a, 14-bit input)."""
    value = sample >> 2  # 14-bit scale, floor as in the G.711 reference code
    if value < 0:
        value = -value
        mask = 0x7F  # sign bit clear for negative values, then all bits inverted
    else:
        mask = 0xFF
    value = min(value, _ULAW_CLIP) + _ULAW_BIAS
    segment = value.bit_length() - 6
    if segment >= 8:
        return 0x7F ^ mask
    return ((segment << 4) | ((value >> (segment + 1)) & 0x0F)) ^ mask


def alaw_decode_sample(code: int) -> int:
    """Decode one A-law byte to a 16-bit linear sample (G.711 table 1b)."""
    code ^= 0x55
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    # Segment 0 has no implicit leading one; the others add it (0x100) and scale.
    step = (mantissa << 4) + (8 if exponent == 0 else 0x108)
    magnitude = step << max(exponent - 1, 0)
    return magnitude if code & 0x80 else -magnitude


def alaw_encode_sample(sample: int) -> int:
    """Encode one 16-bit linear sample to A-law (G.711 table 1a, even bits inverted)."""
    value = sample >> 3  # 13-bit scale
    if value >= 0:
        mask = 0xD5  # sign bit set for positive values, then the 0x55 inversion
    else:
        mask = 0x55
        value = -value - 1
    segment = 0
    while segment < 8 and value > _ALAW_SEGMENT_END[segment]:
        segment += 1
    if segment == 8:
        return 0x7F ^ mask
    shift = 1 if segment < 2 else segment
    return ((segment << 4) | ((value >> shift) & 0x0F)) ^ mask


def _translation(decode: Callable[[int], int], encode: Callable[[int], int]) -> bytes:
    return bytes(encode(decode(code)) for code in range(256))


ULAW_TO_ALAW: bytes = _translation(ulaw_decode_sample, alaw_encode_sample)
"""``bytes.translate`` table: u-law byte -> A-law byte."""

ALAW_TO_ULAW: bytes = _translation(alaw_decode_sample, ulaw_encode_sample)
"""``bytes.translate`` table: A-law byte -> u-law byte."""


def ulaw_to_alaw(payload: bytes) -> bytes:
    """Transcode a u-law payload to A-law."""
    return payload.translate(ULAW_TO_ALAW)


def alaw_to_ulaw(payload: bytes) -> bytes:
    """Transcode an A-law payload to u-law."""
    return payload.translate(ALAW_TO_ULAW)


def _byte_tables(decode: Callable[[int], int]) -> tuple[bytes, bytes]:
    low = bytes(decode(code) & 0xFF for code in range(256))
    high = bytes((decode(code) >> 8) & 0xFF for code in range(256))
    return (low, high) if sys.byteorder == "little" else (high, low)


def _encode_table(encode: Callable[[int], int]) -> bytes:
    # Indexed by the sample's unsigned 16-bit pattern (memoryview format "H").
    return bytes(encode(index - 0x10000 if index & 0x8000 else index) for index in range(0x10000))


_ULAW_FIRST, _ULAW_SECOND = _byte_tables(ulaw_decode_sample)
_ALAW_FIRST, _ALAW_SECOND = _byte_tables(alaw_decode_sample)
_ULAW_ENCODE = _encode_table(ulaw_encode_sample)
_ALAW_ENCODE = _encode_table(alaw_encode_sample)


def _decode(payload: bytes, first: bytes, second: bytes) -> bytes:
    out = bytearray(2 * len(payload))
    out[0::2] = payload.translate(first)
    out[1::2] = payload.translate(second)
    return bytes(out)


def _encode(pcm: bytes, table: bytes) -> bytes:
    if len(pcm) % 2:
        raise ValueError(f"linear PCM must hold whole 16-bit samples, got {len(pcm)} bytes")
    return bytes(map(table.__getitem__, memoryview(pcm).cast("B").cast("H")))


def ulaw_decode(payload: bytes) -> bytes:
    """Decode u-law bytes to signed 16-bit native-endian linear PCM."""
    return _decode(payload, _ULAW_FIRST, _ULAW_SECOND)


def alaw_decode(payload: bytes) -> bytes:
    """Decode A-law bytes to signed 16-bit native-endian linear PCM."""
    return _decode(payload, _ALAW_FIRST, _ALAW_SECOND)


def ulaw_encode(pcm: bytes) -> bytes:
    """Encode signed 16-bit native-endian linear PCM to u-law."""
    return _encode(pcm, _ULAW_ENCODE)


def alaw_encode(pcm: bytes) -> bytes:
    """Encode signed 16-bit native-endian linear PCM to A-law."""
    return _encode(pcm, _ALAW_ENCODE)
