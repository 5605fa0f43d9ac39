"""The pcap encoder: file structure, IP/UDP/TCP headers and checksums."""

from __future__ import annotations

import ipaddress

import pytest

from callway.ops.pcap import (
    LINKTYPE_RAW,
    MAX_SEGMENT,
    PacketEncoder,
    global_header,
    internet_checksum,
    record,
    tcp_packet,
    udp_packet,
)
from tests.unit.ops.pcapread import parse_ip, read_header, read_pcap

INVITE = (
    b"INVITE sip:8006@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx\r\n"
    b"Call-ID: abc@host\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
)
OK = b"SIP/2.0 200 OK\r\nCall-ID: abc@host\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n!"


def test_global_header_is_classic_pcap_with_raw_ip() -> None:
    header = global_header()
    assert len(header) == 24
    magic, major, minor, zone, sigfigs, snaplen, linktype = read_header(header)
    assert (magic, major, minor, zone, sigfigs) == (0xA1B2C3D4, 2, 4, 0, 0)
    assert snaplen >= 65535
    assert linktype == LINKTYPE_RAW == 101


def test_record_splits_the_timestamp_and_gives_both_lengths() -> None:
    data = record(1700000000.25, b"abc")
    assert (
        data[:16]
        == (1700000000).to_bytes(4, "little")
        + (250000).to_bytes(4, "little")
        + (3).to_bytes(4, "little") * 2
    )
    assert data[16:] == b"abc"
    # rounding up to a whole second carries into the seconds
    assert record(9.9999999, b"")[:8] == (10).to_bytes(4, "little") + bytes(4)


def test_internet_checksum_matches_rfc1071_example() -> None:
    # RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2, checksum 220d
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
    assert internet_checksum(b"\x01") == (~0x0100) & 0xFFFF


def test_udp_over_ipv4_headers_and_checksums() -> None:
    raw = udp_packet(("10.0.0.1", 5070), ("10.0.0.2", 5060), INVITE)
    assert raw[0] == 0x45
    assert raw[8] == 64 and raw[9] == 17  # TTL, protocol
    assert raw[6] & 0x40  # don't fragment
    packet = parse_ip(raw)
    assert (packet.src, packet.sport, packet.dst, packet.dport) == (
        "10.0.0.1",
        5070,
        "10.0.0.2",
        5060,
    )
    assert packet.payload == INVITE
    assert packet.ip_ok and packet.l4_ok


@pytest.mark.parametrize("payload", [INVITE, OK, b"", b"x"])
def test_udp_over_ipv6_checksums(payload: bytes) -> None:
    packet = parse_ip(udp_packet(("2001:db8::1", 5060), ("2001:db8::2", 40000), payload))
    assert packet.version == 6
    assert (packet.src, packet.dst) == ("2001:db8::1", "2001:db8::2")
    assert packet.payload == payload
    assert packet.l4_ok


def test_mixed_families_map_ipv4_into_ipv6() -> None:
    packet = parse_ip(udp_packet(("127.0.0.1", 5060), ("::1", 5062), OK))
    assert packet.version == 6
    assert ipaddress.IPv6Address(packet.src).ipv4_mapped == ipaddress.IPv4Address("127.0.0.1")
    assert packet.l4_ok


def test_a_host_name_becomes_the_unspecified_address() -> None:
    packet = parse_ip(udp_packet(("pbx.example.com", 5060), ("10.0.0.2", 5060), OK))
    assert packet.src == "0.0.0.0" and packet.l4_ok


def test_tcp_segment_headers_and_checksum() -> None:
    raw = tcp_packet(("10.0.0.1", 40000), ("10.0.0.2", 5060), 1000, 2000, INVITE)
    packet = parse_ip(raw)
    assert packet.proto == 6
    assert (packet.seq, packet.ack) == (1000, 2000)
    assert packet.flags == 0x18  # PSH ACK
    assert packet.payload == INVITE
    assert packet.ip_ok and packet.l4_ok


def test_tcp_sequence_numbers_follow_each_direction() -> None:
    encoder = PacketEncoder()
    client, server = ("10.0.0.1", 40000), ("10.0.0.2", 5060)
    first = parse_ip(encoder.encode("tcp", client, server, INVITE)[0])
    second = parse_ip(encoder.encode("tcp", client, server, INVITE)[0])
    reply = parse_ip(encoder.encode("tcp", server, client, OK)[0])
    third = parse_ip(encoder.encode("tcp", client, server, b"ACK")[0])
    assert second.seq == (first.seq + len(INVITE)) & 0xFFFFFFFF
    assert reply.ack == (second.seq + len(INVITE)) & 0xFFFFFFFF
    assert third.ack == (reply.seq + len(OK)) & 0xFFFFFFFF
    assert first.ack == reply.seq
    assert all(p.l4_ok for p in (first, second, reply, third))


def test_tls_is_written_decrypted_as_tcp_on_the_tls_port() -> None:
    encoder = PacketEncoder()
    packets = encoder.encode("tls", ("10.0.0.1", 40000), ("10.0.0.2", 5061), INVITE)
    packet = parse_ip(packets[0])
    assert packet.proto == 6 and packet.dport == 5061
    assert packet.payload == INVITE


def test_a_huge_stream_message_is_split_into_segments() -> None:
    encoder = PacketEncoder()
    body = b"x" * (MAX_SEGMENT * 2 + 10)
    packets = [parse_ip(p) for p in encoder.encode("tcp", ("::1", 1), ("::1", 2), body)]
    assert len(packets) == 3
    assert b"".join(p.payload for p in packets) == body
    assert [p.seq - packets[0].seq for p in packets] == [0, MAX_SEGMENT, 2 * MAX_SEGMENT]
    assert all(p.l4_ok for p in packets)


def test_a_whole_file_reads_back() -> None:
    encoder = PacketEncoder()
    data = global_header()
    data += b"".join(
        record(100.5, p) for p in encoder.encode("udp", ("1.2.3.4", 5), ("5.6.7.8", 6), INVITE)
    )
    data += b"".join(
        record(101.0, p) for p in encoder.encode("tcp", ("5.6.7.8", 6), ("1.2.3.4", 5), OK)
    )
    linktype, packets = read_pcap(data)
    assert linktype == LINKTYPE_RAW
    assert [(p.seconds, p.micros, p.proto) for p in packets] == [(100, 500000, 17), (101, 0, 6)]
    assert [p.payload for p in packets] == [INVITE, OK]


def test_sdes_keys_are_redacted() -> None:
    from callway.ops.tracer import redact_keys

    sdp = (
        b"m=audio 4000 RTP/SAVP 0\r\n"
        b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 "
        b"inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20\r\n"
    )
    out = redact_keys(sdp)
    assert b"WVNfX19zZW1jdGwg" not in out
    assert b"inline:<hidden>|2^20" in out
