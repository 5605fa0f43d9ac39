"""One check per parser: feed bytes, let only the parser's typed error escape.

Each ``check_<name>(data)`` parses ``data`` the way a server meets it from a
peer (and, when it parses, touches what the server reads next: accessors,
negotiation, re-serialisation).  The parser's own error type is swallowed;
any other exception propagates, and is a bug.  The Hypothesis tests under
``tests/unit/fuzz/`` and the atheris targets ``fuzz/fuzz_*.py`` both call
these, so a crash found by one reproduces in the other.

``SEEDS`` holds valid inputs to mutate (atheris starts its corpus from them).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from pathlib import Path

from callway.config.defaults import DEMO_EXTENSIONS_CONF, DEMO_PJSIP_CONF
from callway.config.dispatcher import parse_dispatcher_list
from callway.config.errors import ConfigError
from callway.config.extensions import parse_extensions
from callway.config.pjsip import parse_pjsip
from callway.rtp.packet import (
    RtpError,
    TelephoneEvent,
    build_rtp,
    build_telephone_event,
    is_rtcp,
    parse_rtcp,
    parse_rtp_header,
    parse_telephone_event,
)
from callway.sdp.anchor import media_target, rewrite_connection
from callway.sdp.crypto import CryptoAttribute, choose_crypto
from callway.sdp.errors import SdpError
from callway.sdp.negotiate import answer_offer, audio_format
from callway.sdp.parse import format_sdp, parse_sdp
from callway.sip.digest import (
    AuthResult,
    DigestError,
    NonceManager,
    parse_auth_header,
    verify_credentials,
)
from callway.sip.digest_header import format_auth_header, parse_qop_options
from callway.sip.errors import ParseError
from callway.sip.message import Request, make_response, parse_message
from callway.sip.validate import validate_request, validate_response
from callway.stun.message import (
    Attribute,
    AttrType,
    ErrorCode,
    MessageClass,
    Method,
    StunError,
    StunMessage,
    TransportAddress,
    decode,
    encode,
    short_term_key,
    verify_integrity,
)
from callway.stun.server import StunResponder

__all__ = ["CHECKS", "SEEDS", "Check"]

Check = Callable[[bytes], None]

_TEXT_ERRORS = "surrogateescape"


def _text(data: bytes) -> str:
    """Bytes as the str a config loader or header accessor would hand on."""
    return data.decode("utf-8", _TEXT_ERRORS)


# --------------------------------------------------------------------------
# SIP
# --------------------------------------------------------------------------
def check_sip(data: bytes) -> None:
    """``parse_message`` and the accessors and checks a server runs: only ParseError."""
    for stream in (False, True):
        try:
            message = parse_message(data, stream=stream)
        except ParseError:
            continue
        for name in ("vias", "from_", "to", "cseq", "call_id", "contacts", "expires"):
            with contextlib.suppress(ParseError):
                getattr(message, name)
        if isinstance(message, Request):
            with contextlib.suppress(ParseError):
                message.sip_uri  # noqa: B018 - the accessor parses lazily
            with contextlib.suppress(ParseError):
                validate_request(message, supported=(), accept=("application/sdp",))
            with contextlib.suppress(ParseError):
                make_response(message, 400, to_tag="fuzz").to_bytes()
        else:
            with contextlib.suppress(ParseError):
                validate_response(message)
        with contextlib.suppress(ParseError):
            parse_message(message.to_bytes(), stream=stream)


# --------------------------------------------------------------------------
# SDP
# --------------------------------------------------------------------------
def check_sdp(data: bytes) -> None:
    """``parse_sdp``, then what a B2BUA reads of an offer: only SdpError."""
    try:
        desc = parse_sdp(data)
    except SdpError:
        return
    try:
        for media in desc.media:
            _ = (media.payload_types, media.rtpmaps, media.ptime, media.maxptime, media.rtcp)
            _ = (media.rtcp_mux, media.crypto, desc.direction_for(media))
            for pt in media.payload_types:
                media.rtpmap(pt)
                media.fmtp(pt)
            for value in media.crypto:
                with contextlib.suppress(SdpError):
                    str(CryptoAttribute.parse(value))
            choose_crypto(media.crypto)
        audio_format(desc)
        answer_offer(
            desc, allowed_codecs=("ulaw", "alaw"), local_address="192.0.2.1",
            local_port=40000, session_id=1,
        )  # fmt: skip
        target = media_target(desc)
        rewrite_connection(desc, "192.0.2.2", 40002)
        again = parse_sdp(format_sdp(desc))
    except SdpError:
        return
    assert len(again.media) == len(desc.media)
    # What the relay will sendto() must be a port a socket accepts.
    for where in (target.rtp, target.rtcp) if target is not None else ():
        assert where is None or 0 <= where[1] <= 65535, target


# --------------------------------------------------------------------------
# STUN
# --------------------------------------------------------------------------
_STUN_KEY = short_term_key("fuzz-password")
_RESPONDER = StunResponder(("192.0.2.1", 3478), ("192.0.2.2", 3479))


def check_stun(data: bytes) -> None:
    """``decode`` and the binding responder: only StunError (the responder raises nothing)."""
    _RESPONDER.handle(data, ("198.51.100.1", 5000), ("192.0.2.1", 3478))
    try:
        message = decode(data)
    except StunError:
        return
    for attr_type in (AttrType.XOR_MAPPED_ADDRESS, AttrType.MAPPED_ADDRESS):
        message.address(attr_type)
    for attr_type in (AttrType.USERNAME, AttrType.SOFTWARE, AttrType.REALM):
        message.text(attr_type)
    _ = (message.error_code, message.change_request, message.classic)
    verify_integrity(data, _STUN_KEY)
    with contextlib.suppress(StunError):
        encode(message)


# --------------------------------------------------------------------------
# RTP / RTCP
# --------------------------------------------------------------------------
def check_rtp(data: bytes) -> None:
    """RTP header, RTCP compound and RFC 4733 payload decoders: only RtpError."""
    is_rtcp(data)
    with contextlib.suppress(RtpError):
        header = parse_rtp_header(data)
        with contextlib.suppress(RtpError):
            parse_telephone_event(data[header.payload_offset : header.payload_end])
    with contextlib.suppress(RtpError):
        parse_rtcp(data)
    with contextlib.suppress(RtpError):
        event = parse_telephone_event(data)
        _ = event.digit
        build_telephone_event(event)


# --------------------------------------------------------------------------
# Digest
# --------------------------------------------------------------------------
_NONCES = NonceManager(b"fuzz-secret", lifetime=30.0)
_VALID_NONCE = _NONCES.issue(1000.0)


def check_digest(data: bytes) -> None:
    """``parse_auth_header`` and ``verify_credentials``: only DigestError, no crash."""
    text = _text(data)
    with contextlib.suppress(DigestError):
        parse_qop_options(text)
    try:
        header = parse_auth_header(text)
    except DigestError:
        return
    with contextlib.suppress(DigestError):
        again = parse_auth_header(format_auth_header(header))
        assert again == header, (header, again)
    for password, ha1 in (("8005", None), (None, "0" * 32), (None, "0" * 64)):
        result = verify_credentials(
            header, method="REGISTER", password=password, ha1=ha1, realm="asterisk",
            nonces=_NONCES, now=1001.0, body=b"",
        )  # fmt: skip
        assert isinstance(result, AuthResult)


# --------------------------------------------------------------------------
# configuration files
# --------------------------------------------------------------------------
def _no_include(name: str) -> tuple[str, str]:
    raise ConfigError(name, 0, "includes are not read while fuzzing")


def check_dispatcher(data: bytes) -> None:
    """``parse_dispatcher_list``: only ConfigError."""
    with contextlib.suppress(ConfigError):
        parse_dispatcher_list(_text(data), "dispatcher.list")


def check_pjsip(data: bytes) -> None:
    """``parse_pjsip``: only ConfigError."""
    with contextlib.suppress(ConfigError):
        parse_pjsip(_text(data), "pjsip.conf", _no_include)


def check_extensions(data: bytes) -> None:
    """``parse_extensions``: only ConfigError."""
    with contextlib.suppress(ConfigError):
        parse_extensions(_text(data), "extensions.conf", _no_include)


CHECKS: dict[str, Check] = {
    "sip": check_sip,
    "sdp": check_sdp,
    "stun": check_stun,
    "rtp": check_rtp,
    "digest": check_digest,
    "dispatcher": check_dispatcher,
    "pjsip": check_pjsip,
    "extensions": check_extensions,
}


# --------------------------------------------------------------------------
# seeds
# --------------------------------------------------------------------------
def _testdata() -> Path | None:
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "testdata"
        if candidate.is_dir():
            return candidate
    return None


def _sip_seeds() -> list[bytes]:
    seeds = [
        b"REGISTER sip:127.0.0.1 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK1;rport\r\n"
        b"Max-Forwards: 70\r\nTo: <sip:8005@127.0.0.1>\r\nFrom: <sip:8005@127.0.0.1>;tag=1\r\n"
        b"Call-ID: a@b\r\nCSeq: 1 REGISTER\r\nContact: <sip:8005@127.0.0.2:5060>;expires=60\r\n"
        b"Content-Length: 0\r\n\r\n",
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK1\r\n"
        b"To: <sip:8005@127.0.0.1>;tag=2\r\nFrom: <sip:8005@127.0.0.1>;tag=1\r\n"
        b"Call-ID: a@b\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n",
    ]
    root = _testdata()
    if root is not None:
        seeds += [p.read_bytes() for p in sorted((root / "rfc4475").glob("*.dat"))]
    return seeds


_SDP_OFFER = (
    b"v=0\r\no=- 3890000000 3890000000 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\n"
    b"t=0 0\r\nm=audio 30000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\na=maxptime:40\r\na=rtcp:30001 IN IP4 192.0.2.10\r\na=sendrecv\r\n"
)
_SDP_SAVP = (
    b"v=0\r\no=alice 1 2 IN IP6 2001:db8::1\r\ns=call\r\nt=0 0\r\n"
    b"m=audio 40000/2 RTP/SAVP 8\r\nc=IN IP6 2001:db8::1\r\na=rtcp-mux\r\n"
    b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 "
    b"inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4\r\n"
    b"a=sendonly\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
)


def _stun_seeds() -> list[bytes]:
    tid = bytes(range(12))
    request = StunMessage(
        Method.BINDING, MessageClass.REQUEST, tid,
        (Attribute(AttrType.USERNAME, "a:b"), Attribute(AttrType.PRIORITY, 0x6E0001FF),
         Attribute(AttrType.ICE_CONTROLLED, 0x932FF9B151263B36),
         Attribute(AttrType.SOFTWARE, "fuzz")),
    )  # fmt: skip
    response = StunMessage(
        Method.BINDING, MessageClass.SUCCESS, tid,
        (Attribute(AttrType.XOR_MAPPED_ADDRESS, TransportAddress("192.0.2.1", 32853)),
         Attribute(AttrType.MAPPED_ADDRESS, TransportAddress("2001:db8::1", 5060))),
    )  # fmt: skip
    error = StunMessage(
        Method.BINDING, MessageClass.ERROR, tid,
        (Attribute(AttrType.ERROR_CODE, ErrorCode(420, "Unknown Attribute")),
         Attribute(AttrType.UNKNOWN_ATTRIBUTES, (0x0003, 0x7FFF))),
    )  # fmt: skip
    return [
        encode(request, integrity_key=_STUN_KEY),
        encode(response),
        encode(error, fingerprint=False),
        b"\x00\x01\x00\x00" + bytes(16),  # RFC 3489 binding request
    ]


def _rtp_seeds() -> list[bytes]:
    rtcp_sr = (
        b"\x81\xc8\x00\x0c" + b"\x00\x00\x00\x01" + bytes(8) + b"\x00\x00\x1f\x40"
        + b"\x00\x00\x00\x0a" + b"\x00\x00\x06\x40"
        + b"\x00\x00\x00\x02" + b"\x01\x00\x00\x05" + bytes(16)
    )  # fmt: skip
    rtcp_rr_sdes = (
        b"\x80\xc9\x00\x01\x00\x00\x00\x01"
        + b"\x81\xca\x00\x03\x00\x00\x00\x01\x01\x04abcd\x00\x00\x00"
    )  # fmt: skip
    return [
        build_rtp(0, 0x1234, 8000, 0xDEADBEEF, b"\xff" * 160, marker=True),
        build_rtp(101, 1, 160, 1, build_telephone_event(TelephoneEvent(5, True, 10, 800))),
        b"\xb2\x08\x00\x01\x00\x00\x00\xa0\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x03"
        b"\xbe\xde\x00\x01\x10\xaa\x00\x00\xd5\xd5\xd5\xd5\x00\x00\x03",
        rtcp_sr,
        rtcp_rr_sdes,
    ]


def _digest_seeds() -> list[bytes]:
    response = hashlib.md5(b"fuzz", usedforsecurity=False).hexdigest()
    return [
        f'Digest username="8005", realm="asterisk", nonce="{_VALID_NONCE}", '
        f'uri="sip:127.0.0.1", response="{response}", algorithm=MD5, '
        f'cnonce="0a4f113b", qop=auth, nc=00000001, opaque="5ccc069c"'.encode(),
        b'Digest realm="asterisk",nonce="abc",opaque="x",algorithm=SHA-256,qop="auth,auth-int"',
        b"Digest username=8005,realm=asterisk,nonce=n,uri=sip:a@b,response=r",
    ]


_DISPATCHER = b"""\
# setid destination flags priority attributes
1 sip:192.168.0.1 0 1 weight=50
1 sip:192.168.0.2:5070;transport=tcp 0 1 weight=50;duid=b;socket=udp:10.0.0.1:5060
2 sip:[2001:db8::1]:5080 8 10 maxload=20;rweight=30
"""

_EXTENSIONS_MORE = b"""\
[globals]
TRUNK=PJSIP/trunk

[internal]
exten => _9.,1,Dial(${TRUNK}/${EXTEN:1},30,tT)
 same => n(fail),Hangup()
exten => 100,hint,PJSIP/8005
include => from-external
switch => Realtime/foo

[from-external](!)
exten => s,1,Answer()
 same => n,GotoIf($[${LEN(${EXTEN})} > 3]?fail,1)
 same => n,Playback(hello-world) ; comment
;-- block
comment --;
"""


SEEDS: dict[str, list[bytes]] = {
    "sip": _sip_seeds(),
    "sdp": [_SDP_OFFER, _SDP_SAVP, _SDP_OFFER.replace(b"\r\n", b"\n")],
    "stun": _stun_seeds(),
    "rtp": _rtp_seeds(),
    "digest": _digest_seeds(),
    "dispatcher": [_DISPATCHER],
    "pjsip": [DEMO_PJSIP_CONF.encode()],
    "extensions": [DEMO_EXTENSIONS_CONF.encode(), _EXTENSIONS_MORE],
}
