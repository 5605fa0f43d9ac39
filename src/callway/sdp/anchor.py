"""Where an SDP says to send media, and rewriting it to anchor media at the PBX.

A B2BUA that relays media replaces the address and port a phone offered
with the relay's own before passing the SDP to the other leg; everything
else (codecs, fmtp, direction, crypto, unknown lines) passes unchanged.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

from callway.sdp.model import (
    Attribute,
    Connection,
    MediaDescription,
    RtcpAttribute,
    SessionDescription,
)

__all__ = ["MediaTarget", "media_target", "rewrite_connection"]

_HOLD_ADDRESSES = frozenset({"0.0.0.0", "::"})


@dataclass(frozen=True, slots=True)
class MediaTarget:
    """The RTP and RTCP destinations of one stream; None when it must not be sent to."""

    index: int
    rtp: tuple[str, int] | None
    rtcp: tuple[str, int] | None
    rtcp_mux: bool


def _audio_index(desc: SessionDescription, index: int | None) -> int | None:
    if index is not None:
        return index if 0 <= index < len(desc.media) else None
    for position, media in enumerate(desc.media):
        if media.media == "audio" and media.port != 0:
            return position
    return None


def media_target(desc: SessionDescription, index: int | None = None) -> MediaTarget | None:
    """Destinations of stream ``index`` (default: the first active audio stream).

    RTCP goes to ``a=rtcp`` when present (RFC 3605), to the RTP port with
    ``a=rtcp-mux`` (RFC 5761 §5.1.3), else to the RTP port plus one (RFC
    3550 §11).  A hold address (``0.0.0.0``, RFC 3264 §8.4) or port 0 gives
    None destinations.
    """
    position = _audio_index(desc, index)
    if position is None:
        return None
    media = desc.media[position]
    connection = desc.connection_for(media)
    if connection is None or connection.address in _HOLD_ADDRESSES or media.port == 0:
        return MediaTarget(position, None, None, media.rtcp_mux)
    host = connection.address
    rtcp = media.rtcp
    rtcp_target: tuple[str, int] | None
    if media.rtcp_mux:
        rtcp_target = (host, media.port)
    elif rtcp is not None:
        rtcp_host = rtcp.connection.address if rtcp.connection is not None else host
        rtcp_target = (rtcp_host, rtcp.port)
    elif media.port < 65535:
        rtcp_target = (host, media.port + 1)
    else:
        rtcp_target = None  # an odd last port has no port above it for RTCP
    return MediaTarget(position, (host, media.port), rtcp_target, media.rtcp_mux)


def _moved(connection: Connection | None, address: str) -> Connection | None:
    if connection is None or connection.address in _HOLD_ADDRESSES:
        return connection
    return replace(connection, address=address, addrtype=Connection.for_address(address).addrtype)


def _move_rtcp(media: MediaDescription, address: str, port: int) -> None:
    value = media.get("rtcp")
    if value is None:
        return
    old = RtcpAttribute.parse(value)
    new = RtcpAttribute(port, _moved(old.connection, address))
    media.attributes = [
        Attribute("rtcp", str(new)) if a.name == "rtcp" else a for a in media.attributes
    ]


def rewrite_connection(
    desc: SessionDescription,
    address: str,
    port: int | None = None,
    *,
    rtcp_port: int | None = None,
    index: int | None = None,
) -> SessionDescription:
    """A copy of ``desc`` whose media goes to ``address`` (and ``port`` for one stream).

    Every ``c=`` line and the origin's address move to ``address``, except a
    hold address, which keeps meaning hold (RFC 3264 §8.4).  Stream ``index``
    (default: the first active audio stream) gets ``port``, and its
    ``a=rtcp`` gets ``rtcp_port`` (default ``port + 1``, or ``port`` with
    ``a=rtcp-mux``).  Other streams keep
    their ports: a relay that anchors only audio rejects them in its answer.
    """
    new = copy.deepcopy(desc)
    new.origin = replace(
        new.origin, address=address, addrtype=Connection.for_address(address).addrtype
    )
    new.connection = _moved(new.connection, address)
    for media in new.media:
        media.connection = _moved(media.connection, address)
    position = _audio_index(new, index)
    if port is not None and position is not None and new.media[position].port != 0:
        media = new.media[position]
        media.port = port
        default_rtcp = port if media.rtcp_mux else port + 1
        _move_rtcp(media, address, rtcp_port if rtcp_port is not None else default_rtcp)
    return new
