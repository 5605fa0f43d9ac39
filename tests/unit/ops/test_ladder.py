"""The terminal ladder (``callway trace``) drawn from callway's own pcap files."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from callway.core.address import Address
from callway.ops.capture import RotatingPcapFile
from callway.ops.ladder import describe_file, read_sip_packets, render_ladder
from callway.ops.pcap import global_header, record, udp_packet
from callway.ops.tracer import SipTracer


def sip(start: str, call_id: str) -> bytes:
    return f"{start}\r\nCall-ID: {call_id}\r\nContent-Length: 0\r\n\r\n".encode()


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    times = iter([0.0, 0.001, 0.002, 0.010, 0.011])
    path = tmp_path / "all.pcap"
    tracer = SipTracer(pcap=RotatingPcapFile(path, 0, 0), clock=lambda: next(times))
    caller = Address("udp", "10.0.0.5", 5070, local=("10.0.0.1", 5060))
    callee = Address("tcp", "10.0.0.6", 5080, local=("10.0.0.1", 5060))
    tracer("recv", sip("INVITE sip:b@x SIP/2.0", "leg-a"), caller)
    tracer("send", sip("SIP/2.0 100 Trying", "leg-a"), caller)
    tracer("send", sip("INVITE sip:b@y SIP/2.0", "leg-b"), callee)
    tracer("recv", sip("SIP/2.0 486 Busy Here", "leg-b"), callee)
    tracer("send", sip("SIP/2.0 486 Busy Here", "leg-a"), caller)
    tracer.close()
    return path


def test_reads_back_every_message(capture: Path) -> None:
    packets = list(read_sip_packets(capture.read_bytes()))
    assert [(p.label, p.call_id, p.transport) for p in packets] == [
        ("INVITE", "leg-a", "udp"),
        ("100 Trying", "leg-a", "udp"),
        ("INVITE", "leg-b", "tcp"),
        ("486 Busy Here", "leg-b", "tcp"),
        ("486 Busy Here", "leg-a", "udp"),
    ]
    assert packets[0].src == "10.0.0.5:5070" and packets[0].dst == "10.0.0.1:5060"


def test_ladder_of_one_call(capture: Path) -> None:
    text = render_ladder(list(read_sip_packets(capture.read_bytes())), "leg-a")
    assert text.splitlines() == [
        "              10.0.0.5:5070         10.0.0.1:5060",
        "00:00:00.000  |-------INVITE------->|",
        "00:00:00.001  |<----100 Trying------|",
        "00:00:00.011  |<---486 Busy Here----|",
    ]


def test_ladder_of_everything_has_a_lane_per_endpoint(capture: Path) -> None:
    lines = describe_file(capture).splitlines()
    assert lines[0].split() == ["10.0.0.5:5070", "10.0.0.1:5060", "10.0.0.6:5080"]
    assert lines[3] == "00:00:00.002  |                     |-------INVITE------->|"
    assert lines[4] == "00:00:00.010  |                     |<---486 Busy Here----|"


def test_list_of_calls(capture: Path) -> None:
    assert describe_file(capture, list_calls=True).splitlines() == [
        "leg-a     3 messages  INVITE",
        "leg-b     2 messages  INVITE",
    ]


def test_unknown_call_and_foreign_files(tmp_path: Path, capture: Path) -> None:
    assert describe_file(capture, "nope") == "no SIP messages for Call-ID nope\n"
    bad = tmp_path / "x.pcapng"
    bad.write_bytes(b"\x0a\x0d\x0d\x0a" + bytes(40))
    with pytest.raises(ValueError, match="pcapng"):
        describe_file(bad)


def test_reads_ethernet_captures_too() -> None:
    packet = udp_packet(("10.0.0.5", 5070), ("10.0.0.1", 5060), sip("OPTIONS sip:x SIP/2.0", "e"))
    frame = bytes(6) + bytes(6) + b"\x08\x00" + packet
    rtp = udp_packet(("10.0.0.5", 4000), ("10.0.0.1", 4002), b"\x80\x00" + bytes(170))
    data = (
        global_header(linktype=1) + record(1.0, frame) + record(1.02, bytes(12) + b"\x08\x00" + rtp)
    )
    packets = list(read_sip_packets(data))
    assert [(p.label, p.call_id) for p in packets] == [("OPTIONS", "e")]
    assert struct.unpack("<I", data[20:24])[0] == 1
