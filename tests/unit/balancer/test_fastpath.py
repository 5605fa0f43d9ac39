"""The balancer's byte-level fast path: relaying, failover, CANCEL, timers, fallbacks."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from callway.balancer.fastpath import FastRelay
from callway.balancer.proxy import Identity
from callway.balancer.wire import parse_top_via, split_message
from callway.core.address import Address
from callway.sip.message import Request

ME = Identity("10.0.0.1", 5060)
PHONE = Address("udp", "192.0.2.7", 40000, ("10.0.0.1", 5060))
NODE_A = Address("udp", "10.0.0.11", 5060)
NODE_B = Address("udp", "10.0.0.12", 5060)
PREFIX = "z9hG4bKcwb"


class FakeDispatcher:
    def __init__(self, nodes: list[Address]) -> None:
        self.nodes = nodes
        self.failures: list[str] = []
        self.started: list[str] = []
        self.ended: list[str] = []

    def candidates_for_call(
        self, call_id: str, request: Callable[[], Request], now: float
    ) -> list[tuple[str, Address]]:
        assert request().method == "INVITE"
        return [(f"sip:{n.host}:{n.port}", n) for n in self.nodes]

    def failed(self, uri: str, now: float) -> None:
        self.failures.append(uri)

    def call_started(self, uri: str, call_id: str) -> None:
        self.started.append(call_id)

    def call_ended(self, call_id: str) -> None:
        self.ended.append(call_id)

    def is_destination(self, source: Address) -> bool:
        return any(source.host == n.host and source.port == n.port for n in self.nodes)


class Harness:
    def __init__(self, nodes: list[Address] | None = None) -> None:
        self.sent: list[tuple[bytes, Address]] = []
        self.dispatcher = FakeDispatcher([NODE_A, NODE_B] if nodes is None else nodes)
        self.stats = {"forwarded": 0, "failover": 0}
        self.relay = FastRelay(ME, self.dispatcher, self.send, branch_prefix=PREFIX,
                               first_response_timeout=2.0, stats=self.stats)  # fmt: skip

    def send(self, data: bytes, dest: Address) -> None:
        self.sent.append((data, dest))

    def take(self) -> list[tuple[bytes, Address]]:
        out, self.sent = self.sent, []
        return out

    def feed(self, data: bytes, source: Address = PHONE, now: float = 0.0) -> bool:
        return self.relay.receive(data, source, now)


SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n"


def invite(branch: str = "z9hG4bKphone1", extra: bytes = b"", mf: bytes = b"70") -> bytes:
    return (
        b"INVITE sip:100@10.0.0.1 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.168.1.2:5060;branch=" + branch.encode() + b";rport\r\n"
        b"Max-Forwards: " + mf + b"\r\n"
        b"From: <sip:200@example.com>;tag=f1\r\nTo: <sip:100@example.com>\r\n"
        b"Call-ID: call-1\r\nCSeq: 1 INVITE\r\nContact: <sip:200@192.168.1.2>\r\n" + extra +
        b"Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n" % len(SDP) + SDP
    )  # fmt: skip


def answer(request: bytes, status: int, reason: str, *, tag: bool = True, merge: bool = True,
           cseq: bytes | None = None) -> bytes:  # fmt: skip
    """A node's response: Via lines copied (merged into one line, as sipp does)."""
    head = request.split(b"\r\n\r\n")[0].split(b"\r\n")
    vias = [line.partition(b":")[2].strip() for line in head if line.startswith(b"Via:")]
    via_lines = [b"Via: " + b", ".join(vias)] if merge else [b"Via: " + v for v in vias]
    keep = [line for line in head if line.split(b":")[0] in (b"From", b"Call-ID", b"CSeq",
                                                                  b"Record-Route")]  # fmt: skip
    if cseq is not None:
        keep = [cseq if line.startswith(b"CSeq") else line for line in keep]
    to = next(line for line in head if line.startswith(b"To:"))
    if tag and b"tag=" not in to:
        to += b";tag=n1"
    lines = [f"SIP/2.0 {status} {reason}".encode(), *via_lines, *keep, to, b"Content-Length: 0"]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def header(message: bytes, name: bytes) -> list[bytes]:
    head = message.split(b"\r\n\r\n")[0].split(b"\r\n")
    return [line.partition(b":")[2].strip() for line in head if line.startswith(name + b":")]


def start_call(h: Harness) -> bytes:
    assert h.feed(invite())
    (trying, up), (forwarded, node) = h.take()
    assert trying.startswith(b"SIP/2.0 100 Trying") and up == Address("udp", "192.0.2.7", 40000)
    assert node == NODE_A
    return forwarded


def test_invite_is_relayed_with_via_record_route_and_max_forwards() -> None:
    h = Harness()
    forwarded = start_call(h)
    vias = header(forwarded, b"Via")
    assert vias[0].startswith(b"SIP/2.0/UDP 10.0.0.1:5060;branch=" + PREFIX.encode())
    assert vias[1] == b"SIP/2.0/UDP 192.168.1.2:5060;branch=z9hG4bKphone1;rport=40000;" \
        b"received=192.0.2.7"  # fmt: skip
    assert header(forwarded, b"Record-Route") == [b"<sip:10.0.0.1:5060;lr>"]
    assert header(forwarded, b"Max-Forwards") == [b"69"]
    assert forwarded.endswith(SDP) and header(forwarded, b"Content-Length") == [b"%d" % len(SDP)]


@pytest.mark.parametrize("merge", [True, False])
def test_responses_lose_our_via_and_go_back_to_the_phone(merge: bool) -> None:
    h = Harness()
    forwarded = start_call(h)
    assert h.feed(answer(forwarded, 100, "Trying"), NODE_A)
    assert h.take() == []  # 100 is hop-by-hop
    assert h.feed(answer(forwarded, 180, "Ringing", merge=merge), NODE_A)
    assert h.feed(answer(forwarded, 200, "OK", merge=merge), NODE_A)
    (ringing, up), (ok, _) = h.take()
    assert up.host == "192.0.2.7" and up.port == 40000
    assert [len(header(m, b"Via")[0].split(b",")) for m in (ringing, ok)] == [1, 1]
    assert b"branch=z9hG4bKphone1" in header(ok, b"Via")[0]
    assert h.dispatcher.started == ["call-1"]
    # A retransmitted INVITE after the 2xx is absorbed.
    assert h.feed(invite()) and h.take() == []


def in_dialog(method: bytes, branch: bytes, cseq: bytes) -> bytes:
    return (
        method + b" sip:100@10.0.0.11:5060 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.168.1.2:5060;branch=" + branch + b";rport\r\n"
        b"Route: <sip:10.0.0.1:5060;lr>\r\nMax-Forwards: 70\r\n"
        b"From: <sip:200@example.com>;tag=f1\r\nTo: <sip:100@example.com>;tag=n1\r\n"
        b"Call-ID: call-1\r\nCSeq: " + cseq + b"\r\nContent-Length: 0\r\n\r\n"
    )  # fmt: skip


def test_ack_and_bye_follow_the_route_set() -> None:
    h = Harness()
    start_call(h)
    assert h.feed(in_dialog(b"ACK", b"z9hG4bKack", b"1 ACK"))
    ((ack, dest),) = h.take()
    assert dest == Address("udp", "10.0.0.11", 5060)
    assert header(ack, b"Route") == [] and header(ack, b"Max-Forwards") == [b"69"]
    assert header(ack, b"Via")[0].startswith(b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKcwb")
    bye = in_dialog(b"BYE", b"z9hG4bKbye", b"2 BYE")
    assert h.feed(bye)
    ((forwarded, dest),) = h.take()
    assert dest == NODE_A and forwarded.startswith(b"BYE ")
    assert h.feed(answer(forwarded, 200, "OK"), NODE_A)
    ((ok, up),) = h.take()
    assert ok.startswith(b"SIP/2.0 200") and up.port == 40000
    assert h.dispatcher.ended == ["call-1"]
    assert h.feed(bye) and h.take() == [(ok, up)]  # the retransmission gets the same answer


def test_503_before_any_provisional_fails_over_to_the_next_node() -> None:
    h = Harness()
    forwarded = start_call(h)
    assert h.feed(answer(forwarded, 503, "Service Unavailable"), NODE_A)
    (ack, to_a), (second, to_b) = h.take()
    assert ack.startswith(b"ACK sip:100@10.0.0.1 SIP/2.0") and to_a == NODE_A
    assert header(ack, b"Via")[0] == header(forwarded, b"Via")[0]
    assert to_b == NODE_B and header(second, b"Via")[0] != header(forwarded, b"Via")[0]
    assert h.dispatcher.failures == ["sip:10.0.0.11:5060"] and h.stats["failover"] == 1
    # The first node repeats its 503: ACKed again, nothing goes upstream.
    assert h.feed(answer(forwarded, 503, "Service Unavailable"), NODE_A)
    assert [m[:4] for m, _ in h.take()] == [b"ACK "]


def test_silent_node_is_given_up_after_the_first_response_timeout() -> None:
    h = Harness()
    forwarded = start_call(h)
    h.relay.handle_timer(0.6)
    assert h.take() == [(forwarded, NODE_A)]  # Timer A
    h.relay.handle_timer(1.6)
    assert h.take() == [(forwarded, NODE_A)]  # doubled
    h.relay.handle_timer(2.0)
    ((second, dest),) = h.take()
    assert dest == NODE_B and second.startswith(b"INVITE")
    assert h.feed(answer(forwarded, 180, "Ringing"), NODE_A)  # late: dropped
    assert h.take() == []


def test_last_node_silent_gives_503_after_timer_b() -> None:
    h = Harness(nodes=[NODE_A])
    start_call(h)
    h.relay.handle_timer(40.0)
    sent = h.take()
    assert sent[-1][0].startswith(b"SIP/2.0 503") and sent[-1][1].port == 40000


def test_cancel_after_ringing_cancels_the_node() -> None:
    h = Harness()
    forwarded = start_call(h)
    assert h.feed(answer(forwarded, 180, "Ringing"), NODE_A)
    h.take()
    cancel = invite().replace(b"INVITE sip", b"CANCEL sip").replace(b"1 INVITE", b"1 CANCEL")
    assert h.feed(cancel)
    (ok, up), (to_node, dest) = h.take()
    assert ok.startswith(b"SIP/2.0 200") and b"CANCEL" in header(ok, b"CSeq")[0]
    assert to_node.startswith(b"CANCEL ") and dest == NODE_A
    assert header(to_node, b"Via")[0] == header(forwarded, b"Via")[0]
    assert h.feed(answer(forwarded, 200, "OK", cseq=b"CSeq: 1 CANCEL"), NODE_A)
    assert h.feed(answer(forwarded, 487, "Request Terminated"), NODE_A)
    (ack, _), (terminated, up) = h.take()
    assert ack.startswith(b"ACK ") and terminated.startswith(b"SIP/2.0 487") and up.port == 40000
    h.relay.handle_timer(0.6)
    assert h.take() == [(terminated, up)]  # Timer G until the ACK
    ack_up = cancel.replace(b"CANCEL sip", b"ACK sip").replace(b"1 CANCEL", b"1 ACK")
    assert h.feed(ack_up) and h.take() == []
    h.relay.handle_timer(5.0)
    assert h.take() == []


def test_cancel_before_any_provisional_waits_for_one() -> None:
    h = Harness()
    forwarded = start_call(h)
    cancel = invite().replace(b"INVITE sip", b"CANCEL sip").replace(b"1 INVITE", b"1 CANCEL")
    assert h.feed(cancel)
    assert [m[:12] for m, _ in h.take()] == [b"SIP/2.0 200 "]
    assert h.feed(answer(forwarded, 180, "Ringing"), NODE_A)
    assert [m[:7] for m, _ in h.take()] == [b"SIP/2.0", b"CANCEL "]


def test_retransmitted_invite_gets_the_last_provisional_again() -> None:
    h = Harness()
    forwarded = start_call(h)
    assert h.feed(answer(forwarded, 180, "Ringing"), NODE_A)
    ((ringing, _),) = h.take()
    assert h.feed(invite())
    assert [m for m, _ in h.take()] == [ringing]


def test_bye_without_answer_times_out_with_408() -> None:
    h = Harness()
    assert h.feed(answer(start_call(h), 200, "OK"), NODE_A)
    assert h.feed(in_dialog(b"BYE", b"z9hG4bKbye", b"2 BYE"))
    h.take()
    h.relay.handle_timer(0.6)
    assert len(h.take()) == 1  # Timer E
    h.relay.handle_timer(40.0)
    assert any(m.startswith(b"SIP/2.0 408") for m, _ in h.take())


@pytest.mark.parametrize(
    ("data", "source"),
    [
        (
            invite().replace(b"INVITE sip", b"REGISTER sip").replace(b"1 INVITE", b"1 REGISTER"),
            PHONE,
        ),
        (invite(extra=b"Route: <sip:10.0.0.9;lr>\r\n"), PHONE),
        (invite(extra=b"Proxy-Require: foo\r\n"), PHONE),
        (invite(mf=b"0"), PHONE),
        (invite(extra=b"Subject: a\r\n folded\r\n"), PHONE),
        (invite().replace(b"Content-Length: 6", b"Content-Length: 9"), PHONE),
        (invite(), Address("tcp", "192.0.2.7", 40000)),
        (invite(), NODE_A),  # a node starting a call: the full path
        (invite(branch="1234"), PHONE),  # RFC 2543 branch
        (invite().replace(b"UDP 192.168", b"TCP 192.168"), PHONE),
        (invite(branch=PREFIX + "loop"), PHONE),
        (invite(extra=b"Via\r\n"), PHONE),  # a known name without a colon: the parser's 400
        (invite(extra=b"Max-Forwards\r\n"), PHONE),
    ],
)
def test_unusual_requests_take_the_full_path(data: bytes, source: Address) -> None:
    h = Harness()
    assert not h.feed(data, source)
    assert h.take() == []


def test_overload_and_no_destination_take_the_full_path() -> None:
    h = Harness(nodes=[])
    assert not h.feed(invite())
    h = Harness()
    h.relay.overloaded = lambda: True
    assert not h.feed(invite())


def test_stray_responses_take_the_full_path() -> None:
    h = Harness()
    data = answer(invite(), 200, "OK")
    assert not h.feed(data, NODE_A)  # not our branch
    forwarded = start_call(h)
    ok = answer(forwarded, 200, "OK")
    assert h.feed(ok, NODE_A)
    h.take()
    assert not h.feed(ok, NODE_A)  # a 2xx retransmission: the full path relays it by Via
    assert h.take() == []


def test_wire_reads_compact_forms_and_merged_vias() -> None:
    data = b"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP a:1;branch=z9hG4bKx, SIP/2.0/UDP b;rport\r\n" \
        b"f: <sip:a>;tag=1\r\nt: <sip:b>\r\ni: c\r\nCSeq: 1 BYE\r\nl: 0\r\n\r\n"  # fmt: skip
    wire = split_message(data)
    assert wire is not None and wire.value("cid") == b"c"
    via = parse_top_via(wire.value("via") or b"")
    assert via is not None and via.branch == "z9hG4bKx" and via.port == 1
    assert via.rest == b"SIP/2.0/UDP b;rport"
    assert re.match(rb"SIP/2.0 200", wire.to_bytes())


def test_late_2xx_of_an_abandoned_attempt_is_dropped() -> None:
    h = Harness()
    forwarded = start_call(h)
    h.relay.handle_timer(2.0)
    h.take()
    assert h.feed(answer(forwarded, 200, "OK"), NODE_A, now=3.0)
    assert h.take() == []


def test_timer_c_cancels_an_attempt_that_rings_forever() -> None:
    h = Harness()
    forwarded = start_call(h)
    assert h.feed(answer(forwarded, 180, "Ringing"), NODE_A)
    h.take()
    h.relay.handle_timer(181.0)
    assert [(m[:7], d) for m, d in h.take()] == [(b"CANCEL ", NODE_A)]
    assert h.feed(answer(forwarded, 487, "Request Terminated"), NODE_A, now=181.1)
    assert [m[:11] for m, _ in h.take()] == [b"ACK sip:100", b"SIP/2.0 487"]


def test_mangled_messages_never_raise() -> None:
    """Byte flips, cut lines and truncation: relayed, declined or absorbed, never an error."""
    import random

    rng = random.Random(7)
    h = Harness()
    forwarded = start_call(h)
    samples = [invite(), answer(forwarded, 180, "Ringing"), answer(forwarded, 200, "OK"),
               in_dialog(b"BYE", b"z9hG4bKbye", b"2 BYE"),
               in_dialog(b"ACK", b"z9hG4bKack", b"1 ACK")]  # fmt: skip
    alphabet = b' :;,<>=\r\n\t"0123456789abcSIP/'
    for _ in range(3000):
        data = bytearray(rng.choice(samples))
        for _ in range(rng.randint(1, 4)):
            spot = rng.randrange(len(data))
            kind = rng.random()
            if kind < 0.5:
                data[spot] = rng.choice(alphabet)
            elif kind < 0.8:
                del data[spot : spot + rng.randint(1, 20)]
            else:
                data[spot:spot] = bytes([rng.choice(alphabet)])
        source = NODE_A if data.startswith(b"SIP/") else PHONE
        h.feed(bytes(data), source, now=rng.random() * 60)
        h.relay.handle_timer(rng.random() * 60)
        h.take()
