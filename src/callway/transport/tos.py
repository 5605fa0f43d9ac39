"""Differentiated Services marking of a socket's packets (RFC 2474; pjsip.conf ``tos``).

Asterisk's ``tos`` (transports, SIP) and ``tos_audio`` (endpoints, RTP and
RTCP) set the IP header's ToS byte: the DSCP shifted left by two, so
``ef`` (46, expedited forwarding for voice) is 0xb8 and ``cs3`` (24, common
for signalling) 0x60.  IPv6 carries the same byte as its traffic class.
"""

from __future__ import annotations

import socket


def set_tos(sock: socket.socket, tos: int) -> None:
    """Mark what ``sock`` sends with the ToS byte ``tos`` (0 clears the marking)."""
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, tos)
    else:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
