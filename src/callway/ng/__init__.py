"""rtpengine's "ng" control protocol for callway's media relay, sans-I/O.

Kamailio's ``rtpengine`` module (and OpenSIPS's) drive a media relay with
bencoded commands over UDP: ``offer``/``answer`` rewrite a call's SDP to the
relay's ports, ``delete`` frees them.  This package holds the codec
(:mod:`~callway.ng.bencode`), the messages (:mod:`~callway.ng.protocol`),
the cookie cache, the call state and the command handler
(:class:`~callway.ng.engine.NgEngine`); ``callway relay``
(:mod:`callway.app.relay_service`) runs it over sockets and
:class:`callway.media.relay.RelaySession`.
"""

from callway.ng.bencode import BencodeError, BValue, decode, encode
from callway.ng.cache import ReplyCache
from callway.ng.calls import Call, Dialog, Stream
from callway.ng.engine import DEFAULT_TIMEOUT, NgEngine
from callway.ng.media import (
    LegCounters,
    MediaFactory,
    MediaLeg,
    MediaStream,
    OutOfPortsError,
)
from callway.ng.protocol import (
    NgError,
    NgFrameError,
    Request,
    format_reply,
    parse_datagram,
    split_cookie,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "BValue",
    "BencodeError",
    "Call",
    "Dialog",
    "LegCounters",
    "MediaFactory",
    "MediaLeg",
    "MediaStream",
    "NgEngine",
    "NgError",
    "NgFrameError",
    "OutOfPortsError",
    "ReplyCache",
    "Request",
    "Stream",
    "decode",
    "encode",
    "format_reply",
    "parse_datagram",
    "split_cookie",
]
