"""SipTracer: the stack's trace hook writing global and per-call captures."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from callway.core.address import Address
from callway.ops.capture import PcapFile, RotatingPcapFile
from callway.ops.hep import HepSender
from callway.ops.tracer import SipTracer, call_id_of, capture_name
from tests.unit.ops.pcapread import read_pcap


def message(call_id: str, start: str = "OPTIONS sip:x@y SIP/2.0", header: str = "Call-ID") -> bytes:
    return (
        f"{start}\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n{header}: {call_id}\r\n"
        "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 0.5
        return self.now


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (message("abc@host"), "abc@host"),
        (message("  spaced  "), "spaced"),
        (message("compact", header="i"), "compact"),
        (message("lower", header="call-id"), "lower"),
        (message("upper", header="CALL-ID"), "upper"),
        (b"SIP/2.0 200 OK\nCall-ID:bare-lf\n\n", "bare-lf"),
        (b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 9\r\n\r\ni: body!!", ""),
        (b"OPTIONS sip:x SIP/2.0\r\nX-Call-ID: no\r\n\r\n", ""),
    ],
)
def test_call_id_of(data: bytes, expected: str) -> None:
    assert call_id_of(data) == expected


def test_capture_name_is_a_safe_file_name() -> None:
    assert capture_name("a84b4c76e66710@pc33.atlanta.com") == "a84b4c76e66710@pc33.atlanta.com.pcap"
    assert capture_name("../../etc/passwd") == ".._.._etc_passwd.pcap"


def test_directions_map_to_source_and_destination(tmp_path: Path) -> None:
    tracer = SipTracer(pcap=RotatingPcapFile(tmp_path / "all.pcap", 0, 0), clock=Clock())
    peer = Address("udp", "192.0.2.7", 5070, local=("192.0.2.1", 5060))
    tracer("recv", message("c1"), peer)
    tracer("send", message("c1", "SIP/2.0 200 OK"), peer)
    tracer.close()
    _, packets = read_pcap(tmp_path / "all.pcap")
    assert [(p.src, p.sport, p.dst, p.dport) for p in packets] == [
        ("192.0.2.7", 5070, "192.0.2.1", 5060),
        ("192.0.2.1", 5060, "192.0.2.7", 5070),
    ]
    assert [(p.seconds, p.micros) for p in packets] == [(1000, 500000), (1001, 0)]
    assert all(p.ip_ok and p.l4_ok for p in packets)


def test_missing_or_wildcard_local_uses_local_for(tmp_path: Path) -> None:
    asked: list[str] = []

    def local_for(transport: str) -> tuple[str, int]:
        asked.append(transport)
        return ("10.1.1.1", 5080)

    tracer = SipTracer(
        pcap=RotatingPcapFile(tmp_path / "all.pcap", 0, 0), local_for=local_for, clock=Clock()
    )
    tracer("send", message("c1"), Address("tcp", "10.2.2.2", 5060))
    tracer("recv", message("c1"), Address("udp", "10.2.2.2", 5060, local=("0.0.0.0", 5090)))
    tracer.close()
    _, packets = read_pcap(tmp_path / "all.pcap")
    assert (packets[0].src, packets[0].sport, packets[0].proto) == ("10.1.1.1", 5080, 6)
    assert (packets[1].dst, packets[1].dport) == ("10.1.1.1", 5090)
    assert asked == ["tcp", "udp"]


def test_per_call_capture_holds_only_that_call(tmp_path: Path) -> None:
    tracer = SipTracer(per_call_dir=tmp_path / "calls", clock=Clock())
    peer = Address("tls", "10.0.0.9", 40000, local=("10.0.0.1", 5061))
    tracer("recv", message("before"), peer)  # nothing captured: not started
    path = tracer.start_call("wanted@x")
    assert path == tmp_path / "calls" / "wanted@x.pcap"
    assert tracer.start_call("wanted@x") == path  # idempotent
    tracer("recv", message("wanted@x"), peer)
    tracer("recv", message("other"), peer)
    tracer("send", message("wanted@x", "SIP/2.0 200 OK", header="i"), peer)
    assert tracer.calls == {"wanted@x": path}
    assert tracer.stop_call("wanted@x") == path
    tracer("recv", message("wanted@x"), peer)  # after stop: not captured
    assert tracer.stop_call("wanted@x") is None
    _, packets = read_pcap(path)
    assert len(packets) == 2
    assert all(b"wanted@x" in p.payload for p in packets)
    # TCP sequence numbers of the call's own file are contiguous
    assert packets[1].ack == (packets[0].seq + len(packets[0].payload)) & 0xFFFFFFFF
    assert {p.proto for p in packets} == {6}


def test_linked_call_ids_share_the_capture_and_stop_with_it(tmp_path: Path) -> None:
    tracer = SipTracer(per_call_dir=tmp_path, clock=Clock())
    peer = Address("udp", "10.0.0.9", 5060, local=("10.0.0.1", 5060))
    assert not tracer.link("caller@x", "callee@y")  # nothing captured yet
    path = tracer.start_call("caller@x")
    assert tracer.link("caller@x", "callee@y") and tracer.link("caller@x", "00000001")
    assert not tracer.link("caller@x", "callee@y")
    for call_id in ("caller@x", "callee@y", "unrelated"):
        tracer("recv", message(call_id), peer)
    assert tracer.stop_call("00000001") == path  # any name stops the whole capture
    assert tracer.calls == {}
    tracer("recv", message("callee@y"), peer)
    _, packets = read_pcap(path)
    assert [b"caller@x" in p.payload for p in packets] == [True, False]
    assert b"callee@y" in packets[1].payload


def test_start_call_needs_a_path_without_per_call_dir(tmp_path: Path) -> None:
    tracer = SipTracer()
    with pytest.raises(ValueError, match="per_call_dir"):
        tracer.start_call("c1")
    assert tracer.start_call("c1", tmp_path / "c1.pcap") == tmp_path / "c1.pcap"
    tracer.close()
    assert tracer.calls == {}


def test_tracer_with_nothing_to_do_touches_nothing() -> None:
    tracer = SipTracer()
    # an address with an impossible host would fail if anything were encoded
    tracer("recv", b"\xff" * 10, Address("udp", "not-an-ip", 1))
    assert tracer.errors == 0


def test_a_failing_sink_is_counted_not_raised(tmp_path: Path) -> None:
    pcap = RotatingPcapFile(tmp_path / "all.pcap", 0, 0)
    tracer = SipTracer(pcap=pcap)

    def broken(timestamp: float, packets: list[bytes]) -> None:
        raise OSError("disk full")

    pcap.write = broken  # type: ignore[method-assign]
    tracer("recv", message("c1"), Address("udp", "127.0.0.1", 5060))
    tracer("recv", message("c1"), Address("udp", "127.0.0.1", 5060))
    assert tracer.errors == 2


def test_hep_export_carries_the_call_id(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as collector:
        collector.bind(("127.0.0.1", 0))
        collector.settimeout(2)
        hep = HepSender(f"127.0.0.1:{collector.getsockname()[1]}")
        tracer = SipTracer(hep=hep)
        tracer(
            "recv",
            message("hep-call"),
            Address("udp", "127.0.0.2", 5070, local=("127.0.0.1", 5060)),
        )
        data, _ = collector.recvfrom(65535)
        tracer.close()
    assert data.startswith(b"HEP3")
    assert b"hep-call" in data
    assert hep.sent == 1


def test_rotation_keeps_numbered_files(tmp_path: Path) -> None:
    path = tmp_path / "all.pcap"
    pcap = RotatingPcapFile(path, max_bytes=200, keep=2)
    packet = b"E" + bytes(150)  # any bytes: the file layer does not look inside
    for index in range(5):
        pcap.write(float(index), [packet])
    pcap.close()
    assert pcap.rotations == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.pcap", "all.pcap.1", "all.pcap.2"]
    for name in ("all.pcap", "all.pcap.1", "all.pcap.2"):
        data = (tmp_path / name).read_bytes()
        assert data[:4] == bytes.fromhex("d4c3b2a1")  # each file starts with its own header
        assert len(data) == 24 + 16 + len(packet)
    # the newest message is in the live file, the one before it in .1
    assert (tmp_path / "all.pcap").read_bytes()[24:28] == (4).to_bytes(4, "little")
    assert (tmp_path / "all.pcap.1").read_bytes()[24:28] == (3).to_bytes(4, "little")


def test_rotation_with_keep_zero_replaces_the_file(tmp_path: Path) -> None:
    pcap = RotatingPcapFile(tmp_path / "all.pcap", max_bytes=50, keep=0)
    for index in range(3):
        pcap.write(float(index), [b"E" + bytes(40)])
    pcap.close()
    assert [p.name for p in tmp_path.iterdir()] == ["all.pcap"]


def test_pcap_file_ignores_writes_after_close(tmp_path: Path) -> None:
    capture = PcapFile(tmp_path / "deep" / "dir" / "c.pcap")
    capture.close()
    capture.write(1.0, [b"x"])
    assert capture.closed
    assert (tmp_path / "deep" / "dir" / "c.pcap").stat().st_size == 24
