"""DSCP marking: pjsip.conf ``tos`` on a transport marks the PBX's SIP packets (RFC 2474).

A plain UDP socket that asks for the IP header's ToS byte (IP_RECVTOS)
sends an OPTIONS to a PBX whose UDP transport has ``tos=cs3`` and reads the
byte its 200 OK arrived with.  (``tos_audio`` on RTP is covered by
tests/unit/media/test_tos.py, down to the packets.)
"""

from __future__ import annotations

import socket

import pytest

from tests.interop.conftest import PbxFactory

pytestmark = [pytest.mark.interop, pytest.mark.timeout(30)]

CS3 = 24 << 2  # 0x60


def options(port: int) -> bytes:
    return (
        f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-qos1;rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:probe@127.0.0.1>;tag=q1\r\n"
        f"To: <sip:127.0.0.1:{port}>\r\n"
        "Call-ID: qos-1@127.0.0.1\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def reply_tos(port: int) -> tuple[bytes, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
        sock.sendto(options(port), ("127.0.0.1", port))
        data, ancillary, _flags, _addr = sock.recvmsg(65535, socket.CMSG_SPACE(1))
    finally:
        sock.close()
    wanted = (socket.IPPROTO_IP, socket.IP_TOS)
    [tos] = [value[0] for level, kind, value in ancillary if (level, kind) == wanted]
    return data, tos


def test_sip_over_a_transport_with_tos_is_marked(pbx_factory: PbxFactory) -> None:
    pbx = pbx_factory(extra_pjsip="[transport-udp](+)\ntos=cs3\n")
    data, tos = reply_tos(pbx.sip_port)
    assert data.startswith(b"SIP/2.0 "), data[:80]
    assert tos == CS3


def test_without_tos_nothing_is_marked(pbx_factory: PbxFactory) -> None:
    pbx = pbx_factory()
    _data, tos = reply_tos(pbx.sip_port)
    assert tos == 0
