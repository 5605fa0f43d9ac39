"""HEP v3 encoding, checked with the minimal decoder of hepread.py (from the spec).

HEP3 (EEP v3): ``"HEP3" | total length (u16)`` then chunks of
``vendor id (u16) | type id (u16) | chunk length (u16, 6-byte header included)
| value``, network byte order.  Generic chunk types (vendor 0): 1 IP family,
2 IP protocol, 3/4 IPv4 src/dst, 5/6 IPv6 src/dst, 7/8 src/dst port,
9 time seconds, 10 time microseconds, 11 protocol type (1 = SIP),
12 capture agent id, 14 auth key, 15 payload, 17 correlation id.
"""

from __future__ import annotations

import socket

import pytest

from callway.ops.hep import HepSender, encode_hep3, parse_hostport
from tests.unit.ops.hepread import decode_hep3, fields

SIP = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: c1\r\nContent-Length: 0\r\n\r\n"


def test_ipv4_udp_every_chunk() -> None:
    packet = encode_hep3(
        SIP,
        ("192.0.2.1", 5060),
        ("192.0.2.2", 5062),
        1700000000.123456,
        capture_id=2001,
        auth_key="secret",
        correlation_id="c1",
    )
    got = fields(decode_hep3(packet))
    assert got == {
        "family": 2,
        "proto": 17,
        "src": "192.0.2.1",
        "dst": "192.0.2.2",
        "sport": 5060,
        "dport": 5062,
        "sec": 1700000000,
        "usec": 123456,
        "proto_type": 1,
        "capture_id": 2001,
        "auth": "secret",
        "correlation": "c1",
        "payload": SIP,
    }


def test_ipv6_tcp_without_optional_chunks() -> None:
    chunks = decode_hep3(
        encode_hep3(SIP, ("2001:db8::1", 5061), ("2001:db8::2", 40000), 5.5, transport="tls")
    )
    got = fields(chunks)
    assert (got["family"], got["proto"]) == (10, 6)
    assert (got["src"], got["dst"]) == ("2001:db8::1", "2001:db8::2")
    assert (got["sec"], got["usec"], got["capture_id"]) == (5, 500000, 0)
    assert 14 not in chunks and 17 not in chunks


def test_mixed_families_are_sent_as_ipv6() -> None:
    got = fields(decode_hep3(encode_hep3(SIP, ("127.0.0.1", 1), ("::1", 2), 0.0)))
    assert got["family"] == 10
    assert got["src"] == "::ffff:127.0.0.1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.5:9060", ("10.0.0.5", 9060)),
        ("[2001:db8::5]:9061", ("2001:db8::5", 9061)),
        ("[::1]", ("::1", 9060)),
        ("homer", ("homer", 9060)),
    ],
)
def test_parse_hostport(text: str, expected: tuple[str, int]) -> None:
    assert parse_hostport(text) == expected


def test_sender_sends_one_datagram_per_message() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as collector:
        collector.bind(("127.0.0.1", 0))
        collector.settimeout(2)
        port = collector.getsockname()[1]
        sender = HepSender(f"127.0.0.1:{port}", capture_id=7, auth_key="k")
        try:
            sender.send(SIP, ("127.0.0.1", 5060), ("127.0.0.1", 5070), 10.25, correlation_id="c1")
            data, _ = collector.recvfrom(65535)
        finally:
            sender.close()
    got = fields(decode_hep3(data))
    assert (got["capture_id"], got["auth"], got["correlation"]) == (7, "k", "c1")
    assert got["payload"] == SIP
    assert sender.sent == 1 and sender.dropped == 0


def test_sender_counts_failures_instead_of_raising() -> None:
    sender = HepSender("127.0.0.1:9")
    sender.close()  # sending on a closed socket fails
    sender.send(SIP, ("127.0.0.1", 1), ("127.0.0.1", 2), 0.0)
    assert sender.dropped == 1 and sender.sent == 0
