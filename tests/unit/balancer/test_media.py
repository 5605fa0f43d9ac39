"""The balancer as an ng client: which message asks what, and the proxy holding it meanwhile."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from callway.app import balancer_media
from callway.app.balancer import balancer_settings, carries_media
from callway.app.balancer_media import MediaRelayClient
from callway.app.balancer_tu import BalancerUser
from callway.balancer.media import (
    NgCodec,
    NgCommand,
    NgReply,
    parse_relay_address,
    reply_sdp,
    request_command,
    response_command,
)
from callway.balancer.proxy import Identity
from callway.config.errors import ConfigError
from callway.config.toml import parse_settings
from callway.core.address import Address
from callway.ng.bencode import decode
from callway.ng.protocol import format_reply
from callway.sip.message import Request, Response, parse_message
from callway.transport.stack import SipStack

ME = Identity("10.0.0.1", 5060)
PHONE = Address("udp", "192.0.2.7", 40000, ("10.0.0.1", 5060))
NODE = Address("udp", "10.0.0.11", 5060)
SDP = (
    b"v=0\r\no=- 1 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\n"
)
NODE_SDP = SDP.replace(b"192.0.2.7", b"10.0.0.11")
RELAYED = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n"
    b"m=audio 30000 RTP/AVP 0\r\n"
)


def request(method: str, *, body: bytes = b"", to_tag: str = "", branch: str = "z9hG4bKp1",
            kind: str = "application/sdp") -> bytes:  # fmt: skip
    to = "<sip:100@example.com>" + (f";tag={to_tag}" if to_tag else "")
    cseq = 1 if method in ("INVITE", "CANCEL", "ACK") else 2
    head = (
        f"{method} sip:100@10.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.7:40000;branch={branch};rport\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:200@example.com>;tag=f1\r\n"
        f"To: {to}\r\nCall-ID: call-1\r\nCSeq: {cseq} {method}\r\n"
        "Contact: <sip:200@192.0.2.7:40000>\r\n"
    )
    if body:
        head += f"Content-Type: {kind}\r\n"
    return head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body


def parsed_request(data: bytes) -> Request:
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def response_to(data: bytes, status: int, *, body: bytes = b"", tag: str = "t1") -> Response:
    forwarded = parsed_request(data)
    lines = [f"SIP/2.0 {status} X"]
    lines += [f"Via: {via}" for via in forwarded.get_all("via")]
    for name in ("from", "call-id", "cseq"):
        lines.append(f"{name}: {forwarded.get(name)}")
    lines.append(f"To: {forwarded.get('to')};tag={tag}")
    lines.append("Contact: <sip:100@10.0.0.11>")
    if body:
        lines.append("Content-Type: application/sdp")
    raw = "\r\n".join(lines).encode() + f"\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    message = parse_message(raw)
    assert isinstance(message, Response)
    return message


# -- sans-I/O ------------------------------------------------------------------------------------


def test_invite_with_sdp_is_an_offer_with_kamailio_default_options() -> None:
    command = request_command(parsed_request(request("INVITE", body=SDP)))
    assert command == NgCommand("offer", "call-1", "f1", None, SDP)
    assert command.to_dict() == {
        "command": "offer", "call-id": "call-1", "from-tag": "f1", "sdp": SDP,
        "replace": ["origin", "session-connection"], "ICE": "remove",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (request("INVITE"), None),  # late offer: the 200 will carry it
        (request("INVITE", body=b"x", kind="application/json"), None),
        (request("ACK", body=SDP, to_tag="t1"), NgCommand("answer", "call-1", "f1", "t1", SDP)),
        (request("ACK", to_tag="t1"), None),
        (request("BYE", to_tag="t1"), NgCommand("delete", "call-1", "f1")),
        (request("CANCEL"), NgCommand("delete", "call-1", "f1")),
        (request("REGISTER"), None),
        (request("UPDATE", body=SDP, to_tag="t1"), NgCommand("offer", "call-1", "f1", "t1", SDP)),
        (request("INVITE", body=SDP, to_tag="t1"), NgCommand("offer", "call-1", "f1", "t1", SDP)),
    ],
)
def test_request_commands(data: bytes, expected: NgCommand | None) -> None:
    assert request_command(parsed_request(data)) == expected


def test_response_commands() -> None:
    invite = request("INVITE", body=SDP)
    ok = response_to(invite, 200, body=NODE_SDP)
    assert response_command(ok, offer_sent=True, initial=True) == NgCommand(
        "answer", "call-1", "f1", "t1", NODE_SDP)  # fmt: skip
    late = response_command(ok, offer_sent=False, initial=True)
    assert late is not None and late.command == "offer"  # §13.2.1: the 200 offers
    assert response_command(response_to(invite, 180), offer_sent=True, initial=True) is None
    busy = response_to(invite, 486)
    assert response_command(busy, offer_sent=True, initial=True) == NgCommand(
        "delete", "call-1", "f1")  # fmt: skip
    assert response_command(busy, offer_sent=True, initial=False) is None  # a failed re-INVITE


def test_relay_address_and_its_configuration() -> None:
    assert parse_relay_address("udp:127.0.0.1:2223") == ("127.0.0.1", 2223)
    assert parse_relay_address("192.0.2.5:2223") == ("192.0.2.5", 2223)
    for bad in ("udp:127.0.0.1", "tcp-ish", "udp:127.0.0.1:0", "udp::2223"):
        with pytest.raises(ValueError, match="expected udp:IP:PORT"):
            parse_relay_address(bad)
    text = '[balancer]\nlisten = "udp:127.0.0.1:5060"\nmedia_relay = "127.0.0.1"\n'
    with pytest.raises(ConfigError, match=r"\[balancer\].*media_relay"):
        parse_settings(text)
    good = parse_settings(text.replace('"127.0.0.1"\n', '"udp:127.0.0.1:2223"\n'))
    assert good.balancer.media_relay == "udp:127.0.0.1:2223"
    assert parse_settings("[balancer]\nset = 1\n").balancer.media_relay == ""


def test_codec_round_trip() -> None:
    codec = NgCodec("cwb1")
    cookie, datagram = codec.encode(NgCommand("delete", "c", "f"))
    assert datagram.startswith(cookie + b" ") and cookie == b"cwb1_1"
    assert decode(datagram.partition(b" ")[2]) == {b"command": b"delete", b"call-id": b"c",
                                                   b"from-tag": b"f"}  # fmt: skip
    decoded = codec.decode(format_reply(cookie, {"result": "ok", "sdp": RELAYED}))
    assert decoded is not None and decoded[0] == cookie and reply_sdp(decoded[1]) == RELAYED
    assert reply_sdp({"result": b"error", "error-reason": b"x"}) is None
    assert codec.decode(b"no-space") is None and codec.decode(b"c 3:abc") is None


# -- the proxy holding messages for the relay ----------------------------------------------------


class FakeMedia:
    def __init__(self) -> None:
        self.asked: list[tuple[NgCommand, Callable[[NgReply | None], None]]] = []

    def request(self, command: NgCommand, done: Callable[[NgReply | None], None]) -> None:
        self.asked.append((command, done))

    def commands(self) -> list[str]:
        return [command.command for command, _ in self.asked]

    def reply(self, index: int, sdp: bytes | None) -> None:
        self.asked[index][1](None if sdp is None else {"result": b"ok", "sdp": sdp})


class FakePicker:
    def candidates(self, request: Request, now: float) -> list[tuple[str, Address]]:
        return [("sip:10.0.0.11", NODE)]

    def failed(self, uri: str, now: float) -> None:
        pass

    def call_started(self, uri: str, call_id: str) -> None:
        pass

    def call_ended(self, call_id: str) -> None:
        pass

    def is_destination(self, source: Address) -> bool:
        return source.host == NODE.host


class Harness:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Address]] = []
        self.stack = SipStack(clock=lambda: 0.0)
        self.stack.send_bytes = self._send  # type: ignore[method-assign]
        self.proxy = BalancerUser(self.stack, ME, FakePicker(), clock=lambda: 0.0)
        self.media = FakeMedia()
        self.proxy.media = self.media
        self.stack.tu = self.proxy

    def _send(self, data: bytes, dest: Address) -> None:
        self.sent.append((data, dest))

    def take(self, to: Address) -> list[bytes]:
        out = [data for data, dest in self.sent if (dest.host, dest.port) == (to.host, to.port)]
        self.sent = []
        return out

    def feed(self, data: bytes | Response, source: Address = PHONE) -> None:
        self.stack.on_data(data if isinstance(data, bytes) else data.to_bytes(), source)


def body_of(data: bytes) -> bytes:
    message = parse_message(data)
    assert int(message.get("content-length") or -1) == len(message.body)
    return message.body


def test_invite_waits_for_the_offer_and_the_200_for_the_answer() -> None:
    h = Harness()
    invite = request("INVITE", body=SDP)
    h.feed(invite)
    h.feed(invite)  # a retransmission while the relay is asked: no second offer
    assert h.media.commands() == ["offer"] and h.take(NODE) == []
    h.media.reply(0, RELAYED)
    (forwarded,) = h.take(NODE)
    assert body_of(forwarded) == RELAYED
    ok = response_to(forwarded, 200, body=NODE_SDP)
    h.feed(ok, NODE)
    assert h.media.commands() == ["offer", "answer"] and h.take(PHONE) == []
    h.media.reply(1, RELAYED.replace(b"30000", b"30002"))
    (upstream,) = h.take(PHONE)
    assert body_of(upstream) == RELAYED.replace(b"30000", b"30002")
    h.feed(ok, NODE)  # the node repeats its 200 (the ACK was lost): the same SDP, no new answer
    repeated = [data for data in h.take(PHONE) if data.startswith(b"SIP/2.0 200")]
    assert [body_of(data) for data in repeated] == [RELAYED.replace(b"30000", b"30002")]
    assert h.media.commands() == ["offer", "answer"]


def test_responses_keep_their_order_behind_one_held() -> None:
    h = Harness()
    h.feed(request("INVITE", body=SDP))
    h.media.reply(0, RELAYED)
    (forwarded,) = h.take(NODE)
    h.feed(response_to(forwarded, 183, body=NODE_SDP), NODE)
    h.feed(response_to(forwarded, 180), NODE)
    assert h.take(PHONE) == []
    h.media.reply(1, RELAYED)
    assert [data[:11] for data in h.take(PHONE)] == [b"SIP/2.0 183", b"SIP/2.0 180"]


def test_silent_relay_leaves_the_invite_unchanged() -> None:
    h = Harness()
    h.feed(request("INVITE", body=SDP))
    h.media.reply(0, None)
    (forwarded,) = h.take(NODE)
    assert body_of(forwarded) == SDP


def test_cancel_while_the_relay_is_asked_ends_the_call_there() -> None:
    h = Harness()
    h.feed(request("INVITE", body=SDP))
    h.feed(request("CANCEL"))
    h.media.reply(0, RELAYED)
    assert [dest for _, dest in h.sent if dest.host == NODE.host] == []  # never forwarded
    assert {b"200", b"487"} <= {data[8:11] for data, _ in h.sent}
    assert h.media.commands() == ["offer", "delete", "delete"]


def test_bye_and_failure_delete_the_call() -> None:
    h = Harness()
    h.feed(request("INVITE", body=SDP))
    h.media.reply(0, RELAYED)
    (forwarded,) = h.take(NODE)
    h.feed(response_to(forwarded, 486), NODE)
    assert h.media.commands() == ["offer", "delete"]  # not waited for
    assert any(data.startswith(b"SIP/2.0 486") for data in h.take(PHONE))
    h.feed(request("BYE", to_tag="t1", branch="z9hG4bKbye").replace(b"@10.0.0.1 ", b"@10.0.0.11 "))
    assert h.media.commands() == ["offer", "delete", "delete"]
    assert len(h.take(NODE)) == 1  # the BYE went on at once


def test_ack_with_the_answer_to_a_late_offer() -> None:
    h = Harness()
    h.feed(request("INVITE"))
    (forwarded,) = h.take(NODE)
    h.feed(response_to(forwarded, 200, body=NODE_SDP), NODE)
    assert h.media.commands() == ["offer"]  # the 200 offers
    h.media.reply(0, RELAYED)
    ack = request("ACK", body=SDP, to_tag="t1", branch="z9hG4bKack").replace(
        b"sip:100@10.0.0.1", b"sip:100@10.0.0.11")  # fmt: skip
    h.take(PHONE)
    h.feed(ack)
    assert h.media.commands() == ["offer", "answer"] and h.take(NODE) == []
    h.media.reply(1, RELAYED)
    (sent,) = h.take(NODE)
    assert sent.startswith(b"ACK ") and body_of(sent) == RELAYED


def test_media_relay_flag_overrides_the_file(tmp_path: Path) -> None:
    (tmp_path / "callway.toml").write_text(
        '[balancer]\nlisten = "udp:127.0.0.1:5060"\nmedia_relay = "udp:127.0.0.1:2223"\n'
    )
    from_file = balancer_settings(argparse.Namespace(config=str(tmp_path)))
    assert from_file.media_relay == "udp:127.0.0.1:2223"
    flag = argparse.Namespace(config=str(tmp_path), media_relay="udp:127.0.0.3:2224")
    assert balancer_settings(flag).media_relay == "udp:127.0.0.3:2224"
    assert balancer_settings(argparse.Namespace(config=None)).media_relay == ""


def test_fast_path_leaves_messages_with_media_to_the_full_path() -> None:
    assert carries_media(request("INVITE"))
    assert carries_media(request("BYE", to_tag="t1"))
    assert carries_media(request("ACK", body=SDP, to_tag="t1"))
    assert not carries_media(request("ACK", to_tag="t1"))
    assert not carries_media(request("INFO", to_tag="t1"))
    assert not carries_media(b"SIP/2.0 200 OK\r\n\r\n")


def test_client_retransmits_once_then_forwards_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    """A silent relay: the same datagram twice, then None and the timeout counter."""
    monkeypatch.setattr(balancer_media, "RETRY_AFTER", 0.05)
    monkeypatch.setattr(balancer_media, "GIVE_UP_AFTER", 0.1)

    async def scenario() -> tuple[list[bytes], list[NgReply | None], dict[str, int]]:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as relay:
            relay.bind(("127.0.0.1", 0))
            relay.setblocking(False)
            stats: dict[str, int] = {}
            client = MediaRelayClient(f"udp:127.0.0.1:{relay.getsockname()[1]}", stats)
            await client.start()
            replies: list[NgReply | None] = []
            client.request(NgCommand("delete", "c", "f"), replies.append)
            await asyncio.sleep(0.3)
            seen = []
            with contextlib.suppress(BlockingIOError):
                while True:
                    seen.append(relay.recv(2048))
            # a relay that answers: the reply under the cookie completes the request
            client.request(NgCommand("delete", "c2", "f"), replies.append)
            await asyncio.sleep(0.02)
            data, peer = relay.recvfrom(2048)
            cookie = data.partition(b" ")[0]
            relay.sendto(format_reply(cookie, {"result": "ok"}), peer)
            await asyncio.sleep(0.02)
            client.close()
            return seen, replies, stats

    seen, replies, stats = asyncio.run(scenario())
    assert len(seen) == 2 and seen[0] == seen[1]
    assert replies == [None, {"result": b"ok"}]
    assert stats == {"media_relay_requests": 2, "media_relay_timeout": 1, "media_relay_errors": 0}
