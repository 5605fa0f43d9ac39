"""G.711 u-law/A-law tables against ITU-T G.711 reference values and formulas."""

from __future__ import annotations

import array
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callway.rtp import g711


def samples(*values: int) -> bytes:
    return array.array("h", values).tobytes()


def unpack(pcm: bytes) -> list[int]:
    return array.array("h", pcm).tolist()


# G.711 tables 2a/1a: codes at the ends of the range and around zero.
@pytest.mark.parametrize(
    ("code", "value"),
    [
        (0xFF, 0),  # u-law +0
        (0x7F, 0),  # u-law -0
        (0xFE, 8),
        (0x7E, -8),
        (0x80, 32124),  # largest positive
        (0x00, -32124),  # largest negative
        (0xF0, 120),  # top of segment 0: (15 * 8 + 0x84) - 0x84
        (0xEF, 132),  # bottom of segment 1: (0x84 << 1) - 0x84
    ],
)
def test_ulaw_reference_decodes(code: int, value: int) -> None:
    assert g711.ulaw_decode_sample(code) == value


@pytest.mark.parametrize(
    ("code", "value"),
    [
        (0xD5, 8),  # A-law smallest positive (even bits inverted: 0x80 ^ 0x55)
        (0x55, -8),
        (0xAA, 32256),  # largest positive: 0xFF ^ 0x55
        (0x2A, -32256),
        (0xC5, 264),  # segment 1 starts at 256 + half step
    ],
)
def test_alaw_reference_decodes(code: int, value: int) -> None:
    assert g711.alaw_decode_sample(code) == value


def test_encode_reference_values() -> None:
    assert g711.ulaw_encode_sample(0) == 0xFF
    assert g711.ulaw_encode_sample(-1) == 0x7E  # floors to -1 at 14 bits, decodes to -8
    assert g711.ulaw_encode_sample(3) == 0xFF
    assert g711.ulaw_encode_sample(32767) == 0x80
    assert g711.ulaw_encode_sample(-32768) == 0x00
    assert g711.alaw_encode_sample(0) == 0xD5
    assert g711.alaw_encode_sample(-1) == 0x55
    assert g711.alaw_encode_sample(32767) == 0xAA
    assert g711.alaw_encode_sample(-32768) == 0x2A


def test_every_code_survives_decode_then_encode() -> None:
    for code in range(256):
        assert g711.alaw_encode_sample(g711.alaw_decode_sample(code)) == code
        if code != 0x7F:  # u-law -0 decodes to 0, which encodes as +0
            assert g711.ulaw_encode_sample(g711.ulaw_decode_sample(code)) == code


def test_decoders_are_monotonic_by_segment() -> None:
    positive_ulaw = [g711.ulaw_decode_sample(code) for code in range(0xFF, 0x7F, -1)]
    assert positive_ulaw == sorted(positive_ulaw)
    positive_alaw = [g711.alaw_decode_sample(code ^ 0x55) for code in range(0x80, 0x100)]
    assert positive_alaw == sorted(positive_alaw)


def test_translation_tables_are_composed_reference_formulas() -> None:
    for code in range(256):
        assert g711.ULAW_TO_ALAW[code] == g711.alaw_encode_sample(g711.ulaw_decode_sample(code))
        assert g711.ALAW_TO_ULAW[code] == g711.ulaw_encode_sample(g711.alaw_decode_sample(code))


def test_transcoding_round_trip_is_close() -> None:
    for code in range(256):
        back = g711.alaw_to_ulaw(g711.ulaw_to_alaw(bytes([code])))[0]
        before = g711.ulaw_decode_sample(code)
        after = g711.ulaw_decode_sample(back)
        # Each law's step at that level bounds the error (G.711 tables 1 and 2).
        assert abs(after - before) <= max(abs(before) // 8, 16)


def test_payload_transcoding_uses_tables() -> None:
    payload = bytes(range(256)) * 2
    assert g711.ulaw_to_alaw(payload) == bytes(g711.ULAW_TO_ALAW[b] for b in payload)
    assert g711.alaw_to_ulaw(payload) == bytes(g711.ALAW_TO_ULAW[b] for b in payload)


def test_payload_decode_encode() -> None:
    codes = bytes(range(256))
    assert unpack(g711.ulaw_decode(codes)) == [g711.ulaw_decode_sample(c) for c in codes]
    assert unpack(g711.alaw_decode(codes)) == [g711.alaw_decode_sample(c) for c in codes]
    pcm = samples(-32768, -1000, -1, 0, 1, 1000, 32767)
    assert g711.ulaw_encode(pcm) == bytes(g711.ulaw_encode_sample(s) for s in unpack(pcm))
    assert g711.alaw_encode(pcm) == bytes(g711.alaw_encode_sample(s) for s in unpack(pcm))
    with pytest.raises(ValueError, match="whole 16-bit samples"):
        g711.ulaw_encode(b"\x00")


@given(st.lists(st.integers(-32768, 32767), max_size=64))
def test_encode_decode_error_is_within_one_step(values: list[int]) -> None:
    pcm = samples(*values)
    for decoded, original in zip(
        unpack(g711.ulaw_decode(g711.ulaw_encode(pcm))), values, strict=True
    ):
        assert abs(decoded - original) <= max(abs(original) // 16 + 4, 132)
    for decoded, original in zip(
        unpack(g711.alaw_decode(g711.alaw_encode(pcm))), values, strict=True
    ):
        assert abs(decoded - original) <= max(abs(original) // 16 + 8, 264)


def test_matches_audioop_where_available() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")  # removed in Python 3.13
    pcm = array.array("h", range(-32768, 32768)).tobytes()
    assert g711.ulaw_encode(pcm) == audioop.lin2ulaw(pcm, 2)
    assert g711.alaw_encode(pcm) == audioop.lin2alaw(pcm, 2)
    codes = bytes(range(256))
    assert g711.ulaw_decode(codes) == audioop.ulaw2lin(codes, 2)
    assert g711.alaw_decode(codes) == audioop.alaw2lin(codes, 2)
