"""RFC 4568 ``a=crypto``: parse/format, key generation, choice, and SRTP offer/answer."""

from __future__ import annotations

import base64

import pytest

from callway.sdp import answer_offer, format_sdp, make_offer, parse_sdp
from callway.sdp.crypto import (
    SUITES,
    CryptoAttribute,
    KeyParams,
    choose_crypto,
    offer_cryptos,
)
from callway.sdp.errors import SdpError
from callway.sdp.model import MediaDescription

# RFC 4568 §9.1's example and the shapes baresip and pjsua send.
RFC_EXAMPLE = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4"
BARESIP = "1 AES_CM_128_HMAC_SHA1_80 inline:9VMDCDwd1nv7e9Rb0ZzH9OudyA07DWvvbuu4DIuM"
PJSUA = "2 AES_CM_128_HMAC_SHA1_32 inline:7cNoyxmF5AVB7UQXAHhN0xZcHkRHSi7ay20+ztOW"


def crlf(text: str) -> bytes:
    return text.strip("\n").replace("\n", "\r\n").encode() + b"\r\n"


def test_parses_rfc_example_with_lifetime_and_mki() -> None:
    crypto = CryptoAttribute.parse(RFC_EXAMPLE)
    assert crypto.tag == 1
    assert crypto.suite == "AES_CM_128_HMAC_SHA1_80"
    (key,) = crypto.keys
    assert len(key.key_salt) == 30
    assert key.lifetime == 1 << 20
    assert key.mki == (1, 4)
    assert str(crypto) == RFC_EXAMPLE  # written back exactly as read
    assert not crypto.usable()  # MKI is not supported


@pytest.mark.parametrize("value", [BARESIP, PJSUA])
def test_round_trips_phone_attributes(value: str) -> None:
    crypto = CryptoAttribute.parse(value)
    assert str(crypto) == value
    assert crypto.usable()


def test_lifetime_decimal_and_session_params_round_trip() -> None:
    value = BARESIP + "|1048576 KDR=1 UNENCRYPTED_SRTCP"
    crypto = CryptoAttribute.parse(value)
    assert crypto.keys[0].lifetime == 1048576
    assert crypto.session_params == ("KDR=1", "UNENCRYPTED_SRTCP")
    assert str(crypto) == value
    assert not crypto.usable()  # session parameters callway does not implement


def test_multiple_keys() -> None:
    key = base64.b64encode(bytes(30)).decode()
    crypto = CryptoAttribute.parse(f"3 AES_CM_128_HMAC_SHA1_32 inline:{key}|1:1;inline:{key}|2:1")
    assert [k.mki for k in crypto.keys] == [(1, 1), (2, 1)]
    assert not crypto.usable()


@pytest.mark.parametrize(
    "value",
    [
        "",
        "1 AES_CM_128_HMAC_SHA1_80",
        "x AES_CM_128_HMAC_SHA1_80 inline:AAAA",
        "1234567890 AES_CM_128_HMAC_SHA1_80 inline:AAAA",
        "1 AES_CM_128_HMAC_SHA1_80 uri:http://example.com/key",
        "1 AES_CM_128_HMAC_SHA1_80 inline:!!notbase64!!",
        "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|2^x",
        "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|0",
        "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|1:0",
        "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|1:4|2:4",
        "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|1:4|2^20",
    ],
)
def test_rejects_malformed(value: str) -> None:
    with pytest.raises(SdpError):
        CryptoAttribute.parse(value)


def test_wrong_key_length_is_not_usable() -> None:
    short = base64.b64encode(bytes(16)).decode()
    assert not CryptoAttribute.parse(f"1 AES_CM_128_HMAC_SHA1_80 inline:{short}").usable()


def test_generate_makes_fresh_keys_of_the_suite_size() -> None:
    first, second = offer_cryptos()
    assert (first.tag, first.suite) == (1, "AES_CM_128_HMAC_SHA1_80")
    assert (second.tag, second.suite) == (2, "AES_CM_128_HMAC_SHA1_32")
    assert len(first.key_salt) == SUITES[first.suite].key_salt_length == 30
    assert first.key_salt != second.key_salt
    assert first.usable() and second.usable()
    assert CryptoAttribute.parse(str(first)) == first
    with pytest.raises(ValueError):
        CryptoAttribute.generate(1, "F8_128_HMAC_SHA1_80")


def test_repr_hides_keys() -> None:
    crypto = CryptoAttribute.parse(BARESIP)
    secret = BARESIP.split("inline:")[1]
    assert secret not in repr(crypto)
    assert secret not in repr(crypto.keys)
    assert "hidden" in repr(crypto)
    key = KeyParams(b"\x01" * 30)
    assert "01" not in repr(key) and "\\x01" not in repr(key)


def test_choose_takes_first_usable_in_offer_order() -> None:
    gcm = "1 AEAD_AES_256_GCM inline:" + base64.b64encode(bytes(44)).decode()
    chosen = choose_crypto(["garbage", gcm, PJSUA, BARESIP])
    assert chosen is not None and chosen.tag == 2 and chosen.suite == "AES_CM_128_HMAC_SHA1_32"
    assert choose_crypto([gcm]) is None
    assert choose_crypto([BARESIP], suites=("AES_CM_128_HMAC_SHA1_32",)) is None


SAVP_OFFER = crlf(f"""
v=0
o=- 1 1 IN IP4 192.0.2.20
s=-
c=IN IP4 192.0.2.20
t=0 0
m=audio 30000 RTP/SAVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=crypto:{PJSUA}
a=crypto:{BARESIP}
a=sendrecv
""")


def _answer(offer: bytes, protos: tuple[str, ...], with_crypto: bool) -> bytes | None:
    def choose(media: MediaDescription) -> CryptoAttribute | None:
        remote = choose_crypto(media.crypto)
        return None if remote is None else CryptoAttribute.generate(remote.tag, remote.suite)

    desc = answer_offer(
        parse_sdp(offer),
        allowed_codecs=("ulaw",),
        local_address="192.0.2.1",
        local_port=40000,
        session_id=7,
        protos=protos,
        crypto=choose if with_crypto else None,
    )
    return None if desc is None else format_sdp(desc)


def test_answers_savp_offer_with_our_key_same_tag_and_suite() -> None:
    body = _answer(SAVP_OFFER, ("RTP/SAVP",), True)
    assert body is not None
    media = parse_sdp(body).media[0]
    assert media.proto == "RTP/SAVP" and media.port == 40000
    (value,) = media.crypto
    ours = CryptoAttribute.parse(value)
    assert (ours.tag, ours.suite) == (2, "AES_CM_128_HMAC_SHA1_32")
    assert ours.key_salt != CryptoAttribute.parse(PJSUA).key_salt


def test_savp_offer_without_usable_crypto_or_plain_profile_is_refused() -> None:
    no_crypto = b"".join(
        line + b"\r\n" for line in SAVP_OFFER.splitlines() if not line.startswith(b"a=crypto")
    )
    assert _answer(no_crypto, ("RTP/SAVP",), True) is None
    assert _answer(SAVP_OFFER, ("RTP/AVP",), False) is None  # a plain endpoint: 488
    plain = SAVP_OFFER.replace(b"RTP/SAVP", b"RTP/AVP")
    assert _answer(plain, ("RTP/SAVP",), True) is None  # an SRTP-mandatory endpoint: 488


def test_plain_answer_to_plain_offer_carries_no_crypto() -> None:
    plain = SAVP_OFFER.replace(b"RTP/SAVP", b"RTP/AVP")  # best-effort SRTP offer
    body = _answer(plain, ("RTP/AVP",), False)
    assert body is not None
    media = parse_sdp(body).media[0]
    assert media.proto == "RTP/AVP" and media.crypto == []


def test_make_offer_lists_crypto_on_savp() -> None:
    cryptos = offer_cryptos()
    desc = make_offer(
        allowed_codecs=("ulaw", "alaw"),
        local_address="192.0.2.1",
        local_port=40000,
        session_id=1,
        proto="RTP/SAVP",
        crypto=cryptos,
    )
    media = parse_sdp(format_sdp(desc)).media[0]
    assert media.proto == "RTP/SAVP"
    assert [CryptoAttribute.parse(v) for v in media.crypto] == cryptos
