"""Bencode (BEP 3): round trips, canonical output, and typed errors for bad input."""

from __future__ import annotations

import contextlib
import random

import pytest

from callway.ng.bencode import MAX_DEPTH, BencodeError, BValue, decode, encode, text


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (0, b"i0e"),
        (-42, b"i-42e"),
        (2**70, b"i1180591620717411303424e"),
        (b"", b"0:"),
        (b"spam", b"4:spam"),
        ([], b"le"),
        ([b"a", 1, [b"b"]], b"l1:ai1el1:bee"),
        ({}, b"de"),
        ({b"cow": b"moo", b"spam": b"eggs"}, b"d3:cow3:moo4:spam4:eggse"),
    ],
)
def test_known_encodings_round_trip(value: BValue, wire: bytes) -> None:
    assert encode(value) == wire  # type: ignore[arg-type]
    assert decode(wire) == value


def test_str_is_utf8_and_keys_are_sorted() -> None:
    wire = encode({"sdp": "v=0\r\n", "command": "offer", "flags": ["trust-address"]})
    assert wire == b"d7:command5:offer5:flagsl13:trust-addresse3:sdp5:v=0\r\ne"
    assert encode("é") == b"2:\xc3\xa9"


def test_undecodable_bytes_survive_text_and_back() -> None:
    raw = b"tag-\xff\xfe"
    assert encode(text(raw)) == encode(raw)


def test_a_realistic_kamailio_offer_round_trips() -> None:
    offer: BValue = {
        b"command": b"offer",
        b"call-id": b"1-2566@127.0.0.1",
        b"from-tag": b"2566SIPpTag001",
        b"received-from": [b"IP4", b"127.0.0.1"],
        b"supports": [b"load limit"],
        b"sdp": b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n",
    }
    assert decode(encode(offer)) == offer  # type: ignore[arg-type]


def test_random_structures_round_trip() -> None:
    rng = random.Random(7)

    def make(depth: int) -> BValue:
        kind = rng.randrange(4 if depth < 5 else 2)
        if kind == 0:
            return rng.randrange(-(10**12), 10**12)
        if kind == 1:
            return rng.randbytes(rng.randrange(12))
        if kind == 2:
            return [make(depth + 1) for _ in range(rng.randrange(4))]
        return {
            rng.randbytes(rng.randrange(1, 6)): make(depth + 1) for _ in range(rng.randrange(4))
        }

    for _ in range(300):
        value = make(0)
        assert decode(encode(value)) == value  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        b"i",
        b"i12",
        b"ie",
        b"i-e",
        b"i-0e",
        b"i03e",
        b"i1.5e",
        b"i 1e",
        b"5:abc",
        b"05:abcde",
        b"3abc",
        b"-1:a",
        b"l",
        b"l1:a",
        b"d",
        b"d3:cow",
        b"di1e1:ae",
        b"d1:a1:b1:a1:ce",
        b"x",
        b"4:spamextra",
        b"lee",
        b"\xff",
    ],
)
def test_malformed_input_raises_a_typed_error(wire: bytes) -> None:
    with pytest.raises(BencodeError) as info:
        decode(wire)
    assert 0 <= info.value.offset <= len(wire)
    assert isinstance(info.value, ValueError)


def test_nesting_is_bounded_not_recursed_without_limit() -> None:
    deep = b"l" * (MAX_DEPTH + 1) + b"e" * (MAX_DEPTH + 1)
    with pytest.raises(BencodeError, match="nesting"):
        decode(deep)
    with pytest.raises(BencodeError):
        decode(b"l" * 100000)
    ok = b"l" * MAX_DEPTH + b"e" * MAX_DEPTH
    assert isinstance(decode(ok), list)


def test_random_garbage_never_raises_anything_but_bencode_error() -> None:
    rng = random.Random(11)
    seeds = [encode({"command": "offer", "sdp": "v=0", "flags": ["a", "b"], "n": 5})]
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(1, 4)):
            position = rng.randrange(len(data))
            data[position] = rng.choice(b"ilde:0123456789-x")
        cut = bytes(data[: rng.randrange(len(data) + 1)])
        for sample in (bytes(data), cut):
            with contextlib.suppress(BencodeError):
                decode(sample)


def test_encode_refuses_what_bencode_cannot_say() -> None:
    with pytest.raises(TypeError):
        encode(True)
    with pytest.raises(TypeError):
        encode(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        encode({1: b"x"})  # type: ignore[dict-item]
