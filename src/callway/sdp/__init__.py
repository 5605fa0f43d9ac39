"""SDP: model, parse/format (RFC 8866), offer/answer (RFC 3264), SDES keys (RFC 4568), sans-I/O."""

from callway.sdp.anchor import MediaTarget, media_target, rewrite_connection
from callway.sdp.crypto import CryptoAttribute, choose_crypto, offer_cryptos
from callway.sdp.errors import SdpError
from callway.sdp.model import (
    Attribute,
    Connection,
    Direction,
    Line,
    MediaDescription,
    Origin,
    RtcpAttribute,
    RtpMap,
    SessionDescription,
)
from callway.sdp.negotiate import (
    CODECS,
    AudioFormat,
    Codec,
    answer_offer,
    audio_format,
    find_codec,
    make_offer,
)
from callway.sdp.parse import format_sdp, parse_sdp

__all__ = [
    "CODECS",
    "Attribute",
    "AudioFormat",
    "Codec",
    "Connection",
    "CryptoAttribute",
    "Direction",
    "Line",
    "MediaDescription",
    "MediaTarget",
    "Origin",
    "RtcpAttribute",
    "RtpMap",
    "SdpError",
    "SessionDescription",
    "answer_offer",
    "audio_format",
    "choose_crypto",
    "find_codec",
    "format_sdp",
    "make_offer",
    "media_target",
    "offer_cryptos",
    "parse_sdp",
    "rewrite_connection",
]
