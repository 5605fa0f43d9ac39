"""Property tests: each parser raises only its typed error, whatever the bytes.

For the SDP parser (``SdpError``), the STUN decoder (``StunError``), the
RTP/RTCP/RFC 4733 decoders (``RtpError``), the digest header parser
(``DigestError``) and the ``dispatcher.list`` / ``pjsip.conf`` /
``extensions.conf`` parsers (``ConfigError``): random bytes, valid inputs
mutated byte-wise, and valid inputs spliced with the tokens each grammar
cares about.  The checks themselves live in ``fuzz/targets.py`` and are
shared with the atheris targets, so a crash found by either reproduces here.

``CALLWAY_FUZZ_EXAMPLES`` raises the example count for a longer run.
"""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.targets import CHECKS, SEEDS

FUZZ = settings(
    max_examples=int(os.environ.get("CALLWAY_FUZZ_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _tokens(text: str) -> list[bytes]:
    """``|``-separated tokens (UTF-8; ``\\udcff`` stands for the byte 0xff)."""
    return [token.encode("utf-8", "surrogateescape") for token in text.split("|")]


# Tokens each grammar splits on or converts, plus values that break naive int()/float().
_TOKENS: dict[str, list[bytes]] = {
    "sdp": _tokens("\r\n|\n|=| |/|:|m=audio |a=rtpmap:|a=ptime:|a=rtcp:|c=IN IP4 |o=|inf|nan"
                   "|1e999|-1|65536|\u00b2|\u0663|\x00|\udcff"),
    "stun": [b"\x00\x01", b"\x01\x01", b"\x21\x12\xa4\x42", b"\x80\x28", b"\x00\x08",
             b"\x00\x20", b"\x00\x09", b"\x00\x0a", b"\xff\xff", b"\x00\x00"],
    "rtp": [b"\x80", b"\xa0", b"\x90", b"\xbf", b"\xc8", b"\xc9", b"\xff\xff", b"\x00\x00"],
    "digest": _tokens(',|=|"|\\| |\r\n |Digest |qop=|nc=|algorithm=|SHA-256-sess|MD5-sess'
                      "|\u00e9|\udcff"),
    "dispatcher": _tokens("\n| |\t|;|=|#|sip:|[|]|:|weight=|socket=|0x|-1|99999999999999999999"
                          "|\u00b2"),
    "pjsip": _tokens("\n|[|]|(|)|(!)|=|=>|;|;--|--;|#include |type=|endpoint|auth|aor|transport"
                     "|bind=|max_contacts=|-1|inf|\u00b2|\\"),
    "extensions": _tokens("\n|[|]|(!)|exten => |same => |,|n|(|)|_|X|-|.|!|hint|include => "
                          "|${|}|$[|\\|;|+|\u00b2"),
    "sip": _tokens('\r\n|: |;|,|<|>|"|SIP/2.0'),
}  # fmt: skip

_BYTE_FLIPS = b'\r\n \t:;,<>"\\@=?&%[]/.0123456789\x00\xff'
# Replacements for a number in a seed: what int()/float()/range checks trip on.
_NUMBERS = _tokens(
    "inf|-inf|nan|1e999|-1|0|65535|65536|4294967296|99999999999999999999|0x10"
    "|+1|1_0||\u00b2|\u0663|\uff11|99999999999999"
)
_DIGITS = re.compile(rb"[0-9]+")


@st.composite
def _mutated(draw: st.DrawFn, name: str) -> bytes:
    """A seed of ``name`` with a few insertions, deletions, flips and duplications."""
    data = bytearray(draw(st.sampled_from(SEEDS[name])))
    tokens = _TOKENS[name]
    for _ in range(draw(st.integers(1, 8))):
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        kind = draw(
            st.sampled_from(["flip", "delete", "insert", "token", "number", "duplicate", "cut"])
        )
        numbers = list(_DIGITS.finditer(data)) if kind == "number" else []
        if numbers:
            span = draw(st.sampled_from(numbers)).span()
            data[span[0] : span[1]] = draw(st.sampled_from(_NUMBERS))
        elif kind == "flip" and data:
            data[pos] = draw(st.sampled_from(_BYTE_FLIPS) | st.integers(0, 255))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 16))]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "token":
            data[pos:pos] = draw(st.sampled_from(tokens))
        elif kind == "duplicate":
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 64))]
        else:
            del data[pos:]
    return bytes(data)


@st.composite
def _spliced(draw: st.DrawFn, name: str) -> bytes:
    """A seed's prefix, then grammar tokens and short random bytes, then its suffix."""
    seed = draw(st.sampled_from(SEEDS[name]))
    cut = draw(st.integers(0, len(seed)))
    middle = draw(st.lists(st.sampled_from(_TOKENS[name]) | st.binary(max_size=4), max_size=16))
    return seed[:cut] + b"".join(middle) + seed[cut:]


@st.composite
def _renumbered(draw: st.DrawFn, name: str) -> bytes:
    """A seed with one to three of its numbers replaced by troublesome ones."""
    data = bytearray(draw(st.sampled_from(SEEDS[name])))
    for _ in range(draw(st.integers(1, 3))):
        numbers = list(_DIGITS.finditer(data))
        if not numbers:
            break
        start, end = draw(st.sampled_from(numbers)).span()
        data[start:end] = draw(st.sampled_from(_NUMBERS))
    return bytes(data)


NAMES = sorted(CHECKS)


@pytest.mark.parametrize("name", NAMES)
def test_seeds_are_valid(name: str) -> None:
    for seed in SEEDS[name]:
        CHECKS[name](seed)


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_random_bytes(name: str, data: st.DataObject) -> None:
    CHECKS[name](data.draw(st.binary(max_size=512)))


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_mutated_seeds(name: str, data: st.DataObject) -> None:
    CHECKS[name](data.draw(_mutated(name)))


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_renumbered_seeds(name: str, data: st.DataObject) -> None:
    CHECKS[name](data.draw(_renumbered(name)))


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_spliced_seeds(name: str, data: st.DataObject) -> None:
    CHECKS[name](data.draw(_spliced(name)))


@pytest.mark.parametrize("name", ["sdp", "digest", "dispatcher", "pjsip", "extensions"])
@FUZZ
@given(data=st.data())
def test_random_text(name: str, data: st.DataObject) -> None:
    CHECKS[name](data.draw(st.text(max_size=256)).encode("utf-8", "surrogatepass"))
